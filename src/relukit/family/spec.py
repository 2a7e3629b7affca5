"""What an activation *is*: the one data type every member of the registry is an instance of.

An :class:`Activation` holds everything the rest of relukit needs to know about a member and
nothing about how fast it runs: its formula as text, its parameters with their defaults and
checks, its forward and derivative (or vector-Jacobian product) as formulas written against an
array namespace, the kinks with the derivative chosen there, the limits at ±inf, and flags.

Formulas receive ``m``, an array-namespace wrapper (the Python Array API plus ``erf``), the input
``x`` in its working dtype, and the bound parameters as keyword arguments. They never see NaN
handling or infinities: the evaluator in :mod:`relukit.kernels.reference` applies the NaN rule and
the declared limits once, for every member.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relukit.errors import UserValueError

Formula = Callable[..., Any]
Params = Mapping[str, Any]
KernelPacking = Callable[[Params], tuple[str, tuple[float, ...]]]


class ParameterError(UserValueError):
    """A parameter value (or a parameter together with the input) that the member refuses."""


@dataclass(frozen=True)
class Parameter:
    """One parameter of a member: its name, default, meaning and the check its values must pass.

    ``check`` returns ``None`` for a valid value, or a short description of what is wrong.
    ``kind`` is the type the command line parses a ``k=v`` value into. ``convert``, if given,
    turns an accepted spelling of a value into the one the formulas take (prelu: a list of
    slopes into a tuple) before the check.
    """

    name: str
    default: Any
    doc: str
    check: Callable[[Any], str | None] | None = None
    kind: type = float
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Kink:
    """A point where the derivative is discontinuous, and the derivative chosen there.

    ``at`` and ``derivative`` are functions of the bound parameters so that the tests can place
    an input exactly on the kink and compare the chosen value with PyTorch's autograd. An ``at``
    of ±inf means the kink is absent for those parameters (general_relu without max_value).
    """

    where: str
    chosen: str
    at: Callable[[Params], float]
    derivative: Callable[[Params], float]


Limit = tuple[float | None, float | None]


@dataclass(frozen=True)
class Limits:
    """Values at -inf and +inf of the forward and of the derivative (the mathematical limits).

    ``None`` means the formula itself already gives the right value there (used where the
    limit varies per element, as for rrelu's random slopes).
    """

    forward: Callable[[Params], Limit]
    derivative: Callable[[Params], Limit]


FLAT_TOLERANCE = 0.01
"""|f′| at and below which a member's negative tail counts as flat (see :class:`Firing`)."""


@dataclass(frozen=True)
class Firing:
    """When a unit of the member *fires*: the rule activation monitors count with.

    A unit fires at an element where ``on`` — ``"input"`` (x) or ``"output"`` (y) — is above
    ``above(params)``; ``where`` says it in words for the docs. Piecewise-linear members fire
    above the kink where their derivative drops (relu: y > 0; leaky_relu: x > 0; hardtanh:
    x > min_val). Smooth and exponential members fire above their flat negative region: the
    inputs x for which |f′(t)| ≤ :data:`FLAT_TOLERANCE` at every t ≤ x, where a unit passes at
    most 1 % of the gradient reaching it (gelu: x > −3.067). Upper saturation (relu6 at 6,
    tanh near 1) still counts as firing. Elementwise members counted on the output have
    y > ``above`` exactly where x > ``above``, so the same rule judges a gate's
    pre-activation (SwiGLU, GeGLU); the tests check that and every flat-region edge.
    """

    above: Callable[[Params], float]
    where: str
    on: str = "input"

    def __post_init__(self) -> None:
        if self.on not in ("input", "output"):
            raise TypeError(f"Firing: on must be 'input' or 'output', got {self.on!r}")


@dataclass(frozen=True)
class Activation:
    """One member of the family, defined once.

    Elementwise members give ``derivative`` (its vector-Jacobian product is ``g * derivative``);
    structural members (crelu, maxout) give ``vjp`` instead. ``param_vjps`` maps a parameter name
    to the formula ``(m, x, g, **params) -> gradient`` with respect to that parameter.

    Piecewise-linear members give the mask path (:mod:`relukit.kernels.mask`) two formulas:
    ``mask_code`` ``(m, x, **params) -> codes``, the piece of each element as an integer below
    ``2**derivative_bits``, decided by the comparison PyTorch's backward makes (which fixes the
    code of a NaN input), and ``mask_derivatives`` ``(m, like, **params) -> tuple``, the
    derivative on each code (scalars, or arrays broadcastable to ``like``).

    ``firing`` is the rule activation monitors count a unit as firing by (:class:`Firing`).

    What the other layers read (they build their tables from these fields, never from lists
    of member names of their own; ``tests/test_registry.py`` walks every member through each):

    - ``parameters``: their order is the positional order (the order of the functional form's
      arguments after the input, and of :meth:`encode`'s floats);
    - ``kernel``: ``(bound params) -> (formula, floats)``, the compiled formula that computes
      the member (its key in :mod:`relukit.kernels.cpu`) and the formula's own parameters;
      ``None`` when only the reference path computes it;
    - ``module``: the class name in :mod:`relukit.nn` (None: no relukit module);
    - ``torch_module`` / ``torch_name``: the ``torch.nn`` class and the
      ``torch.nn.functional`` function computing the same thing (None where torch has none;
      they are also the peers ``relukit bench`` and ``benchmarks/nn_speed.py`` time);
    - ``mask_code``, ``mask_derivatives`` and ``derivative_pieces``: the mask path's codes
      and bits (:meth:`derivative_bits`).
    - ``from_output`` ``(m, y, **params) -> f'``, for a member whose derivative is a function
      of its output, and ``from_output_check`` ``(params) -> str | None`` where some parameters
      break that: the ``backward="output"`` mode (:mod:`relukit.memory.output`). A member that
      is not monotonic (one minimum: gelu, silu, mish) needs no formula: that mode keeps one
      bit beside the output and inverts the member on its side of the minimum.
    """

    name: str
    formula: str
    latex: str
    forward: Formula
    reference: str
    year: int
    output_range: str
    derivative: Formula | None = None
    vjp: Formula | None = None
    param_vjps: Mapping[str, Formula] = field(default_factory=dict)
    parameters: tuple[Parameter, ...] = ()
    check: Callable[[Params], str | None] | None = None
    aliases: tuple[str, ...] = ()
    kinks: tuple[Kink, ...] = ()
    limits: Limits | None = None
    monotonic: bool = True
    bounded: bool = False
    smooth: bool = False
    zero_centred: bool = False
    in_family: bool = True
    integers: str = "refuse"
    derivative_pieces: Callable[[Params], int] | None = None
    mask_code: Formula | None = None
    mask_derivatives: Formula | None = None
    from_output: Formula | None = None
    from_output_check: Callable[[Params], str | None] | None = None
    example: str = ""
    torch_name: str | None = None
    summary: str = ""
    firing: Firing | None = None
    module: str | None = None
    torch_module: str | None = None
    kernel: KernelPacking | None = None

    def __post_init__(self) -> None:
        if (self.derivative is None) == (self.vjp is None):
            raise TypeError(f"{self.name}: give exactly one of derivative and vjp")
        if self.integers not in ("same", "float", "refuse"):
            raise TypeError(f"{self.name}: integers must be 'same', 'float' or 'refuse'")

    @property
    def elementwise(self) -> bool:
        """True when the output has the input's shape and ``derivative`` is defined."""
        return self.derivative is not None

    @property
    def piecewise_linear(self) -> bool:
        """True when the derivative is piecewise constant (it can be stored as a small code)."""
        return self.derivative_pieces is not None

    def derivative_bits(self, params: Params | None = None) -> int:
        """Bits per element that identify the derivative's value at an input (0 if smooth).

        ``derivative_pieces`` counts the distinct values the derivative takes at one position
        (per channel for prelu), so one bit suffices for relu and two for general_relu with
        both a negative slope and a cap.
        """
        if self.derivative_pieces is None:
            return 0
        return max(1, math.ceil(math.log2(self.derivative_pieces(self.bind(params or {})))))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def encode(self, bound: Params) -> list[float]:
        """The bound parameters as floats in positional order (None as inf, bools as 0/1):
        how the PyTorch operators carry them. :meth:`decode` is the inverse."""
        return [
            math.inf if bound[p.name] is None else float(bound[p.name]) for p in self.parameters
        ]

    def decode(self, values: list[float]) -> dict[str, Any]:
        """The parameters :meth:`encode` gave ``values`` for."""
        decoded: dict[str, Any] = {}
        for p, value in zip(self.parameters, values, strict=True):
            if p.default is None and value == math.inf:
                decoded[p.name] = None
            elif p.kind is bool:
                decoded[p.name] = bool(value)
            elif p.kind is int:
                decoded[p.name] = int(value)
            else:
                decoded[p.name] = value
        return decoded

    def bind(self, params: Params) -> dict[str, Any]:
        """Defaults overlaid with ``params``, every value checked; raises ParameterError.

        A NumPy or PyTorch scalar (``np.float32(0.5)``, ``np.int64(2)``, a 0-d tensor) counts as
        the Python number it holds, as NumPy's own functions take it.
        """
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(params) - set(known))
        if unknown:
            allowed = ", ".join(known) or "none"
            name = unknown[0]
            raise ParameterError(
                f"unknown parameter {name}={show(params[name])} (parameters: {allowed})"
            )
        bound = {p.name: plain(params.get(p.name, p.default)) for p in self.parameters}
        for name, given in bound.items():
            convert = known[name].convert
            value = bound[name] = given if convert is None else convert(given)
            check = known[name].check
            problem = check(value) if check is not None else None
            if problem is not None:
                raise ParameterError(f"{name}={show(given)}: {problem}")
        if self.check is not None:
            problem = self.check(bound)
            if problem is not None:
                raise ParameterError(problem)
        return bound


def plain(value: Any) -> Any:
    """A NumPy scalar, 0-d array or 0-d tensor as the Python number (or bool, str) it holds;
    anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            item = value.item()
        except (TypeError, ValueError, RuntimeError):
            return value
        if isinstance(item, (bool, int, float, complex, str)):
            return item
    return value


def show(value: Any) -> str:
    """A value for an error message, on one short line (an array by its shape and dtype)."""
    shape = getattr(value, "shape", None)
    if shape is not None and getattr(value, "dtype", None) is not None:
        return f"<{type(value).__name__} of shape {tuple(shape)} and dtype {value.dtype}>"
    text = repr(value)
    if len(text) > 60 or "\n" in text:
        digits = f" ({len(text)} digits)" if isinstance(value, int) else ""
        text = f"{text[:24]}…{text[-12:]}{digits}".replace("\n", " ")
    return text


def real(value: Any) -> str | None:
    """Check: a finite real number (a Python int must fit a float64)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a real number"
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            return "must be finite (it is beyond the largest float64)"
        return None
    return None if math.isfinite(value) else "must be finite"


def positive(value: Any) -> str | None:
    """Check: a finite real number > 0."""
    return real(value) or (None if value > 0 else "must be > 0")


def non_negative(value: Any) -> str | None:
    """Check: a finite real number >= 0."""
    return real(value) or (None if value >= 0 else "must be >= 0")


def optional_real(value: Any) -> str | None:
    """Check: None or a finite real number."""
    return None if value is None else real(value)


def integer(value: Any) -> str | None:
    """Check: a Python integer (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be an integer"
    return None


def positive_integer(value: Any) -> str | None:
    """Check: a Python integer >= 1."""
    return integer(value) or (None if value >= 1 else "must be >= 1")


def boolean(value: Any) -> str | None:
    """Check: True or False."""
    return None if isinstance(value, bool) else "must be True or False"


def constant(value: float) -> Callable[[Params], float]:
    """A kink location or derivative that does not depend on the parameters."""
    return lambda _params: value


INF = math.inf
