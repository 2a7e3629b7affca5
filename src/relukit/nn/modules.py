"""Drop-in ``torch.nn`` modules for every member of the family.

Where PyTorch has the module, relukit's has the same name, constructor signature, defaults,
``extra_repr`` and state dict, and subclasses it (``isinstance(relukit.nn.ReLU(), nn.ReLU)``):
only ``forward`` changes, to :mod:`relukit.nn.functional`, whose backward keeps a packed mask
instead of a full tensor; their keyword-only ``backward`` takes only ``"input"`` (a memory
mode for them is refused by name: the mask already keeps one bit). ELU, SELU, CELU, GELU,
SiLU, Mish, Softplus and SquaredReLU keep PyTorch's own forward and, by default, its backward
(:class:`Smooth`); ``backward="output"`` keeps the output instead of the input, its gradient
exact up to the rounding of the output (at a minimum √(2·f″·δy): about 1e-4 in float32, 1e-8
in float64, 1e-2 in bfloat16), and ``backward="bits"`` keeps a 1–4-bit code per element.
CReLU, Maxout, SquaredReLU and GeneralReLU are relukit's own.

Every class carries ``relukit_member``, the registry name of what it computes, which is how
:mod:`relukit.diagnostics` finds activations in a model; :data:`MODULES` is built from the
registry's ``module`` field. A member of the registry whose ``module`` names no class written
here gets one made from its record (:func:`made_module`: its parameters as the constructor's,
the mask op's forward), so adding a piecewise-linear member needs no code in relukit.nn.
Constructor values are checked by the registry (:func:`relukit.family.lookup`), so a bad one
raises :class:`relukit.nn.functional.Error`, a ``ValueError`` (and ``RuntimeError``) that names
the class, the parameter and the value (PyTorch accepts some of them, e.g.
``RReLU(lower=0.5, upper=0.1)``).

``torch.jit.script`` cannot compile relukit's modules (their forward calls Python operators);
scripting a model that holds one raises a ``RuntimeError`` naming the module and pointing at
``torch.compile``, which compiles them (``fullgraph=True`` included).

Example:
    >>> import torch, relukit.nn
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), relukit.nn.ReLU(), torch.nn.Linear(4, 1))
    >>> model[1], model[1].relukit_member, isinstance(model[1], torch.nn.ReLU)
    (ReLU(), 'relu', True)
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from relukit.family import MEMBERS, Activation
from relukit.family.spec import positive_integer
from relukit.nn import functional as rf


def _check(cls: type, member: str, **params: Any) -> dict[str, Any]:
    return rf.check(f"relukit.nn.{cls.__name__}", member, **params)


def native(input: Tensor, slopes: bool = False) -> bool:
    """Does PyTorch's own operation run (no gradient needed, or fewer elements than
    :func:`relukit.nn.native_below`; ``slopes``: prelu's and rrelu's in training)? The modules
    ask first, so that path costs PyTorch's call and little more; their parameters were checked
    when they were made."""
    return not (input.requires_grad and torch.is_grad_enabled()) or rf.below_native(input, slopes)


class Module(nn.Module):
    """What every relukit.nn module adds to its torch.nn class: ``relukit_member`` and a clear
    refusal of ``torch.jit.script``."""

    relukit_member: ClassVar[str] = ""

    def _one_bit(self, backward: str, bits: int) -> None:
        """:func:`relukit.nn.functional.one_bit` for this module: only ``backward="input"``."""
        rf.one_bit(self.relukit_member, backward, bits, f"relukit.nn.{type(self).__name__}")

    def __prepare_scriptable__(self) -> nn.Module:
        raise RuntimeError(
            f"relukit.nn.{type(self).__name__} cannot be compiled by torch.jit.script (its "
            "forward calls relukit's Python operators): use torch.compile(model) instead, or "
            "relukit.nn.revert(model) to script torch.nn's modules"
        )


# ---------------------------------------------------------------------------------------------
# the mask members


class ReLU(Module, nn.ReLU):
    """max(0, x), saving 1 bit per element for the backward (PyTorch saves the output).

    Gradients are PyTorch's bit for bit: relu'(0) = 0, relu'(NaN)·g = g.

    Example:
        >>> ReLU()(torch.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    relukit_member = "relu"

    def __init__(self, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> None:
        self._one_bit(backward, bits)
        super().__init__(inplace)

    def forward(self, input: Tensor) -> Tensor:
        if native(input):
            return F.relu(input, self.inplace)
        return rf.relu(input, self.inplace)


class LeakyReLU(Module, nn.LeakyReLU):
    """x if x > 0 else negative_slope·x, saving 1 bit per element.

    Example:
        >>> LeakyReLU(0.2)
        LeakyReLU(negative_slope=0.2)
    """

    relukit_member = "leaky_relu"

    def __init__(
        self,
        negative_slope: float = 1e-2,
        inplace: bool = False,
        *,
        backward: str = "input",
        bits: int = 3,
    ) -> None:
        self._one_bit(backward, bits)
        _check(type(self), "leaky_relu", negative_slope=negative_slope)
        super().__init__(negative_slope, inplace)

    def forward(self, input: Tensor) -> Tensor:
        if native(input):
            return F.leaky_relu(input, self.negative_slope, self.inplace)
        return rf.leaky_relu(input, self.negative_slope, self.inplace)


class Hardtanh(Module, nn.Hardtanh):
    """min(max(x, min_val), max_val), saving 1 bit per element.

    Example:
        >>> Hardtanh(-2.0, 2.0)(torch.tensor([-3.0, 1.0, 5.0])).tolist()
        [-2.0, 1.0, 2.0]
    """

    relukit_member = "hardtanh"

    def __init__(
        self,
        min_val: float = -1.0,
        max_val: float = 1.0,
        inplace: bool = False,
        min_value: float | None = None,
        max_value: float | None = None,
        *,
        backward: str = "input",
        bits: int = 3,
    ) -> None:
        self._one_bit(backward, bits)
        _check(
            type(self),
            "hardtanh",
            min_val=min_val if min_value is None else min_value,
            max_val=max_val if max_value is None else max_value,
        )
        super().__init__(min_val, max_val, inplace, min_value, max_value)

    def forward(self, input: Tensor) -> Tensor:
        if native(input):
            return F.hardtanh(input, self.min_val, self.max_val, self.inplace)
        return rf.hardtanh(input, self.min_val, self.max_val, self.inplace)


class ReLU6(Module, nn.ReLU6):
    """min(max(0, x), 6), saving 1 bit per element.

    Example:
        >>> ReLU6()(torch.tensor([-1.0, 3.0, 9.0])).tolist()
        [0.0, 3.0, 6.0]
    """

    relukit_member = "relu6"

    def __init__(self, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> None:
        self._one_bit(backward, bits)
        super().__init__(inplace)

    def forward(self, input: Tensor) -> Tensor:
        if native(input):
            return F.relu6(input, self.inplace)
        return rf.relu6(input, self.inplace)


class RReLU(Module, nn.RReLU):
    """Randomized leaky ReLU; in training, slopes drawn as PyTorch draws them.

    ``generator`` (keyword only, not in PyTorch) draws the training slopes; by default
    torch's global generator, so ``torch.manual_seed`` gives PyTorch's numbers. Saved: 1 bit
    per element and, in training, the slope of each input ≤ 0.

    Example:
        >>> RReLU(0.1, 0.3).eval()(torch.tensor([-2.0, 3.0])).tolist()
        [-0.4000000059604645, 3.0]
    """

    relukit_member = "rrelu"

    def __init__(
        self,
        lower: float = 1.0 / 8,
        upper: float = 1.0 / 3,
        inplace: bool = False,
        *,
        generator: torch.Generator | None = None,
        backward: str = "input",
        bits: int = 3,
    ) -> None:
        self._one_bit(backward, bits)
        _check(type(self), "rrelu", lower=lower, upper=upper)
        super().__init__(lower, upper, inplace)
        self.generator = generator

    def forward(self, input: Tensor) -> Tensor:
        if not self.training:
            if native(input):
                return rf.rrelu_eval_native(input, self.lower, self.upper, self.inplace)
        elif self.generator is None and native(input, True):
            return F.rrelu(input, self.lower, self.upper, True, self.inplace)
        return rf.rrelu(
            input, self.lower, self.upper, self.training, self.inplace, generator=self.generator
        )


class PReLU(Module, nn.PReLU):
    """x if x > 0 else weight[c]·x with learnable slopes (one, or one per channel on axis 1).

    Saves 1 bit per element, plus the non-positive inputs when the weight needs a gradient.
    Loads ``torch.nn.PReLU`` state dicts (the parameter is ``weight`` in both).

    Example:
        >>> m = PReLU(2, init=0.5)
        >>> m(torch.tensor([[-2.0, -4.0]])).tolist()
        [[-1.0, -2.0]]
    """

    relukit_member = "prelu"

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        device: Any = None,
        dtype: Any = None,
        *,
        backward: str = "input",
        bits: int = 3,
    ) -> None:
        self._one_bit(backward, bits)
        problem = positive_integer(num_parameters)
        if problem is not None:
            raise rf.Error(f"relukit.nn.PReLU: num_parameters={num_parameters!r}: {problem}")
        _check(type(self), "prelu", weight=init)
        super().__init__(num_parameters, init, device, dtype)

    def forward(self, input: Tensor) -> Tensor:
        if rf.below_native(input, slopes=True):
            return F.prelu(input, self.weight)
        return rf.prelu(input, self.weight)


# ---------------------------------------------------------------------------------------------
# PyTorch's modules, with relukit's name and checks, and the choice of what the backward keeps


class Smooth(Module):
    """The keyword-only ``backward`` and ``bits`` of the smooth members' modules.

    ``backward="input"`` (default) is PyTorch's backward, bit for bit (the forward calls
    ``torch.nn.functional`` directly: the values were checked when the module was made, so the
    call costs what torch.nn's does); ``"output"`` keeps the
    output (shared with the next layer) and one bit for gelu, silu and mish, and recovers f′
    from them, exact up to the rounding of the output (at the minimum of gelu, silu and mish
    √(2·f″·δy): about 1e-4 in float32, 1e-8 in float64, 1e-2 in bfloat16; at the dtype's
    resolution 0.5 away from it); ``"bits"`` keeps
    ``bits`` (1-4, default 3) bits per element for Few-Bit's step derivative. See
    :func:`relukit.nn.functional.check_backward` and ``docs/pytorch.md``. Neither is in the
    state dict, so state dicts load across modes and from torch.nn.
    """

    backward: str = "input"
    bits: int = 3

    def _set_backward(self, backward: str, bits: int, params: dict[str, Any]) -> None:
        inplace = bool(getattr(self, "inplace", False))
        where = f"relukit.nn.{type(self).__name__}"
        rf.check_backward(where, self.relukit_member, params, backward, bits, inplace)
        self.backward, self.bits = backward, bits

    def _memory_repr(self, base: str) -> str:
        if self.backward == "input":
            return base
        extra = f"backward={self.backward!r}" + (
            f", bits={self.bits}" if self.backward == "bits" else ""
        )
        return f"{base}, {extra}" if base else extra

    def extra_repr(self) -> str:
        return self._memory_repr(super().extra_repr())


class ELU(Smooth, nn.ELU):
    """x if x > 0 else alpha·(exp(x) − 1): PyTorch's forward and backward (one saved tensor).

    Example:
        >>> ELU(alpha=0.5)
        ELU(alpha=0.5)
    """

    relukit_member = "elu"

    def __init__(
        self, alpha: float = 1.0, inplace: bool = False, *, backward: str = "input", bits: int = 3
    ) -> None:
        _check(type(self), "elu", alpha=alpha)
        super().__init__(alpha, inplace)
        self._set_backward(backward, bits, {"alpha": alpha})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.elu(input, self.alpha, self.inplace)
        return rf.elu(input, self.alpha, self.inplace, backward=self.backward, bits=self.bits)


class SELU(Smooth, nn.SELU):
    """Scaled ELU: PyTorch's forward and backward.

    Example:
        >>> round(SELU()(torch.tensor([1.0])).item(), 6)
        1.050701
    """

    relukit_member = "selu"

    def __init__(self, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> None:
        super().__init__(inplace)
        self._set_backward(backward, bits, {})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.selu(input, self.inplace)
        return rf.selu(input, self.inplace, backward=self.backward, bits=self.bits)


class CELU(Smooth, nn.CELU):
    """x if x > 0 else alpha·(exp(x/alpha) − 1), alpha > 0: PyTorch's forward and backward.

    Example:
        >>> CELU(alpha=2.0)
        CELU(alpha=2.0)
    """

    relukit_member = "celu"

    def __init__(
        self, alpha: float = 1.0, inplace: bool = False, *, backward: str = "input", bits: int = 3
    ) -> None:
        _check(type(self), "celu", alpha=alpha)
        super().__init__(alpha, inplace)
        self._set_backward(backward, bits, {"alpha": alpha})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.celu(input, self.alpha, self.inplace)
        return rf.celu(input, self.alpha, self.inplace, backward=self.backward, bits=self.bits)


class GELU(Smooth, nn.GELU):
    """x·Φ(x), or its tanh approximation: PyTorch's forward and backward.

    Example:
        >>> GELU(approximate="tanh")
        GELU(approximate='tanh')
    """

    relukit_member = "gelu"

    def __init__(
        self, approximate: str = "none", *, backward: str = "input", bits: int = 3
    ) -> None:
        _check(type(self), "gelu", approximate=approximate)
        super().__init__(approximate)
        self._set_backward(backward, bits, {"approximate": approximate})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.gelu(input, approximate=self.approximate)
        return rf.gelu(input, self.approximate, backward=self.backward, bits=self.bits)


class SiLU(Smooth, nn.SiLU):
    """x·σ(x): PyTorch's forward and backward.

    Example:
        >>> round(SiLU()(torch.tensor([1.0])).item(), 6)
        0.731059
    """

    relukit_member = "silu"

    def __init__(self, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> None:
        super().__init__(inplace)
        self._set_backward(backward, bits, {})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.silu(input, self.inplace)
        return rf.silu(input, self.inplace, backward=self.backward, bits=self.bits)


class Mish(Smooth, nn.Mish):
    """x·tanh(softplus(x)): PyTorch's forward and backward.

    Example:
        >>> round(Mish()(torch.tensor([1.0])).item(), 6)
        0.865098
    """

    relukit_member = "mish"

    def __init__(self, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> None:
        super().__init__(inplace)
        self._set_backward(backward, bits, {})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.mish(input, self.inplace)
        return rf.mish(input, self.inplace, backward=self.backward, bits=self.bits)


class Softplus(Smooth, nn.Softplus):
    """log(1 + exp(beta·x))/beta (x above threshold/beta): PyTorch's forward and backward.

    Example:
        >>> Softplus(beta=2.0)
        Softplus(beta=2.0, threshold=20.0)
    """

    relukit_member = "softplus"

    def __init__(
        self,
        beta: float = 1.0,
        threshold: float = 20.0,
        *,
        backward: str = "input",
        bits: int = 3,
    ) -> None:
        _check(type(self), "softplus", beta=beta, threshold=threshold)
        super().__init__(beta, threshold)
        self._set_backward(backward, bits, {"beta": beta, "threshold": threshold})

    def forward(self, input: Tensor) -> Tensor:
        if self.backward == "input":
            return F.softplus(input, self.beta, self.threshold)
        return rf.softplus(input, self.beta, self.threshold, backward=self.backward, bits=self.bits)


# ---------------------------------------------------------------------------------------------
# relukit's own


class CReLU(Module):
    """Concatenated ReLU: cat(relu(x), relu(−x)) along ``dim`` (default: the last).

    Shape: the input's, with ``dim`` doubled. Saves 2 bits per input element.

    Example:
        >>> CReLU()(torch.tensor([[-2.0, 0.5]])).tolist()
        [[0.0, 0.5, 2.0, 0.0]]
    """

    relukit_member = "crelu"
    __constants__: ClassVar[list[str]] = ["dim"]

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        rf.check_dim("relukit.nn.CReLU", dim)
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return rf.crelu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Maxout(Module):
    """The maximum over groups of ``pieces`` consecutive features along ``dim``.

    Shape: the input's, with ``dim`` divided by ``pieces``. Ties and NaN as ``torch.max``.
    Saves the winner's index in log2(pieces) bits (PyTorch's max keeps an int64).

    Example:
        >>> Maxout(pieces=2)(torch.tensor([[1.0, 3.0, -2.0, -5.0]])).tolist()
        [[3.0, -2.0]]
    """

    relukit_member = "maxout"
    __constants__: ClassVar[list[str]] = ["pieces", "dim"]

    def __init__(self, pieces: int = 2, dim: int = -1) -> None:
        super().__init__()
        _check(type(self), "maxout", pieces=pieces)
        rf.check_dim("relukit.nn.Maxout", dim)
        self.pieces, self.dim = pieces, dim

    def forward(self, input: Tensor) -> Tensor:
        return rf.maxout(input, self.pieces, self.dim)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}, dim={self.dim}"


class SquaredReLU(Smooth):
    """max(0, x)² (Primer): PyTorch's relu and square, one saved tensor.

    Example:
        >>> SquaredReLU()(torch.tensor([-2.0, 3.0])).tolist()
        [0.0, 9.0]
    """

    relukit_member = "squared_relu"

    def __init__(self, *, backward: str = "input", bits: int = 3) -> None:
        super().__init__()
        self._set_backward(backward, bits, {})

    def forward(self, input: Tensor) -> Tensor:
        return rf.squared_relu(input, backward=self.backward, bits=self.bits)


class GeneralReLU(Module):
    """Keras's relu: ``negative_slope·(x − threshold)`` below threshold, x, capped at max_value.

    Saves 1 bit per element, 2 when there is both a slope (other than 0 and 1) and a cap.

    Example:
        >>> GeneralReLU(0.1, 3.0, 1.0)
        GeneralReLU(negative_slope=0.1, max_value=3.0, threshold=1.0)
    """

    relukit_member = "general_relu"
    __constants__: ClassVar[list[str]] = ["negative_slope", "max_value", "threshold"]

    def __init__(
        self,
        negative_slope: float = 0.0,
        max_value: float | None = None,
        threshold: float = 0.0,
        *,
        backward: str = "input",
        bits: int = 3,
    ) -> None:
        super().__init__()
        self._one_bit(backward, bits)
        _check(
            type(self),
            "general_relu",
            negative_slope=negative_slope,
            max_value=max_value,
            threshold=threshold,
        )
        self.negative_slope, self.max_value, self.threshold = negative_slope, max_value, threshold

    def forward(self, input: Tensor) -> Tensor:
        return rf.general_relu(input, self.negative_slope, self.max_value, self.threshold)

    def extra_repr(self) -> str:
        return (
            f"negative_slope={self.negative_slope}, max_value={self.max_value}, "
            f"threshold={self.threshold}"
        )


def made_module(spec: Activation) -> type[nn.Module]:
    """A module class for a registry member with a mask (``mask_code``) and scalar parameters,
    made from its record: ``spec.module`` as the name, the parameters (in order, with their
    defaults) as the constructor's, the one-bit mask op as the forward."""
    if spec.mask_code is None or spec.module is None:
        raise TypeError(f"relukit.nn: {spec.name} has no module written and no mask to make one")
    names = [p.name for p in spec.parameters]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        Module.__init__(self)
        self._one_bit(kwargs.pop("backward", "input"), kwargs.pop("bits", 3))
        values = dict(zip(names, args, strict=False)) | kwargs
        bound = _check(type(self), spec.name, **values)
        for name in names:
            setattr(self, name, bound[name])

    def forward(self: Any, input: Tensor) -> Tensor:
        params = {name: getattr(self, name) for name in names}
        return rf.masked_member(input, spec.name, params)

    def extra_repr(self: Any) -> str:
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in names)

    doc = f"{spec.summary}: {spec.formula}, saving its mask code for the backward."
    namespace = {
        "__init__": __init__,
        "forward": forward,
        "extra_repr": extra_repr,
        "__doc__": doc,
        "__module__": __name__,
        "relukit_member": spec.name,
    }
    return type(spec.module, (Module,), namespace)


def _modules() -> dict[str, type[nn.Module]]:
    written = {
        cls.__name__: cls
        for cls in globals().values()
        if isinstance(cls, type) and issubclass(cls, Module) and cls is not Module
    }
    table: dict[str, type[nn.Module]] = {}
    for spec in MEMBERS:
        if spec.module is None:
            continue
        cls = written.get(spec.module) or made_module(spec)
        if cls.relukit_member != spec.name:
            raise TypeError(f"relukit.nn.{spec.module} computes {cls.relukit_member}")
        table[spec.name] = cls
    return table


MODULES: dict[str, type[nn.Module]] = _modules()
"""Registry member name → relukit module class (from the registry's ``module`` field)."""
