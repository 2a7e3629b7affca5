"""The smooth members' formulas (and the exponential units'), on the working float.

float32 elements (and 16-bit ones, widened to float32) are computed in float32 arithmetic
(:mod:`relukit.kernels.cpu.math32`); float64 elements by the registry's well-conditioned forms
(erfc and the Mills ratio for gelu, σ(−x) for 1 − σ(x), ``n = e^x(e^x + 2)`` for mish, Taylor
expansions at the zeros of the derivatives) evaluated in double-double arithmetic
(:mod:`relukit.kernels.cpu.math64`) and rounded once, within 2 ulp of the true value
(``benchmarks/accuracy.py``). e^x itself is a float64 pair (``exp_pair``, relative 2^-55, a
third of a double-double exp's operations): the exponential units round its product once, and
where the other formulas subtract (near the derivatives' zeros) its error grows at most about
threefold outside the expansions there; benchmarks/accuracy.py's float64 inputs all stay
within 1 ulp.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from relukit.family.numerics import ZEROS, ZEROS_LOW
from relukit.kernels.cpu import math32 as m32
from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.fits import (
    MILLS,
    MILLS_A,
    MILLS_B,
    MILLS_HIGH,
    MILLS_K,
    MILLS_LOW,
    MILLS_LOW_PARTS,
)
from relukit.kernels.cpu.intrinsics import fma
from relukit.kernels.cpu.math64 import (
    dd_add,
    dd_div,
    dd_mul,
    dd_scale,
    exp_pair,
    expm1_pair,
    log1p_dd,
    pair_times,
    quotient,
    two_prod,
    two_sum,
    two_sum_fast,
)
from relukit.kernels.cpu.mathlib import INV_SQRT_2PI, clenshaw_steps, exp_f64, polynomial

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_PRODUCT = SELU_ALPHA * SELU_SCALE  # as the registry (PyTorch's value at the kink)
# the true scale and alpha·scale as double-doubles (hi, lo)
SELU_SCALE_DD = (1.0507009873554805, 3.9874847667154144e-17)
SELU_PRODUCT_DD = (1.7580993408473768, 1.41535193800845e-17)

TANH_BETA = 0.7978845608028654
TANH_KAPPA = 0.044715
TANH_KAPPA_LOW = 2.1960211427085595e-18  # 0.044715 − TANH_KAPPA
TANH_2BETA_LOW = -9.96930880911092e-17  # 2√(2/π) − 2·TANH_BETA
TANH_3KAPPA = (0.134145, 1.3526957332032908e-17)  # 3·0.044715 as a double-double
INV_SQRT_2PI_LOW = -2.49232720227773e-17  # 1/√(2π) − INV_SQRT_2PI

# Below x = −700, e^x is formed scaled by 2^64 (exp_pair's shift) and the result scaled back
# last: alone e^x would be subnormal (below −708.4) where x·e^x, say, is not.
FAR = -700.0
SHIFT = np.int64(64)
UNSCALE = 2.0**-64


# ---------------------------------------------------------------------------------------------
# float64: double-double (the working float is float64; ``v`` and ``x`` are the same value)


# The zeros of the derivatives: within NEAR_WIDTH_64 the registry's expansion, its first
# NEAR_TERMS_64 terms (truncation below 2^-60 of the result there); beyond, the double-double
# formulas around exp_pair, whose 2^-55 grows at most about threefold from |h| = 1/4 out (the
# registry's float64 formulas need the expansion out to 3/4)
NEAR_WIDTH_64 = 0.25
NEAR_TERMS_64 = 20


# (a little wider than NEAR_WIDTH_64, which bounds h = x − r formed in double-double)
NEAR_SUPERSET = NEAR_WIDTH_64 + 2.0**-20


def _near_zero(name: str) -> Any:
    """``(near, may)``. ``near(x, general)``: ``general`` (the derivative of ``name`` at
    ``x``), or within :data:`NEAR_WIDTH_64` of its zero ``r = r_hi + r_lo`` the expansion
    ``h·(c₁ + c₂h + h²·P(h))``, ``h = x − r`` and the first two terms in double-double.
    ``may(x)``: could ``near`` take its expansion at x? True for every such x (the window,
    widened by 2^-20), so that a block that gives the others the derivative without the
    expansion (``*_d_general``) and these the whole derivative gives each element the bits of
    the whole derivative; False for NaN."""
    high, low, coefficients = ZEROS[name]
    c1, c2, c3 = coefficients[:3]
    c1_low, c2_low = ZEROS_LOW[name]
    terms = coefficients[3:NEAR_TERMS_64]
    rest = polynomial(terms, f"{name.replace('-', '_')}_zero_rest")

    @jit
    def near(x: float, general: float) -> float:
        hh, hl = two_sum(x, -high)
        hh, hl = two_sum_fast(hh, hl - low)
        a = fma(hh, rest(hh), c3)
        bh, bl = two_prod(hh, a)
        bh, bl = dd_add(bh, bl, c2, c2_low)
        ph, pl = dd_scale(bh, bl, hh)
        ph, pl = dd_add(ph, pl, c1, c1_low)
        pl = pl + hl * fma(2.0 * c3, hh, c2)  # P(hh + hl) = P(hh) + hl·P′(hh)
        y = fma(hh, ph, fma(hh, pl, hl * ph))
        return y if abs(hh) <= NEAR_WIDTH_64 else general

    @jit
    def may(x: float) -> bool:
        return abs(x - high) <= NEAR_SUPERSET

    return near, may


gelu_near_zero, gelu_d_may_be_near = _near_zero("gelu")
gelu_tanh_near_zero, gelu_tanh_d_may_be_near = _near_zero("gelu-tanh")
silu_near_zero, silu_d_may_be_near = _near_zero("silu")
mish_near_zero, mish_d_may_be_near = _near_zero("mish")


@jit
def logistic(x: float, dx: float) -> Any:
    """(wh, wl, dh, dl, unscale) for σ(±(x + dx)): w = e^{−|x+dx|}·2^s and d = 1 + e^{−|x+dx|}
    as float64 pairs (exp_pair: relative 2^-55), so σ(x) = w/d for x < 0 and 1/d above, σ(−x)
    the other; below :data:`FAR`, s = 64 and d = 1 (e^x is then below 1e-304), else s = 0;
    unscale = 2^-s."""
    far = x < FAR
    wh, wl = exp_pair(-abs(x), dx if x < 0.0 else -dx, SHIFT if far else np.int64(0))
    dh, dl = two_sum_fast(1.0, wh)
    dl = dl + wl
    if far:
        dh, dl = 1.0, 0.0
    return wh, wl, dh, dl, (UNSCALE if far else 1.0)


@jit
def sigmoid_wide(x: float, dx: float) -> float:
    """σ(x + dx), rounded once."""
    wh, wl, dh, dl, unscale = logistic(x, dx)
    nh, nl = (wh, wl) if x < 0.0 else (1.0, 0.0)
    return quotient(nh, nl, dh, dl) * unscale


@jit
def sigmoid_times(x: float, dx: float, ch: float, cl: float) -> float:
    """σ(z)·(1 + c·σ(−z)), z = x + dx, c = ch + cl, rounded once (silu′ and gelu-tanh′):
    ``n·(d + c·m)/d²`` with σ(z) = n/d, σ(−z) = m/d."""
    wh, wl, dh, dl, unscale = logistic(x, dx)
    negative = x < 0.0
    nh, nl = (wh, wl) if negative else (1.0, 0.0)
    mh, ml = (1.0, 0.0) if negative else (wh, wl)
    th, tl = dd_mul(ch, cl, mh, ml)
    th, tl = dd_add(dh, dl, th, tl)
    th, tl = (dh, dl) if mh == 0.0 else (th, tl)  # (c·0, where c may be infinite)
    ph, pl = dd_mul(nh, nl, th, tl)
    qh, ql = dd_mul(dh, dl, dh, dl)
    y = quotient(ph, pl, qh, ql) * unscale
    return math.copysign(0.0, th) if (nh == 0.0 or y == 0.0) else y


@jit
def sigmoid_f_wide(v: Any, x: float) -> float:
    return sigmoid_wide(x, 0.0)


@jit
def sigmoid_d_wide(v: Any, x: float) -> float:
    wh, wl, dh, dl, unscale = logistic(x, 0.0)
    qh, ql = dd_mul(dh, dl, dh, dl)
    return quotient(wh, wl, qh, ql) * unscale


@jit
def tanh_f_wide(v: Any, x: float) -> float:
    """tanh|x| = −m/(2 + m), m = e^{−2|x|} − 1, with x's sign."""
    mh, ml = expm1_pair(-2.0 * abs(x), 0.0)
    dh, dl = two_sum_fast(2.0, mh)
    return math.copysign(quotient(-mh, -ml, dh, dl + ml), x)


@jit
def tanh_d_wide(v: Any, x: float) -> float:
    """4w/(1 + w)², w = e^{−2|x|} (scaled by 2^64 beyond |x| = 350)."""
    far = abs(x) > -0.5 * FAR
    wh, wl = exp_pair(-2.0 * abs(x), 0.0, SHIFT if far else np.int64(0))
    dh, dl = two_sum_fast(1.0, wh)
    dl = dl + wl
    if far:
        dh, dl = 1.0, 0.0
    qh, ql = dd_mul(dh, dl, dh, dl)
    return 4.0 * quotient(wh, wl, qh, ql) * (UNSCALE if far else 1.0)


# The exponential units' products neither cancel nor amplify an error: e^x as a float64 pair
# (exp_pair, relative 2^-55; expm1_pair 2^-54) times c, rounded once, is within 0.75 ulp (1.0
# for e^x − 1), at a third of the double-double's cost.


@jit
def exp_times(x: float, dx: float, ch: float, cl: float) -> float:
    """e^{x+dx}·c, rounded once (x ≤ 0)."""
    far = x < FAR
    eh, el = exp_pair(x, dx, SHIFT if far else np.int64(0))
    return pair_times(eh, el, ch, cl) * (UNSCALE if far else 1.0)


@jit
def expm1_times(x: float, dx: float, ch: float, cl: float) -> float:
    """(e^{x+dx} − 1)·c, rounded once (x ≤ 0; ±0 keeps its sign)."""
    mh, ml = expm1_pair(x, dx)
    return mh * ch if x == 0.0 else pair_times(mh, ml, ch, cl)


@jit
def elu_f_wide(v: Any, x: float, alpha: float) -> float:
    return x if x > 0.0 else expm1_times(x, 0.0, alpha, 0.0)


@jit
def elu_d_wide(v: Any, x: float, alpha: float) -> float:
    return 1.0 if x > 0.0 else exp_times(x, 0.0, alpha, 0.0)


@jit
def selu_f_wide(v: Any, x: float) -> float:
    if x > 0.0:
        return fma(x, SELU_SCALE_DD[0], x * SELU_SCALE_DD[1])
    return expm1_times(x, 0.0, SELU_PRODUCT_DD[0], SELU_PRODUCT_DD[1])


@jit
def selu_d_wide(v: Any, x: float) -> float:
    if x > 0.0:
        return SELU_SCALE
    if x == 0.0:
        return SELU_PRODUCT  # the kink: PyTorch's value
    return exp_times(x, 0.0, SELU_PRODUCT_DD[0], SELU_PRODUCT_DD[1])


@jit
def quotient_parts(x: float, alpha: float) -> Any:
    """(q, dq), q + dq = x/alpha to about 2^-100 (dq = 0 where it overflows)."""
    q = x / alpha
    dq = fma(-q, alpha, x) / alpha
    return q, (dq if abs(dq) < np.inf else 0.0)


@jit
def celu_f_wide(v: Any, x: float, alpha: float) -> float:
    q, dq = quotient_parts(x, alpha)
    return x if x > 0.0 else expm1_times(q, dq, alpha, 0.0)


@jit
def celu_d_wide(v: Any, x: float, alpha: float) -> float:
    q, dq = quotient_parts(x, alpha)
    return 1.0 if x > 0.0 else exp_times(q, dq, 1.0, 0.0)


@jit
def silu_f_wide(v: Any, x: float) -> float:
    wh, wl, dh, dl, unscale = logistic(x, 0.0)
    nh, nl = (wh, wl) if x < 0.0 else (1.0, 0.0)
    sh, sl = dd_div(nh, nl, dh, dl)
    return fma(x, sh, x * sl) * unscale


@jit
def silu_d_general(x: float) -> float:
    """silu′ = σ(x)·(1 + x·σ(−x)) without the expansion at its zero (:func:`silu_d_wide`)."""
    return sigmoid_times(x, 0.0, x, 0.0)


@jit
def silu_d_wide(v: Any, x: float) -> float:
    return silu_near_zero(x, silu_d_general(x))


@jit
def mish_parts(x: float) -> Any:
    """(th, tl, rh, rl, sh, sl, unscale): t = tanh(softplus(x)) = n/(n + 2), n = e^x(e^x + 2),
    1 − t² = 4(n + 1)/(n + 2)² and σ(x) = e/(1 + e), as double-doubles (as the registry).
    Above x = 40, t = 1 and 1 − t² is taken as 0; below :data:`FAR`, t and σ are scaled by 2^64
    (as e^x)."""
    big = x > 40.0
    far = x < FAR
    eh, el = exp_pair(0.0 if big else x, 0.0, SHIFT if far else np.int64(0))
    gh, gl = (2.0, 0.0) if far else dd_add(eh, el, 2.0, 0.0)
    nh, nl = dd_mul(eh, el, gh, gl)
    mh, ml = (2.0, 0.0) if far else dd_add(nh, nl, 2.0, 0.0)
    th, tl = dd_div(nh, nl, mh, ml)
    ah, al = (1.0, 0.0) if far else dd_add(nh, nl, 1.0, 0.0)
    qh, ql = dd_mul(mh, ml, mh, ml)
    rh, rl = dd_div(4.0 * ah, 4.0 * al, qh, ql)
    oh, ol = (1.0, 0.0) if far else dd_add(eh, el, 1.0, 0.0)
    sh, sl = dd_div(eh, el, oh, ol)
    if big:  # (x·σ·(1 − t²) < 1e-33 there: mish′ rounds to t = 1)
        th, tl, rh, rl = 1.0, 0.0, 0.0, 0.0
    return th, tl, rh, rl, sh, sl, (UNSCALE if far else 1.0)


@jit
def mish_f_wide(v: Any, x: float) -> float:
    parts = mish_parts(x)  # (the unused ones are not computed: the code is inlined)
    return fma(x, parts[0], x * parts[1]) * parts[6]


@jit
def mish_d_general(x: float) -> float:
    """mish′ = t + x·σ(x)·(1 − t²) without the expansion at its zero (:func:`mish_d_wide`)."""
    th, tl, rh, rl, sh, sl, unscale = mish_parts(x)
    ph, pl = dd_scale(sh, sl, x)
    ph, pl = dd_mul(ph, pl, rh, rl)
    gh, gl = dd_add(th, tl, ph, pl)
    y = (gh + gl) * unscale
    return math.copysign(0.0, 1.0 + x) if y == 0.0 else y


@jit
def mish_d_wide(v: Any, x: float) -> float:
    return mish_near_zero(x, mish_d_general(x))


@jit
def softplus_f_wide(v: Any, x: float, beta: float, threshold: float) -> float:
    """(max(z, 0) + log1p(e^{−|z|}))/beta, z = beta·x exactly as z + dz."""
    z, dz = two_prod(x, beta)
    dz = dz if abs(z) < 1e300 else 0.0
    far = z < FAR
    wh, wl = exp_pair(-abs(z), dz if z < 0.0 else -dz, SHIFT if far else np.int64(0))
    lh, ll = log1p_dd(wh, wl)
    if z > 0.0:
        lh, ll = dd_add(z, dz, lh, ll)
    # (a true division: beta is the caller's, and its reciprocal may overflow or be subnormal;
    # a quotient that overflows stays inf, not the NaN of its correction)
    q = lh / beta
    q = q + (fma(-q, beta, lh) + ll) / beta if abs(q) < np.inf else q
    y = q * (UNSCALE if far else 1.0)
    return x if z > threshold else y


@jit
def softplus_d_wide(v: Any, x: float, beta: float, threshold: float) -> float:
    z, dz = two_prod(x, beta)
    dz = dz if abs(z) < 1e300 else 0.0
    return 1.0 if z > threshold else sigmoid_wide(z, dz)


@jit
def gelu_tanh_argument(x: float) -> Any:
    """(z, w), z + w = 2u, u = √(2/π)(x + 0.044715x³), in double-double (w = 0 beyond
    |x| = 1e75, where 2u is far beyond the range of σ's change)."""
    a, b = two_prod(x, x)
    c, d = two_prod(a, x)
    d = d + b * x
    e, f = two_prod(TANH_KAPPA, c)
    f = f + TANH_KAPPA * d + TANH_KAPPA_LOW * c
    g, h = two_sum(x, e)
    h = h + f
    z, w = two_prod(2 * TANH_BETA, g)
    w = w + (2 * TANH_BETA) * h + TANH_2BETA_LOW * g
    return z, (w if (abs(x) < 1e75 and abs(z) < 1e300) else 0.0)


@jit
def gelu_tanh_f_wide(v: Any, x: float) -> float:
    """x·σ(2u)."""
    z, w = gelu_tanh_argument(x)
    wh, wl, dh, dl, unscale = logistic(z, w)
    nh, nl = (wh, wl) if z < 0.0 else (1.0, 0.0)
    sh, sl = dd_div(nh, nl, dh, dl)
    return fma(x, sh, x * sl) * unscale


@jit
def gelu_tanh_d_general(x: float) -> float:
    """σ(2u)·(1 + x·slope·σ(−2u)), slope = 2√(2/π)(1 + 3·0.044715x²), without the expansion
    at its zero (:func:`gelu_tanh_d_wide`)."""
    z, w = gelu_tanh_argument(x)
    ah, al = two_prod(x, x)
    ah, al = dd_mul(ah, al, TANH_3KAPPA[0], TANH_3KAPPA[1])
    ah, al = dd_add(ah, al, 1.0, 0.0)
    ah, al = dd_mul(ah, al, 2 * TANH_BETA, TANH_2BETA_LOW)
    ch, cl = dd_scale(ah, al, x)
    if not abs(ch) < 1e300:  # (where x·slope overflows, σ(±2u) is 0)
        ch, cl = math.copysign(1e300, x), 0.0
    return sigmoid_times(z, w, ch, cl)


@jit
def gelu_tanh_d_wide(v: Any, x: float) -> float:
    return gelu_tanh_near_zero(x, gelu_tanh_d_general(x))


# gelu: Φ(x) − 1/2 = x·φ(0)·S(x²) for |x| ≤ 1, S(y) = Σ (−1)^n (y/2)^n/(n!(2n + 1)) (to
# n = 15: 1e-19); beyond, Φ(−t) = φ(t)·g(t)/t, g(t) = t·R(t) (R the Mills ratio) a Chebyshev
# series (relukit.kernels.cpu.fits), so that gelu(−t) = −φ(t)·g(t) and gelu(t) = t − φ(t)·g(t)
CENTRE = tuple((-1) ** n / (2**n * math.factorial(n) * (2 * n + 1)) for n in range(2, 16))
SIXTH = (-0.16666666666666666, -9.25185853854297e-18)  # −1/6 as a double-double
GAUSS_FAR = -36.0  # below, φ(x) is formed scaled by 2^64 (as e^x below FAR)
centre_rest = polynomial(CENTRE, "centre_rest")
MILLS_SPLIT = 4  # Clenshaw's steps from c_4 up in float64, the last four in double-double
mills_steps = clenshaw_steps(MILLS[MILLS_SPLIT:], "mills_steps")


@jit
def gauss(x: float) -> Any:
    """(hi, lo, unscale): φ(x)·2^s, s = 64 below :data:`GAUSS_FAR` (else 0), unscale = 2^-s;
    |x| is clamped at :data:`~relukit.kernels.cpu.fits.MILLS_HIGH` (φ(40) = 0 in float64)."""
    far = x < GAUSS_FAR
    t = min(abs(x), MILLS_HIGH)
    yh, yl = two_prod(t, t)
    eh, el = exp_pair(-0.5 * yh, -0.5 * yl, SHIFT if far else np.int64(0))
    ph, pl = dd_mul(eh, el, INV_SQRT_2PI, INV_SQRT_2PI_LOW)
    return ph, pl, (UNSCALE if far else 1.0)


@jit
def clenshaw_step(s2: Any, b: Any, c: Any, k: int) -> Any:
    """``c_k + 2s·b − c`` (s2 = 2s, b and c as double-doubles): one step of Clenshaw's
    recurrence for ``MILLS`` in double-double."""
    th, tl = dd_mul(s2[0], s2[1], b[0], b[1])
    th, tl = dd_add(th, tl, -c[0], -c[1])
    return dd_add(th, tl, MILLS[k], MILLS_LOW_PARTS[k] if k < 4 else 0.0)


@jit
def mills(t: float) -> Any:
    """g(t) = t·R(t) for 1 ≤ t ≤ 40, as a double-double: s(t) in double-double, and the last
    steps of Clenshaw's recurrence too (near s = ±1 it magnifies their roundings k-fold)."""
    nh, nl = two_sum(t, -MILLS_K)
    dh, dl = two_sum(t, MILLS_K)
    wh, wl = dd_div(nh, nl, dh, dl)
    sh, sl = dd_scale(wh, wl, MILLS_A)
    sh, sl = dd_add(sh, sl, MILLS_B, 0.0)
    b4, b5 = mills_steps(sh)
    s2 = (2.0 * sh, 2.0 * sl)
    b3 = clenshaw_step(s2, (b4, 0.0), (b5, 0.0), 3)
    b2 = clenshaw_step(s2, b3, (b4, 0.0), 2)
    bh, bl = clenshaw_step(s2, b2, b3, 1)
    ch, cl = b2
    gh, gl = dd_mul(sh, sl, bh, bl)  # c_0 + s·b_1 − b_2
    gh, gl = dd_add(gh, gl, -ch, -cl)
    return dd_add(gh, gl, MILLS[0], MILLS_LOW_PARTS[0])


@jit
def phi_centre(x: float) -> Any:
    """Φ(x) for |x| ≤ 1, as a double-double."""
    yh, yl = two_prod(x, x)
    ah, al = two_prod(yh, centre_rest(yh))
    ah, al = dd_add(ah, al, SIXTH[0], SIXTH[1])
    ah, al = dd_mul(ah, al, yh, yl)
    ah, al = dd_add(ah, al, 1.0, 0.0)
    ah, al = dd_scale(ah, al, x)
    ah, al = dd_mul(ah, al, INV_SQRT_2PI, INV_SQRT_2PI_LOW)
    return dd_add(ah, al, 0.5, 0.0)


@jit
def gelu_f_wide_centre(x: float) -> float:
    """gelu for |x| ≤ :data:`~relukit.kernels.cpu.fits.MILLS_LOW`: x·Φ(x), Φ in double-double."""
    ch, cl = phi_centre(x)
    return fma(x, ch, x * cl)


@jit
def gelu_f_wide_tail(x: float) -> float:
    """gelu beyond the centre (and NaN, ±inf, which the conventions then set): −φ(t)·g(t) on
    the left, t − φ(t)·g(t) on the right."""
    t = min(max(abs(x), MILLS_LOW), MILLS_HIGH)
    ph, pl, unscale = gauss(x)
    gh, gl = mills(t)
    qh, ql = dd_mul(ph, pl, gh, gl)  # φ·g
    if x < 0.0:
        return -abs((qh + ql) * unscale)
    rh, rl = dd_add(x, 0.0, -qh, -ql)
    return rh + rl


@jit
def gelu_f_wide_in_tail(x: float) -> bool:
    """Does gelu take :func:`gelu_f_wide_tail` at x (NaN too)?"""
    return not abs(x) <= MILLS_LOW


@jit
def gelu_f_wide(v: Any, x: float) -> float:
    return gelu_f_wide_tail(x) if gelu_f_wide_in_tail(x) else gelu_f_wide_centre(x)


@jit
def gelu_d_centre(x: float) -> float:
    """gelu′ = Φ + xφ for |x| ≤ 1, without the expansion at its zero (:func:`gelu_d_wide`)."""
    ph, pl, _ = gauss(x)
    return gelu_d_centre_of(x, ph, pl)


@jit
def gelu_d_centre_of(x: float, ph: float, pl: float) -> float:
    """:func:`gelu_d_centre` from φ(x) = ph + pl."""
    ch, cl = phi_centre(x)
    eh, el = dd_scale(ph, pl, x)
    ch, cl = dd_add(ch, cl, eh, el)
    return ch + cl


@jit
def gelu_d_off_centre(x: float) -> bool:
    """Does gelu′ at x take more than :func:`gelu_d_centre`: beyond |x| = 1 (the tails), near
    its zero (may be: :func:`_near_zero`'s ``may``), NaN?"""
    return not abs(x) <= MILLS_LOW or gelu_d_may_be_near(x)


@jit
def gelu_d_wide(v: Any, x: float) -> float:
    """Φ + xφ: as φ·(g − t²)/t below −1, 1 + φ·(x² − g)/x above 1."""
    t = min(max(abs(x), MILLS_LOW), MILLS_HIGH)
    ph, pl, unscale = gauss(x)
    gh, gl = mills(t)
    yh, yl = two_prod(t, t)
    kh, kl = dd_add(gh, gl, -yh, -yl)  # g − t²
    mh, ml = dd_mul(ph, pl, kh, kl)
    if abs(x) <= MILLS_LOW:
        general = gelu_d_centre_of(x, ph, pl)
    elif x < 0.0:
        general = -abs(quotient(mh, ml, t, 0.0) * unscale)
    else:
        nh, nl = dd_div(-mh, -ml, t, 0.0)
        nh, nl = dd_add(nh, nl, 1.0, 0.0)
        general = nh + nl
    return gelu_near_zero(x, general)


# ---------------------------------------------------------------------------------------------
# The members by working type: float32 (and 16-bit) elements in float32 arithmetic
# (:mod:`relukit.kernels.cpu.math32`), float64 ones by the float64 formulas above. Each is
# ``name(v, x, *parameters)``: v the working float, x the same as float64, the parameters float64.


def _by_type(name: str, single_f: Any, wide_f: Any, arity: int) -> Any:
    """A stub ``name(v, x, p0, …)`` that Numba resolves, from v's type, to ``single_f`` (float32)
    or ``wide_f`` (float64)."""
    args = ", ".join(["v", "x", *(f"p{i}" for i in range(arity))])
    source = f"""
def {name}({args}):
    raise NotImplementedError("inside Numba kernels only")


def impl({args}):
    if v == types.float32:
        return lambda {args}: single_f({args})
    if v == types.float64:
        return lambda {args}: wide_f({args})
    return None
"""
    namespace: dict[str, Any] = {"types": types, "single_f": single_f, "wide_f": wide_f}
    exec(source, namespace)
    overload(namespace[name], jit_options=INLINE_OPTIONS)(namespace["impl"])
    return namespace[name]


@jit
def _sigmoid_f32(v: Any, x: Any) -> Any:
    return m32.sigmoid_f32(v)


@jit
def _sigmoid_d32(v: Any, x: Any) -> Any:
    return m32.sigmoid_d32(v)


@jit
def _tanh_f32(v: Any, x: Any) -> Any:
    return m32.tanh_f32(v)


@jit
def _tanh_d32(v: Any, x: Any) -> Any:
    return m32.tanh_d32(v)


@jit
def _silu_f32(v: Any, x: Any) -> Any:
    return m32.silu_f32(v)


@jit
def _silu_d32(v: Any, x: Any) -> Any:
    # only off the centre: silu′'s float32 derivative block (vector32) takes every block the
    # map kernel sees (1-D, C-contiguous), vjp included, and hands this formula its tails alone
    return m32.silu_d32(v)


@jit
def _gelu_f32(v: Any, x: Any) -> Any:
    # only off the centre: gelu's float32 forward block (vector32) takes every block the map
    # kernel sees (1-D, C-contiguous) and hands this formula its tails alone
    return m32.gelu_f32(v)


@jit
def _gelu_d32(v: Any, x: Any) -> Any:
    # only off the centre, as _silu_d32
    return m32.gelu_d32(v)


@jit
def _elu_f32(v: Any, x: Any, alpha: Any) -> Any:
    ah, al = m32.split(alpha)
    return m32.elu_f32(v, ah, al)


@jit
def _elu_d32(v: Any, x: Any, alpha: Any) -> Any:
    ah, al = m32.split(alpha)
    return m32.elu_d32(v, ah, al)


SELU_SCALE_32 = (np.float32(SELU_SCALE), np.float32(SELU_SCALE - float(np.float32(SELU_SCALE))))
SELU_PRODUCT_32 = (
    np.float32(SELU_PRODUCT),
    np.float32(SELU_PRODUCT - float(np.float32(SELU_PRODUCT))),
)


@jit
def _selu_f32(v: Any, x: Any) -> Any:
    negative = m32.elu_f32(v, SELU_PRODUCT_32[0], SELU_PRODUCT_32[1])
    return fma(SELU_SCALE_32[0], v, SELU_SCALE_32[1] * v) if v > 0 else negative


@jit
def _selu_d32(v: Any, x: Any) -> Any:
    negative = m32.elu_d32(v, SELU_PRODUCT_32[0], SELU_PRODUCT_32[1])
    return SELU_SCALE_32[0] if v > 0 else negative


@jit
def _celu_f32(v: Any, x: Any, alpha: Any) -> Any:
    ah, al = m32.split(alpha)
    return m32.celu_f32(v, ah, al, np.float32(1.0) / ah)


@jit
def _celu_d32(v: Any, x: Any, alpha: Any) -> Any:
    ah, al = m32.split(alpha)
    return m32.celu_d32(v, ah, al, np.float32(1.0) / ah)


@jit
def _gelu_tanh_f32(v: Any, x: Any) -> Any:
    return m32.gelu_tanh_f32(v)


@jit
def _gelu_tanh_d32(v: Any, x: Any) -> Any:
    return m32.gelu_tanh_d32(v)


@jit
def _softplus_f32(v: Any, x: Any, beta: Any, threshold: Any) -> Any:
    bh, bl = m32.split(beta)
    th, tl = m32.split(threshold)
    return m32.softplus_f32(v, bh, bl, np.float32(1.0) / bh, th, tl)


@jit
def _softplus_d32(v: Any, x: Any, beta: Any, threshold: Any) -> Any:
    bh, bl = m32.split(beta)
    th, tl = m32.split(threshold)
    return m32.softplus_d32(v, bh, bl, th, tl)


@jit
def _mish_parts32(x: float) -> Any:
    """(t, 1 − t², σ(x)) for a float32 input, in float64 (each within about 1e-15 relative,
    enough for one float32 rounding): t = n/(n + 2), n = e^x(e^x + 2); t = 1 above 40."""
    big = x > 40.0
    e = exp_f64(0.0 if big else x)
    n = e * (e + 2.0)
    t = 1.0 if big else n / (n + 2.0)
    rest = 0.0 if big else 4.0 * (n + 1.0) / ((n + 2.0) * (n + 2.0))
    return t, rest, e / (1.0 + e)


@jit
def _mish_f32(v: Any, x: Any) -> Any:
    t, _, _ = _mish_parts32(x)
    return np.float32(x * t)


@jit
def _mish_d32(v: Any, x: Any) -> Any:
    t, rest, s = _mish_parts32(x)
    y = t + x * s * rest
    y = math.copysign(0.0, 1.0 + x) if y == 0.0 else y  # (an underflow keeps the sign of 1 + x)
    return m32.mish_d_near(v, np.float32(y))


sigmoid_f = _by_type("sigmoid_f", _sigmoid_f32, sigmoid_f_wide, 0)
sigmoid_d = _by_type("sigmoid_d", _sigmoid_d32, sigmoid_d_wide, 0)
tanh_f = _by_type("tanh_f", _tanh_f32, tanh_f_wide, 0)
tanh_d = _by_type("tanh_d", _tanh_d32, tanh_d_wide, 0)
silu_f = _by_type("silu_f", _silu_f32, silu_f_wide, 0)
silu_d = _by_type("silu_d", _silu_d32, silu_d_wide, 0)
gelu_f = _by_type("gelu_f", _gelu_f32, gelu_f_wide, 0)
gelu_d = _by_type("gelu_d", _gelu_d32, gelu_d_wide, 0)
elu_f = _by_type("elu_f", _elu_f32, elu_f_wide, 1)
elu_d = _by_type("elu_d", _elu_d32, elu_d_wide, 1)
selu_f = _by_type("selu_f", _selu_f32, selu_f_wide, 0)
selu_d = _by_type("selu_d", _selu_d32, selu_d_wide, 0)
celu_f = _by_type("celu_f", _celu_f32, celu_f_wide, 1)
celu_d = _by_type("celu_d", _celu_d32, celu_d_wide, 1)
gelu_tanh_f = _by_type("gelu_tanh_f", _gelu_tanh_f32, gelu_tanh_f_wide, 0)
gelu_tanh_d = _by_type("gelu_tanh_d", _gelu_tanh_d32, gelu_tanh_d_wide, 0)
softplus_f = _by_type("softplus_f", _softplus_f32, softplus_f_wide, 2)
softplus_d = _by_type("softplus_d", _softplus_d32, softplus_d_wide, 2)
mish_f = _by_type("mish_f", _mish_f32, mish_f_wide, 0)
mish_d = _by_type("mish_d", _mish_d32, mish_d_wide, 0)
