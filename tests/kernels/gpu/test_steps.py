"""The few-bit Triton kernels against searchsorted and a gather, bit for bit."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
import torch

from relukit.kernels import mask as packer
from relukit.kernels import reference

from .helpers import DTYPES, assert_same, inputs, kernel_device

DEVICE = kernel_device()

from relukit.kernels.gpu import steps  # noqa: E402

BORDERS = {
    1: [0.1],
    2: [-1.3, 0.0, 0.7],
    3: [-2.5, -1.0, -0.3333333333333333, 0.0, 0.2, 1.1, 3.0],
    4: [float(v) for v in np.linspace(-3, 3, 15) + 0.01],
}


def _pack(codes: torch.Tensor, slot: int) -> torch.Tensor:
    """The codes packed by the library's one packer (relukit.kernels.mask)."""
    m = reference.Math(array_api_compat.array_namespace(codes))
    return packer.pack(m, codes, slot)


def _oracle(x: torch.Tensor, borders, levels, g: torch.Tensor):
    x64 = x.to(torch.float64).reshape(-1)
    codes = torch.searchsorted(torch.tensor(borders, dtype=torch.float64), x64, right=False)
    codes = torch.where(torch.isnan(x64), len(borders), codes)
    work = torch.float64 if g.dtype == torch.float64 else torch.float32
    level = torch.tensor(levels, dtype=torch.float64).to(work)[codes]
    return codes.to(torch.uint8), (g.reshape(-1).to(work) * level).to(g.dtype).view(g.shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_codes_and_backward(bits, dtype):
    borders = BORDERS[bits]
    levels = [0.1 * i - 0.05 * bits + 1 / 3 for i in range(1 << bits)]
    slot = steps.slot_bits(bits)
    edges = torch.tensor(borders, dtype=torch.float64)
    at_borders = torch.cat([edges, edges.to(dtype).to(torch.float64)])
    for n in (1, 9, 1000, 4097):
        x = inputs(n, dtype, seed=n)
        x[: min(n, at_borders.numel())] = at_borders[: min(n, at_borders.numel())].to(dtype)
        g = inputs(n, dtype, seed=n + 1)
        codes, expected = _oracle(x, borders, levels, g)
        packed = steps.encode(x.to(DEVICE), borders, bits)
        assert torch.equal(packed.cpu(), _pack(codes, slot))
        assert_same(steps.backward(g.to(DEVICE), packed, levels, bits).cpu(), expected)


def test_borders_are_rounded_down_to_the_dtype():
    b = steps.dtype_borders([0.1, -0.1, 1.0], torch.bfloat16)
    assert torch.tensor(b).to(torch.bfloat16).to(torch.float64).tolist() == list(b)
    assert b[0] <= 0.1 and b[1] <= -0.1 and b[2] == 1.0


def test_bad_arguments():
    x = torch.ones(5, device=DEVICE)
    with pytest.raises(ValueError, match=r"2 bits need 3 increasing borders; got \[1.0, 0.0\]"):
        steps.encode(x, [1.0, 0.0], 2)
    with pytest.raises(ValueError, match="2 bits need 4 levels; got 3"):
        steps.backward(x, torch.zeros(2, dtype=torch.uint8, device=DEVICE), [0.0, 1.0, 2.0], 2)
    with pytest.raises(ValueError, match="do not fit a byte"):
        steps.slot_bits(9)
