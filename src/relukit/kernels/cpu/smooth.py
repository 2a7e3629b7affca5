"""The smooth members' formulas (and the exponential units'), on the working float: their formula in
float64 (``x``, the input widened), rounded once by the loop that calls them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from relukit.family.numerics import SHIFT_HI, SHIFT_LO, UNSHIFT, ZEROS
from relukit.family.numerics import WIDTH as NEAR_WIDTH
from relukit.family.smooth import GELU_FAR, GELU_TANH_FAR, MILLS
from relukit.kernels.cpu import math32 as m32
from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.dtypes import single
from relukit.kernels.cpu.intrinsics import fma
from relukit.kernels.cpu.mathlib import (
    INV_SQRT_2PI,
    polynomial,
    wexp,
    wexpm1,
    wgauss,
    wlog1p,
    wphi,
    wtanh,
)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_PRODUCT = SELU_ALPHA * SELU_SCALE  # as the registry (PyTorch's value at the kink)


TANH_BETA = 0.7978845608028654
TANH_KAPPA = 0.044715
TANH_KAPPA_LOW = 2.1960211427085595e-18  # 0.044715 − TANH_KAPPA
TANH_2BETA_LOW = -9.96930880911092e-17  # 2√(2/π) − 2·TANH_BETA


# The smooth members (and the exponential units): their formula in float64 (``x``, the input
# widened), rounded once at the end. The math comes from ``wide`` helpers that pick, from the
# input's type at compile time, the C library (float64 inputs) or the vectorisable float64
# functions of mathlib (float32 and 16-bit inputs). The forms are the registry's
# (relukit.family: erfc for gelu, σ(−x) for 1 − σ(x), Taylor expansions at the zeros of the
# derivatives), so that nothing cancels.


# The zeros of the derivatives (relukit.family.numerics): float64 inputs take the registry's
# expansion; float32 ones, which need 1e-13 only, its first terms over a narrower interval.
NEAR_WIDTH_32 = 1.0 / 32
NEAR_TERMS_32 = 11


def _near_zero(name: str) -> Any:
    """``near(v, x, general)``: ``general`` (the derivative of ``name`` at ``x``), or within
    reach of its zero ``r = r_hi + r_lo`` the expansion ``h·P(h)``, ``h = (x − r_hi) − r_lo``
    (float32 inputs: the first terms over a narrower interval)."""
    high, low, coefficients = ZEROS[name]
    key = name.replace("-", "_")
    full = polynomial(coefficients, f"{key}_zero")
    short = polynomial(coefficients[:NEAR_TERMS_32], f"{key}_zero_32")

    @jit
    def near(v: Any, x: float, general: float) -> float:
        h = (x - high) - low
        if single(v):
            return h * short(h) if abs(h) <= NEAR_WIDTH_32 else general
        return h * full(h) if abs(h) <= NEAR_WIDTH else general

    return near


gelu_near_zero = _near_zero("gelu")
gelu_tanh_near_zero = _near_zero("gelu-tanh")
silu_near_zero = _near_zero("silu")
mish_near_zero = _near_zero("mish")


@jit
def sigmoid_w(v: Any, x: float) -> float:
    """σ(x), as e^x/(1 + e^x) for x < 0 (as the registry)."""
    e = wexp(v, -abs(x))
    return (e if x < 0.0 else 1.0) / (1.0 + e)


@jit
def sigmoid_f_wide(v: Any, x: float) -> float:
    return sigmoid_w(v, x)


@jit
def tanh_f_wide(v: Any, x: float) -> float:
    return wtanh(v, x)


@jit
def elu_f_wide(v: Any, x: float, alpha: float) -> float:
    return x if x > 0.0 else wexpm1(v, x) * alpha


@jit
def elu_d_wide(v: Any, x: float, alpha: float) -> float:
    return 1.0 if x > 0.0 else wexp(v, x) * alpha


@jit
def selu_f_wide(v: Any, x: float) -> float:
    return x * SELU_SCALE if x > 0.0 else wexpm1(v, x) * SELU_PRODUCT


@jit
def selu_d_wide(v: Any, x: float) -> float:
    return SELU_SCALE if x > 0.0 else wexp(v, x) * SELU_PRODUCT


@jit
def quotient(v: Any, x: float, alpha: float) -> Any:
    """(q, dq), q + dq = x/alpha to about 2^-100 (float64 inputs; dq = 0 for float32 ones,
    whose 24 bits do not need it)."""
    q = x / alpha
    dq = fma(-q, alpha, x) / alpha
    return q, (0.0 if (single(v) or not abs(dq) < np.inf) else dq)


@jit
def celu_f_wide(v: Any, x: float, alpha: float) -> float:
    q, dq = quotient(v, x, alpha)
    return x if x > 0.0 else (wexpm1(v, q) + wexp(v, q) * dq) * alpha


@jit
def celu_d_wide(v: Any, x: float, alpha: float) -> float:
    q, dq = quotient(v, x, alpha)
    e = wexp(v, q)
    return 1.0 if x > 0.0 else e + e * dq


# x·Φ(x) = −φ(x)·S(x) below x = −26, S the asymptotic series of |x|·Φ(x)/φ(x) in 1/x²
# (error 3e-20 there): Φ(x) alone is subnormal in float64 below −37.5 while x·Φ(x) is not
mills_series = polynomial(MILLS, "mills_series")


@jit
def exp_shifted(a: float) -> float:
    """e^a·2^32 (as relukit.family.numerics.exp_shifted)."""
    return math.exp(a + SHIFT_HI) * (1.0 + SHIFT_LO)


@jit
def gelu_far(x: float, derivative: bool) -> float:
    """gelu (or gelu′) below ``GELU_FAR`` for float64 inputs: −φ·S, and −|x|φ·(1 − S/x²)
    (below x = −40, −0: x is clamped there)."""
    x = max(x, -40.0)
    hi = x * x
    lo = fma(x, x, -hi)
    series = mills_series(1.0 / hi)
    e = exp_shifted(-0.5 * hi) * (1.0 - 0.5 * lo) * INV_SQRT_2PI
    if derivative:
        return (-e * (-x) * (1.0 - series / hi)) * UNSHIFT
    return (-e * series) * UNSHIFT


@jit
def gelu_f_wide(v: Any, x: float) -> float:
    if not single(v) and x < GELU_FAR:
        return gelu_far(x, False)
    return x * wphi(v, x)


@jit
def gelu_d_wide(v: Any, x: float) -> float:
    if not single(v) and x < GELU_FAR:
        return gelu_far(x, True)
    general = wphi(v, x) + x * wgauss(v, x)
    return gelu_near_zero(v, x, general)


@jit
def gelu_tanh_argument(v: Any, x: float) -> Any:
    """(z, w), z + w = 2u, u = √(2/π)(x + 0.044715x³); w is 0 for float32 inputs, which do
    not need it, and for float64 ones 2u's rounding error (double-double evaluation)."""
    z = (2 * TANH_BETA) * (x + TANH_KAPPA * x * x * x)
    w = 0.0
    if not single(v):
        a = x * x
        b = fma(x, x, -a)
        c = a * x
        d = fma(a, x, -c) + b * x
        e = TANH_KAPPA * c
        f = fma(TANH_KAPPA, c, -e) + TANH_KAPPA * d + TANH_KAPPA_LOW * c
        g = x + e
        bb = g - x
        h = ((x - (g - bb)) + (e - bb)) + f
        z = (2 * TANH_BETA) * g
        w = fma(2 * TANH_BETA, g, -z) + (2 * TANH_BETA) * h + TANH_2BETA_LOW * g
        w = w if (abs(x) < 1e75 and abs(z) < 1e300) else 0.0
    return z, w


@jit
def gelu_tanh_far(v: Any, x: float, derivative: bool) -> Any:
    """(whether it applies, the value): for float64 inputs with 2u below GELU_TANH_FAR, gelu
    and gelu′ as e^{2u}·m, m = x or 1 + x·slope (σ(2u) = e^{2u} there), with e^{2u} scaled
    by 2^32 while it is formed: alone it would be subnormal where the result is not."""
    if single(v):
        return False, 0.0
    z, w = gelu_tanh_argument(v, x)
    if not z < GELU_TANH_FAR:
        return False, 0.0
    m = x
    if derivative:
        m = 1.0 + x * ((2 * TANH_BETA) * (1.0 + 3 * TANH_KAPPA * x * x))
    m = max(m, -1e300)  # (where it overflows, e^{2u} is 0)
    return True, (exp_shifted(max(z, -1100.0)) * (1.0 + w) * m) * UNSHIFT


@jit
def gelu_tanh_sigmoids(v: Any, x: float) -> Any:
    """(σ(2u), σ(−2u)), u = √(2/π)(x + 0.044715x³); for float64 inputs with 2u in
    double-double and its low part put back to first order (as the registry)."""
    z, w = gelu_tanh_argument(v, x)
    s = sigmoid_w(v, z)
    rest = sigmoid_w(v, -z)
    product = s * rest * w
    return s + product, rest - product


@jit
def gelu_tanh_f_wide(v: Any, x: float) -> float:
    far, value = gelu_tanh_far(v, x, False)
    return value if far else x * gelu_tanh_sigmoids(v, x)[0]


@jit
def gelu_tanh_d_wide(v: Any, x: float) -> float:
    far, value = gelu_tanh_far(v, x, True)
    if far:
        return value
    s, rest = gelu_tanh_sigmoids(v, x)
    slope = (2 * TANH_BETA) * (1.0 + 3 * TANH_KAPPA * x * x)
    right = 0.0 if rest == 0.0 else x * slope * rest
    general = 0.0 if s == 0.0 else s * (1.0 + right)
    return gelu_tanh_near_zero(v, x, general)


@jit
def silu_f_wide(v: Any, x: float) -> float:
    return x * sigmoid_w(v, x)


@jit
def silu_d_wide(v: Any, x: float) -> float:
    rest = sigmoid_w(v, -x)
    general = sigmoid_w(v, x) * (1.0 + (0.0 if rest == 0.0 else x * rest))
    return silu_near_zero(v, x, general)


@jit
def mish_parts(v: Any, x: float) -> Any:
    """(t, 1 − t²), t = tanh(softplus(x)) = n/(n + 2), n = e^x(e^x + 2) (as the registry)."""
    big = x > 40.0
    e = wexp(v, 0.0 if big else x)
    n = e * (e + 2.0)
    t = 1.0 if big else n / (n + 2.0)
    rest = 4.0 * wexp(v, -2.0 * x) if big else 4.0 * (n + 1.0) / ((n + 2.0) * (n + 2.0))
    return t, rest


@jit
def mish_f(v: Any, x: float) -> float:
    return x * mish_parts(v, x)[0]


@jit
def mish_d(v: Any, x: float) -> float:
    t, rest = mish_parts(v, x)
    general = t + (0.0 if rest == 0.0 else x * sigmoid_w(v, x) * rest)
    return mish_near_zero(v, x, general)


@jit
def scaled(v: Any, x: float, beta: float) -> Any:
    """(z, dz), z + dz = beta·x exactly (float64 inputs; dz = 0 for float32 ones)."""
    z = x * beta
    dz = fma(x, beta, -z)
    return z, (0.0 if (single(v) or not abs(z) < 1e300) else dz)


@jit
def softplus_f_wide(v: Any, x: float, beta: float, threshold: float) -> float:
    z, dz = scaled(v, x, beta)
    positive = z if z > 0.0 else 0.0
    value = positive + wlog1p(v, wexp(v, -abs(z))) + sigmoid_w(v, z) * dz
    return x if z > threshold else value / beta


@jit
def softplus_d_wide(v: Any, x: float, beta: float, threshold: float) -> float:
    z, dz = scaled(v, x, beta)
    s = sigmoid_w(v, z)
    return 1.0 if z > threshold else s + s * sigmoid_w(v, -z) * dz


@jit
def sigmoid_d_wide(v: Any, x: float) -> float:
    w = wexp(v, -abs(x))
    return w / ((1.0 + w) * (1.0 + w))


@jit
def tanh_d_wide(v: Any, x: float) -> float:
    w = wexp(v, -2.0 * abs(x))
    return 4.0 * w / ((1.0 + w) * (1.0 + w))


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
    return m32.silu_d32(v)


@jit
def _gelu_f32(v: Any, x: Any) -> Any:
    return m32.gelu_f32(v)


@jit
def _gelu_d32(v: Any, x: Any) -> Any:
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
