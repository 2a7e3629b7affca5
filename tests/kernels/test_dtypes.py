"""relukit.kernels.cpu.dtypes: the 16-bit conversions."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from relukit.kernels.cpu import dtypes, host

pytestmark = pytest.mark.skipif(not host.available(), reason="needs Numba")


@njit
def _widen_all(h, hardware):  # type: ignore[no-untyped-def]
    out = np.empty(h.size, dtype=np.float32)
    for i in range(h.size):
        out[i] = dtypes._half_to_f32_hardware(h[i]) if hardware else dtypes._half_to_f32_ops(h[i])
    return out


@njit
def _narrow_all(f, hardware):  # type: ignore[no-untyped-def]
    out = np.empty(f.size, dtype=np.int16)
    for i in range(f.size):
        out[i] = dtypes._f32_to_half_hardware(f[i]) if hardware else dtypes._f32_to_half_ops(f[i])
    return out


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
