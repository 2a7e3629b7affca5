"""The compiled loops: every elementwise member's forward, derivative and vjp, and the fused mask
forward/backward of the piecewise-linear members (Numba; imported only when first needed).

Each kernel is made by a factory from small integer codes (member, op, bits per code), which
Numba folds as constants: the branches of the other members are pruned before typing, so a
kernel holds one member's code only, and because the closure holds nothing but integers its
compiled code is cached on disk (``cache=True``) like a module-level function.

One loop serves every dtype: elements are read with :func:`~relukit.kernels.cpu_math.widen`
and written with :func:`~relukit.kernels.cpu_math.narrow`. The kernels are compiled for
float32 and float64; 16-bit floats (raw bits: float16 as int16, bfloat16 as uint16) get
kernels of their own only for relu, relu6 and hardtanh's forward and mask, which select between
the input's own bits and constants (a 16-bit NaN keeps its payload); the other ops widen them to
float32 with :func:`convert_kernel` and round the result back once, as the reference path does.

The piecewise-linear members repeat the registry's (``relukit.family``) formula operation by
operation in the working dtype, with the constants rounded to it as NumPy rounds Python floats,
so that they are bit-exact to the reference path (and PyTorch) in every dtype. The smooth
members and the exponential units evaluate the registry's well-conditioned float64 formulas
whatever the input's dtype, and round once: float64 inputs with the C library, float32 and
16-bit inputs with the vectorisable float64 functions of :mod:`relukit.kernels.cpu_math`. Both
are within 1 ulp of the true value in float32 (0.5 ulp plus 2^-16 measured; see
``benchmarks/RESULTS.md``, Accuracy).
Afterwards the registry's conventions are applied: the limits at ±inf (``p[4]``, ``p[5]``; NaN
where the formula already gives the limit) and NaN in → NaN out.

Parameters travel in ``p``, eight floats of the working dtype (float64 for the smooth members):
``p[0..3]`` and ``p[6..7]`` the member's parameters (see ``cpu.py``), ``p[4]``/``p[5]`` the limits
at -inf/+inf.
Per-element slopes (prelu's channels, rrelu's random slopes) travel in ``aux``, read periodically
(element ``i`` of the whole array uses ``aux[i % aux.size]``).

Large outputs are written with streaming stores (``stream=True``), which skip the
read-for-ownership of the destination's cache lines: relu, relu6 and hardtanh straight from the
registers, the other members through an L1-resident block buffer (which also keeps the compute
loop from writing memory that may alias its input).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from relukit.family.numerics import SHIFT_HI, SHIFT_LO, UNSHIFT, ZEROS
from relukit.family.numerics import WIDTH as NEAR_WIDTH
from relukit.family.smooth import GELU_FAR, GELU_TANH_FAR, MILLS
from relukit.kernels.cpu_math import (
    INLINE_OPTIONS,
    cached_kernel,
    chain_word,
    chain_word_slopes,
    exp_f64,
    expm1_f64,
    fma,
    jit,
    log1p_f64,
    narrow,
    phi_f64,
    polynomial,
    single,
    store_fence,
    stream_clip,
    stream_copy,
    stream_relu,
    tanh_f64,
    vector_clip,
    vector_relu,
    widen,
    word_above,
    word_between,
    word_greater,
)
from relukit.kernels.cpu_math import const as c


def _source_stamp() -> int:
    """A hash of the kernels' sources. Numba's disk cache checks only the file that defines a
    kernel, not the helpers inlined into it from ``cpu_math.py``, so every kernel closes over
    this stamp (closure values are part of the cache key) and a changed helper recompiles it."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    family = here.parent / "family"
    sources = ("cpu_math.py", "cpu_kernels.py", "fits.py")
    for path in (*(here / n for n in sources), family / "numerics.py", family / "smooth.py"):
        digest.update(path.read_bytes())
    return int.from_bytes(digest.digest()[:7], "little")


STAMP = _source_stamp()


# Member codes (closure constants of the kernels)
RELU = 1
LEAKY = 2
SLOPES = 3  # prelu per channel, rrelu in training: the slope of each element comes from aux
CLIP = 4  # relu6 and hardtanh
GENERAL = 5
SQUARED = 6
ELU = 7
SELU = 8
CELU = 9
GELU = 10
GELU_TANH = 11
SILU = 12
MISH = 13
SOFTPLUS = 14
SIGMOID = 15
TANH = 16

LINEAR = (RELU, LEAKY, SLOPES, CLIP, GENERAL)  # piecewise linear: one code per element
# evaluated in float64 whatever the input's dtype, parameters in float64 too
WIDE = (ELU, SELU, CELU, GELU, GELU_TANH, SILU, MISH, SOFTPLUS, SIGMOID, TANH)

FORWARD = 0
DERIVATIVE = 1  # also the vjp

BLOCK = 2048  # elements per block: 8 KiB of float32, well inside L1
WORD = 64  # elements per mask word at one bit per element; kernels' chunks start at multiples

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_PRODUCT = SELU_ALPHA * SELU_SCALE  # as the registry (PyTorch's value at the kink)
SQRT1_2 = 0.7071067811865476
SQRT1_2_LOW = -4.833646656726457e-17  # √½ − SQRT1_2
INV_SQRT_PI = 0.5641895835477563
INV_SQRT_2PI = 0.3989422804014327
TANH_BETA = 0.7978845608028654
TANH_KAPPA = 0.044715
TANH_KAPPA_LOW = 2.1960211427085595e-18  # 0.044715 − TANH_KAPPA
TANH_2BETA_LOW = -9.96930880911092e-17  # 2√(2/π) − 2·TANH_BETA


# ---------------------------------------------------------------------------------------------
# Formulas, on the working float v
#
# The piecewise-linear members repeat the registry's formula operation by operation in the
# working dtype (float32 for float32 and 16-bit inputs), so that they are bit-exact to the
# reference path and PyTorch.


@jit
def leaky_f(v: Any, a: Any) -> Any:
    return v if v > c(v, 0.0) else v * a


@jit
def leaky_d(v: Any, a: Any) -> Any:
    return c(v, 1.0) if v > c(v, 0.0) else a


@jit
def slopes_f(v: Any, w: Any) -> Any:
    # prelu: at -inf a zero slope has the limit 0, where w·x would give NaN
    zero = c(v, 0.0)
    negative = zero if (w == zero and abs(v) == c(v, np.inf)) else w * v
    return v if v > zero else negative


@jit
def general_flat(v: Any, t: Any, top: Any, capped: Any) -> Any:
    # above the threshold, the cap's clip to [0, max_value] holds: at or past the cap, and
    # (threshold < 0) at or below 0; see relukit.family.rectifiers
    return capped and v > t and (v >= top or (t < c(v, 0.0) and v <= c(v, 0.0)))


@jit
def general_f(v: Any, a: Any, t: Any, top: Any, capped: Any, flat: Any) -> Any:
    if not v > t:
        return (c(v, 0.0) if v < t else v - t) if flat else (v - t) * a
    if not capped:
        return v
    return top if v >= top else (v if v > c(v, 0.0) else c(v, 0.0))


@jit
def general_d(v: Any, a: Any, t: Any, top: Any, capped: Any) -> Any:
    if general_flat(v, t, top, capped):
        return c(v, 0.0)
    return c(v, 1.0) if v > t else a


@jit
def squared_f(v: Any) -> Any:
    r = v if v > c(v, 0.0) else c(v, 0.0)
    return r * r


@jit
def squared_d(v: Any) -> Any:
    return c(v, 2.0) * (v if v > c(v, 0.0) else c(v, 0.0))


# The smooth members (and the exponential units): their formula in float64 (``x``, the input
# widened), rounded once at the end. The math comes from ``wide`` helpers that pick, from the
# input's type at compile time, the C library (float64 inputs) or the vectorisable float64
# functions of cpu_math (float32 and 16-bit inputs). The forms are the registry's
# (relukit.family: erfc for gelu, σ(−x) for 1 − σ(x), Taylor expansions at the zeros of the
# derivatives), so that nothing cancels.


def _wide(name: str, narrow_f: Any, wide_f: Any) -> Any:
    def stub(v: Any, x: Any) -> Any:
        raise NotImplementedError("only for use inside Numba kernels")

    stub.__name__ = stub.__qualname__ = name

    @overload(stub, jit_options=INLINE_OPTIONS)
    def _impl(v, x):  # type: ignore[no-untyped-def]
        if v == types.float64:
            return lambda v, x: wide_f(x)
        if v == types.float32:
            return lambda v, x: narrow_f(x)
        return None

    return stub


@jit
def _phi_libm(x: float) -> float:
    """Φ(x) = erfc(−x/√2)/2 in float64, the argument's rounding put back (as the registry)."""
    t = -x * SQRT1_2
    dt = fma(-x, SQRT1_2, -t) + (-x) * SQRT1_2_LOW
    dt = dt if abs(x) < 40.0 else 0.0
    return 0.5 * (math.erfc(t) - dt * (2 * INV_SQRT_PI) * math.exp(-t * t))


@jit
def _gauss_libm(x: float) -> float:
    """φ(x) in float64 with x² exact (as the registry)."""
    hi = x * x
    lo = fma(x, x, -hi) if abs(x) < 40.0 else 0.0
    return math.exp(-0.5 * hi) * (1.0 - 0.5 * lo) * INV_SQRT_2PI


@jit
def _gauss_f64(x: float) -> float:
    return exp_f64(-0.5 * (x * x)) * INV_SQRT_2PI  # x a float32: x² exact


@jit
def _exp_libm(x: float) -> float:
    return math.exp(x)


@jit
def _expm1_libm(x: float) -> float:
    return math.expm1(x)


@jit
def _log1p_libm(x: float) -> float:
    return math.log1p(x)


@jit
def _tanh_libm(x: float) -> float:
    return math.tanh(x)


wexp = _wide("wexp", exp_f64, _exp_libm)
wexpm1 = _wide("wexpm1", expm1_f64, _expm1_libm)
wlog1p = _wide("wlog1p", log1p_f64, _log1p_libm)
wtanh = _wide("wtanh", tanh_f64, _tanh_libm)
wphi = _wide("wphi", phi_f64, _phi_libm)
wgauss = _wide("wgauss", _gauss_f64, _gauss_libm)

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
def elu_f(v: Any, x: float, alpha: float) -> float:
    return x if x > 0.0 else wexpm1(v, x) * alpha


@jit
def elu_d(v: Any, x: float, alpha: float) -> float:
    return 1.0 if x > 0.0 else wexp(v, x) * alpha


@jit
def selu_f(v: Any, x: float) -> float:
    return x * SELU_SCALE if x > 0.0 else wexpm1(v, x) * SELU_PRODUCT


@jit
def selu_d(v: Any, x: float) -> float:
    return SELU_SCALE if x > 0.0 else wexp(v, x) * SELU_PRODUCT


@jit
def quotient(v: Any, x: float, alpha: float) -> Any:
    """(q, dq), q + dq = x/alpha to about 2^-100 (float64 inputs; dq = 0 for float32 ones,
    whose 24 bits do not need it)."""
    q = x / alpha
    dq = fma(-q, alpha, x) / alpha
    return q, (0.0 if (single(v) or not abs(dq) < np.inf) else dq)


@jit
def celu_f(v: Any, x: float, alpha: float) -> float:
    q, dq = quotient(v, x, alpha)
    return x if x > 0.0 else (wexpm1(v, q) + wexp(v, q) * dq) * alpha


@jit
def celu_d(v: Any, x: float, alpha: float) -> float:
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
def gelu_f(v: Any, x: float) -> float:
    if not single(v) and x < GELU_FAR:
        return gelu_far(x, False)
    return x * wphi(v, x)


@jit
def gelu_d(v: Any, x: float) -> float:
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
def gelu_tanh_f(v: Any, x: float) -> float:
    far, value = gelu_tanh_far(v, x, False)
    return value if far else x * gelu_tanh_sigmoids(v, x)[0]


@jit
def gelu_tanh_d(v: Any, x: float) -> float:
    far, value = gelu_tanh_far(v, x, True)
    if far:
        return value
    s, rest = gelu_tanh_sigmoids(v, x)
    slope = (2 * TANH_BETA) * (1.0 + 3 * TANH_KAPPA * x * x)
    right = 0.0 if rest == 0.0 else x * slope * rest
    general = 0.0 if s == 0.0 else s * (1.0 + right)
    return gelu_tanh_near_zero(v, x, general)


@jit
def silu_f(v: Any, x: float) -> float:
    return x * sigmoid_w(v, x)


@jit
def silu_d(v: Any, x: float) -> float:
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
def softplus_f(v: Any, x: float, beta: float, threshold: float) -> float:
    z, dz = scaled(v, x, beta)
    positive = z if z > 0.0 else 0.0
    value = positive + wlog1p(v, wexp(v, -abs(z))) + sigmoid_w(v, z) * dz
    return x if z > threshold else value / beta


@jit
def softplus_d(v: Any, x: float, beta: float, threshold: float) -> float:
    z, dz = scaled(v, x, beta)
    s = sigmoid_w(v, z)
    return 1.0 if z > threshold else s + s * sigmoid_w(v, -z) * dz


@jit
def sigmoid_d(v: Any, x: float) -> float:
    w = wexp(v, -abs(x))
    return w / ((1.0 + w) * (1.0 + w))


@jit
def tanh_d(v: Any, x: float) -> float:
    w = wexp(v, -2.0 * abs(x))
    return 4.0 * w / ((1.0 + w) * (1.0 + w))


@jit
def conventions(v: Any, r: Any, low: Any, high: Any) -> Any:
    """The limits at ±inf (NaN: none declared) and NaN in → NaN out."""
    r = low if (v == c(v, -np.inf) and low == low) else r
    r = high if (v == c(v, np.inf) and high == high) else r
    return v if v != v else r


@jit
def chain(g: Any, d: Any) -> Any:
    """``g·d``, where a zero derivative of a piecewise-linear member blocks ``g`` (gives +0)."""
    return c(d, 0.0) if d == c(d, 0.0) else g * d


def relu_bits(e: Any) -> Any:
    """relu of an element: floats by the formula, 16-bit floats on their raw bits."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(relu_bits, jit_options=INLINE_OPTIONS)
def _relu_bits(e):  # type: ignore[no-untyped-def]
    if isinstance(e, types.Float):
        return lambda e: c(e, 0.0) if e < c(e, 0.0) else e
    if isinstance(e, types.Integer) and e.bitwidth == 16:
        # The sign-bit trick: keep the bits where the sign is clear; a negative number that is
        # neither -0 nor NaN becomes +0.
        infinity = 0x7C00 if e.signed else 0x7F80
        dtype = np.int16 if e.signed else np.uint16

        def impl(e):  # type: ignore[no-untyped-def]
            magnitude = np.int32(e) & np.int32(0x7FFF)
            negative = (np.int32(e) & np.int32(0x8000)) != 0
            drop = negative and magnitude != 0 and magnitude <= infinity
            return dtype(0) if drop else e

        return impl
    return None


@jit
def emit(y: Any, start: int, buf: Any, m: int) -> None:
    """``y[start:start+m] = buf[:m]``, the 64-byte aligned middle with streaming stores."""
    size = y.itemsize
    head = ((-(np.int64(y.ctypes.data) + start * size)) & 63) // size
    head = min(head, m)
    for j in range(head):
        y[start + j] = buf[j]
    width = 64 // size
    nvec = (m - head) // width
    stream_copy(y, start + head, buf, head, nvec)
    for j in range(head + nvec * width, m):
        y[start + j] = buf[j]


@jit
def put(y: Any, start: int, buf: Any, m: int, stream: bool) -> None:
    """``y[start:start+m] = buf[:m]``, with streaming stores if ``stream``."""
    if stream:
        emit(y, start, buf, m)
    else:
        out = y[start : start + m]
        for j in range(m):
            out[j] = buf[j]


@jit
def select_one(e: Any, a0: Any, a1: Any, low_raw: Any, high_raw: Any, clip: bool) -> Any:
    """relu (``clip`` False) or the clip of relu6/hardtanh on an element, keeping its bits."""
    if clip:
        v = widen(e)
        return low_raw if v < a0 else (high_raw if v > a1 else e)
    return relu_bits(e)


def select_vectors(
    xs: Any,
    ys: Any,
    start: int,
    nvec: int,
    a0: Any,
    a1: Any,
    low: Any,
    high: Any,
    clip: bool,
    stream: bool,
) -> None:
    """``ys[start:] = select_one(xs[start:])`` for ``nvec`` 64-byte vectors (``ys[start]``
    64-byte aligned), with streaming stores if ``stream``; 16-bit floats with ordinary stores."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(select_vectors, jit_options=INLINE_OPTIONS)
def _select_vectors(xs, ys, start, nvec, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):

        def impl(xs, ys, start, nvec, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
            if clip and stream:
                stream_clip(xs, start, ys, start, nvec, a0, a1)
            elif stream:
                stream_relu(xs, start, ys, start, nvec, a0, a1)
            elif clip:
                vector_clip(xs, start, ys, start, nvec, a0, a1)
            else:
                vector_relu(xs, start, ys, start, nvec, a0, a1)

        return impl

    def fallback(xs, ys, start, nvec, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
        for j in range(start, start + nvec * (64 // xs.itemsize)):
            ys[j] = select_one(xs[j], a0, a1, low, high, clip)

    return fallback


@jit
def select_block(
    xs: Any,
    ys: Any,
    a0: Any,
    a1: Any,
    low: Any,
    high: Any,
    clip: bool,
    stream: bool,
) -> None:
    """One block of relu/relu6/hardtanh, straight from the registers in whole 64-byte vectors
    aligned on the output (in place too: each vector is read before it is written), streamed
    if ``stream``; the unaligned ends element by element, and all of an output that is not
    aligned on its element size (no element of it starts on a 64-byte boundary)."""
    m = xs.size
    size = ys.itemsize
    address = np.int64(ys.ctypes.data)
    head = min(m, ((-address) & 63) // size) if address % size == 0 else m
    for j in range(head):
        ys[j] = select_one(xs[j], a0, a1, low, high, clip)
    nvec = (m - head) // (64 // size)
    select_vectors(xs, ys, head, nvec, a0, a1, low, high, clip, stream)
    for j in range(head + nvec * (64 // size), m):
        ys[j] = select_one(xs[j], a0, a1, low, high, clip)


# ---------------------------------------------------------------------------------------------
# Elementwise kernels


def map_kernel(member: int, op: int) -> Any:
    """``kernel(x, g, aux, y, p, first, stream, vjp)``: ``y = f(x)`` (op FORWARD), or ``f'(x)``
    (op DERIVATIVE), or ``g·f'(x)`` (op DERIVATIVE with ``vjp``).

    ``first`` is the index of ``x[0]`` in the whole array (for the period of ``aux``); ``g`` is
    read only for the vjp (pass ``x`` otherwise) and ``aux`` only by the per-element-slope
    member.
    """
    stamp = STAMP
    select = member in (RELU, CLIP) and op == FORWARD  # pure selects: keep the input's bits
    linear = member in LINEAR
    periodic = member == SLOPES
    derivative = op == DERIVATIVE

    @cached_kernel
    def kernel(
        x: Any, g: Any, aux: Any, y: Any, p: Any, first: int, stream: bool, vjp: bool
    ) -> None:
        n = x.size
        if n == 0 or stamp < 0:
            return
        a0 = p[0]
        a1 = p[1]
        a2 = p[2]
        a3 = p[3]
        low = p[4]
        high = p[5]
        low_raw = narrow(a0, x[0])
        high_raw = narrow(a1, x[0])
        period = n + 1
        k = 0
        if periodic:
            period = aux.size
            k = first % period
        buf = np.empty(BLOCK, dtype=y.dtype)
        if select:  # one pass over the whole chunk: no buffer, so no blocks
            clip = member == CLIP
            select_block(x, y, a0, a1, low_raw, high_raw, clip, stream)
            if stream:
                store_fence()
            return
        i = 0
        while i < n:
            m = min(BLOCK, n - i, period - k)
            # Compute into an L1-resident buffer, then stream or copy it out: the loop then
            # writes memory that cannot alias its inputs (in place, or with a choice of two
            # destinations, it would not be vectorised).
            dst = buf[:m]
            xs = x[i : i + m]
            gs = g[i : i + m]
            rs = aux[k : k + m]
            for j in range(m):
                e = xs[j]
                v = widen(e)
                x64 = np.float64(v)
                if member == RELU:
                    r = c(v, 1.0) if v > c(v, 0.0) else c(v, 0.0)
                elif member == CLIP:
                    r = c(v, 1.0) if (v > a0 and v < a1) else c(v, 0.0)
                elif member == LEAKY:
                    r = leaky_d(v, a0) if derivative else leaky_f(v, a0)
                elif member == SLOPES:
                    w = widen(rs[j])
                    r = leaky_d(v, w) if derivative else slopes_f(v, w)
                elif member == GENERAL:
                    if derivative:
                        r = general_d(v, a0, a1, a2, a3 > 0)
                    else:
                        r = general_f(v, a0, a1, a2, a3 > 0, p[6] > 0)
                elif member == SQUARED:
                    r = squared_d(v) if derivative else squared_f(v)
                elif member == ELU:
                    r = elu_d(v, x64, a0) if derivative else elu_f(v, x64, a0)
                elif member == SELU:
                    r = selu_d(v, x64) if derivative else selu_f(v, x64)
                elif member == CELU:
                    r = celu_d(v, x64, a0) if derivative else celu_f(v, x64, a0)
                elif member == GELU:
                    r = gelu_d(v, x64) if derivative else gelu_f(v, x64)
                elif member == GELU_TANH:
                    r = gelu_tanh_d(v, x64) if derivative else gelu_tanh_f(v, x64)
                elif member == SILU:
                    r = silu_d(v, x64) if derivative else silu_f(v, x64)
                elif member == MISH:
                    r = mish_d(v, x64) if derivative else mish_f(v, x64)
                elif member == SOFTPLUS:
                    r = softplus_d(v, x64, a0, a1) if derivative else softplus_f(v, x64, a0, a1)
                elif member == SIGMOID:
                    r = sigmoid_d(v, x64) if derivative else sigmoid_w(v, x64)
                else:
                    r = tanh_d(v, x64) if derivative else wtanh(v, x64)
                r = conventions(v, r, low, high)
                if derivative and vjp:
                    r = chain(widen(gs[j]), r) if linear else widen(gs[j]) * r
                dst[j] = narrow(r, e)
            put(y, i, buf, m, stream)
            i += m
            k += m
            if k == period:
                k = 0
        if stream:
            store_fence()

    return kernel


# ---------------------------------------------------------------------------------------------
# Mask kernels (piecewise-linear members)


GATHER = np.uint64(0x0102040810204080)  # eight 0/1 bytes times this: byte i's bit at 56 + i
SPREAD = np.uint64(0x0101010101010101)
BIT_OF_BYTE = np.uint64(0x8040201008040201)
HIGH_SEVEN = np.uint64(0x7F7F7F7F7F7F7F7F)


@jit
def pack(codes: Any, mask: Any, start: int, count: int, bits: int) -> None:
    """Pack ``codes[:count]`` (one byte each, zero beyond ``count`` up to a multiple of 8) into
    ``mask`` from byte ``start``: eight codes per byte at one bit, four at two bits."""
    if bits == 1:
        words = codes.view(np.uint64)
        for q in range((count + 7) // 8):
            mask[start + q] = np.uint8((words[q] * GATHER) >> np.uint64(56))
    else:
        quads = codes.view(np.uint32)
        for q in range((count + 3) // 4):
            v = quads[q]
            mask[start + q] = np.uint8(
                (v | (v >> np.uint32(6)) | (v >> np.uint32(12)) | (v >> np.uint32(18)))
                & np.uint32(0xFF)
            )


@jit
def unpack(mask: Any, start: int, count: int, codes: Any, bits: int) -> None:
    """The inverse of :func:`pack`: ``count`` codes from byte ``start`` into ``codes``."""
    if bits == 1:
        words = codes.view(np.uint64)
        for q in range((count + 7) // 8):
            spread = (np.uint64(mask[start + q]) * SPREAD) & BIT_OF_BYTE
            words[q] = ((spread + HIGH_SEVEN) >> np.uint64(7)) & SPREAD
    else:
        quads = codes.view(np.uint32)
        for q in range((count + 3) // 4):
            b = np.uint32(mask[start + q])
            quads[q] = (
                b | (b << np.uint32(6)) | (b << np.uint32(12)) | (b << np.uint32(18))
            ) & np.uint32(0x03030303)


def above_word(xs: Any, start: int, t: Any) -> Any:
    """Bits of ``not x <= t`` for the 64 elements from ``start`` (16-bit: on widened values)."""
    raise NotImplementedError("only for use inside Numba kernels")


def between_word(xs: Any, start: int, low: Any, high: Any) -> Any:
    """Bits of ``low < x < high`` for the 64 elements from ``start``."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(above_word, jit_options=INLINE_OPTIONS)
def _above_word(xs, start, t):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):
        return lambda xs, start, t: word_above(xs, start, t, t)

    def impl(xs, start, t):  # type: ignore[no-untyped-def]
        word = np.uint64(0)
        for b in range(64):
            v = widen(xs[start + b])
            word |= np.uint64(v > t or v != v) << np.uint64(b)
        return word

    return impl


@overload(between_word, jit_options=INLINE_OPTIONS)
def _between_word(xs, start, low, high):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):
        return lambda xs, start, low, high: word_between(xs, start, low, high)

    def impl(xs, start, low, high):  # type: ignore[no-untyped-def]
        word = np.uint64(0)
        for b in range(64):
            v = widen(xs[start + b])
            word |= np.uint64(v > low and v < high) << np.uint64(b)
        return word

    return impl


@jit
def store_bytes(mask: Any, start: int, word: Any, count: int) -> None:
    """The low ``count`` bits of ``word`` into the bytes of ``mask`` from ``start``."""
    for q in range((count + 7) // 8):
        mask[start + q] = np.uint8((word >> np.uint64(8 * q)) & np.uint64(0xFF))


@jit
def load_bytes(mask: Any, start: int, count: int) -> Any:
    """The inverse of :func:`store_bytes`."""
    word = np.uint64(0)
    for q in range((count + 7) // 8):
        word |= np.uint64(mask[start + q]) << np.uint64(8 * q)
    return word


def _select_word(clip: bool, stream: bool) -> Any:
    """An intrinsic ``(xs, start, ys, low, high) -> uint64``: the outputs of the 64 elements
    from ``start`` (relu, or the clip of relu6/hardtanh, as :func:`select_one`) stored to
    ``ys[start:start+64]`` and their codes returned as a word (bit k: element ``start + k``;
    relu: ``not x <= 0``, the clip: ``low < x < high``). With ``stream`` the stores are
    streaming and ``ys[start]`` must be 64-byte aligned. The 64 elements are loaded before
    any is stored, so ``ys`` may be ``xs``."""

    @intrinsic
    def word(typingctx: Any, xs: Any, start: Any, ys: Any, low: Any, high: Any) -> Any:
        if not (isinstance(xs, types.Array) and isinstance(xs.dtype, types.Float)):
            return None
        if not (isinstance(ys, types.Array) and ys.dtype == xs.dtype == low == high):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, lo, hi = args
            element = context.get_value_type(signature.args[0].dtype)
            size = context.get_abi_sizeof(element)
            vector = ir.VectorType(element, 64)
            xary = context.make_array(signature.args[0])(context, builder, xarr)
            yary = context.make_array(signature.args[2])(context, builder, yarr)
            xptr = builder.bitcast(builder.gep(xary.data, [first]), vector.as_pointer())
            yptr = builder.bitcast(builder.gep(yary.data, [first]), vector.as_pointer())
            v = builder.load(xptr, align=size)

            def splat(value: Any) -> Any:
                one = builder.insert_element(
                    ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0)
                )
                mask = ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
                return builder.shuffle_vector(one, ir.Constant(vector, None), mask)

            if clip:
                lows, highs = splat(lo), splat(hi)
                below = builder.fcmp_ordered("<", v, lows)
                above = builder.fcmp_ordered(">", v, highs)
                r = builder.select(below, lows, builder.select(above, highs, v))
                bits = builder.and_(
                    builder.fcmp_ordered(">", v, lows), builder.fcmp_ordered("<", v, highs)
                )
            else:
                zero = ir.Constant(vector, None)
                r = builder.select(builder.fcmp_ordered("<", v, zero), zero, v)
                bits = builder.fcmp_unordered(">", v, zero)
            if stream:
                store = builder.store(r, yptr, align=64)
                nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
                store.set_metadata("nontemporal", nontemporal)
            else:
                builder.store(r, yptr, align=size)
            return builder.bitcast(bits, ir.IntType(64))

        return types.uint64(xs, types.intp, ys, low, high), codegen

    return word


relu_word = _select_word(clip=False, stream=False)
relu_word_streamed = _select_word(clip=False, stream=True)
clip_word = _select_word(clip=True, stream=False)
clip_word_streamed = _select_word(clip=True, stream=True)


@jit
def select_word(xs: Any, start: int, ys: Any, a0: Any, a1: Any, clip: bool, stream: bool) -> Any:
    """:func:`_select_word`'s four variants, chosen by the (constant) flags."""
    if clip:
        if stream:
            return clip_word_streamed(xs, start, ys, a0, a1)
        return clip_word(xs, start, ys, a0, a1)
    if stream:
        return relu_word_streamed(xs, start, ys, a0, a1)
    return relu_word(xs, start, ys, a0, a1)


@jit
def select_bit(e: Any, a0: Any, a1: Any, clip: bool) -> Any:
    """The code of one element (as :func:`_select_word`), as a uint64 0 or 1."""
    v = widen(e)
    if clip:
        return np.uint64(v > a0 and v < a1)
    return np.uint64(v > c(v, 0.0) or v != v)


def select_with_mask(
    xs: Any, ys: Any, mask: Any, a0: Any, a1: Any, low: Any, high: Any, clip: bool, stream: bool
) -> None:
    """relu or the clip of relu6/hardtanh on a chunk, with its packed one-bit codes."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(select_with_mask, jit_options=INLINE_OPTIONS)
def _select_with_mask(xs, ys, mask, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):

        def fused(xs, ys, mask, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
            # One pass: each 64 elements are loaded once, their outputs stored (streamed from
            # a 64-byte boundary of ys) and their codes packed in a register. The groups
            # follow ys's alignment, so a mask word takes the last ``head`` codes of one
            # group and the first ``64 - head`` of the next.
            n = xs.size
            words = mask[: (mask.size // 8) * 8].view(np.uint64)
            head = 0
            if stream:
                head = min(n, ((-np.int64(ys.ctypes.data)) & 63) // ys.itemsize)
            carry = np.uint64(0)
            for j in range(head):
                ys[j] = select_one(xs[j], a0, a1, low, high, clip)
                carry |= select_bit(xs[j], a0, a1, clip) << np.uint64(j)
            groups = (n - head) // 64
            if head == 0:
                for w in range(groups):
                    words[w] = select_word(xs, 64 * w, ys, a0, a1, clip, stream)
            else:
                up = np.uint64(head)
                down = np.uint64(64 - head)
                for w in range(groups):
                    word = select_word(xs, head + 64 * w, ys, a0, a1, clip, stream)
                    words[w] = carry | (word << up)
                    carry = word >> down
            # the last elements: ``carry`` holds the codes from element 64·groups on
            at = 64 * groups
            count = head
            for j in range(head + 64 * groups, n):
                ys[j] = select_one(xs[j], a0, a1, low, high, clip)
                carry |= select_bit(xs[j], a0, a1, clip) << np.uint64(count)
                count += 1
                if count == 64:
                    words[at // 64] = carry
                    at += 64
                    count = 0
                    carry = np.uint64(0)
            if count > 0:
                store_bytes(mask, at // 8, carry, count)

        return fused

    def blocks(xs, ys, mask, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
        # 16-bit floats: the codes of a block, then its outputs (two vectorised passes)
        n = xs.size
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        zero = c(widen(xs[0]), 0.0)
        i = 0
        while i < n:
            m = min(8 * BLOCK, n - i)
            block = xs[i : i + m]
            full = m // 64
            for w in range(full):
                if clip:
                    words[i // 64 + w] = between_word(block, 64 * w, a0, a1)
                else:
                    words[i // 64 + w] = above_word(block, 64 * w, zero)
            word = np.uint64(0)
            for j in range(64 * full, m):
                word |= select_bit(block[j], a0, a1, clip) << np.uint64(j - 64 * full)
            if m > 64 * full:
                store_bytes(mask, (i + 64 * full) // 8, word, m - 64 * full)
            # the codes first: in place, the outputs overwrite the block
            select_block(block, ys[i : i + m], a0, a1, low, high, clip, stream)
            i += m

    return blocks


def mask_forward_kernel(member: int, bits: int) -> Any:
    """``kernel(x, aux, y, mask, p, table, first, stream)``: ``y = f(x)`` and the packed codes.

    The code of each element is the piece PyTorch's backward puts it in (see
    :mod:`relukit.kernels.mask`): ``x > 0`` (leaky_relu, prelu), ``not x <= 0`` (relu, rrelu
    in training: ``p[7] = 1``), ``min < x < max`` (hardtanh, relu6), and for general_relu
    ``table[piece]`` with the pieces below the threshold, between, and capped. ``x`` starts at
    a word boundary; ``mask`` holds this chunk's codes only. relu, relu6 and hardtanh take one
    pass (:func:`select_with_mask`: each 64 elements loaded once, their outputs streamed from
    the registers and their codes packed into a word). The other members compute a block into
    an L1-resident buffer, then its codes (one 64-element word per vector compare;
    general_relu: one byte per element, then packed), then stream the buffer out.
    """
    bytewise = member == GENERAL
    selecting = member in (RELU, CLIP)
    stamp = STAMP

    @cached_kernel
    def kernel(
        x: Any, aux: Any, y: Any, mask: Any, p: Any, table: Any, first: int, stream: bool
    ) -> None:
        n = x.size
        if n == 0 or stamp < 0:
            return
        a0 = p[0]
        a1 = p[1]
        a2 = p[2]
        capped = p[3] > 0
        low = p[4]
        high = p[5]
        flat = p[6] > 0
        nan_is_one = p[7] > 0
        if selecting:
            low_raw = narrow(a0, x[0])
            high_raw = narrow(a1, x[0])
            select_with_mask(x, y, mask, a0, a1, low_raw, high_raw, member == CLIP, stream)
            if stream:
                store_fence()
            return
        c0 = np.uint8(table[0])
        c1 = np.uint8(table[1])
        c2 = np.uint8(table[2])
        zero = c(widen(x[0]), 0.0)
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        period = aux.size if member == SLOPES else n + 1
        k = first % period if member == SLOPES else 0
        buf = np.empty(BLOCK, dtype=y.dtype)
        codes = np.zeros(BLOCK + 8 if bytewise else 8, dtype=np.uint8)
        i = 0
        while i < n:
            m = min(BLOCK, n - i, period - k)
            dst = buf[:m]
            xs = x[i : i + m]
            rs = aux[k : k + m] if member == SLOPES else aux[:0]
            cs = codes[:m]
            for j in range(m):
                e = xs[j]
                v = widen(e)
                if member == LEAKY:
                    dst[j] = narrow(conventions(v, leaky_f(v, a0), low, high), e)
                elif member == SLOPES:
                    dst[j] = narrow(conventions(v, slopes_f(v, widen(rs[j])), low, high), e)
                else:
                    r = conventions(v, general_f(v, a0, a1, a2, capped, flat), low, high)
                    dst[j] = narrow(r, e)
                    cs[j] = c2 if general_flat(v, a1, a2, capped) else (c1 if v > a1 else c0)
            if bytewise:
                for j in range(m, m + 8):
                    codes[j] = np.uint8(0)
                pack(codes, mask, i * bits // 8, m, bits)
            else:
                full = m // 64
                for w in range(full):
                    if nan_is_one:
                        word = word_above(xs, 64 * w, zero, zero)
                    else:
                        word = word_greater(xs, 64 * w, zero, zero)
                    words[i // 64 + w] = word
                word = np.uint64(0)
                for j in range(64 * full, m):
                    v = widen(xs[j])
                    bit = v > zero or (nan_is_one and v != v)
                    word |= np.uint64(bit) << np.uint64(j - 64 * full)
                if m > 64 * full:
                    store_bytes(mask, (i + 64 * full) // 8, word, m - 64 * full)
            put(y, i, buf, m, stream)
            i += m
            k += m
            if k == period:
                k = 0
        if stream:
            store_fence()

    return kernel


def mask_backward_kernel(bits: int, slopes: bool) -> Any:
    """``kernel(g, mask, aux, dx, table, first, stream)``: ``dx = g · table[code]``.

    With ``slopes``, code 0 takes its derivative from ``aux`` (prelu's channel slope, rrelu's
    random slope) instead of ``table[0]``. The product is formed in the working dtype (float32
    or float64: 16-bit gradients are widened by the caller) and rounded once, exactly as
    ``vjp`` forms ``grad_out · f'(x)`` (a zero derivative gives +0). ``g`` starts at a word
    boundary; ``mask`` holds this chunk's codes only.
    """
    stamp = STAMP

    @cached_kernel
    def kernel(g: Any, mask: Any, aux: Any, dx: Any, table: Any, first: int, stream: bool) -> None:
        n = g.size
        if n == 0 or stamp < 0:
            return
        t0 = table[0]
        t1 = table[1]
        t2 = table[2]
        t3 = table[3]
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        period = aux.size if slopes else n + 1
        k = first % period if slopes else 0
        buf = np.empty(BLOCK, dtype=dx.dtype)
        codes = np.zeros(BLOCK + 8, dtype=np.uint8)
        i = 0
        while i < n:
            m = min(BLOCK, n - i, period - k)
            gs = g[i : i + m]
            rs = aux[k : k + m] if slopes else aux[:0]
            if bits == 1:
                full = m // 64
                for w in range(full):
                    word = words[i // 64 + w]
                    if slopes:
                        chain_word_slopes(gs, 64 * w, word, t1, rs, 64 * w, buf, 64 * w)
                    else:
                        chain_word(gs, 64 * w, word, t0, t1, buf, 64 * w)
                if m > 64 * full:
                    word = load_bytes(mask, (i + 64 * full) // 8, m - 64 * full)
                    for j in range(64 * full, m):
                        below = t0
                        if slopes:
                            below = rs[j]
                        on = (word >> np.uint64(j - 64 * full)) & np.uint64(1)
                        buf[j] = chain(gs[j], t1 if on != 0 else below)
            else:
                unpack(mask, i * bits // 8, m, codes, bits)
                for j in range(m):
                    code = codes[j]
                    d = t0 if code == 0 else (t1 if code == 1 else (t2 if code == 2 else t3))
                    buf[j] = chain(gs[j], d)
            put(dx, i, buf, m, stream)
            i += m
            k += m
            if k == period:
                k = 0
        if stream:
            store_fence()

    return kernel


def split_kernel() -> Any:
    """``kernel(x, mask, rest, nan_passes, keep) -> count``: one pass over 1-D float ``x``
    packing the codes ``x > 0`` (or ``not x <= 0`` with ``nan_passes``) into ``mask`` at one
    bit per element, and, with ``keep``, copying the elements of code 0 in order into
    ``rest`` (which has room for all of x); returns how many have code 0. (prelu keeps its
    non-positive inputs this way, rrelu counts the slopes it must draw.) Branch-free: signs of
    real data are unpredictable, and a mispredicted branch per element costs more than the
    memory traffic."""
    stamp = STAMP

    @cached_kernel
    def kernel(x: Any, mask: Any, rest: Any, nan_passes: bool, keep: bool) -> int:
        n = x.size
        k = 0
        if stamp < 0:
            return k
        nan = np.int64(nan_passes)
        top = rest.size - 1
        for b in range((n + 7) // 8):
            byte = 0
            for j in range(min(8, n - 8 * b)):
                v = x[8 * b + j]
                on = np.int64(v > 0) | (np.int64(v != v) & nan)
                if keep:
                    rest[min(k, top)] = v
                k += 1 - on
                byte |= on << j
            mask[b] = byte
        return k

    return kernel


def expand_kernel() -> Any:
    """``kernel(mask, values, fill, out)``: ``out[i] = fill`` where bit i of ``mask`` is 1, the
    next of ``values`` (in order) where it is 0: the inverse of :func:`split_kernel`
    (branch-free)."""
    stamp = STAMP

    @cached_kernel
    def kernel(mask: Any, values: Any, fill: Any, out: Any) -> None:
        k = 0
        last = values.size - 1
        if stamp < 0:
            return
        if last < 0:
            out[:] = fill
            return
        for i in range(out.size):
            on = np.int64((mask[i >> 3] >> (i & 7)) & 1)
            v = values[min(k, last)]
            out[i] = fill if on else v
            k += 1 - on

    return kernel


def scale_kernel() -> Any:
    """``kernel(src, mask, slopes, out)``: ``out[i] = src[i]`` where bit i of ``mask`` is 1,
    ``src[i]·slopes[k]`` (the next slope, one rounding in src's dtype) where it is 0: rrelu's
    forward and backward from its drawn slopes (branch-free)."""
    stamp = STAMP

    @cached_kernel
    def kernel(src: Any, mask: Any, slopes: Any, out: Any) -> None:
        k = 0
        last = slopes.size - 1
        if stamp < 0:
            return
        if last < 0:
            out[:] = src
            return
        for i in range(src.size):
            on = np.int64((mask[i >> 3] >> (i & 7)) & 1)
            e = src[i]
            scaled = e * slopes[min(k, last)]
            out[i] = e if on else scaled
            k += 1 - on

    return kernel


def copy_kernel() -> Any:
    """``kernel(x, y, stream)``: ``y[:] = x``, the copy the benchmark takes as a limit."""
    stamp = STAMP

    @cached_kernel
    def kernel(x: Any, y: Any, stream: bool) -> None:
        if stamp >= 0:
            copy(x, y, stream)

    return kernel


@jit
def copy(x: Any, y: Any, stream: bool) -> None:
    """``y[:] = x`` in one pass, streamed or not."""
    put(y, 0, x, x.size, stream)
    if stream:
        store_fence()


EXP = 0
EXPM1 = 1
LOG1P = 2
PHI = 3
TANH_FUNCTION = 4


def function_kernel(function: int) -> Any:
    """``kernel(x, y)``: ``y = f(x)`` on float64 arrays for one of the float32 kernels' float64
    functions (exp, expm1, log1p, Φ, tanh of :mod:`relukit.kernels.cpu_math`), for tests."""

    stamp = STAMP

    @cached_kernel
    def kernel(x: Any, y: Any) -> None:
        if stamp < 0:
            return
        for i in range(x.size):
            v = x[i]
            if function == EXP:
                y[i] = exp_f64(v)
            elif function == EXPM1:
                y[i] = expm1_f64(v)
            elif function == LOG1P:
                y[i] = log1p_f64(v)
            elif function == PHI:
                y[i] = phi_f64(v)
            else:
                y[i] = tanh_f64(v)

    return kernel


def convert_kernel() -> Any:
    """``kernel(src, dst)``: ``dst = src`` between 16-bit floats (raw bits) and float32, rounded
    to nearest even (the cast NumPy and ml_dtypes make), for the members that compute 16-bit
    inputs in float32."""
    stamp = STAMP

    @cached_kernel
    def kernel(src: Any, dst: Any) -> None:
        if stamp < 0 or src.size == 0:
            return
        like = dst[0]  # only its type matters
        for i in range(src.size):
            dst[i] = narrow(widen(src[i]), like)

    return kernel
