"""float32 math of the float32 (and 16-bit) kernels: the smooth members in 16 lanes to a vector.

Every function here is float32 arithmetic, fused multiply-adds, bit casts and selects only, so
a loop that calls it compiles to AVX-512 code of 16 lanes (float64 would give 8, and its
division costs twice as much). Accuracy comes from error-free transformations where a rounding
would count, not from a wider type:

- ``exp_sp``: ``e^x·2^offset = s·(1 + p)``: Cody-Waite reduction in two parts of ln 2
  (XNNPACK's rr2), ``e^r − 1 = r + r²·q(r)`` with ``q`` a minimax fit of degree 4 (relative
  error 2^-28.3), and ``s = 2^(n + offset)`` straight from the bits of the magic-bias shift.
  The offset (2^24 where a result may need ``e^x`` below the normal range) keeps ``s`` normal,
  so neither end of the range needs a select. ``exp_sp2`` also returns the rounding error of
  the reduced argument.
- pairs: ``hi + lo`` carried through a sum (Knuth's two-sum) or a product (the fma's
  two-product), so that ``1 + e``, ``x·e``, ``1 − σ`` lose nothing before the last rounding.
- ``sigmoid_neg_pair``: ``σ(−a)`` as a pair, one division; the rounding of ``e``, of ``1 + e``
  and of the quotient go into one residual step, whose ``1/(1 + e)`` is ``1 − σ(−a)``.
- the members' pieces fitted in :mod:`relukit.kernels.cpu.fits32`: tanh near 0, gelu′ through
  ``V(a)`` (no erfc, no cancellation in the tails), and each derivative near its zero as
  ``h·G(h)``.

gelu's tails need no pairs: their exponent's large terms cancel exactly, and on the right
``x·Φ(−x)`` only corrects x (``gelu_f32``, within 1.2 ulp).

For float32 arrays the kernels take ``gelu_f32``, ``silu_f32``, ``sigmoid_f32``, ``gelu_d32``
and ``silu_d32`` only off their centres (|x| ≥ 4 for gelu and gelu′, ≥ 16 for silu, sigmoid and
silu′, NaN, −inf), and short of the far bounds of :data:`relukit.kernels.cpu.vector32.FAR`
(beyond them each member is a constant or x, which the centre writes itself): on the centres
a table of float32 polynomials gives them, 16 lanes at a time
(:mod:`relukit.kernels.cpu.vector32`; within 0.99, 1.22, 0.80, 1.29 and 1.59 ulp). 16-bit inputs
take the same float32 path, widened and rounded back once, so that float16 gives the same bits
whether the host converts it with F16C in the kernel or widens it into a float32 array first.

The float32 results are within 2 ulp of the true value wherever that is a normal float32,
tails included (``tests/family/test_accuracy.py``; ``benchmarks/RESULTS.md``, Accuracy). The
16-bit kernels widen to float32, call these and round once more: within 1 ulp of their type.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from relukit.family.numerics import ZEROS
from relukit.kernels.cpu.compile import jit
from relukit.kernels.cpu.fits32 import (
    FITS,
    GELU_L_HIGH,
    GELU_L_LOW,
    GELU_V_CENTRE,
    GELU_V_K,
    ZERO_WIDTH,
)
from relukit.kernels.cpu.intrinsics import f32_as_i32, fma, i32_as_f32

F = np.float32
I = np.int32  # noqa: E741

ZERO = F(0.0)
NEGATIVE_ZERO = F(-0.0)
HALF = F(0.5)
ONE = F(1.0)
TWO = F(2.0)
LOG2E = F(1.4426950408889634)
LN2_HI = F(0.693145751953125)  # 16 bits: n·LN2_HI is exact for |n| < 256
LN2_LO = F(1.428606765330187e-06)
EXP_LOW = F(-104.0)  # e^x·2^24 is normal down to about −103.97
# σ(−a) from which e = e^{−a} < 2^-50 leaves 1 + e, its rounding and the corrections by e
# nothing to add at float32's 2^-24 (beyond about 52 the products of those corrections are
# subnormal: each a microcode assist on Intel cores, which cost 10-40 ns per element there)
NEGLIGIBLE = F(35.0)
NEGLIGIBLE_24 = F(2.0**-26)  # about σ(−a)·2^24 at a = NEGLIGIBLE (2^-26.5; from a = 34.66)
UP_24 = F(2.0**24)
DOWN_24 = F(2.0**-24)
TANH_SMALL = F(0.625)  # |x| up to which tanh is x + x³·T(x²)
TANH_CLAMP = F(9.5)  # |x| beyond which tanh rounds to 1
GELU_CLAMP = F(14.0)  # |x| beyond which gelu′'s tails are 0 or 1 in float32 (e^{−98}·a·V)
GELU_L_LOW_32 = F(GELU_L_LOW)
GELU_L_HIGH_32 = F(GELU_L_HIGH)  # |x| from which gelu is −0 or x in float32 (below −14.36: −0)


def magic(offset: int) -> Any:
    """The shifter of :func:`exp_sp` for ``s = 2^(n + offset)``: n + 127 + offset lands in the
    low bits of ``x·log2 e + shifter``, whose bits shifted left by 23 are then ``s``."""
    return F(12582912.0 + 127 + offset)


SHIFT_0 = magic(0)
SHIFT_24 = magic(24)


def polynomial32(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``v ↦ p(v)`` as a pair ``(hi, lo)`` from a fit of :mod:`fits32` (``c0`` a
    pair): Horner in float32 up to ``c₂``, then ``c₁ + v·S`` and ``c₀ + v·(…)`` with exact
    products and sums, so that terms as large as ``c₀`` add no rounding of their own. The
    coefficients are written into its code (a loop over a tuple would stop the vectoriser)."""
    hi, lo, c1, *rest = (float(c) for c in coefficients)
    body = f"F({rest[-1]!r})"
    for c in reversed(rest[:-1]):
        body = f"fma({body}, v, F({c!r}))"
    source = f"""def {name}(v):
    p, pl = two_prod(v, {body})
    s1, s1l = two_sum(F({c1!r}), p)
    p, pl = two_prod(v, s1)
    pl = fma(v, s1l + pl, pl)
    s0, s0l = two_sum(F({hi!r}), p)
    return two_sum_fast(s0, s0l + (pl + F({lo!r})))
"""
    return _compile(source, name)


def horner32(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``v ↦ p(v)`` in plain float32 Horner (for a polynomial that only corrects a
    larger term, whose own rounding then counts little)."""
    hi, lo, *rest = (float(c) for c in coefficients)
    body = f"F({rest[-1]!r})"
    for c in reversed(rest[:-1]):
        body = f"fma({body}, v, F({c!r}))"
    return _compile(f"def {name}(v):\n    return fma({body}, v, F({hi + lo!r}))\n", name)


def slope32(coefficients: tuple[float, ...], terms: int, name: str) -> Any:
    """A jitted ``v ↦ p′(v)`` from the first ``terms`` terms of the derivative: enough for the
    first-order correction of an argument's rounding, which needs a few bits only."""
    _, _, *rest = (float(c) for c in coefficients)
    slope = [k * c for k, c in enumerate(rest[:terms], start=1)]
    body = f"F({slope[-1]!r})"
    for c in reversed(slope[:-1]):
        body = f"fma({body}, v, F({c!r}))"
    return _compile(f"def {name}(v):\n    return {body}\n", name)


def _compile(source: str, name: str) -> Any:
    namespace: dict[str, Any] = {
        "F": F, "fma": fma, "two_prod": two_prod, "two_sum": two_sum,
        "two_sum_fast": two_sum_fast,
    }  # fmt: skip
    exec(source, namespace)
    return jit(namespace[name])


def zero32(name: str) -> tuple[Any, Any]:
    """The zero of a member's derivative as a float32 pair (from the registry's table)."""
    high, low, _ = ZEROS[name]
    hi = F(high)
    return hi, F((high - float(hi)) + low)


# ---------------------------------------------------------------------------------------------
# Pairs


@jit
def two_sum(a: Any, b: Any) -> Any:
    """(s, e), s + e = a + b exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@jit
def two_sum_fast(a: Any, b: Any) -> Any:
    """(s, e), s + e = a + b exactly, for |a| ≥ |b| (Dekker)."""
    s = a + b
    return s, (a - s) + b


@jit
def two_prod(a: Any, b: Any) -> Any:
    """(p, e), p + e = a·b exactly (where nothing underflows)."""
    p = a * b
    return p, fma(a, b, -p)


MODERATE = 2.0**60


def moderate(values: Any) -> bool:
    """Whether the float64 parameters are 0 or within 2^±60, where the float32 formulas hold:
    a float32 call with another takes the reference path (host side, not compiled)."""
    return all(v == 0 or 1 / MODERATE < abs(v) < MODERATE for v in values)


@jit
def split(value: Any) -> Any:
    """A float64 parameter as a float32 pair (hi, lo) (hoisted out of the loops)."""
    hi = np.float32(value)
    return hi, np.float32(value - np.float64(hi))


# ---------------------------------------------------------------------------------------------
# exp and its relatives

EXP_Q = tuple(F(c) for c in (FITS["EXP_Q"][0], *FITS["EXP_Q"][2:]))  # c0 is 0.5 - 6e-9


@jit
def exp_q(r: Any) -> Any:
    return fma(fma(fma(fma(EXP_Q[4], r, EXP_Q[3]), r, EXP_Q[2]), r, EXP_Q[1]), r, EXP_Q[0])


@jit
def exp_sp(x: Any, shifter: Any) -> Any:
    """(s, p): ``e^x·2^offset = s·(1 + p)``, s a power of two and |p| ≤ 0.42, for the
    ``shifter = magic(offset)`` and x with ``1 ≤ round(x·log2 e) + 127 + offset ≤ 254``."""
    v = fma(x, LOG2E, shifter)
    n = v - shifter
    r = fma(n, -LN2_HI, x)
    r = fma(n, -LN2_LO, r)
    return i32_as_f32(f32_as_i32(v) << I(23)), fma(r * r, exp_q(r), r)


@jit
def exp_sp2(x: Any, shifter: Any) -> Any:
    """(s, p, rl): as :func:`exp_sp`, and ``rl`` the rounding error of the reduced argument
    (``e^x·2^offset = s·(1 + p)·(1 + rl)``)."""
    v = fma(x, LOG2E, shifter)
    n = v - shifter
    r1 = fma(n, -LN2_HI, x)  # exact
    t = n * LN2_LO
    r = r1 - t
    rl = (r1 - r) - t
    return i32_as_f32(f32_as_i32(v) << I(23)), fma(r * r, exp_q(r), r), rl


@jit
def exp_plain(x: Any) -> Any:
    """e^x for −87.3 ≤ x ≤ 88.7 (e^x normal), within 0.6 ulp."""
    s, p = exp_sp(x, SHIFT_0)
    return fma(s, p, s)


@jit
def exp_neg_pair(x: Any) -> Any:
    """e^x·2^24 = hi + lo for x ≤ 0 (0 below −104), lo the remainder of hi's rounding."""
    xc = x if x >= EXP_LOW else ZERO  # (0 there: a normal argument keeps each step normal)
    s, p = exp_sp(xc, SHIFT_24)
    hi = fma(s, p, s)
    lo = fma(s, p, s - hi)  # exact: s and hi are within a factor 2
    zero = x < EXP_LOW
    return (ZERO if zero else hi), (ZERO if zero else lo)


@jit
def expm1_pair(x: Any) -> Any:
    """e^x − 1 = hi + lo for x ≤ 0, to about 2^-27 relative: the remainders of the reduced
    argument and of the last rounding kept in lo (−1 below −17.4)."""
    xc = x if x > F(-18.0) else F(-18.0)
    s, p, rl = exp_sp2(xc, SHIFT_0)
    sm1 = s - ONE  # exact for s ≥ 2^-24
    hi = fma(s, p, sm1)
    sr = s * rl
    lo = fma(s, p, sm1 - hi) + fma(sr, p, sr)  # exact remainder: sm1 and hi within 2x
    far = xc <= F(-16.5)
    return (fma(s, p, s) - ONE if far else hi), (ZERO if far else lo)


@jit
def sigmoid_neg_pair(a: Any) -> Any:
    """(q, ql): ``σ(−a)·2^24 = q + ql`` for a ≥ 0, to about 2^-26 relative wherever σ(−a)·2^24
    is normal: e = e^{−a} with the remainder of its last rounding, the rounding of 1 + e and
    of the quotient, all carried into one residual step (its 1/(1 + e) is 1 − σ(−a): no
    second division)."""
    hi, lo = exp_neg_pair(-a)
    near = a < NEGLIGIBLE  # (beyond, e and its corrections are left out)
    e = (hi if near else ZERO) * DOWN_24
    d = ONE + e
    dl = ((ONE - d) + e) + (lo if near else ZERO) * DOWN_24
    q = hi / d
    residual = fma(-q, d, hi) + fma(-q, dl, lo)
    return q, residual * (ONE - (q if near else ZERO) * DOWN_24)


@jit
def complement(q: Any, ql: Any) -> Any:
    """(m, ml) = 1 − (q + ql)·2^-24 as a pair ((1, 0) from q = 2^-26 down: see NEGLIGIBLE)."""
    near = q > NEGLIGIBLE_24
    q = (q if near else ZERO) * DOWN_24
    m = ONE - q
    return m, ((ONE - m) - q) - (ql if near else ZERO) * DOWN_24


@jit
def product_of_sigmoids(q: Any, ql: Any) -> Any:
    """σ(a)·σ(−a)·2^24 from the pair of σ(−a)·2^24 (one rounding)."""
    m, ml = complement(q, ql)
    return fma(q, m, fma(ql, m, q * ml))


# ---------------------------------------------------------------------------------------------
# Members (float32 in, float32 out; the kernels apply the conventions at NaN and ±inf)


@jit
def times_sigmoid(f: Any, x: Any, one: bool) -> Any:
    """``f·σ(x)`` rounded once (f = 1 for σ, with ``one`` a constant True; x for silu):
    ``f·e/(1 + e)`` below 0 and ``f/(1 + e)`` above, e = e^{−|x|}. Below 0 the numerator is
    scaled by 2^24 while it is formed (σ(x) is subnormal below −87.3: there kept to its
    absolute precision; 0 below −104) and kept as a pair with e's rounding; one division,
    whose rounding and that of ``1 + e`` go into one residual step (its ``1/(1 + e)`` needs a
    few bits only: ``1 − e/2``, within 12 %)."""
    z = -abs(x)
    e24, el = exp_neg_pair(z)
    near = z > -NEGLIGIBLE  # (beyond, e and its corrections are left out)
    negative = x < ZERO
    if one:  # (the numerator 2^24·e or 2^24 is exact)
        nh = e24 if negative else UP_24
        nl = el if negative else ZERO
        scale = DOWN_24
    else:
        k = e24 if negative else ONE
        nh = f * k
        nl = fma(f, el if negative else ZERO, fma(f, k, -nh))
        scale = DOWN_24 if negative else ONE
    e = (e24 if near else ZERO) * DOWN_24
    d = ONE + e
    dl = ((ONE - d) + e) + (el if near else ZERO) * DOWN_24
    q = nh / d
    # q − the residual·1/(1 + e): at f = ±0 it is then q, with its sign
    residual = fma(q, dl, fma(q, d, -nh) - nl)
    r = fma(-residual, fma(-HALF, e, ONE), q) * scale
    return (ZERO if one else NEGATIVE_ZERO) if x < EXP_LOW else r


@jit
def sigmoid_f32(x: Any) -> Any:
    """σ(x) (:func:`times_sigmoid`)."""
    return times_sigmoid(ONE, x, True)


@jit
def sigmoid_d32(x: Any) -> Any:
    """σ′(x) = σ(x)·σ(−x)."""
    q, ql = sigmoid_neg_pair(abs(x))
    return product_of_sigmoids(q, ql) * DOWN_24


@jit
def tanh_f32(x: Any) -> Any:
    """tanh(x) off the centre table (|x| ≥ 8, NaN, ±inf; :mod:`relukit.kernels.cpu.vector32`
    takes the rest in every layout): ``x + x³·T(x²)`` for |x| ≤ 0.625, else ``1 − 2/(1 +
    e^{2|x|})`` (|x| clamped to 9.5, where tanh rounds to 1)."""
    a = abs(x)
    s = x * x
    small = fma(x * s, tanh_t(s), x)  # (keeps the sign of ±0)
    ac = a if a < TANH_CLAMP else TANH_CLAMP
    large = ONE - TWO / (ONE + exp_plain(ac + ac))
    return small if a <= TANH_SMALL else math.copysign(large, x)


@jit
def tanh_d32(x: Any) -> Any:
    """tanh′(x) = 4·σ(2|x|)·σ(−2|x|)."""
    q, ql = sigmoid_neg_pair(TWO * abs(x))
    return product_of_sigmoids(q, ql) * F(2.0**-22)


@jit
def silu_f32(x: Any) -> Any:
    """x·σ(x) (:func:`times_sigmoid`)."""
    return times_sigmoid(x, x, False)


ZERO_MISH = zero32("mish")


@jit
def mish_d_near(x: Any, general: Any) -> Any:
    """mish′: ``general`` (its float64 formula, rounded), or within ½ of its zero r the
    expansion ``h·G(h)``, h = x − r (the formula cancels there)."""
    h = (x - ZERO_MISH[0]) - ZERO_MISH[1]
    gh, gl = zero_mish(h)
    return fma(h, gh, h * gl) if abs(h) <= F(ZERO_WIDTH) else general


@jit
def silu_d32(x: Any) -> Any:
    """σ(x)·(1 + x·σ(−x)) off the centre table (|x| ≥ 16, NaN, ±inf;
    :mod:`relukit.kernels.cpu.vector32` takes the rest in every layout), from the pairs
    q = σ(−|x|), m = 1 − q: ``m·(1 + x·q)`` for x ≥ 0, ``q·(1 + x·m)`` below."""
    q, ql = sigmoid_neg_pair(abs(x))
    m, ml = complement(q, ql)
    qh = (q + ql) * DOWN_24
    qll = ((q - qh * UP_24) + ql) * DOWN_24
    negative = x < ZERO
    ph, pl = two_prod(x, m if negative else qh)
    pl = fma(x, ml if negative else qll, pl)
    g, gl = two_sum(ONE, ph)
    gl = gl + pl
    own = q if negative else m * UP_24  # (scaled: σ(x) is subnormal below −87)
    ownl = ql if negative else ml * UP_24
    far = fma(own, g, fma(own, gl, ownl * g)) * DOWN_24
    return far if far != ZERO else own * g  # an underflow keeps the sign of 1 + x·σ(−x)


@jit
def elu_f32(x: Any, ah: Any, al: Any) -> Any:
    """``alpha·(e^x − 1)`` for x ≤ 0, alpha = ah + al."""
    m, ml = expm1_pair(x if x < ZERO else ZERO)
    negative = fma(ah, m, fma(ah, ml, al * m))
    return x if x > ZERO else (x * ah if x == ZERO else negative)  # (alpha·−0 keeps its sign)


@jit
def elu_d32(x: Any, ah: Any, al: Any) -> Any:
    """``alpha·e^x`` for x ≤ 0, 1 above."""
    hi, lo = exp_neg_pair(x if x < ZERO else ZERO)
    r = fma(ah, hi, fma(ah, lo, al * hi)) * DOWN_24
    return ONE if x > ZERO else r


@jit
def quotient(x: Any, ah: Any, al: Any, inverse: Any) -> Any:
    """(q, ql): q + ql = x/alpha to about 2^-40, alpha = ah + al, ``inverse`` = 1/ah, for
    x ≤ 0; ql is 0 where x/alpha is below −104 (e^q is 0 in float32 there: exp_neg_pair gives
    0, expm1_pair −1)."""
    q = x * inverse
    ql = (fma(-q, ah, x) - q * al) * inverse
    return q, (ZERO if q < EXP_LOW else ql)


@jit
def celu_f32(x: Any, ah: Any, al: Any, inverse: Any) -> Any:
    """``alpha·(e^{x/alpha} − 1)`` for x ≤ 0: ``expm1(q) + e^q·ql``, q + ql = x/alpha."""
    q, ql = quotient(x if x < ZERO else ZERO, ah, al, inverse)
    m, ml = expm1_pair(q)
    ml = fma(m + ONE, ql, ml)
    negative = fma(ah, m, fma(ah, ml, al * m))
    return x if x > ZERO else (ZERO if x == ZERO else negative)  # (+0 at ±0, as the registry)


@jit
def celu_d32(x: Any, ah: Any, al: Any, inverse: Any) -> Any:
    """``e^{x/alpha}`` for x ≤ 0, 1 above."""
    q, ql = quotient(x if x < ZERO else ZERO, ah, al, inverse)
    hi, lo = exp_neg_pair(q)
    r = fma(hi, ql, hi + lo) * DOWN_24
    return ONE if x > ZERO else r


# gelu -----------------------------------------------------------------------------------------


@jit
def ratio_pair(a: Any, k: Any) -> Any:
    """(w, wl): w + wl = (a − k)/(a + k) to about 2^-40 (one division)."""
    num, numl = two_sum(a, -k)
    den, denl = two_sum(a, k)
    r = ONE / den
    w = num * r
    residual = fma(-w, den, num) + (numl - w * denl)
    return w, residual * r


@jit
def gauss_pair(a: Any) -> Any:
    """e^{−a²/2}·2^24 = hi + lo for 0 ≤ a ≤ 14.4 (a² and the reduced argument as pairs)."""
    s, sl = two_prod(a, a)
    e, p, rl = exp_sp2(HALF * -s, SHIFT_24)
    hi = fma(e, p, e)
    lo = fma(hi, rl - HALF * sl, fma(e, p, e - hi))
    return two_sum_fast(hi, lo)  # (the correction for sl reaches 2^-18)


GELU_L_HI = F(FITS["GELU_L"][0])  # ln(1/√(2π)): the exact part of the tails' exponent


@jit
def gelu_f32(x: Any) -> Any:
    """x·Φ(x) off the centre table (|x| ≥ 4, NaN, ±inf; :mod:`relukit.kernels.cpu.vector32`
    takes the rest in every layout), in float32: ``q = a·Φ(−a) = e^{−a²/2 + L(a)}`` with
    ``L = ln Y`` a polynomial in ``1/a²`` (``GELU_L``, 2^-28.8 absolute), then ``−q`` on the
    left and ``x − q`` on the right (q ≤ x·2^-15 there: nothing cancels). The exponent's large
    terms cancel exactly: a² is a pair, n is rounded from the whole exponent, ``−a²/2 −
    n·ln2_hi`` is exact (Cody-Waite) and adding ``c₀`` to it is exact (Sterbenz: both are near
    0.95); only the small rest rounds, to r with |r| ≤ ln2/2 (+2^-16). Then ``e^r`` as in
    :func:`exp_sp`, scaled by 2^24 so that the subnormal results (−13.2 to −14.36, where the
    true value rounds to −0) stay normal until the last product. Within 1.2 ulp on every
    float32 with 4 ≤ |x| ≤ 14 (the subnormal results within 0.87 of their spacing: rounded
    twice); −0 from −14.375 down (the reduced exponent's 2^(n + 24) is normal above), x from
    14.375 up, NaN as NaN."""
    a = abs(x)
    ac = a if a < GELU_L_HIGH_32 else GELU_L_HIGH_32  # (and NaN)
    ac = ac if ac > GELU_L_LOW_32 else GELU_L_LOW_32
    s, sl = two_prod(ac, ac)
    half = -HALF * s  # exact
    d = gelu_l(ONE / s)  # L − c₀'s high part, small
    v = fma(half + (GELU_L_HI + d), LOG2E, SHIFT_24)
    n = v - SHIFT_24
    r = fma(n, -LN2_HI, half) + GELU_L_HI  # both exact
    r = r + fma(n, -LN2_LO, d)
    r = fma(sl, -HALF, r)
    scale = i32_as_f32(f32_as_i32(v) << I(23))
    q = fma(scale, fma(r * r, exp_q(r), r), scale) * DOWN_24
    y = x - q if x > ZERO else -q
    return y if a < GELU_L_HIGH_32 else (NEGATIVE_ZERO if x < ZERO else x)


@jit
def gelu_d32(x: Any) -> Any:
    """Φ(x) + x·φ(x) off the centre table (|x| ≥ 4, NaN, ±inf;
    :mod:`relukit.kernels.cpu.vector32` takes the rest in every layout): ``∓e^{−a²/2}·a·V(a)``
    (added to 1 on the right), 0 or 1 beyond 14."""
    a = abs(x)
    ac = a if a < GELU_CLAMP else GELU_CLAMP  # (and NaN)
    eh, el = gauss_pair(ac)
    w, wl = ratio_pair(ac, F(GELU_V_K))
    vh, vl = gelu_v(w - F(GELU_V_CENTRE))
    vl = fma(wl, gelu_v_slope(w - F(GELU_V_CENTRE)), vl)
    ah, al = two_prod(ac, vh)
    al = fma(ac, vl, al)
    th, tl = two_prod(eh, ah)
    t = (th + (tl + fma(eh, al, el * ah))) * DOWN_24
    t = ZERO if a > GELU_CLAMP else t
    return ONE + t if x > ZERO else -t


tanh_t = horner32(FITS["TANH_T"], "tanh_t")
log1p_p = horner32(FITS["LOG1P_P"], "log1p_p")
gelu_v = polynomial32(FITS["GELU_V"], "gelu_v")
gelu_v_slope = slope32(FITS["GELU_V"], 5, "gelu_v_slope")
# L(v) − c₀'s high part: c₀'s low part + v·(c₁ + …), small (|·| ≤ 0.06)
gelu_l = horner32((FITS["GELU_L"][1], 0.0, *FITS["GELU_L"][2:]), "gelu_l")
zero_mish = polynomial32(FITS["ZERO_MISH"], "zero_mish")


# gelu (tanh form) ------------------------------------------------------------------------------

TANH_BETA2 = (F(1.5957691216057308), F(1.5957691216057308 - float(F(1.5957691216057308))))
KAPPA = (F(0.044715), F(0.044715 - float(F(0.044715))))
KAPPA3 = (F(0.134145), F(0.134145 - float(F(0.134145))))
ZERO_GELU_TANH = zero32("gelu-tanh")
GELU_TANH_CLAMP = F(30.0)  # |x| beyond which σ(2u) is 0 or 1 in float32


@jit
def gelu_tanh_argument(x: Any) -> Any:
    """(z, zl): z + zl = 2u = 2√(2/π)·(x + 0.044715·x³) to about 2^-40 (x clamped to ±30)."""
    xc = x if x < GELU_TANH_CLAMP else GELU_TANH_CLAMP
    xc = xc if xc > -GELU_TANH_CLAMP else -GELU_TANH_CLAMP
    s, sl = two_prod(xc, xc)
    c, cl = two_prod(xc, s)
    cl = fma(xc, sl, cl)
    e, el = two_prod(KAPPA[0], c)
    el = el + fma(KAPPA[0], cl, KAPPA[1] * c)
    g, gl = two_sum(xc, e)
    gl = gl + el
    z, zl = two_prod(TANH_BETA2[0], g)
    return z, zl + fma(TANH_BETA2[0], gl, TANH_BETA2[1] * g)


@jit
def gelu_tanh_sigmoid(x: Any) -> Any:
    """(q, ql, m, ml, z): σ(−|z|)·2^24 = q + ql and σ(|z|) = m + ml at z + zl = 2u, the
    rounding of 2u put back to first order (σ(z + zl) = σ(z)·(1 + σ(−z)·zl))."""
    z, zl = gelu_tanh_argument(x)
    q, ql = sigmoid_neg_pair(abs(z))
    m, ml = complement(q, ql)
    shift = q * m * (zl if z < ZERO else -zl)  # σ(−|z|)·σ(|z|)·(change of −|z|)·2^24
    return q, ql + shift, m, ml - shift * DOWN_24, z


@jit
def gelu_tanh_f32(x: Any) -> Any:
    """x·σ(2u) (x·σ·2^24 formed first where σ is small), off the centre table (|x| ≥ 4, NaN,
    ±inf; :mod:`relukit.kernels.cpu.vector32` takes the rest in every layout)."""
    q, ql, m, ml, z = gelu_tanh_sigmoid(x)
    positive = x if x == ZERO else fma(x, m, x * ml)
    return fma(x, q, x * ql) * DOWN_24 if z < ZERO else positive


@jit
def gelu_tanh_d32(x: Any) -> Any:
    """σ(2u)·(1 + x·σ(−2u)·(2u)′) off the centre table (|x| ≥ 4, NaN, ±inf;
    :mod:`relukit.kernels.cpu.vector32` takes the rest in every layout): ``h·G(h)`` within ½
    of its zero, else from the pairs."""
    h = (x - ZERO_GELU_TANH[0]) - ZERO_GELU_TANH[1]
    gh, gl = zero_gelu_tanh(h)
    near = fma(h, gh, h * gl)
    q, ql, m, ml, z = gelu_tanh_sigmoid(x)
    xc = x if abs(x) < GELU_TANH_CLAMP else F(0.0)
    # (2u)′ = 2√(2/π)·(1 + 3·0.044715·x²) as a pair
    s, sl = two_prod(xc, xc)
    k, kl = two_prod(KAPPA3[0], s)
    kl = kl + fma(KAPPA3[0], sl, KAPPA3[1] * s)
    b, bl = two_sum_fast(ONE, k) if k < ONE else two_sum_fast(k, ONE)
    bl = bl + kl
    d, dl = two_prod(TANH_BETA2[0], b)
    dl = dl + fma(TANH_BETA2[0], bl, TANH_BETA2[1] * b)
    negative = z < ZERO
    qh = (q + ql) * DOWN_24
    qll = ((q - qh * UP_24) + ql) * DOWN_24
    other = m if negative else qh
    otherl = ml if negative else qll
    p, pl = two_prod(xc, other)
    pl = fma(xc, otherl, pl)
    pd, pdl = two_prod(p, d)
    pdl = pdl + fma(p, dl, pl * d)
    g, gl2 = two_sum(ONE, pd)
    gl2 = gl2 + pdl
    own = q if negative else m * UP_24
    ownl = ql if negative else ml * UP_24
    far = fma(own, g, fma(own, gl2, ownl * g)) * DOWN_24
    far = NEGATIVE_ZERO if own == ZERO else far  # (σ(2u) is 0: the limit, from below)
    return near if abs(h) <= F(ZERO_WIDTH) else far


# softplus --------------------------------------------------------------------------------------

LN2_24 = (
    F(0.6931471805599453 * 2**24),
    F(0.6931471805599453 * 2**24 - float(F(0.6931471805599453 * 2**24))),
)


@jit
def softplus_argument(x: Any, bh: Any, bl: Any, th: Any, tl: Any) -> Any:
    """(z, zl, above): z + zl = beta·x (beta = bh + bl; zl 0 where |z| ≥ 1e30, where it may
    not be finite) and whether it exceeds the threshold th + tl, compared exactly."""
    z, zl = two_prod(x, bh)
    zl = fma(x, bl, zl)
    zl = zl if abs(z) < F(1e30) else ZERO
    return z, zl, (z - th) + (zl - tl) > ZERO


@jit
def softplus_sum(z: Any, above: Any) -> Any:
    """(sh, sl, ll, w, inv, far): ``(max(z, 0) + log1p(w))·2^24 = sh + sl + ll``, w = e^{−|z|}
    (on 0 where ``above``: the formula's steps stay normal), ``inv`` 1/(1 + w) within 12 %,
    ``far``: w is below 2^-150 (softplus is 0 on the left, z on the right).

    ``log1p(w) = w − w²/2 + w³·P(w)`` (:mod:`fits32`'s ``LOG1P_P``), w's rounding put back, the
    sum scaled by 2^24 while it is formed (it is subnormal where z is below −87) and added to
    ``max(z, 0)`` as a pair."""
    a = ZERO if above else -abs(z)
    far = not a >= EXP_LOW
    w24, wl = exp_neg_pair(a)
    w = w24 * DOWN_24
    inv = fma(-HALF, w, ONE)  # 1/(1 + w) within 12 %: for the corrections only
    w_near = w if a > -NEGLIGIBLE else ZERO  # (w² and beyond: see NEGLIGIBLE)
    u, ul = two_prod(w24, w_near)  # w²·2^24
    h = fma(-HALF, u, w24)
    hl = fma(-HALF, u, w24 - h)  # (w24 − h is exact: h is within a factor 2 of w24)
    t = hl + fma(u, w_near * log1p_p(w - HALF), fma(-HALF, ul, wl * inv))
    lh = h + t
    ll = (h - lh) + t
    sh, sl = two_sum(ZERO if z < ZERO else z * UP_24, lh)
    return sh, sl, ll, w, inv, far


@jit
def softplus_f32(x: Any, bh: Any, bl: Any, inverse: Any, th: Any, tl: Any) -> Any:
    """``(max(z, 0) + log1p(e^{−|z|}))/beta`` (:func:`softplus_sum`), z + zl = beta·x (beta =
    bh + bl, ``inverse`` = 1/bh), or x where ``beta·x > threshold`` (threshold = th + tl,
    compared exactly): :func:`softplus_f32_scaled`, but at beta = 1, the default, where z is x
    and nothing is divided, a branch that leaves out the steps that are exact there (the same
    bits; a loop-invariant branch, which LLVM takes out of the loop: out= on 2^16 float32 of
    3·N(0, 1), 1 thread, AMD EPYC, in a plain loop 1.49 → 0.97 ns per element, through the
    public call 1.67 → 1.15)."""
    if bh == ONE and bl == ZERO:
        above = (x - th) - tl > ZERO
        sh, sl, ll, _, _, far = softplus_sum(x, above)
        q = sh + (sl + ll)
        r = (ZERO if x < ZERO else x) if far else q * DOWN_24
        return x if above else r
    return softplus_f32_scaled(x, bh, bl, inverse, th, tl)


@jit
def softplus_f32_scaled(x: Any, bh: Any, bl: Any, inverse: Any, th: Any, tl: Any) -> Any:
    """:func:`softplus_f32` for any beta: the rounding of z = beta·x put back (as ``σ(z)·zl``)
    and the pair divided by beta (at beta = 1 the same bits as its branch: a test compares)."""
    z, zl, above = softplus_argument(x, bh, bl, th, tl)
    sh, sl, ll, w, inv, far = softplus_sum(z, above)
    negative = z < ZERO
    sigma = (w if negative else ONE) * inv  # σ(z) within 12 %: all that zl needs
    sl = sl + fma(sigma * UP_24, zl, ll)
    q = sh * inverse
    q = fma(fma(-q, bh, sh) + (sl - q * bl), inverse, q)
    r = (ZERO if negative else x) if far else q * DOWN_24
    return x if above else r


@jit
def softplus_d32(x: Any, bh: Any, bl: Any, th: Any, tl: Any) -> Any:
    """σ(z + zl), z + zl = beta·x, or 1 where beta·x > threshold: :func:`softplus_d32_scaled`,
    but at beta = 1 (z = x, zl = 0) a branch without the steps that are exact there, as in
    :func:`softplus_f32`."""
    if bh == ONE and bl == ZERO:
        above = (x - th) - tl > ZERO
        q, ql = sigmoid_neg_pair(ZERO if above else abs(x))
        m, ml = complement(q, ql)
        return ONE if above else ((q + ql) * DOWN_24 if x < ZERO else m + ml)
    return softplus_d32_scaled(x, bh, bl, th, tl)


@jit
def softplus_d32_scaled(x: Any, bh: Any, bl: Any, th: Any, tl: Any) -> Any:
    """:func:`softplus_d32` for any beta: σ(z + zl) = σ(z)·(1 + σ(−z)·zl)."""
    z, zl, above = softplus_argument(x, bh, bl, th, tl)
    q, ql = sigmoid_neg_pair(ZERO if above else abs(z))  # (1 above: see softplus_f32)
    m, ml = complement(q, ql)
    shift = q * m * zl
    low = (q + (ql + shift)) * DOWN_24
    high = m + (ml + shift * DOWN_24)
    return ONE if above else (low if z < ZERO else high)


zero_gelu_tanh = polynomial32(FITS["ZERO_GELU_TANH"], "zero_gelu_tanh")
