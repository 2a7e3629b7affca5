"""The packer of tensors has the compiled kernels' layout: NumPy's little-endian packbits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from relukit.kernels import mask as bits


@given(st.lists(st.booleans(), max_size=200))
def test_pack_bits_is_numpy_packbits_little_endian(flags):
    tensor = torch.tensor(flags, dtype=torch.bool)
    packed = bits.pack_bits(tensor)
    expected = np.packbits(np.array(flags, dtype=bool), bitorder="little")
    assert packed.dtype == torch.uint8
    assert packed.numpy().tolist() == expected.tolist()
    assert bits.unpack_bits(packed, len(flags)).tolist() == flags
    as_float = bits.unpack_bits_as(packed, len(flags), torch.float32)
    assert as_float.tolist() == [float(f) for f in flags]


def test_pack_bits_reads_c_order_of_any_layout():
    flags = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0)) > 0.5
    transposed = flags.transpose(0, 2)
    expected = np.packbits(transposed.numpy().reshape(-1), bitorder="little")
    assert bits.pack_bits(transposed).numpy().tolist() == expected.tolist()
    assert bits.nbytes(transposed.numel(), 1) == expected.size


@pytest.mark.parametrize("width", [2, 4, 8])
@given(data=st.data())
def test_codes_round_trip_little_endian(width, data):
    values = data.draw(st.lists(st.integers(0, (1 << width) - 1), max_size=60))
    codes = torch.tensor(values, dtype=torch.uint8)
    packed = bits.pack_codes(codes, width)
    assert packed.numel() == bits.nbytes(len(values), width)
    assert bits.unpack_codes(packed, len(values), width).tolist() == values
    per = 8 // width
    for i, value in enumerate(values):
        assert (int(packed[i // per]) >> (width * (i % per))) & ((1 << width) - 1) == value


def test_code_bits():
    assert [bits.code_bits(k) for k in (1, 2, 3, 4, 5, 16, 17, 256, 257)] == [
        1,
        1,
        2,
        2,
        4,
        4,
        8,
        8,
        0,
    ]


@given(st.lists(st.integers(0, 7), max_size=60))
def test_three_bit_codes_are_the_layouts_bit_stream(values):
    # element i at bit 3i of the little-endian stream (byte 3i // 8, bit 3i % 8), straddling
    codes = torch.tensor(values, dtype=torch.uint8)
    packed = bits.pack_codes(codes, 3)
    assert packed.numel() == bits.nbytes(len(values), 3)
    stream = np.unpackbits(packed.numpy(), bitorder="little")
    for i, value in enumerate(values):
        assert sum(int(stream[3 * i + k]) << k for k in range(3)) == value
    assert bits.unpack_codes(packed, len(values), 3).tolist() == values
    # the Array-API packer gives the same bytes for NumPy
    m = __import__("relukit.kernels.reference", fromlist=["Math"]).Math(np)
    as_numpy = bits.pack(m, np.array(values, dtype=np.uint8), 3)
    assert as_numpy.tolist() == packed.tolist()
    assert bits.unpack(m, as_numpy, len(values), 3).tolist() == values
