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
from relukit.errors import UserError, UserTypeError, UserValueError
from relukit.family import MEMBERS, Activation, ParameterError, lookup
from relukit.threads import get_num_threads, set_num_threads

__version__ = "0.1.0"


def get(name: str, **params: Any) -> Function:
    """The member called ``name`` (aliases accepted) with ``params`` bound and checked."""
    try:
        spec = lookup(name)
    except UserError as error:
        raise type(error)(f"relukit.get: {error}") from None
    return make(spec, params)


def family(*, include_baselines: bool = True) -> list[Activation]:
    """The registry: every member's definition, in a stable order."""
    return [spec for spec in MEMBERS if include_baselines or spec.in_family]


# One public callable per member of the registry, named as the member (relukit.relu, ...):
# a member added to the registry appears here with no code of its own.
for _spec in MEMBERS:
    globals()[_spec.name] = get(_spec.name)
swish = globals()["silu"]
del _spec

__all__ = [
    "Activation",
    "ElementwiseFunction",
    "Function",
    "ParameterError",
    "UserError",
    "UserTypeError",
    "UserValueError",
    "family",
    "get",
    "get_num_threads",
    "set_num_threads",
    "swish",
    *(spec.name for spec in MEMBERS),
]
