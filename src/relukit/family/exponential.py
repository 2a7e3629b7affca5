"""The exponential linear units: elu, selu and celu.

Each is the identity for x > 0 and a scaled ``expm1`` for x ≤ 0; the derivative at 0 is taken
from the x ≤ 0 branch, as PyTorch's autograd does (so ``elu'(0) = alpha``).
"""

from __future__ import annotations

import math
from typing import Any

from relukit.family.numerics import exp_times, finite, two_product
from relukit.family.spec import (
    FLAT_TOLERANCE,
    INF,
    Activation,
    Firing,
    Kink,
    Limits,
    Parameter,
    constant,
    real,
)


def _exp_edge(scale: float) -> float:
    """Edge of the flat region of ``scale·exp(x)`` for x ≤ 0: where |f′| = FLAT_TOLERANCE."""
    return math.log(FLAT_TOLERANCE / abs(scale)) if abs(scale) > FLAT_TOLERANCE else 0.0


# ---------------------------------------------------------------------------------------------
# elu


def _elu(m: Any, x: Any, alpha: float) -> Any:
    return m.where(x > 0, x, m.expm1(x) * alpha)


def _elu_derivative(m: Any, x: Any, alpha: float) -> Any:
    # (far left, alpha·e^x formed scaled: alone e^x is subnormal where alpha·e^x may not be)
    return m.where(x > 0, 1, exp_times(m, x, alpha, m.exp(x) * alpha))


def _elu_from_output(m: Any, y: Any, alpha: float) -> Any:
    return m.where(y > 0, 1, y + alpha)  # y = alpha·(e^x − 1): alpha·e^x = y + alpha


def _elu_output_check(p: Any) -> str | None:
    if p["alpha"] >= 0:
        return None
    return f"alpha={p['alpha']} < 0 makes the output positive on both sides of 0"


elu = Activation(
    name="elu",
    module="ELU",
    torch_module="ELU",
    kernel=lambda p: ("elu", (p["alpha"],)),
    summary="Exponential Linear Unit",
    formula="x if x > 0 else alpha·(exp(x) − 1)",
    latex=r"\begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}",
    forward=_elu,
    derivative=_elu_derivative,
    from_output=_elu_from_output,
    from_output_check=_elu_output_check,
    parameters=(Parameter("alpha", 1.0, "value approached as x → -∞ is -alpha", real),),
    kinks=(Kink("x = 0", "alpha (the x ≤ 0 branch)", constant(0.0), lambda p: p["alpha"]),),
    limits=Limits(lambda p: (-p["alpha"], INF), lambda p: (0.0, 1.0)),
    output_range="(-alpha, ∞)",
    torch_name="elu",
    firing=Firing(lambda p: _exp_edge(p["alpha"]), "x > ln(0.01/alpha) (≈ −4.605)"),
    reference="Clevert, Unterthiner & Hochreiter, Fast and Accurate Deep Network Learning by "
    "Exponential Linear Units (ELUs)",
    year=2015,
    example="""
>>> import relukit
>>> relukit.elu([-1.0, 0.0, 2.0]).round(6)
array([-0.632121,  0.      ,  2.      ])
>>> relukit.elu.derivative([-1.0, 0.0, 2.0]).round(6)
array([0.367879, 1.      , 1.      ])
""",
)

# ---------------------------------------------------------------------------------------------
# selu

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
# (the product of the two floats, 1 ulp below alpha·scale: PyTorch's derivative at the kink)
SELU_PRODUCT = SELU_ALPHA * SELU_SCALE


def _selu(m: Any, x: Any) -> Any:
    return m.where(x > 0, x * SELU_SCALE, m.expm1(x) * SELU_PRODUCT)


def _selu_derivative(m: Any, x: Any) -> Any:
    return m.where(x > 0, SELU_SCALE, exp_times(m, x, SELU_PRODUCT, m.exp(x) * SELU_PRODUCT))


def _selu_from_output(m: Any, y: Any) -> Any:
    return m.where(y > 0, SELU_SCALE, y + SELU_ALPHA * SELU_SCALE)


selu = Activation(
    name="selu",
    module="SELU",
    torch_module="SELU",
    kernel=lambda p: ("selu", ()),
    summary="Scaled ELU (self-normalising)",
    formula="scale·(x if x > 0 else alpha·(exp(x) − 1)), alpha ≈ 1.6733, scale ≈ 1.0507",
    latex=r"\lambda \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}",
    forward=_selu,
    derivative=_selu_derivative,
    from_output=_selu_from_output,
    kinks=(
        Kink(
            "x = 0",
            "scale·alpha (the x ≤ 0 branch)",
            constant(0.0),
            constant(SELU_SCALE * SELU_ALPHA),
        ),
    ),
    limits=Limits(lambda p: (-SELU_SCALE * SELU_ALPHA, INF), lambda p: (0.0, SELU_SCALE)),
    output_range="(-scale·alpha, ∞)",
    torch_name="selu",
    firing=Firing(
        constant(_exp_edge(SELU_SCALE * SELU_ALPHA)),
        "x > ln(0.01/(scale·alpha)) (≈ −5.169)",
    ),
    reference="Klambauer, Unterthiner, Mayr & Hochreiter, Self-Normalizing Neural Networks",
    year=2017,
    example="""
>>> import relukit
>>> relukit.selu([-1.0, 0.0, 1.0]).round(6)
array([-1.111331,  0.      ,  1.050701])
""",
)

# ---------------------------------------------------------------------------------------------
# celu


def _quotient(m: Any, x: Any, alpha: float) -> tuple[Any, Any]:
    """(q, dq): q + dq = x/alpha to about 2^-100 (e^q magnifies q's rounding |q|-fold)."""
    q = x / alpha
    p, e = two_product(q, alpha)
    dq = ((x - p) - e) / alpha
    return q, finite(m, dq, m.abs(x) < 1e300)


def _celu(m: Any, x: Any, alpha: float) -> Any:
    q, dq = _quotient(m, x, alpha)
    return m.where(x > 0, x, (m.expm1(q) + m.exp(q) * dq) * alpha)


def _celu_derivative(m: Any, x: Any, alpha: float) -> Any:
    q, dq = _quotient(m, x, alpha)
    e = m.exp(q)
    return m.where(x > 0, 1, e + e * dq)


def _celu_from_output(m: Any, y: Any, alpha: float) -> Any:
    return m.where(y > 0, 1, y * (1 / alpha) + 1)


celu = Activation(
    name="celu",
    module="CELU",
    torch_module="CELU",
    kernel=lambda p: ("celu", (p["alpha"],)),
    summary="Continuously differentiable ELU",
    formula="x if x > 0 else alpha·(exp(x/alpha) − 1)",
    latex=r"\begin{cases} x & x > 0 \\ \alpha (e^{x/\alpha} - 1) & x \le 0 \end{cases}",
    forward=_celu,
    derivative=_celu_derivative,
    from_output=_celu_from_output,
    parameters=(
        Parameter(
            "alpha",
            1.0,
            "scale of the negative part (> 0)",
            lambda v: real(v) or (None if v > 0 else "must be > 0"),
        ),
    ),
    limits=Limits(lambda p: (-p["alpha"], INF), lambda p: (0.0, 1.0)),
    output_range="(-alpha, ∞)",
    smooth=False,
    torch_name="celu",
    firing=Firing(
        lambda p: p["alpha"] * math.log(FLAT_TOLERANCE),
        "x > alpha·ln 0.01 (≈ −4.605·alpha)",
    ),
    reference="Barron, Continuously Differentiable Exponential Linear Units",
    year=2017,
    example="""
>>> import relukit
>>> relukit.celu([-2.0, 0.0, 2.0], alpha=2.0).round(6)
array([-1.264241,  0.      ,  2.      ])
""",
)

MEMBERS = (elu, selu, celu)
