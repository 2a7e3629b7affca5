"""Baselines for comparison, flagged as not of the family: sigmoid and tanh.

Integer inputs give floating-point outputs, as in PyTorch and NumPy.
"""

from __future__ import annotations

from typing import Any

from relukit.family.spec import Activation, Limits


def _sigmoid(m: Any, x: Any) -> Any:
    return 1 / (1 + m.exp(-x))


def _sigmoid_derivative(m: Any, x: Any) -> Any:
    s = 1 / (1 + m.exp(-x))
    return s * (1 - s)


sigmoid = Activation(
    name="sigmoid",
    summary="Logistic sigmoid (baseline)",
    formula="1 / (1 + exp(−x))",
    latex=r"\sigma(x) = \frac{1}{1 + e^{-x}}",
    forward=_sigmoid,
    derivative=_sigmoid_derivative,
    limits=Limits(lambda p: (0.0, 1.0), lambda p: (0.0, 0.0)),
    output_range="(0, 1)",
    bounded=True,
    smooth=True,
    in_family=False,
    integers="float",
    torch_name="sigmoid",
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
    t = m.tanh(x)
    return 1 - t * t


tanh = Activation(
    name="tanh",
    summary="Hyperbolic tangent (baseline)",
    formula="tanh(x)",
    latex=r"\tanh(x)",
    forward=_tanh,
    derivative=_tanh_derivative,
    limits=Limits(lambda p: (-1.0, 1.0), lambda p: (0.0, 0.0)),
    output_range="(-1, 1)",
    bounded=True,
    smooth=True,
    zero_centred=True,
    in_family=False,
    integers="float",
    torch_name="tanh",
    reference="LeCun, Bottou, Orr & Müller, Efficient BackProp",
    year=1998,
    example="""
>>> import relukit
>>> relukit.tanh([0.0, 1.0]).round(6)
array([0.      , 0.761594])
""",
)

MEMBERS = (sigmoid, tanh)
