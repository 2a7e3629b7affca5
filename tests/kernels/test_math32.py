"""The float32 math of the kernels (:mod:`relukit.kernels.cpu.math32`)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from relukit.kernels.cpu import math32


@njit
def _softplus_both(x, bh, bl, inverse, th, tl):  # type: ignore[no-untyped-def]
    """(beta = 1 branch, general path) of the forward and of the derivative, per element."""
    out = np.empty((4, x.size), dtype=np.float32)
    for j in range(x.size):
        out[0, j] = math32.softplus_f32(x[j], bh, bl, inverse, th, tl)
        out[1, j] = math32.softplus_f32_scaled(x[j], bh, bl, inverse, th, tl)
        out[2, j] = math32.softplus_d32(x[j], bh, bl, th, tl)
        out[3, j] = math32.softplus_d32_scaled(x[j], bh, bl, th, tl)
    return out


@pytest.mark.parametrize("threshold", [20.0, 0.2, 1000.0, -5.0, 20.000000001])
def test_softplus_at_beta_1_gives_the_general_path_s_bits(threshold):
    """The beta = 1 branch leaves out steps that are exact at beta = 1: on every 4,099th float32
    bit pattern (about a million, NaN and ±inf among them) and the float32 around the
    threshold, forward and derivative, it gives the bits of the path for any beta."""
    patterns = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    near = np.float32(threshold).view(np.int32) + np.arange(-64, 65, dtype=np.int32)
    x = np.concatenate(
        [
            patterns.view(np.float32),
            near.view(np.float32),
            np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 104.0, -104.0, 1e30, -1e30]),
        ]
    ).astype(np.float32)
    th = np.float32(threshold)
    tl = np.float32(threshold - float(th))
    one, zero = np.float32(1.0), np.float32(0.0)
    out = _softplus_both(x, one, zero, one, th, tl)
    assert np.array_equal(out[0].view(np.uint32), out[1].view(np.uint32))
    assert np.array_equal(out[2].view(np.uint32), out[3].view(np.uint32))
