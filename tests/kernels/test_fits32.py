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
    """Relative to |F|, or to |t·P| where F changes sign (there p₀, F at the zero's float32,
    is only rounded; a float32 a gives t = 0, where the result is p₀, or |t| at least half a
    spacing of c)."""
    import mpmath as mp

    mp.mp.dps = 30
    match = re.search(rf'"{name}": \(  # 2\^(-?[0-9.]+)', SOURCE[SOURCE.index("CENTRE_TABLES") :])
    assert match
    bound = 2.0 ** float(match.group(1)) * 2**0.05
    step, rows, degree = fits32.CENTRE_SHAPES[name]
    paired = name in fits32.CENTRE_PAIRED
    left = fits32._left(name)
    root = fits32._root(name)
    table = fits32.CENTRE_TABLES[name]
    assert len(table) == rows == 32
    for j, (c, *p) in enumerate(table):
        assert len(p) == degree + 1 + paired
        assert all(np.float32(v) == v for v in (c, *p)), "float32 entries"
        remainder = p.pop() if paired else 0.0
        at_root = root is not None and c == float(np.float32(root))
        assert j * step <= c < (j + 1) * step or at_root
        t = np.linspace(j * step, (j + 1) * step, 41) - c
        t = t[np.abs(t) >= float(np.spacing(np.float32(c))) / 2]
        exact = np.array([float(left(mp.mpf(c) + mp.mpf(float(u)))) for u in t])
        own = float(left(mp.mpf(c))) - p[0]
        got = value(tuple(p), t) + remainder * t
        scale = np.maximum(np.abs(exact), np.abs(exact - p[0]))
        assert np.max(np.abs(got - exact) / scale) <= bound, j
        limit = 2.0**-24 * abs(p[0]) * (1.0 if at_root else 1 / 100)
        assert abs(own) <= limit, j
    if name in ("GELU", "SIGMOID", "GELU_TANH", "TANH"):  # the tables that x·F(x) uses
        # −0 keeps its sign only if t·P > 0 at a = 0 (x·p₀ + x·(t·P) with x = −0 is −0)
        c, *p = table[0]
        assert c > 0 and value(tuple(p[1:]), np.array([-c]))[0] < 0


@pytest.mark.parametrize(
    ("name", "member"),
    [
        ("GELU_DERIVATIVE", "gelu"),
        ("SILU_DERIVATIVE", "silu"),
        ("GELU_TANH_DERIVATIVE", "gelu-tanh"),
    ],
)
def test_a_derivative_table_centres_the_rows_near_its_zero_on_it(name, member):
    """Where F(−a) changes sign (a = −r, r the zero of the member's derivative) its row is
    centred on r's float32 (else p₀ + t·P cancels: F small, t·P not), with its neighbour on
    the side r lies nearest to where that cancels less (gelu′), and p₀ there is F at that
    float32, rounded."""
    import mpmath as mp

    from relukit.family.numerics import ZEROS

    mp.mp.dps = 30
    step = fits32.CENTRE_SHAPES[name][0]
    r = -(ZEROS[member][0] + ZEROS[member][1])
    c = float(np.float32(r))
    centred = [j for j, row in enumerate(fits32.CENTRE_TABLES[name]) if row[0] == c]
    assert int(r // step) in centred
    assert 1 <= len(centred) <= 2
    for j in centred:
        assert fits32.CENTRE_TABLES[name][j][1] == float(np.float32(float(fits32._left(name)(c))))
