"""Baselines for comparison, flagged as not of the family: sigmoid and tanh.

Integer inputs give floating-point outputs, as in PyTorch and NumPy.
"""

from __future__ import annotations

import math
from typing import Any

from relukit.family.numerics import sigmoid as logistic
from relukit.family.spec import FLAT_TOLERANCE, Activation, Firing, Limits, constant

# σ′ = σ(1 − σ) = FLAT_TOLERANCE at σ = (1 − √(1 − 4·FLAT_TOLERANCE))/2
_SIGMOID_FLAT = (1 - math.sqrt(1 - 4 * FLAT_TOLERANCE)) / 2
_SIGMOID_EDGE = math.log(_SIGMOID_FLAT / (1 - _SIGMOID_FLAT))


def _sigmoid(m: Any, x: Any) -> Any:
    return logistic(m, x)


def _sigmoid_derivative(m: Any, x: Any) -> Any:
    # σ(x)(1 − σ(x)) = w/(1 + w)², w = e^{−|x|}: no cancellation, and the tails keep their digits
    w = m.exp(-m.abs(x))
    return w / ((1 + w) * (1 + w))


def _sigmoid_from_output(m: Any, y: Any) -> Any:
    return y * (1 - y)


sigmoid = Activation(
    name="sigmoid",
    torch_module="Sigmoid",
    kernel=lambda p: ("sigmoid", ()),
    summary="Logistic sigmoid (baseline)",
    formula="1 / (1 + exp(−x))",
    latex=r"\sigma(x) = \frac{1}{1 + e^{-x}}",
    forward=_sigmoid,
    derivative=_sigmoid_derivative,
    from_output=_sigmoid_from_output,
    limits=Limits(lambda p: (0.0, 1.0), lambda p: (0.0, 0.0)),
    output_range="(0, 1)",
    bounded=True,
    smooth=True,
    in_family=False,
    integers="float",
    torch_name="sigmoid",
    firing=Firing(constant(_SIGMOID_EDGE), "x > −4.585 (σ′ = 0.01)"),
    reference="Rumelhart, Hinton & Williams, Learning representations by back-propagating errors",
    year=1986,
    example="""
>>> import relukit
>>> relukit.sigmoid([0.0, 2.0]).round(6)
array([0.5     , 0.880797])
""",
)


def _tanh(m: Any, x: Any) -> Any:
    return m.tanh(x)


def _tanh_derivative(m: Any, x: Any) -> Any:
    # 1 − tanh(x)² = 4w/(1 + w)², w = e^{−2|x|}: 1 − t² would lose the tails to cancellation
    w = m.exp(-2 * m.abs(x))
    return 4 * w / ((1 + w) * (1 + w))


def _tanh_from_output(m: Any, y: Any) -> Any:
    return 1 - y * y


tanh = Activation(
    name="tanh",
    torch_module="Tanh",
    kernel=lambda p: ("tanh", ()),
    summary="Hyperbolic tangent (baseline)",
    formula="tanh(x)",
    latex=r"\tanh(x)",
    forward=_tanh,
    derivative=_tanh_derivative,
    from_output=_tanh_from_output,
    limits=Limits(lambda p: (-1.0, 1.0), lambda p: (0.0, 0.0)),
    output_range="(-1, 1)",
    bounded=True,
    smooth=True,
    zero_centred=True,
    in_family=False,
    integers="float",
    torch_name="tanh",
    firing=Firing(constant(-math.atanh(math.sqrt(1 - FLAT_TOLERANCE))), "x > −2.993"),
    reference="LeCun, Bottou, Orr & Müller, Efficient BackProp",
    year=1998,
    example="""
>>> import relukit
>>> relukit.tanh([0.0, 1.0]).round(6)
array([0.      , 0.761594])
""",
)

MEMBERS = (sigmoid, tanh)
