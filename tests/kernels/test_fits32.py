"""The shipped fits of the float32 kernels (:mod:`relukit.kernels.cpu.fits32`) are what their
generator fits, to the error written beside each, against 40-digit mpmath values."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from relukit.kernels.cpu import fits32

SOURCE = Path(fits32.__file__).read_text()


def stated_error(name: str) -> float:
    """The bound in the comment beside a fit: ``"NAME": (  # 2^-28.3``."""
    match = re.search(rf'"{name}": \(  # 2\^(-?[0-9.]+)', SOURCE)
    assert match, name
    return 2.0 ** float(match.group(1))


def value(coefficients: tuple[float, ...], v: np.ndarray) -> np.ndarray:
    return sum(c * v**k for k, c in enumerate(coefficients))


@pytest.mark.parametrize("name", sorted(fits32.FITS))
def test_each_float32_fit_meets_its_stated_error(name):
    v, target, weight, _ = fits32._targets()[name]
    hi, lo, *rest = fits32.FITS[name]
    error = np.max(np.abs(value((hi + lo, *rest), v) - target) * weight)
    assert error <= stated_error(name) * 2**0.05, (name, math.log2(error))
    assert all(np.float32(c) == c for c in (hi, lo, *rest)), "coefficients are float32"


@pytest.mark.parametrize("name", sorted(fits32.CENTRE_TABLES))
def test_each_centre_table_row_meets_its_stated_error(name):
    import mpmath as mp

    mp.mp.dps = 30
    match = re.search(rf'"{name}": \(  # 2\^(-?[0-9.]+)', SOURCE[SOURCE.index("CENTRE_TABLES") :])
    assert match
    bound = 2.0 ** float(match.group(1)) * 2**0.05
    step, rows, degree = fits32.CENTRE_SHAPES[name]
    left = fits32._left(name)
    table = fits32.CENTRE_TABLES[name]
    assert len(table) == rows == 32
    for j, (c, *p) in enumerate(table):
        assert j * step <= c < (j + 1) * step
        assert len(p) == degree + 1
        assert all(np.float32(v) == v for v in (c, *p)), "float32 entries"
        t = np.linspace(j * step, (j + 1) * step, 41) - c
        exact = np.array([float(left(mp.mpf(c) + mp.mpf(float(u)))) for u in t])
        assert np.max(np.abs(value(tuple(p), t) / exact - 1)) <= bound, j
        assert abs(float(left(mp.mpf(c)) - p[0])) <= 2.0**-24 * p[0] / 100, j
    # −0 keeps its sign only if t·P > 0 at a = 0 (x·p₀ + x·(t·P) with x = −0 is −0)
    c, *p = table[0]
    assert c > 0 and value(tuple(p[1:]), np.array([-c]))[0] < 0
