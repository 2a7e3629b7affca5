"""Double-double arithmetic for the float64 kernels (Numba; imported only by the kernels).

A float64 result within 2 ulp of the true value needs its formula evaluated to better than
float64: a chain of a few rounded float64 steps already reaches 3 ulp, and the derivatives of
gelu, silu and mish subtract terms of about the same size. So the float64 members carry each
intermediate value as an unevaluated sum ``hi + lo`` of two float64 (a "double-double", about
106 bits) and round once at the end. The building blocks are exact: ``two_sum`` (Knuth) and
``two_prod`` (a fused multiply-add) give a sum or product and its rounding error (the generic
ones of :mod:`relukit.kernels.cpu.math32`, which serve both widths).

================  =============================================================================
``exp_pair``      e^{x+dx}·2^shift as ``hi + lo`` to a relative 2^-55: Cody-Waite reduction
                  ``x = k·ln2 + r`` (|r| ≤ ln2/2) with r rounded and its error kept apart,
                  ``e^r − 1 = r + r²·P(r)`` with P the Taylor series to 1/14! (truncation
                  2^-63; the roundings of r²·P(r), at most 2^-55.5 of e^r, dominate), and
                  ``1 + (e^r − 1)`` split exactly: some thirty operations. The exponential
                  units round its product once (within 0.75 ulp); where the other formulas
                  subtract, outside the expansions at the derivatives' zeros, its error grows
                  at most about threefold (gelu′ near x = −1; silu′ and mish′ 1.6-fold).
``expm1_pair``    e^{x+dx} − 1 from the same pieces, ``(2^k − 1) + 2^k·(e^r − 1)``, x ≤ 0: to
                  a relative 2^-54 where the result is smallest against its terms (about
                  −0.29, at x ≈ −0.35).
``log1p_dd``      log(1 + w) for 0 ≤ w ≤ 1: ``j·ln2 + 2·atanh(s)``, ``s = (f − 1)/(f + 1)``,
                  ``f = (1 + w)/2^j`` in [0.71, 1.42], ``2s + s³(2/3 + …)`` with the terms from
                  2s⁵/5 on in float64.
================  =============================================================================

All are arithmetic, fused multiply-adds, bit casts and selects, so the loops that call them
vectorise (the C library's exp, which the float64 kernels used before, does not). Their
relative error is below 2^-58, the pairs' 2^-55 (``tests/kernels/test_math64.py`` checks them
against mpmath; exp_pair's low part loses its digits where it is subnormal, below x = −690:
the callers scale by 2^64). (A double-double exp, to 2^-62, cost three times as much.)
Every function is written for finite, moderate inputs; the callers clamp, and the loops
apply the conventions for NaN and ±inf afterwards.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from relukit.kernels.cpu.compile import jit
from relukit.kernels.cpu.intrinsics import f64_as_i64, fma, i64_as_f64
from relukit.kernels.cpu.math32 import two_prod, two_sum, two_sum_fast
from relukit.kernels.cpu.mathlib import polynomial

LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k·LN2_HI is exact
LN2_LO = 1.90821492927058770002e-10
LN2 = (0.6931471805599453, 2.3190468138462996e-17)  # ln 2 as a double-double
SHIFTER = 6755399441055744.0  # 1.5·2^52: k sits in the low bits of (v + SHIFTER)
SHIFTER_BITS = 0x4338000000000000
SQRT2 = 1.4142135623730951
# 2/(2n + 1) for n = 2..13: 2·atanh(s) − 2s − 2s³/3 = s⁵·P(s²), truncation below 2^-70 on
# |s| ≤ 0.172 (2/3 as a double-double)
ATANH_TAIL = tuple(2.0 / (2 * n + 1) for n in range(2, 14))
TWO_THIRDS = (0.6666666666666666, 3.700743415417188e-17)

# 1/k! for k = 2..14: e^r − 1 − r = r²·P(r), truncation below 2^-63 on |r| ≤ ln2/2
exp_series = polynomial(tuple(1.0 / math.factorial(k) for k in range(2, 15)), "exp_series")
PAIR_LOW = -800.0  # exp_pair's floor: e^x·2^64 is 0 in float64 from about −790 on
atanh_tail = polynomial(ATANH_TAIL, "atanh_tail")


@jit
def dd_add(ah: float, al: float, bh: float, bl: float) -> Any:
    s, e = two_sum(ah, bh)
    return two_sum_fast(s, e + (al + bl))


@jit
def dd_mul(ah: float, al: float, bh: float, bl: float) -> Any:
    p = ah * bh
    return two_sum_fast(p, fma(ah, bh, -p) + (ah * bl + al * bh))


@jit
def dd_scale(ah: float, al: float, b: float) -> Any:
    """(ah + al)·b for a float64 b."""
    p = ah * b
    return two_sum_fast(p, fma(ah, b, -p) + al * b)


# One division each: q = a·(1/b) is within 1.5 ulp of a/b, and the remainder a − q·b (exact
# in a fused multiply-add) divided by b, its correction, needs no more than the same reciprocal
# (its own error is 2^-53 of a term of 2^-52). A division is the slowest vector operation
# (silu on 2^16 float64, 1 thread, Xeon: one of them is about a fifth of the time).


@jit
def dd_div(ah: float, al: float, bh: float, bl: float) -> Any:
    inverse = 1.0 / bh
    q = ah * inverse
    r = (fma(-q, bh, ah) + al) - q * bl
    return two_sum_fast(q, r * inverse)


@jit
def pair_times(ah: float, al: float, bh: float, bl: float) -> float:
    """(ah + al)·(bh + bl) rounded once, for products that need no more (al·bl dropped)."""
    return fma(ah, bh, fma(ah, bl, al * bh))


@jit
def quotient(ah: float, al: float, bh: float, bl: float) -> float:
    """(ah + al)/(bh + bl), rounded once (to within about 2^-100 of the true quotient)."""
    inverse = 1.0 / bh
    q = ah * inverse
    r = (fma(-q, bh, ah) + al) - q * bl
    return fma(r, inverse, q)


@jit
def pow2(k: Any) -> float:
    """2^k as a float64 for −1022 ≤ k ≤ 1023."""
    return i64_as_f64((k + np.int64(1023)) << np.int64(52))


@jit
def reduce_pair(x: float, dx: float) -> Any:
    """(k, ph, pl) with e^{x+dx} = 2^k·(1 + ph + pl) to a relative 2^-55, for |x| < 2^20 and
    |dx| ≤ 2^-40: r = x − k·ln2 rounded, its rounding error rl and dx kept apart
    (``e^{r+rl} = e^r + rl·e^r`` to 2^-80), ``e^r − 1 = r + q``, ``q = r²·P(r)``, and the sum
    ``r + (q + rl·(1 + r + q))`` split exactly (the second term is at most |r|/4 but where
    r is about 0 and dx is not: there the split is good to 2^-100 of the 1 it is added to)."""
    shifted = fma(x, LOG2E, SHIFTER)
    kf = shifted - SHIFTER
    rh = fma(-kf, LN2_HI, x)  # exact (Sterbenz; k·LN2_HI has 43 bits)
    r = fma(-kf, LN2_LO, rh)
    rl = fma(-kf, LN2_LO, rh - r) + dx  # r + rl = x + dx − k·ln2 to about 2^-75
    q = (r * r) * exp_series(r)
    t = fma(rl, (1.0 + r) + q, q)
    ph, pl = two_sum_fast(r, t)
    return f64_as_i64(shifted) - np.int64(SHIFTER_BITS), ph, pl


@jit
def exp_pair(x: float, dx: float, shift: Any) -> Any:
    """(hi, lo): e^{x+dx}·2^shift to a relative 2^-55, for x + shift·ln2 ≤ 709 and
    0 ≤ shift ≤ 64; 0 below x = −800, and subnormal results (or a subnormal low part, from
    about −745 + shift·ln2 down) only to their absolute precision."""
    xc = x if x > PAIR_LOW else PAIR_LOW
    k, ph, pl = reduce_pair(xc, dx)
    hi, lo = two_sum_fast(1.0, ph)
    k = k + shift
    # 2^k is not a float64 below −1022: scale in two steps (the first one clamped: there the
    # result is below 2^-1080, 0 once scaled)
    low = k < np.int64(-1000)
    kk = max(k + np.int64(64), np.int64(-1022)) if low else k
    s = pow2(kk) * (5.421010862427522e-20 if low else 1.0)
    return (hi * s, (lo + pl) * s) if x > PAIR_LOW else (0.0, 0.0)


@jit
def expm1_pair(x: float, dx: float) -> Any:
    """(hi, lo): e^{x+dx} − 1 to a relative 2^-54, for x ≤ 0 (−1 below x = −40, where it rounds
    to −1; ±0 kept). 2^k − 1 is split exactly, and leads the sum for k ≤ −1; for k = 0 it is
    0 and the sum is p itself."""
    clamped = not x > -40.0
    k, ph, pl = reduce_pair(-40.0 if clamped else x, 0.0 if clamped else dx)
    s = pow2(k)
    c, ce = two_sum_fast(-1.0, s)  # 2^k − 1 (k ≤ 0: |s| ≤ 1)
    h, e = two_sum_fast(c, s * ph)
    return (x, 0.0) if x == 0.0 else (h, e + (ce + s * pl))


@jit
def log1p_dd(wh: float, wl: float) -> Any:
    """(hi, lo): log(1 + w), w = wh + wl, 0 ≤ w ≤ 1."""
    uh, ul = two_sum_fast(1.0, wh)
    ul = ul + wl
    big = uh > SQRT2
    fh = 0.5 * uh if big else uh
    fl = 0.5 * ul if big else ul
    nh, nl = two_sum_fast(fh - 1.0, fl)  # fh − 1 is exact
    dh, dl = two_sum(fh, 1.0)
    dh, dl = two_sum_fast(dh, dl + fl)
    sh, sl = dd_div(nh, nl, dh, dl)
    th, tl = two_prod(sh, sh)
    ph, pl = dd_add(TWO_THIRDS[0], TWO_THIRDS[1], th * atanh_tail(th), 0.0)
    th, tl = dd_scale(th, tl, sh)
    th, tl = dd_mul(th, tl, ph, pl)  # s³·(2/3 + 2s²/5 + …)
    h, e = dd_add(2.0 * sh, 2.0 * sl, th, tl)
    return dd_add(h, e, LN2[0], LN2[1]) if big else (h, e)
