"""relukit: the ReLU family of activation functions, exact, fast and explained.

Every member is a callable with ``derivative`` (elementwise members) and ``vjp``::

    >>> import relukit
    >>> relukit.relu([-2, 0.5, 3])
    array([0. , 0.5, 3. ])
    >>> relukit.get("leaky_relu", negative_slope=0.07)([-1.0, 1.0])
    array([-0.07,  1.  ])
    >>> [spec.name for spec in relukit.family()][:3]
    ['relu', 'leaky_relu', 'prelu']
"""

from __future__ import annotations

from typing import Any

from relukit.activation import ElementwiseFunction, Function, make
from relukit.family import MEMBERS, Activation, ParameterError, lookup
from relukit.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"


def get(name: str, **params: Any) -> Function:
    """The member called ``name`` (aliases accepted) with ``params`` bound and checked."""
    return make(lookup(name), params)


def family(*, include_baselines: bool = True) -> list[Activation]:
    """The registry: every member's definition, in a stable order."""
    return [spec for spec in MEMBERS if include_baselines or spec.in_family]


relu = get("relu")
leaky_relu = get("leaky_relu")
prelu = get("prelu")
rrelu = get("rrelu")
relu6 = get("relu6")
hardtanh = get("hardtanh")
general_relu = get("general_relu")
squared_relu = get("squared_relu")
elu = get("elu")
selu = get("selu")
celu = get("celu")
gelu = get("gelu")
silu = get("silu")
swish = silu
mish = get("mish")
softplus = get("softplus")
crelu = get("crelu")
maxout = get("maxout")
sigmoid = get("sigmoid")
tanh = get("tanh")

__all__ = [
    "Activation",
    "ElementwiseFunction",
    "Function",
    "ParameterError",
    "celu",
    "crelu",
    "elu",
    "family",
    "gelu",
    "general_relu",
    "get",
    "get_num_threads",
    "hardtanh",
    "leaky_relu",
    "maxout",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "set_num_threads",
    "sigmoid",
    "silu",
    "softplus",
    "squared_relu",
    "swish",
    "tanh",
]
