"""The registry: every member of the family, defined once (see :mod:`relukit.family.spec`)."""

from __future__ import annotations

from relukit.errors import UserTypeError, UserValueError
from relukit.family import baselines, exponential, rectifiers, smooth, structural
from relukit.family.spec import Activation, Kink, Limits, Parameter, ParameterError

MEMBERS: tuple[Activation, ...] = (
    *rectifiers.MEMBERS,
    *exponential.MEMBERS,
    *smooth.MEMBERS,
    *structural.MEMBERS,
    *baselines.MEMBERS,
)

_BY_NAME: dict[str, Activation] = {name: spec for spec in MEMBERS for name in spec.names}


def lookup(name: str) -> Activation:
    """The member called ``name`` (or one of its aliases); ValueError naming the choices."""
    if not isinstance(name, str):
        raise UserTypeError(f"activation name must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    try:
        return _BY_NAME[key]
    except KeyError:
        choices = ", ".join(spec.name for spec in MEMBERS)
        raise UserValueError(f"unknown activation {name!r} (choose from: {choices})") from None


__all__ = ["MEMBERS", "Activation", "Kink", "Limits", "Parameter", "ParameterError", "lookup"]
