"""Vectorisable scalar math for the compiled kernels (Numba; imported only by the kernels).

Numba turns ``math.exp`` or ``math.erfc`` into calls to the C library, which stop the loop
vectoriser. The float64 functions here, to 2e-13 (written for float32 kernels that evaluated in
float64 and rounded once; :mod:`relukit.kernels.cpu.memory` uses ``log1p_f64``), are nothing but
arithmetic, fused multiply-adds, bit casts and selects, so a loop that calls them compiles to
SIMD code:

================  =============================================================================
``exp_f64``       Cody-Waite reduction ``x = k·ln2 + r``, ``|r| ≤ ln2/2``; ``expm1(r)`` by its
                  Taylor polynomial to degree 12; ``2^k`` from the bits of the rounding shifter
                  (in two steps where the result is subnormal).
``expm1_f64``     the same reduction; ``2^k·q + (2^k − 1)`` in one fused multiply-add.
``log1p_f64``     ``k·ln2 + 2·atanh(f/(2 + f))`` by its series, plus the rounding of ``1 + w``.
``tanh_f64``      ``e/(e + 2)``, ``e = expm1(2|x|)``.
``phi_f64``       Φ(x): erf's Taylor series for ``|x| < 1.188``, ``e^{−x²/2}·erfcx(|x|/√2)/2``
                  beyond, ``erfcx`` a Chebyshev fit (:mod:`relukit.kernels.cpu.fits`).
================  =============================================================================

Their relative error is below 2e-13 (``tests/kernels/test_cpu.py`` checks them against the C
library and mpmath). The float64 kernels compute in double-double instead
(:mod:`relukit.kernels.cpu.math64`); :func:`polynomial` and :func:`chebyshev` serve both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from relukit.kernels.cpu.compile import jit
from relukit.kernels.cpu.fits import ERFCX, ERFCX_HIGH, ERFCX_K, ERFCX_LOW
from relukit.kernels.cpu.intrinsics import f64_as_i64, fma, i64_as_f64

SQRT1_2 = 0.7071067811865476
SQRT1_2_LOW = -4.833646656726457e-17  # √½ − SQRT1_2
INV_SQRT_PI = 0.5641895835477563
INV_SQRT_2PI = 0.3989422804014327


# ---------------------------------------------------------------------------------------------
# float64 functions for the float32 kernels
#
# The float32 (and 16-bit) kernels evaluate each smooth member's formula in float64 and round
# once, so that the result is within an ulp of the true value wherever it is a normal float32.
# The C library's float64 functions would stop the loop vectoriser; these are arithmetic, fused
# multiply-adds, bit casts and selects only. Their relative error is below 1e-13, far below the
# 2^-24 that rounding to float32 adds; they are not meant for float64 results (the float64
# kernels use relukit.kernels.cpu.math64).


LOG2E_64 = 1.4426950408889634
LN2_HI_64 = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k·LN2_HI_64 is exact
LN2_LO_64 = 1.90821492927058770002e-10
SHIFTER_64 = 6755399441055744.0  # 1.5·2^52: k sits in the low bits of (v + SHIFTER_64)
SHIFTER_BITS = 0x4338000000000000
SQRT2_64 = 1.4142135623730951
SQRT1_2_64 = 0.7071067811865476
# 1/k! for k = 2..12: expm1(r) = r + r²·P(r) on |r| ≤ ln2/2, relative error 2e-16
EXPM1_64 = tuple(1.0 / math.factorial(k) for k in range(2, 13))
# 1/(2n + 1) for n = 0..8: log(1 + f) = 2s·P(s²), s = f/(2 + f), |s| ≤ 0.172: error 3e-16
ATANH_64 = tuple(1.0 / (2 * n + 1) for n in range(9))
# erf(z) = z·P(z²) on |z| < 0.84: the Taylor series, 17 terms (error 1e-16)
ERF_64 = tuple(
    2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(17)
)
_W_LOW = (ERFCX_LOW - ERFCX_K) / (ERFCX_LOW + ERFCX_K)
_W_HIGH = (ERFCX_HIGH - ERFCX_K) / (ERFCX_HIGH + ERFCX_K)
ERFCX_SCALE = 2 / (_W_HIGH - _W_LOW)
ERFCX_SHIFT = -(_W_HIGH + _W_LOW) / (_W_HIGH - _W_LOW)
PHI_SPLIT = ERFCX_LOW * math.sqrt(2)  # |x| where Φ changes from erf's series to erfcx


def polynomial(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``p(x) = c₀ + c₁x + … + c_n xⁿ`` (Horner's scheme in fused multiply-adds) with
    the coefficients written into its code: a loop over a tuple would be kept as a loop, and
    stop the vectoriser."""
    body = repr(float(coefficients[-1]))
    for c in reversed(coefficients[:-1]):
        body = f"fma({body}, x, {float(c)!r})"
    namespace: dict[str, Any] = {"fma": fma}
    exec(f"def {name}(x):\n    return {body}\n", namespace)
    return jit(namespace[name])


def chebyshev(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``Σ c_k T_k(s)`` (Clenshaw's recurrence), unrolled as :func:`polynomial`."""
    lines = [f"def {name}(s):", "    b1 = 0.0", "    b2 = 0.0", "    s2 = 2.0 * s"]
    for c in reversed(coefficients[1:]):
        lines.append(f"    b1, b2 = fma(s2, b1, {float(c)!r} - b2), b1")
    lines.append(f"    return fma(s, b1, {float(coefficients[0])!r} - b2)")
    namespace: dict[str, Any] = {"fma": fma}
    exec("\n".join(lines) + "\n", namespace)
    return jit(namespace[name])


def clenshaw_steps(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``(b_m, b_{m+1})``: Clenshaw's recurrence ``b_k = c_k + 2s·b_{k+1} − b_{k+2}``
    run down through ``coefficients`` (c_m … c_N), for a caller that finishes it (in
    double-double, say)."""
    lines = [f"def {name}(s):", "    b1 = 0.0", "    b2 = 0.0", "    s2 = 2.0 * s"]
    for c in reversed(coefficients):
        lines.append(f"    b1, b2 = fma(s2, b1, {float(c)!r} - b2), b1")
    lines.append("    return b1, b2")
    namespace: dict[str, Any] = {"fma": fma}
    exec("\n".join(lines) + "\n", namespace)
    return jit(namespace[name])


expm1_series = polynomial(EXPM1_64, "expm1_series")
atanh_series = polynomial(ATANH_64, "atanh_series")
erf_series = polynomial(ERF_64, "erf_series")
erfcx_series = chebyshev(ERFCX, "erfcx_series")


@jit
def _reduce64(x: float) -> Any:
    """(k, expm1(r)) with x = k·ln2 + r, for |x| < 2^50."""
    shifted = fma(x, LOG2E_64, SHIFTER_64)
    kf = shifted - SHIFTER_64
    r = fma(-kf, LN2_HI_64, x)
    r = fma(-kf, LN2_LO_64, r)
    q = fma(r * r, expm1_series(r), r)
    return f64_as_i64(shifted) - np.int64(SHIFTER_BITS), q


@jit
def _pow2_64(k: Any) -> float:
    """2^k as a float64 for −1022 ≤ k ≤ 1023."""
    return i64_as_f64((k + np.int64(1023)) << np.int64(52))


@jit
def exp_f64(x: float) -> float:
    """e^x: 0 below −745.2, inf above 709.78 (NaN gives NaN)."""
    xc = x if x > -746.0 else -746.0
    xc = xc if xc < 710.0 else 710.0
    k, q = _reduce64(xc)
    # 2^k is not a float64 for k = 1024 or k < −1022: scale in two steps
    high = k > np.int64(1023)
    low = k < np.int64(-1000)
    kk = k - np.int64(1) if high else (k + np.int64(64) if low else k)
    after = 2.0 if high else (5.421010862427522e-20 if low else 1.0)
    s = _pow2_64(kk)
    y = fma(s, q, s) * after
    y = np.inf if x > 709.782712893384 else y
    y = 0.0 if x < -745.2 else y
    return x if x != x else y


@jit
def expm1_f64(x: float) -> float:
    """e^x − 1 (x clamped to [−40, 709]: −1 below, and inf above 709.78; ±0 kept)."""
    xc = x if x > -40.0 else -40.0
    xc = xc if xc < 709.0 else 709.0
    k, q = _reduce64(xc)
    s = _pow2_64(k)
    y = fma(s, q, s - 1.0)
    y = np.inf if x > 709.782712893384 else y
    return x if (x == 0.0 or x != x) else y


@jit
def log1p_f64(w: float) -> float:
    """log(1 + w) for w ≥ 0 (finite)."""
    u = 1.0 + w
    c = (w - (u - 1.0)) / u  # the rounding error of 1 + w, carried to first order
    big = u > SQRT2_64
    f = 0.5 * u - 1.0 if big else u - 1.0
    s = f / (2.0 + f)
    y = 2.0 * s * atanh_series(s * s) + c
    return (y + LN2_LO_64) + LN2_HI_64 if big else y


@jit
def tanh_f64(x: float) -> float:
    """tanh(x) = e/(e + 2), e = expm1(2|x|), with x's sign (1 beyond |x| = 20)."""
    a = abs(x)
    e = expm1_f64(a + a if a < 20.0 else 40.0)
    return math.copysign(e / (e + 2.0), x)


@jit
def phi_f64(x: float) -> float:
    """Φ(x), the standard normal distribution function: ``(1 + erf(x/√2))/2`` for
    |x| < 1.188, ``e^{−x²/2}·erfcx(|x|/√2)/2`` below and 1 minus that above (erfcx fitted,
    :mod:`relukit.kernels.cpu.fits`). x² must be exact (x a float32); below x = −16.9 (where
    Φ < 1e-64, 0 in float32) the result is only of the right size."""
    a = abs(x)
    z = a * SQRT1_2_64
    erf = z * erf_series(z * z)
    near = 0.5 + 0.5 * math.copysign(erf, x)
    zc = z if z < ERFCX_HIGH else ERFCX_HIGH
    w = (zc - ERFCX_K) / (zc + ERFCX_K)
    tail = 0.5 * exp_f64(-0.5 * (x * x)) * erfcx_series(fma(w, ERFCX_SCALE, ERFCX_SHIFT))
    far = tail if x < 0.0 else 1.0 - tail
    return near if a < PHI_SPLIT else far
