"""Swap a model's activation modules for relukit's (:func:`convert`) and back (:func:`revert`).

Both work in place, on any model (nested modules, ``Sequential``, ``ModuleList``,
``ModuleDict``), keep each module's settings and training mode, keep a shared module shared,
and hand PReLU's weight over as the very same ``Parameter`` (so its values, device, dtype,
gradient and any optimizer holding it carry over). Only modules of exactly a known class are
swapped: a subclass may have changed the behaviour, so it is left alone and reported.

Activations that are not modules cannot be swapped: calls such as ``F.relu(x)`` or
``x.relu()`` written in a ``forward``, and activation functions stored as attributes (as
``nn.TransformerEncoderLayer`` stores ``F.relu``). :func:`convert` finds them by reading the
source of the model's own classes and lists them in its report.

Example:
    >>> import torch
    >>> from torch import nn
    >>> import relukit.nn
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.GELU())
    >>> model, report = relukit.nn.convert(model, members=["relu"])
    >>> type(model[1]).__module__, report.replaced[0].name, report.skipped[0].reason
    ('relukit.nn.modules', '1', "member 'gelu' not in members")
    >>> model, _ = relukit.nn.revert(model)
    >>> type(model[1]) is nn.ReLU
    True
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from relukit.family import MEMBERS, ParameterError, lookup
from relukit.nn import modules as rm

Builder = Callable[[nn.Module], nn.Module]


def _with_mode(new: nn.Module, old: nn.Module) -> nn.Module:
    new.train(old.training)
    return new


def _builder(cls: type[nn.Module], signature_of: type[nn.Module]) -> Builder:
    """Build a ``cls`` from a module of the counterpart class: the constructor arguments of
    ``signature_of`` read from the old module's attributes, and its parameters handed over as
    the very same ``Parameter`` objects (built on the meta device first, so nothing is
    allocated twice)."""
    names = [
        name
        for name in inspect.signature(signature_of).parameters
        if name not in ("device", "dtype")
    ]
    takes_device = "device" in inspect.signature(cls).parameters

    def build(old: nn.Module) -> nn.Module:
        kwargs = {name: getattr(old, name) for name in names if hasattr(old, name)}
        if takes_device and old._parameters:
            kwargs["device"] = "meta"
        new = cls(**kwargs)
        for name, parameter in old._parameters.items():
            setattr(new, name, parameter)
        return new

    return build


def _counterparts() -> list[tuple[str, type[nn.Module], type[nn.Module]]]:
    return [
        (spec.name, getattr(nn, spec.torch_module), rm.MODULES[spec.name])
        for spec in MEMBERS
        if spec.torch_module is not None and spec.name in rm.MODULES
    ]


TO_RELUKIT: dict[type[nn.Module], tuple[str, Builder]] = {
    theirs: (member, _builder(ours, theirs)) for member, theirs, ours in _counterparts()
}
"""torch.nn class → (registry member, builder of the relukit module from the torch one)."""

TO_TORCH: dict[type[nn.Module], Builder] = {
    ours: _builder(theirs, theirs) for _member, theirs, ours in _counterparts()
}
"""relukit class → builder of the torch.nn module (relukit's own members have none)."""


@dataclass(frozen=True)
class Replacement:
    """One module swapped: its qualified name and both modules' reprs."""

    name: str
    before: str
    after: str


@dataclass(frozen=True)
class Skipped:
    """An activation module left as it was, and why."""

    name: str
    module: str
    reason: str


@dataclass(frozen=True)
class FunctionalCall:
    """An activation that is not a module, found in a model's code: it cannot be swapped."""

    modules: tuple[str, ...]
    call: str
    location: str


@dataclass
class ConversionReport:
    """What :func:`convert` or :func:`revert` did and what it could not do."""

    replaced: list[Replacement] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    functional_calls: list[FunctionalCall] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)} module(s)"]
        lines += [f"  {r.name}: {r.before} -> {r.after}" for r in self.replaced]
        if self.skipped:
            lines.append(f"left {len(self.skipped)} module(s) as they were")
            lines += [f"  {s.name}: {s.module} ({s.reason})" for s in self.skipped]
        if self.functional_calls:
            lines.append(
                f"{len(self.functional_calls)} activation(s) are not modules and cannot be "
                "swapped (replace them with modules, or call relukit.nn.functional):"
            )
            lines += [
                f"  {c.call} in {', '.join(c.modules)} ({c.location})"
                for c in self.functional_calls
            ]
        return "\n".join(lines)


class Conversion(NamedTuple):
    """The converted model (the same object, changed in place) and the report."""

    model: nn.Module
    report: ConversionReport


def _members(members: Iterable[str] | None) -> set[str] | None:
    if members is None:
        return None
    if isinstance(members, str):
        members = [members]
    chosen = set()
    for name in members:
        try:
            chosen.add(lookup(name).name)
        except (TypeError, ValueError) as error:
            raise type(error)(f"relukit.nn.convert: members: {error}") from None
    return chosen


def _swap(
    model: nn.Module, choose: Callable[[str, nn.Module], Builder | str | None]
) -> tuple[nn.Module, ConversionReport]:
    """Replace, depth first, every module for which ``choose`` gives a builder."""
    report = ConversionReport()
    done: dict[int, nn.Module] = {}

    def visit(name: str, module: nn.Module) -> nn.Module:
        if id(module) in done:
            return done[id(module)]
        choice = choose(name, module)
        new = module
        if isinstance(choice, str):
            report.skipped.append(Skipped(name, repr(module), choice))
        elif choice is not None:
            try:
                new = _with_mode(choice(module), module)
            except ParameterError as error:
                report.skipped.append(Skipped(name, repr(module), str(error)))
            else:
                report.replaced.append(Replacement(name, repr(module), repr(new)))
        else:
            for child_name, child in list(module._modules.items()):
                qualified = f"{name}.{child_name}" if name else child_name
                replacement = visit(qualified, child)
                if replacement is not child:
                    setattr(module, child_name, replacement)
        done[id(module)] = new
        return new

    return visit("", model), report


def convert(
    model: nn.Module,
    members: Iterable[str] | None = None,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Conversion:
    """Replace the torch.nn activation modules of ``model`` by relukit's, in place.

    ``members`` limits the swap to these registry names (aliases accepted); None swaps every
    member relukit has a module for. ``backward`` (and ``bits``) choose what the smooth
    members' backward keeps (:class:`relukit.nn.modules.Smooth`); the piecewise-linear members
    keep their one-bit mask whatever it says. A choice that cannot work for one of the modules
    to be swapped (``backward="output"`` for ``ELU(alpha=-1)``, an in-place module) raises
    :class:`relukit.nn.Error` naming that module, before anything is swapped. Returns
    ``(model, report)``; ``report`` lists what was replaced, what was left (subclasses,
    members not chosen, values relukit refuses) and the activations written as function
    calls, which no module swap can reach.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"relukit.nn.convert: model must be a torch.nn.Module, got {type(model)}")
    chosen = _members(members)
    _check_backward(model, chosen, backward, bits)

    def choose(name: str, module: nn.Module) -> Builder | str | None:
        entry = TO_RELUKIT.get(type(module))
        if entry is None:
            return _torch_subclass(module)
        member, build = entry
        if chosen is not None and member not in chosen:
            return f"member {member!r} not in members"
        if backward != "input" and issubclass(rm.MODULES[member], rm.Smooth):
            return _with_backward(build, backward, bits)
        return build

    new_model, report = _swap(model, choose)
    report.functional_calls.extend(find_functional_activations(new_model))
    return Conversion(new_model, report)


def _with_backward(build: Builder, backward: str, bits: int) -> Builder:
    def with_backward(old: nn.Module) -> nn.Module:
        new = build(old)
        new.backward, new.bits = backward, bits
        return new

    return with_backward


def _check_backward(model: nn.Module, chosen: set[str] | None, backward: str, bits: int) -> None:
    """The Error of the first module the ``backward`` choice cannot work for, before any swap."""
    from relukit.nn.functional import check_backward, check_choice

    check_choice("relukit.nn.convert", backward, bits)
    if backward == "input":
        return
    for member in sorted(chosen or ()):  # a piecewise member named with a memory mode
        if not issubclass(rm.MODULES[member], rm.Smooth):
            check_backward("relukit.nn.convert", member, {}, backward, bits, False)
    for name, module in model.named_modules():
        entry = TO_RELUKIT.get(type(module))
        if entry is None or (chosen is not None and entry[0] not in chosen):
            continue
        member = entry[0]
        if not issubclass(rm.MODULES[member], rm.Smooth):
            continue
        params = {
            p.name: getattr(module, p.name)
            for p in lookup(member).parameters
            if hasattr(module, p.name)
        }
        where = f"relukit.nn.convert: {name or 'model'} ({type(module).__name__})"
        inplace = bool(getattr(module, "inplace", False))
        check_backward(where, member, params, backward, bits, inplace)


def _torch_subclass(module: nn.Module) -> str | None:
    if type(module) in TO_TORCH:
        return None
    for base in type(module).__mro__[1:]:
        if base in TO_RELUKIT:
            return f"subclass of torch.nn.{base.__name__}: its behaviour may differ, kept"
    return None


def revert(model: nn.Module) -> Conversion:
    """Replace relukit's activation modules of ``model`` by torch.nn's, in place.

    The inverse of :func:`convert`: settings, mode and PReLU's ``Parameter`` carry over. CReLU,
    Maxout, SquaredReLU and GeneralReLU have no torch.nn counterpart and stay (reported).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"relukit.nn.revert: model must be a torch.nn.Module, got {type(model)}")

    def choose(name: str, module: nn.Module) -> Builder | str | None:
        build = TO_TORCH.get(type(module))
        if build is not None:
            return build
        if type(module) in rm.MODULES.values():
            return "no torch.nn counterpart, kept"
        return None

    return Conversion(*_swap(model, choose))


# ---------------------------------------------------------------------------------------------
# activations that are function calls

ACTIVATION_FUNCTIONS = frozenset(
    name
    for spec in MEMBERS
    if spec.in_family and spec.torch_name is not None
    for name in (spec.torch_name, f"{spec.torch_name}_")
)
"""Names of the torch functions and tensor methods that compute a member."""

_FUNCTION_OBJECTS = {
    getattr(source, name): f"{prefix}.{name}"
    for source, prefix in ((F, "torch.nn.functional"), (torch, "torch"))
    for name in ACTIVATION_FUNCTIONS
    if hasattr(source, name)
}


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def _calls_in(cls: type) -> list[tuple[str, str]]:
    """(call text, file:line) of every activation call in ``cls.forward``'s source."""
    forward = getattr(cls, "forward", None)
    try:
        lines, start = inspect.getsourcelines(forward)
        path = inspect.getsourcefile(forward) or "?"
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in ACTIVATION_FUNCTIONS:
            continue
        owner = _dotted(node.func.value)
        if owner is not None and owner.split(".")[0] in ("F", "torch", "nn", "functional"):
            text = f"{owner}.{node.func.attr}(...)"
        else:
            text = f"tensor method .{node.func.attr}()"
        found.append((text, f"{path}:{start + node.lineno - 1}"))
    return found


def find_functional_activations(model: nn.Module) -> list[FunctionalCall]:
    """Activations of ``model`` that are function calls or function attributes, not modules.

    Reads the ``forward`` source of every class of the model not from torch or relukit, and
    looks at every module's attributes for torch's activation functions.
    """
    by_call: dict[tuple[str, str], list[str]] = {}
    scanned: dict[type, list[tuple[str, str]]] = {}
    for name, module in model.named_modules():
        cls = type(module)
        if not cls.__module__.startswith(("torch.", "relukit.")):
            if cls not in scanned:
                scanned[cls] = _calls_in(cls)
            for key in scanned[cls]:
                by_call.setdefault(key, []).append(name or "<model>")
        for attribute, value in vars(module).items():
            try:
                function = _FUNCTION_OBJECTS.get(value)
            except TypeError:
                continue
            if function is not None:
                key = (f"attribute {attribute} = {function}", f"{cls.__qualname__}")
                by_call.setdefault(key, []).append(name or "<model>")
    return [
        FunctionalCall(tuple(names), call, location) for (call, location), names in by_call.items()
    ]
