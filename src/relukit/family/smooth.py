"""The smooth members: gelu, silu, mish and softplus.

Each formula is written in a form that does not cancel (see :mod:`relukit.family.numerics`):
gelu through erfcx, so its left tail keeps its digits down to the last normal float; the tanh
form of gelu as x·σ(2u); ``1 − σ`` as σ of the negated argument; mish through
``n = e^x(e^x + 2)``; each derivative near its zero by its Taylor expansion there. In float64
they stay within a few ulp of the true value; float32 and 16-bit inputs are evaluated in
float64 by the reference path and rounded once.
Where PyTorch's formula gives NaN at ±inf (``gelu(-inf)``, ``silu(-inf)``, ``mish(-inf)`` and
their derivatives), relukit gives the mathematical limit declared in ``limits``.
"""

from __future__ import annotations

import math
from typing import Any

from relukit.family.numerics import (
    UNSHIFT,
    exp_shifted,
    exp_times,
    finite,
    near_zero,
    sigmoid,
    two_product,
    two_sum,
)
from relukit.family.spec import (
    FLAT_TOLERANCE,
    INF,
    Activation,
    Firing,
    Limits,
    Parameter,
    constant,
    positive,
    real,
)

SQRT1_2 = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
TANH_BETA = math.sqrt(2 / math.pi)
TANH_KAPPA = 0.044715
TANH_KAPPA_LOW = 2.1960211427085595e-18  # 0.044715 − TANH_KAPPA
TANH_2BETA_LOW = -9.96930880911092e-17  # 2√(2/π) − 2·TANH_BETA
GELU_FAR = -26.0
GELU_TANH_FAR = -600.0  # 2u below which σ(2u) = e^{2u} in float64
# |x|Φ(x)/φ(x) = Σ (−1)^k (2k − 1)!!/x^{2k}, asymptotically (to 3e-20 at x = −26 with 11 terms)
MILLS = tuple(float((-1) ** k * math.prod(range(1, 2 * k, 2))) for k in range(11))

# Edges of the flat regions (|f′| = FLAT_TOLERANCE, found by bisection on the derivative;
# tests/family/test_firing.py checks them against the registry's own derivative).
GELU_EDGE = {"none": -3.0674272039089, "tanh": -3.0528549951444695}

# ---------------------------------------------------------------------------------------------
# gelu


def _check_approximate(value: Any) -> str | None:
    if isinstance(value, str) and value in ("none", "tanh"):
        return None
    return "must be 'none' or 'tanh'"


def _gelu_tanh_argument(m: Any, x: Any) -> tuple[Any, Any]:
    """``(z, dz)``: z + dz = 2u, u = √(2/π)(x + 0.044715x³), to about 2^-100 relative
    (1 + tanh(u) = 2σ(2u) and 1 − tanh(u) = 2σ(−2u)); σ(2u) magnifies the rounding of a
    plainly evaluated 2u |2u|-fold."""
    small = m.abs(x) < 1e75  # (where x³ and its split stay finite)
    a, b = two_product(x, x)
    c, d = two_product(a, x)
    d = d + b * x
    e, f = two_product(TANH_KAPPA, c)
    f = f + TANH_KAPPA * d + TANH_KAPPA_LOW * c
    g, h = two_sum(x, e)
    h = h + f
    z, w = two_product(2 * TANH_BETA, g)
    w = w + 2 * TANH_BETA * h + TANH_2BETA_LOW * g
    return z, finite(m, w, small & (m.abs(z) < 1e300))


def _gelu_tanh_sigmoids(m: Any, x: Any) -> tuple[Any, Any]:
    """(σ(2u), σ(−2u)), each with the first-order correction for the low part of 2u."""
    z, dz = _gelu_tanh_argument(m, x)
    s, rest = sigmoid(m, z), sigmoid(m, -z)
    product = s * rest * dz
    return s + product, rest - product


def _phi(m: Any, x: Any) -> Any:
    """Φ(x) = erfc(t)/2, t = −x/√2; below x = −1 as ``erfcx(t)·e^{−x²/2}/2`` (erfc loses its
    relative accuracy far in the tail, and magnifies the rounding of t 2t²-fold; erfcx(t) only
    about once)."""
    t = -x * SQRT1_2
    tail = x < -1
    left = 0.5 * m.erfcx(m.where(tail, t, 0 * x)) * _exp_half_square(m, x)
    return m.where(tail, left, 0.5 * m.erfc(m.where(tail, 0 * x, t)))


def _exp_half_square(m: Any, x: Any) -> Any:
    """e^{−x²/2}, with x² exact (e^{−hi/2}(1 − lo/2)): e^{−x²/2} magnifies the rounding of x²
    x²/2-fold."""
    hi, lo = two_product(x, x)
    lo = m.where(m.abs(x) < 40, lo, 0 * x)
    return m.exp(-0.5 * hi) * (1 - 0.5 * lo)


def _gelu_far(m: Any, x: Any, derivative: bool) -> Any:
    """gelu and gelu′ far in the left tail, where Φ(x) (or φ(x)) is subnormal in float64 but
    the result is not: ``x·Φ(x) = −φ(x)·S(x)`` and ``−|x|φ(x)(1 − S/x²)``, S the asymptotic
    series of |x|Φ(x)/φ(x) in 1/x² (error 3e-20 below x = −26), and e^{−x²/2} formed scaled
    (x clamped at −40, below which both are −0)."""
    zero = m.zeros_like(x)
    xc = m.where(x < GELU_FAR, m.where(x > -40, x, zero - 40), zero + GELU_FAR)
    hi, lo = two_product(xc, xc)
    y = 1 / hi
    series = 0 * y + MILLS[-1]
    for c in reversed(MILLS[:-1]):
        series = series * y + c
    e = exp_shifted(m, -0.5 * hi) * (1 - 0.5 * lo) * INV_SQRT_2PI
    if derivative:
        return (-e * (-xc) * (1 - series / hi)) * UNSHIFT
    return (-e * series) * UNSHIFT


def _gelu_tanh_far(m: Any, x: Any, multiplier: Any) -> tuple[Any, Any]:
    """(where 2u < −600, e^{2u}·multiplier there): σ(2u) = e^{2u}, formed scaled (alone it
    would be subnormal where the result is not)."""
    z, dz = _gelu_tanh_argument(m, x)
    far = z < GELU_TANH_FAR
    zero = m.zeros_like(z)
    zc = m.where(far, m.where(z > -1100, z, zero - 1100), zero + GELU_TANH_FAR)
    multiplier = m.where(multiplier > -1e300, multiplier, zero - 1e300)
    return far, (exp_shifted(m, zc) * (1 + dz) * multiplier) * UNSHIFT


def _gelu(m: Any, x: Any, approximate: str) -> Any:
    if approximate == "tanh":
        far, tail = _gelu_tanh_far(m, x, x)
        return m.where(far, tail, x * _gelu_tanh_sigmoids(m, x)[0])
    return m.where(x < GELU_FAR, _gelu_far(m, x, False), x * _phi(m, x))


def _gelu_derivative(m: Any, x: Any, approximate: str) -> Any:
    if approximate == "tanh":
        s, rest = _gelu_tanh_sigmoids(m, x)
        slope = (2 * TANH_BETA) * (1 + 3 * TANH_KAPPA * x * x)
        # where σ(2u) or σ(−2u) is 0 the other term is too (also where x·slope overflows)
        right = m.where(rest == 0, 0 * x, x * slope * rest)
        general = m.where(s == 0, 0 * x, s * (1 + right))
        far, tail = _gelu_tanh_far(m, x, 1 + x * slope)
        return m.where(far, tail, near_zero(m, x, "gelu-tanh", general))
    general = _phi(m, x) + x * (_exp_half_square(m, x) * INV_SQRT_2PI)
    general = m.where(x < GELU_FAR, _gelu_far(m, x, True), general)
    return near_zero(m, x, "gelu", general)


gelu = Activation(
    name="gelu",
    module="GELU",
    torch_module="GELU",
    kernel=lambda p: ("gelu" if p["approximate"] == "none" else "gelu_tanh", ()),
    summary="Gaussian Error Linear Unit (exact, or the tanh approximation)",
    formula="x·Φ(x) = x·(1 + erf(x/√2))/2; approximate='tanh': "
    "x·(1 + tanh(√(2/π)(x + 0.044715x³)))/2",
    latex=r"x \Phi(x)",
    forward=_gelu,
    derivative=_gelu_derivative,
    parameters=(
        Parameter("approximate", "none", "'none' (erf) or 'tanh'", _check_approximate, str),
    ),
    limits=Limits(lambda p: (0.0, INF), lambda p: (0.0, 1.0)),
    output_range="[≈-0.17, ∞)",
    monotonic=False,
    smooth=True,
    torch_name="gelu",
    firing=Firing(lambda p: GELU_EDGE[p["approximate"]], "x > −3.067 (tanh form: −3.053)"),
    reference="Hendrycks & Gimpel, Gaussian Error Linear Units (GELUs)",
    year=2016,
    example="""
>>> import relukit
>>> relukit.gelu([-1.0, 0.0, 1.0]).round(6)
array([-0.158655,  0.      ,  0.841345])
>>> relukit.gelu([-float("inf"), float("inf")])
array([ 0., inf])
""",
)

# ---------------------------------------------------------------------------------------------
# silu


def _silu(m: Any, x: Any) -> Any:
    # far left (below −700), σ(x) = e^x to 1e-304: x·e^x formed scaled
    return exp_times(m, x, x, x * sigmoid(m, x))


def _silu_derivative(m: Any, x: Any) -> Any:
    # σ(x)(1 + x(1 − σ(x))), with 1 − σ(x) as σ(−x); where σ(−x) is 0, so is its term; far
    # left, e^x·(1 + x) formed scaled
    rest = sigmoid(m, -x)
    general = sigmoid(m, x) * (1 + m.where(rest == 0, 0 * x, x * rest))
    return near_zero(m, x, "silu", exp_times(m, x, 1 + x, general))


silu = Activation(
    name="silu",
    module="SiLU",
    torch_module="SiLU",
    kernel=lambda p: ("silu", ()),
    aliases=("swish",),
    summary="Sigmoid Linear Unit (Swish with β = 1)",
    formula="x·σ(x) = x / (1 + exp(−x))",
    latex=r"x \sigma(x)",
    forward=_silu,
    derivative=_silu_derivative,
    limits=Limits(lambda p: (0.0, INF), lambda p: (0.0, 1.0)),
    output_range="[≈-0.28, ∞)",
    monotonic=False,
    smooth=True,
    torch_name="silu",
    firing=Firing(constant(-6.261388848819966), "x > −6.261"),
    reference="Elfwing, Uchibe & Doya, Sigmoid-Weighted Linear Units for Neural Network "
    "Function Approximation in Reinforcement Learning",
    year=2017,
    example="""
>>> import relukit
>>> relukit.silu([-1.0, 0.0, 1.0]).round(6)
array([-0.268941,  0.      ,  0.731059])
>>> relukit.swish.derivative([0.0])
array([0.5])
""",
)

# ---------------------------------------------------------------------------------------------
# mish


def _mish_parts(m: Any, x: Any) -> tuple[Any, Any]:
    """(t, 1 − t²) for t = tanh(ln(1 + e^x)) = n/(n + 2), n = e^x(e^x + 2): no logarithm, and
    1 − t² = 4(n + 1)/(n + 2)² without cancellation. Above x = 40, t = 1 and 1 − t² ≈ 4e^{−2x}
    (where n would overflow)."""
    e = m.exp(m.where(x > 40, 0 * x, x))
    n = e * (e + 2)
    big = x > 40
    t = m.where(big, 1 + 0 * x, n / (n + 2))
    rest = m.where(big, 4 * m.exp(-2 * x), 4 * (n + 1) / ((n + 2) * (n + 2)))
    return t, rest


def _mish(m: Any, x: Any) -> Any:
    # far left (below −700), t = e^x to 1e-304: x·e^x formed scaled
    return exp_times(m, x, x, x * _mish_parts(m, x)[0])


def _mish_derivative(m: Any, x: Any) -> Any:
    # far left, t + x·σ·(1 − t²) = e^x·(1 + x) to 1e-304, formed scaled
    t, rest = _mish_parts(m, x)
    general = t + m.where(rest == 0, 0 * x, x * sigmoid(m, x) * rest)
    return near_zero(m, x, "mish", exp_times(m, x, 1 + x, general))


mish = Activation(
    name="mish",
    module="Mish",
    torch_module="Mish",
    kernel=lambda p: ("mish", ()),
    summary="Mish: x·tanh(softplus(x))",
    formula="x·tanh(ln(1 + exp(x)))",
    latex=r"x \tanh(\ln(1 + e^x))",
    forward=_mish,
    derivative=_mish_derivative,
    limits=Limits(lambda p: (0.0, INF), lambda p: (0.0, 1.0)),
    output_range="[≈-0.31, ∞)",
    monotonic=False,
    smooth=True,
    torch_name="mish",
    firing=Firing(constant(-6.263968785699261), "x > −6.264"),
    reference="Misra, Mish: A Self Regularized Non-Monotonic Activation Function",
    year=2019,
    example="""
>>> import relukit
>>> relukit.mish([-1.0, 0.0, 1.0]).round(6)
array([-0.303401,  0.      ,  0.865098])
""",
)

# ---------------------------------------------------------------------------------------------
# softplus


def _scaled(m: Any, x: Any, beta: float) -> tuple[Any, Any]:
    """(z, dz): z + dz = beta·x exactly (0 for dz where the product overflows)."""
    z, dz = two_product(x, beta)
    return z, finite(m, dz, m.abs(z) < 1e300)


def _softplus(m: Any, x: Any, beta: float, threshold: float) -> Any:
    z, dz = _scaled(m, x, beta)
    # log1p(exp(z)) as max(z, 0) + log1p(exp(-|z|)): the same for z ≤ 0, and no overflow above
    # (PyTorch's log1p(exp(z)) is inf once exp(z) overflows below a large threshold); plus
    # σ(z)·dz for the rounding of beta·x, which e^z would magnify |z|-fold
    positive = m.where(z > 0, z, m.zeros_like(z))
    value = positive + m.log1p(m.exp(-m.abs(z))) + sigmoid(m, z) * dz
    return m.where(z > threshold, x, value / beta)


def _softplus_derivative(m: Any, x: Any, beta: float, threshold: float) -> Any:
    z, dz = _scaled(m, x, beta)
    s = sigmoid(m, z)
    return m.where(z > threshold, 1, s + s * sigmoid(m, -z) * dz)


def _softplus_from_output(m: Any, y: Any, beta: float, threshold: float) -> Any:
    # e^{βy} = 1 + e^{βx}, so f' = e^{βx}/(1 + e^{βx}) = 1 − e^{−βy}
    z = y * beta
    return m.where(z > threshold, 1, -m.expm1(-z))


def _softplus_output_check(p: Any) -> str | None:
    if p["threshold"] >= 17:
        return None
    return (
        f"threshold={p['threshold']} < 17: softplus jumps by log1p(exp(-threshold))/beta there, "
        "so its output does not fix its derivative to float32 precision"
    )


softplus = Activation(
    name="softplus",
    module="Softplus",
    torch_module="Softplus",
    kernel=lambda p: ("softplus", (p["beta"], p["threshold"])),
    summary="Softplus, the smooth ReLU (linear above threshold/beta)",
    formula="ln(1 + exp(beta·x))/beta, or x where beta·x > threshold",
    latex=r"\tfrac{1}{\beta}\ln(1 + e^{\beta x})",
    forward=_softplus,
    derivative=_softplus_derivative,
    from_output=_softplus_from_output,
    from_output_check=_softplus_output_check,
    parameters=(
        Parameter("beta", 1.0, "sharpness (> 0)", positive),
        Parameter("threshold", 20.0, "beta·x above which the identity is used", real),
    ),
    limits=Limits(lambda p: (0.0, INF), lambda p: (0.0, 1.0)),
    output_range="(0, ∞)",
    smooth=True,
    torch_name="softplus",
    firing=Firing(
        lambda p: math.log(FLAT_TOLERANCE / (1 - FLAT_TOLERANCE)) / p["beta"],
        "x > ln(0.01/0.99)/beta (≈ −4.595/beta)",
    ),
    reference="Dugas, Bengio, Bélisle, Nadeau & Garcia, Incorporating Second-Order Functional "
    "Knowledge for Better Option Pricing",
    year=2001,
    example="""
>>> import relukit
>>> relukit.softplus([-1.0, 0.0, 30.0]).round(6)
array([ 0.313262,  0.693147, 30.      ])
""",
)

MEMBERS = (gelu, silu, mish, softplus)
