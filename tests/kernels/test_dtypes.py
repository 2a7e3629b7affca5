"""relukit.kernels.cpu.dtypes: the 16-bit conversions."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from relukit.kernels.cpu import dtypes, host

pytestmark = pytest.mark.skipif(not host.available(), reason="needs Numba")


@njit
def _each(values, function, out):  # type: ignore[no-untyped-def]
    for i in range(values.size):
        out[i] = function(values[i])
    return out


def _widen_all(h: np.ndarray, hardware: bool) -> np.ndarray:
    function = dtypes._half_to_f32_hardware if hardware else dtypes._half_to_f32_ops
    return _each(h, function, np.empty(h.size, dtype=np.float32))


def _narrow_all(f: np.ndarray, hardware: bool) -> np.ndarray:
    function = dtypes._f32_to_half_hardware if hardware else dtypes._f32_to_half_ops
    return _each(f, function, np.empty(f.size, dtype=np.int16))


@pytest.mark.skipif(not dtypes.F16C, reason="the host has no F16C")
def test_the_hardware_float16_conversions_give_the_bit_operations_bits():
    every = np.arange(-(2**15), 2**15, dtype=np.int32).astype(np.int16)
    wide = _widen_all(every, False)
    hardware = _widen_all(every, True)
    nan = np.isnan(wide)
    assert np.array_equal(np.isnan(hardware), nan)  # (a signalling NaN comes back quiet)
    assert hardware[~nan].view(np.int32).tolist() == wide[~nan].view(np.int32).tolist()
    # every float16 value, the midpoints between neighbours (ties), a dense sample of float32
    # bit patterns (subnormal results, overflow, NaN payloads, both signs)
    rng = np.random.default_rng(0)
    ordered = np.sort(wide[np.isfinite(wide)].astype(np.float64))
    middles = ((ordered[1:] + ordered[:-1]) / 2).astype(np.float32)
    patterns = rng.integers(0, 2**32, size=2_000_000, dtype=np.uint64).astype(np.uint32)
    f = np.concatenate([wide, middles, patterns.view(np.float32)])
    assert _narrow_all(f, True).tolist() == _narrow_all(f, False).tolist()
