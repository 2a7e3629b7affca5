"""The float64 kernels' double-double math (:mod:`relukit.kernels.cpu.math64`) and the fit of
the Mills ratio (:mod:`relukit.kernels.cpu.fits`) against mpmath: relative error below 2^-58, a
32nd of the float64 ulp at most, and the exponential's float64 pairs within 2^-55 (exp_pair) and
2^-54 (expm1_pair), so that the members that chain a few of them stay within 2 ulp (and nearly
always within 1)."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest
from numba import njit

from relukit.kernels.cpu import math64
from relukit.kernels.cpu.smooth import mills

BOUND = 2.0**-58


def _pairs(function):  # type: ignore[no-untyped-def]
    """A loop over arrays ``x, dx`` returning ``function(x[i], dx[i])``'s (hi, lo) pairs."""

    @njit
    def loop(x, dx):  # type: ignore[no-untyped-def]
        out = np.empty((x.size, 2))
        for i in range(x.size):
            out[i] = function(x[i], dx[i])
        return out

    return loop


@njit
def _mills(t, dt):  # type: ignore[no-untyped-def]
    return mills(t)


_log1p = _pairs(math64.log1p_dd)
_mills_pairs = _pairs(_mills)


@njit
def _exp_pair(x, dx):  # type: ignore[no-untyped-def]
    return math64.exp_pair(x, dx, np.int64(0))


_exp_p, _expm1_p = _pairs(_exp_pair), _pairs(math64.expm1_pair)


def _g(t: mp.mpf) -> mp.mpf:
    return t * mp.sqrt(mp.pi / 2) * mp.exp(t * t / 2) * mp.erfc(t / mp.sqrt(2))


CASES = {
    "log1p": (_log1p, mp.log1p, (0.0, 1.0), BOUND),
    "mills": (_mills_pairs, _g, (1.0, 40.0), BOUND),
    # (below −690, scaled: see the last test)
    "exp_pair": (_exp_p, mp.exp, (-690.0, 709.0), 2.0**-55),
    "expm1_pair": (_expm1_p, mp.expm1, (-40.0, 0.0), 2.0**-54),
}


@pytest.mark.parametrize("name", list(CASES))
def test_double_double_functions_within_their_bounds(name):
    kernel, true, (low, high), bound = CASES[name]
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(low, high, 1500), rng.uniform(-1.0, 1.0, 300) * 1e-3])
    x = np.clip(x, low, high)
    if name == "exp_pair":
        x = np.concatenate([x, np.linspace(-0.35, 0.35, 101), [0.0, 1e-300, -1e-300]])
        x = np.clip(x, low, high)
    if name == "expm1_pair":  # k = 0 and k = −1, where the result is smallest against its terms
        x = np.concatenate([x, rng.uniform(-1.1, -0.2, 1500), np.linspace(-0.36, -0.33, 301)])
    dx = np.zeros_like(x) if name == "mills" else x * rng.uniform(-1.1e-16, 1.1e-16, x.size)
    if name.endswith("_pair"):  # the callers' low parts: a product's error, up to 2^-40
        dx = np.where(rng.random(x.size) < 0.5, dx, rng.uniform(-(2.0**-40), 2.0**-40, x.size))
        dx = np.where(x == 0.0, 0.0, dx)
    if name == "log1p":
        dx = np.where(x + dx < 0, 0.0, dx)
    got = kernel(x, dx)
    with mp.workdps(40):
        for v, dv, (hi, lo) in zip(x, dx, got, strict=True):
            want = true(mp.mpf(v) + mp.mpf(dv))
            error = abs(mp.mpf(hi) + mp.mpf(lo) - want)
            assert error <= bound * abs(want), (name, v, dv, float(error / abs(want)))


def test_expm1_keeps_the_sign_of_zero_and_clamps():
    got = _expm1_p(np.array([0.0, -0.0, -40.0, -1e30]), np.zeros(4))
    assert np.signbit(got[1, 0]) and not np.signbit(got[0, 0])
    assert (got[2:, 0] == -1.0).all()


def test_exp_scaled_by_2_to_the_64_keeps_the_digits_of_subnormal_results():
    bound = 2.0**-55

    @njit
    def scaled(x, shift):  # type: ignore[no-untyped-def]
        return math64.exp_pair(x, 0.0, np.int64(shift))

    for v in (-700.5, -720.25, -744.0, -751.5, -770.25, -785.5):
        hi, lo = scaled(v, 64)
        with mp.workdps(40):
            want = mp.exp(mp.mpf(v)) * 2**64  # (itself subnormal from about −753 down)
            assert abs(mp.mpf(hi) + mp.mpf(lo) - want) <= max(bound * want, 2.0**-1074), v
            # unscaled, a subnormal result to its absolute precision (2^-1074)
            hi, lo = scaled(v, 0)
            want = mp.exp(mp.mpf(v))
            assert abs(mp.mpf(hi) + mp.mpf(lo) - want) <= max(bound * want, 2.0**-1074), v
    assert scaled(-800.5, 64) == (0.0, 0.0)


def test_quotients_with_one_division():
    @njit
    def both(a, al, b, bl):  # type: ignore[no-untyped-def]
        out = np.empty((a.size, 3))
        for i in range(a.size):
            h, lo = math64.dd_div(a[i], al[i], b[i], bl[i])
            out[i] = (h, lo, math64.quotient(a[i], al[i], b[i], bl[i]))
        return out

    rng = np.random.default_rng(7)
    a = rng.uniform(-3.0, 3.0, 2000) * np.exp2(rng.integers(-40, 40, 2000))
    b = rng.uniform(1.0, 4.0, 2000) * np.exp2(rng.integers(-40, 80, 2000))
    al = a * rng.uniform(-1.1e-16, 1.1e-16, a.size)
    bl = b * rng.uniform(-1.1e-16, 1.1e-16, b.size)
    got = both(a, al, b, bl)
    with mp.workdps(50):
        for i in range(a.size):
            want = (mp.mpf(a[i]) + mp.mpf(al[i])) / (mp.mpf(b[i]) + mp.mpf(bl[i]))
            pair = abs(mp.mpf(got[i, 0]) + mp.mpf(got[i, 1]) - want)
            assert pair <= 2.0**-100 * abs(want), i
            assert float(want) == got[i, 2], i  # rounded once: the correctly rounded quotient
