"""relukit for PyTorch: drop-in activation modules with a memory-light, exact backward.

``relukit.nn.ReLU`` and the rest are ``torch.nn``'s modules (same names, signatures, defaults,
state dicts; subclasses of them) whose backward keeps a packed bit mask instead of a full
tensor where one bit is enough, with gradients equal to PyTorch's bit for bit.
:func:`convert` swaps them into any model, :func:`revert` swaps back; the operators are
registered with ``torch.library`` so converted models compile with ``torch.compile``.

Tensors of fewer than :func:`native_below` elements run PyTorch's own operation (measured
defaults per kind of member and dtype, or one size set with :func:`set_native_below` or the
environment variable ``RELUKIT_NN_NATIVE_BELOW``).

The path of a call: module → :mod:`~relukit.nn.functional` → the op's file
(:mod:`~relukit.nn.masked`, :mod:`~relukit.nn.prelu`, :mod:`~relukit.nn.rrelu`,
:mod:`~relukit.nn.crelu`, :mod:`~relukit.nn.maxout`: operator, fake, autograd formula) →
:mod:`~relukit.nn.kernel` (which kernel) → the compiled kernels or the PyTorch rules
(:mod:`~relukit.nn.rules`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> import relukit.nn
    >>> model, report = relukit.nn.convert(nn.Sequential(nn.Linear(4, 8), nn.ReLU()))
    >>> model
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): ReLU()
    )
    >>> model[1].relukit_member
    'relu'
"""

from __future__ import annotations

from relukit.nn import functional
from relukit.nn.convert import Conversion, ConversionReport, convert, revert
from relukit.nn.functional import Error, native_below, native_setting, set_native_below
from relukit.nn.modules import (
    CELU,
    ELU,
    GELU,
    MODULES,
    SELU,
    CReLU,
    GeneralReLU,
    Hardtanh,
    LeakyReLU,
    Maxout,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    RReLU,
    SiLU,
    Softplus,
    SquaredReLU,
)

__all__ = [
    "CELU",
    "ELU",
    "GELU",
    "MODULES",
    "SELU",
    "CReLU",
    "Conversion",
    "ConversionReport",
    "Error",
    "GeneralReLU",
    "Hardtanh",
    "LeakyReLU",
    "Maxout",
    "Mish",
    "PReLU",
    "RReLU",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Softplus",
    "SquaredReLU",
    "convert",
    "functional",
    "native_below",
    "native_setting",
    "revert",
    "set_native_below",
]

# A member whose module is made from its registry record (modules.made_module) has no class
# written above: it is found here by its module name, so that adding a member to the registry
# gives relukit.nn.<its module> without an edit to this file.
_MADE = {cls.__name__: cls for cls in MODULES.values() if cls.__name__ not in __all__}
__all__ += sorted(_MADE)


def __getattr__(name: str) -> type:
    try:
        return _MADE[name]
    except KeyError:
        raise AttributeError(f"module 'relukit.nn' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MADE))
