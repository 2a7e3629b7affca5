"""The smooth members: gelu, silu, mish and softplus.

Each is written the way PyTorch evaluates it, so forward values match PyTorch's to within the
rounding of the transcendental functions; softplus takes the form that does not overflow.
Where PyTorch's formula gives NaN at ±inf (``gelu(-inf)``, ``silu(-inf)``, ``mish(-inf)`` and
their derivatives), relukit gives the mathematical limit declared in ``limits``.
"""

from __future__ import annotations

import math
from typing import Any

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
# Edges of the flat regions (|f′| = FLAT_TOLERANCE, found by bisection on the derivative;
# tests/family/test_firing.py checks them against the registry's own derivative).
GELU_EDGE = {"none": -3.0674272039089, "tanh": -3.0528549951444695}

# ---------------------------------------------------------------------------------------------
# gelu


def _check_approximate(value: Any) -> str | None:
    return None if value in ("none", "tanh") else "must be 'none' or 'tanh'"


def _gelu(m: Any, x: Any, approximate: str) -> Any:
    if approximate == "tanh":
        return 0.5 * x * (1 + m.tanh(TANH_BETA * (x + TANH_KAPPA * x * x * x)))
    return x * 0.5 * (1 + m.erf(x * SQRT1_2))


def _gelu_derivative(m: Any, x: Any, approximate: str) -> Any:
    if approximate == "tanh":
        inner = m.tanh(TANH_BETA * (x + TANH_KAPPA * x * x * x))
        sech2 = 1 - inner * inner
        # Where tanh saturates the right term is 0, also where x·x overflows (0·inf is NaN).
        right = m.where(sech2 == 0, 0, 0.5 * x * sech2 * (TANH_BETA * (1 + 3 * TANH_KAPPA * x * x)))
        return 0.5 * (1 + inner) + right
    cdf = 0.5 * (1 + m.erf(x * SQRT1_2))
    pdf = m.exp(-0.5 * x * x) * INV_SQRT_2PI
    return cdf + x * pdf


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
    return x / (1 + m.exp(-x))


def _silu_derivative(m: Any, x: Any) -> Any:
    s = 1 / (1 + m.exp(-x))
    return s * (1 + x * (1 - s))


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


def _mish(m: Any, x: Any) -> Any:
    return x * m.tanh(m.log1p(m.exp(x)))


def _mish_derivative(m: Any, x: Any) -> Any:
    s = 1 / (1 + m.exp(-x))
    t = m.tanh(m.log1p(m.exp(x)))
    return t + x * s * (1 - t * t)


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


def _softplus(m: Any, x: Any, beta: float, threshold: float) -> Any:
    z = x * beta
    # log1p(exp(z)) as max(z, 0) + log1p(exp(-|z|)): the same for z ≤ 0, and no overflow above
    # (PyTorch's log1p(exp(z)) is inf once exp(z) overflows below a large threshold)
    positive = m.where(z > 0, z, m.zeros_like(z))
    return m.where(z > threshold, x, (positive + m.log1p(m.exp(-m.abs(z)))) / beta)


def _softplus_derivative(m: Any, x: Any, beta: float, threshold: float) -> Any:
    z = x * beta
    e = m.exp(z)
    # exp(z) overflows (inf/inf is NaN) only where threshold is large; the limit there is 1.
    return m.where((z > threshold) | m.isinf(e), 1, e / (e + 1))


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
