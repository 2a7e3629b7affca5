r"""Activation statistics of any PyTorch model, streaming: dead, rare and firing units, moments.

:class:`DeadUnitMonitor` hooks activation modules — relukit's own (they carry a
``relukit_member`` class attribute), ``torch.nn``'s, any module you name, and the gate of a
gated unit (:class:`Gate`) — and adds up, per layer, without keeping any activation:

- per unit, how often it *fires* (a unit is one output feature: one channel of an
  ``(N, C, H, W)`` map, one feature of an ``(N, F)`` batch or of an ``(N, T, C)`` sequence);
- dead units (never fired) and rare ones (fired on fewer than ``rare_threshold`` of their
  inputs);
- mean, standard deviation, largest magnitude and excess kurtosis of the module's output, and
  its fraction of exact zeros.

When a unit fires is a fact of the member, read from the registry
(:attr:`relukit.family.spec.Activation.firing`; :func:`firing_markdown` tabulates it): relu
fires where its output is > 0, leaky_relu where its input is > 0, hardtanh above ``min_val``,
and the smooth members above their flat negative region, where |f′| ≤ 0.01 (gelu: x > −3.067).
The threshold follows the module's own parameters (an ``nn.ELU(alpha=2)`` has its own edge).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from relukit.diagnostics import DeadUnitMonitor
    >>> model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> with torch.no_grad():
    ...     _ = model[0].bias.copy_(torch.tensor([0.0, -1e3, 0.0, 0.0]))
    >>> with DeadUnitMonitor(model) as monitor, torch.no_grad():
    ...     _ = model(torch.randn(64, 3, generator=torch.Generator().manual_seed(0)))
    >>> monitor.dead_units()
    {'1': [1]}
    >>> [(s.name, s.units, s.dead) for s in monitor.report()]
    [('1', 4, 1)]
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from relukit.diagnostics.init import _as_generator, _check_init, sample_layer
from relukit.diagnostics.streaming import Moments, merge, scan
from relukit.family import MEMBERS, Activation, ParameterError, lookup

__all__ = [
    "DeadUnitMonitor",
    "Gate",
    "LayerStats",
    "Revival",
    "find_activations",
    "firing_markdown",
    "firing_rule",
    "member_of",
    "torch_classes",
]

_FN = "DeadUnitMonitor"


@functools.cache
def torch_classes() -> dict[type[nn.Module], str]:
    """``torch.nn`` activation class → registry member, from each member's ``torch_module``.

    Example:
        >>> from torch import nn
        >>> torch_classes()[nn.LeakyReLU], torch_classes()[nn.ReLU6]
        ('leaky_relu', 'relu6')
    """
    return {getattr(nn, spec.torch_module): spec.name for spec in MEMBERS if spec.torch_module}


def member_of(module: nn.Module) -> str | None:
    """The registry member a module computes, or ``None`` if it is not a known activation.

    A ``relukit_member`` string attribute wins; otherwise the nearest ``torch.nn`` class of
    :func:`torch_classes` in the module's MRO decides (so ``nn.ReLU6`` is ``"relu6"``, not
    ``"hardtanh"``).

    Example:
        >>> from torch import nn
        >>> member_of(nn.ReLU6()), member_of(nn.Linear(1, 1))
        ('relu6', None)
    """
    member = getattr(module, "relukit_member", None)
    if isinstance(member, str):
        return member
    classes = torch_classes()
    for cls in type(module).__mro__:
        if cls in classes:
            return classes[cls]
    return None


def find_activations(model: nn.Module) -> dict[str, str]:
    """Qualified name → member name of every activation module of ``model``, in order.

    Example:
        >>> from torch import nn
        >>> find_activations(nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Tanh()))
        {'1': 'gelu', '2': 'tanh'}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"find_activations: model must be a torch.nn.Module, got {type(model).__name__}"
        )
    found = {}
    for name, module in model.named_modules():
        member = member_of(module)
        if member is not None:
            found[name] = member
    return found


def _rule_of(spec: Activation) -> tuple[str, Any]:
    if spec.firing is None:
        raise ValueError(f"{_FN}: member {spec.name!r} has no firing rule in the registry")
    return spec.firing.on, spec.firing


def firing_rule(member: str, params: Mapping[str, Any] | None = None) -> tuple[str, float]:
    """``(on, above)``: a unit of ``member`` fires where its ``on`` (``"input"`` or ``"output"``)
    is above ``above``, for the given parameters (defaults for the others).

    Example:
        >>> firing_rule("relu"), firing_rule("hardtanh", {"min_val": -2.0})
        (('output', 0.0), ('input', -2.0))
        >>> round(firing_rule("gelu")[1], 3)
        -3.067
    """
    spec = lookup(member)
    on, rule = _rule_of(spec)
    return on, float(rule.above(spec.bind(dict(params or {}))))


def firing_markdown() -> str:
    """The firing rule of every member as a Markdown table (docs/diagnostics.md holds it)."""
    lines = [
        "| member | counted on | fires where | threshold at the defaults |",
        "|---|---|---|---|",
    ]
    for spec in MEMBERS:
        on, above = firing_rule(spec.name)
        assert spec.firing is not None
        lines.append(f"| {spec.name} | {on} | {spec.firing.where} | {above:.4g} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Gate:
    """Monitor the gate of a gated unit: SwiGLU is ``Gate("silu")``, GeGLU ``Gate("gelu")``.

    Point it at the module whose output is the gate's pre-activation ``g`` — the ``Linear``
    ``W_g`` of ``act(W_g x) * (W_u x)`` — when the activation has no module of its own (it is
    applied as a function) or when you want the gate as the layer. A unit fires where ``g`` is
    above the member's threshold (:func:`firing_rule`; for members counted on their output,
    such as relu, the output exceeds the threshold exactly where the input does). The moments
    are those of ``g``.

    Attributes:
        member: the gate's activation, a registry name (``"silu"``, ``"gelu"``, ``"relu"``, …).
        params: its parameters (defaults for the others).
        half: for a fused projection whose output is ``[gate, up]`` along the unit axis,
            ``0`` if the gate is the first half, ``1`` if the second; ``None`` (default) if
            the whole output is the gate.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> gate = nn.Linear(4, 6)
        >>> with DeadUnitMonitor(gate, modules={"": Gate("silu", half=0)}) as mon:
        ...     _ = gate(torch.randn(5, 4, generator=torch.Generator().manual_seed(0)))
        >>> mon.report()[0].units, mon.report()[0].member
        (3, 'silu')
    """

    member: str
    params: Mapping[str, Any] = field(default_factory=dict)
    half: int | None = None


@dataclass(frozen=True)
class _Layer:
    module: nn.Module
    member: str
    on: str  # "input" or "output"
    above: float
    half: int | None = None  # gates of a fused projection
    nonnegative: bool = False  # output >= 0 and fires where > 0: its non-zeros are its firings


@dataclass(frozen=True)
class LayerStats:
    """One row of the monitor's report.

    Attributes:
        name: qualified module name (``"name[k]"`` for the k-th call when ``per_call=True``).
        member: registry member name (``"custom"`` for a module with an explicit rule).
        rule: where a unit fires, e.g. ``"output > 0"`` or ``"input > -3.067"``.
        units: number of units (0 if the module was never seen).
        calls: number of forward calls counted.
        inputs_per_unit: positions each unit was evaluated at, summed over calls.
        dead: units that never fired.
        rare: units that fired, but on fewer than ``rare_threshold`` of their inputs.
        sparsity: fraction of exact zeros in the outputs (``nan`` if never seen).
        mean_firing_rate: firing rate averaged over units (``nan`` if never seen).
        mean, std: mean and (population) standard deviation of the outputs.
        max_abs: the largest output magnitude.
        kurtosis: excess kurtosis of the outputs (0 for a normal distribution).
        nan: NaN outputs seen (left out of the other statistics).
    """

    name: str
    member: str
    rule: str
    units: int
    calls: int
    inputs_per_unit: int
    dead: int
    rare: int
    sparsity: float
    mean_firing_rate: float
    mean: float = math.nan
    std: float = math.nan
    max_abs: float = math.nan
    kurtosis: float = math.nan
    nan: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


@dataclass(frozen=True)
class Revival:
    """What :meth:`DeadUnitMonitor.reinitialize_dead` did.

    Attributes:
        touched: layer name → number of units re-drawn.
        skipped: layer name → why its dead units were left alone.
    """

    touched: dict[str, int]
    skipped: dict[str, str]

    @property
    def total(self) -> int:
        """Number of units re-drawn over all layers."""
        return sum(self.touched.values())


class _Site:
    """Streaming counters of one monitored layer (or one call site of it)."""

    __slots__ = ("acc", "calls", "dim", "fired", "name", "positions", "shift", "units")

    def __init__(self, name: str, dim: int | str) -> None:
        self.name = name
        self.dim = dim
        self.units: int = 0
        self.fired: torch.Tensor | None = None  # int64, one per unit
        self.positions: int = 0  # inputs per unit
        self.acc: torch.Tensor | None = None  # float64 sums, see streaming.ACC
        self.shift: float | None = None  # the sums are taken about this value
        self.calls: int = 0


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _unit_dim(ndim: int, spec: int | str, name: str) -> int:
    if spec == "auto":
        if ndim == 0:
            raise ValueError(f"{_FN}: layer {name!r} produced a 0-d tensor, which has no units")
        if ndim == 1:
            return 0
        if ndim == 3:
            return 2
        return 1
    assert isinstance(spec, int)
    if not -ndim <= spec < ndim:
        raise ValueError(
            f"{_FN}: channel_dim={spec!r} is out of range for the {ndim}-d tensor of layer {name!r}"
        )
    return spec % ndim


def _check_dim_spec(value: object, where: str) -> int | str:
    if value == "auto" and isinstance(value, str):
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{_FN}: {where} must be an int or 'auto', got {type(value).__name__} {value!r}"
        )
    return value


def _module_params(module: nn.Module, spec: Activation) -> dict[str, Any]:
    """The member's parameters that ``module`` holds as plain attributes (``alpha``, …)."""
    found = {}
    for p in spec.parameters:
        if p.name in _MODULE_ATTRS:  # nn.Module's own ``training`` is not rrelu's
            continue
        value = getattr(module, p.name, _MISSING)
        if value is None or isinstance(value, bool | int | float | str):
            found[p.name] = value
    return found


_MISSING = object()
_MODULE_ATTRS = frozenset(dir(nn.Module()))

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
_PASS_THROUGH = (
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class DeadUnitMonitor:
    r"""Streaming activation statistics of a model, through forward hooks.

    Hooks are attached on entering a ``with`` block or on the first :meth:`start`, never at
    creation, and removed by :meth:`close` or on leaving the block; the statistics stay
    readable afterwards. Memory is O(units): per unit one counter, per layer a few sums; no
    activation is stored. Counts are exact integers. A NaN counts as not firing and is left
    out of the moments (``nan`` counts it); in the sparsity it counts as a zero. The counters
    live on the activations' device and are read only when a report is asked for, so
    monitoring adds no host-device synchronisation. The hooks work under ``torch.no_grad()``
    and during training and never touch the autograd graph.

    **Sampling.** With ``every=k`` only every k-th batch is counted (the first, the
    (k+1)-th, …); the other batches cost one flag test per hooked module. A batch is one
    call of ``model`` (``batches="forward"``), or, with ``batches="manual"``, what lies
    between two calls of :meth:`next_batch` — what the framework callbacks use, since a
    framework may call submodules directly and runs validation forwards in between;
    :meth:`pause` stops counting until the next :meth:`next_batch`.

    A module called several times per batch (a shared ``nn.ReLU`` or a recurrent cell) is one
    layer whose counts add over all calls; its units must agree in number. With
    ``per_call=True`` each call position within a batch is a separate row, named
    ``"name[k]"``. Activations applied functionally (``torch.relu(x)`` inside ``forward``) have
    no module and cannot be hooked: convert the model, or point a :class:`Gate` at the layer
    that feeds them.

    Args:
        model: any ``torch.nn.Module``.
        channel_dim: the dimension that indexes units. ``"auto"`` (default): ``1`` for ``(N, F)``
            and for ``(N, C, *spatial)`` maps with 4 or more dimensions, ``-1`` for 3-d
            ``(N, T, C)`` sequences, ``0`` for a 1-d tensor. Conv1d maps ``(N, C, L)`` need
            ``channel_dim=1``. An int applies to every layer; a mapping from layer name to int
            or ``"auto"`` sets it per layer (unlisted layers use ``"auto"``).
        modules: ``None`` to monitor every activation :func:`find_activations` finds; otherwise
            exactly the modules named: an iterable of qualified names or module objects, or a
            mapping from those to a member name, a ``(member, parameters)`` pair, a
            :class:`Gate`, or a bare rule (``"output"`` / ``"input"``: fires where that is
            > 0), which lets any module be monitored.
        rare_threshold: firing rate below which a live unit counts as rare (default 1 %).
        per_call: report each call position of a shared module separately.
        every: count one batch in ``every`` (default 1: all).
        batches: ``"forward"`` (a call of ``model`` is a batch) or ``"manual"``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 2))
        >>> monitor = DeadUnitMonitor(model).start()
        >>> _ = model(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
        >>> stats = monitor.report()[0]
        >>> stats.units, stats.inputs_per_unit, 0 < stats.sparsity < 1, stats.max_abs > 0
        (8, 144, True, True)
        >>> monitor.close()
    """

    def __init__(
        self,
        model: nn.Module,
        channel_dim: int | Literal["auto"] | Mapping[str, int | Literal["auto"]] = "auto",
        modules: Iterable[str | nn.Module]
        | Mapping[str | nn.Module, str | Gate | tuple[str, Mapping[str, Any]]]
        | None = None,
        *,
        rare_threshold: float = 0.01,
        per_call: bool = False,
        every: int = 1,
        batches: Literal["forward", "manual"] = "forward",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{_FN}: model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(rare_threshold, bool) or not isinstance(rare_threshold, int | float):
            raise TypeError(
                f"{_FN}: rare_threshold must be a float, got "
                f"{type(rare_threshold).__name__} {rare_threshold!r}"
            )
        if not 0.0 <= rare_threshold <= 1.0:
            raise ValueError(f"{_FN}: rare_threshold must be in [0, 1], got {rare_threshold!r}")
        if not isinstance(per_call, bool):
            raise TypeError(f"{_FN}: per_call must be a bool, got {per_call!r}")
        if isinstance(every, bool) or not isinstance(every, int):
            raise TypeError(f"{_FN}: every must be an int, got {type(every).__name__} {every!r}")
        if every < 1:
            raise ValueError(f"{_FN}: every must be >= 1, got {every!r}")
        if batches not in ("forward", "manual"):
            raise ValueError(f"{_FN}: batches must be 'forward' or 'manual', got {batches!r}")
        self.model = model
        self.rare_threshold = float(rare_threshold)
        self.per_call = per_call
        self.every = every
        self.batches = batches
        self._layers = self._select(model, modules)
        if modules is None and not self._layers:
            warnings.warn(
                f"{_FN}: the model has no activation module to monitor (activations applied "
                "in forward, as torch.relu(x), have none): give it activation modules, or name "
                "the modules with modules= (a Gate on the layer that feeds one)",
                UserWarning,
                stacklevel=2,
            )
        self._dims = self._dim_specs(channel_dim)
        self._sites: dict[tuple[str, int], _Site] = {}
        self._calls_this_pass: dict[str, int] = {}
        self._max_calls_per_pass: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._seen = 0  # batches begun
        self._sampled = 0  # batches counted
        self._counting = batches == "forward"  # manual: nothing counts before next_batch()
        self.reset()

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _layer(name: str, module: nn.Module, rule: object) -> _Layer:
        if isinstance(rule, Gate):
            if rule.half not in (None, 0, 1):
                raise ValueError(f"{_FN}: Gate.half must be None, 0 or 1, got {rule.half!r}")
            spec = lookup(rule.member)
            if not spec.elementwise:
                raise ValueError(f"{_FN}: Gate({rule.member!r}) is not elementwise; no gate rule")
            try:
                _on, above = firing_rule(spec.name, rule.params)
            except ParameterError as err:
                raise ValueError(f"{_FN}: Gate({rule.member!r}) for {name!r}: {err}") from None
            return _Layer(module, spec.name, "output", above, rule.half)
        if rule in ("output", "input"):
            return _Layer(module, member_of(module) or "custom", str(rule), 0.0)
        given: Mapping[str, Any] | None = None
        if isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[1], Mapping):
            rule, given = rule
        member = member_of(module) if rule is None else rule
        if member is None:
            raise ValueError(
                f"{_FN}: module {name!r} ({type(module).__name__}) is not a known activation; "
                f"name its member or rule, e.g. modules={{{name!r}: 'relu'}}"
            )
        if not isinstance(member, str):
            raise TypeError(
                f"{_FN}: modules[{name!r}] must be a member name, (member, parameters), a Gate, "
                "'output' or 'input', "
                f"got {type(member).__name__} {member!r}"
            )
        try:
            spec = lookup(member)
        except ValueError as err:
            raise ValueError(f"{_FN}: module {name!r} has member {member!r}: {err}") from None
        on, firing = _rule_of(spec)
        own = member_of(module) == spec.name
        try:
            if given is not None:
                params = spec.bind(given)
            else:
                params = spec.bind(_module_params(module, spec) if own else {})
        except ParameterError as err:
            raise ValueError(f"{_FN}: module {name!r} ({spec.name}): {err}") from None
        above = float(firing.above(params))
        nonnegative = on == "output" and above == 0 and spec.output_range.startswith("[0")
        return _Layer(module, spec.name, on, above, None, nonnegative and own)

    @classmethod
    def _select(cls, model: nn.Module, modules: object) -> dict[str, _Layer]:
        named = dict(model.named_modules())
        by_id = {id(m): n for n, m in named.items()}
        if modules is None:
            chosen: dict[str, object] = dict.fromkeys(find_activations(model))
        elif isinstance(modules, str | nn.Module):
            raise TypeError(
                f"{_FN}: modules must be an iterable or mapping of names/modules, got "
                f"{type(modules).__name__} {modules!r}"
            )
        else:
            if isinstance(modules, Mapping):
                items = list(modules.items())
            elif isinstance(modules, Iterable):
                items = [(m, None) for m in modules]
            else:
                raise TypeError(
                    f"{_FN}: modules must be an iterable or mapping of names/modules, got "
                    f"{type(modules).__name__}"
                )
            chosen = {}
            for key, rule in items:
                if isinstance(key, nn.Module):
                    if id(key) not in by_id:
                        raise ValueError(f"{_FN}: modules contains {key!r}, not part of model")
                    name = by_id[id(key)]
                elif isinstance(key, str):
                    if key not in named:
                        raise ValueError(f"{_FN}: modules names {key!r}, not a module of model")
                    name = key
                else:
                    raise TypeError(
                        f"{_FN}: modules entries must be str or nn.Module, got "
                        f"{type(key).__name__} {key!r}"
                    )
                chosen[name] = rule
        return {name: cls._layer(name, named[name], rule) for name, rule in chosen.items()}

    def _dim_specs(self, channel_dim: object) -> dict[str, int | str]:
        if isinstance(channel_dim, Mapping):
            for key in channel_dim:
                if key not in self._layers:
                    raise ValueError(
                        f"{_FN}: channel_dim names {key!r}, which is not a monitored layer"
                    )
            return {
                n: _check_dim_spec(channel_dim.get(n, "auto"), f"channel_dim[{n!r}]")
                for n in self._layers
            }
        spec = _check_dim_spec(channel_dim, "channel_dim")
        return dict.fromkeys(self._layers, spec)

    @property
    def attached(self) -> bool:
        """Whether the hooks are on the model now."""
        return bool(self._handles)

    def start(self) -> DeadUnitMonitor:
        """Attach the hooks (entering a ``with`` block does it too); returns the monitor."""
        if self._handles:
            return self
        if self.batches == "forward":
            self._handles.append(self.model.register_forward_pre_hook(self._forward_batch))
        for name, layer in self._layers.items():
            if layer.on == "input":
                self._handles.append(layer.module.register_forward_pre_hook(self._input_hook(name)))
            self._handles.append(layer.module.register_forward_hook(self._output_hook(name)))
        return self

    def close(self) -> None:
        """Remove every hook; statistics stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> DeadUnitMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget every count (hooks stay as they are; the sampling phase is kept)."""
        self._sites = {}
        self._calls_this_pass = dict.fromkeys(self._layers, 0)
        self._max_calls_per_pass = dict.fromkeys(self._layers, 0)
        self._sampled = 0

    # ------------------------------------------------------------------ batches

    @property
    def batches_counted(self) -> int:
        """Batches counted since the last :meth:`reset`."""
        return self._sampled

    @property
    def counting(self) -> bool:
        """Whether the current batch is being counted."""
        return self._counting

    def next_batch(self) -> bool:
        """Begin a batch; returns whether it is counted (one in ``every``)."""
        self._seen += 1
        self._counting = (self._seen - 1) % self.every == 0
        if self._counting:
            self._sampled += 1
        for name in self._calls_this_pass:
            self._calls_this_pass[name] = 0
        return self._counting

    def pause(self) -> None:
        """Count nothing until the next :meth:`next_batch`."""
        self._counting = False

    # ------------------------------------------------------------------ hooks

    def _forward_batch(self, _module: nn.Module, _args: tuple[Any, ...]) -> None:
        self.next_batch()

    def _site(self, name: str, call: int) -> _Site:
        key = (name, call if self.per_call else 0)
        site = self._sites.get(key)
        if site is None:
            row = f"{name}[{call}]" if self.per_call else name
            site = self._sites[key] = _Site(row, self._dims[name])
        return site

    def _add(self, site: _Site, t: torch.Tensor, layer: _Layer, fire: bool, moments: bool) -> None:
        """Add ``t``'s per-unit firings (``fire``) and its moments (``moments``)."""
        if t.is_complex():
            raise TypeError(f"{_FN}: complex activations have no firing rule, got {t.dtype}")
        dim = _unit_dim(t.ndim, site.dim, site.name) if t.ndim else 0
        if layer.half is not None:
            if t.shape[dim] % 2:
                raise ValueError(
                    f"{_FN}: layer {site.name!r} is a fused gate of {t.shape[dim]} units, "
                    "which do not split in halves"
                )
            t = t.chunk(2, dim)[layer.half]
        if fire:
            units = t.shape[dim] if t.ndim else 1
            if site.fired is not None and units != site.units:
                raise ValueError(
                    f"{_FN}: layer {site.name!r} had {site.units} units and now has {units} "
                    f"(shape {tuple(t.shape)}, channel_dim={site.dim!r}); monitor differently "
                    "shaped calls with per_call=True or a different channel_dim"
                )
        if moments and site.shift is None:
            finite = t[torch.isfinite(t)] if t.is_floating_point() else t.float()
            site.shift = float(finite.double().mean()) if finite.numel() else 0.0
        fired, acc = scan(
            t,
            dim,
            layer.above if fire else None,
            moments,
            site.shift if moments else 0.0,
            zeros=not layer.nonnegative,
        )
        if fired is not None:
            if site.fired is None:
                site.fired, site.units = fired, fired.numel()
            else:
                site.fired += fired.to(site.fired.device)
            site.positions += t.numel() // max(site.units, 1)
        if acc is not None:
            site.acc = acc if site.acc is None else merge(site.acc, acc)

    def _input_hook(self, name: str):
        layer = self._layers[name]

        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            if not self._counting:
                return
            if not args or not isinstance(args[0], torch.Tensor):
                raise TypeError(f"{_FN}: layer {name!r} was called without a tensor input")
            site = self._site(name, self._calls_this_pass[name])
            with torch.no_grad():
                self._add(site, args[0].detach(), layer, fire=True, moments=False)

        return hook

    def _output_hook(self, name: str):
        layer = self._layers[name]

        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            if not self._counting:
                return
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"{_FN}: layer {name!r} returned {type(output).__name__}, not a tensor"
                )
            call = self._calls_this_pass[name]
            site = self._site(name, call)
            with torch.no_grad():
                self._add(site, output.detach(), layer, layer.on == "output", True)
            site.calls += 1
            self._calls_this_pass[name] = call + 1
            self._max_calls_per_pass[name] = max(self._max_calls_per_pass[name], call + 1)

        return hook

    # ------------------------------------------------------------------ results

    def _ordered_sites(self) -> list[tuple[str, str, _Site | None]]:
        """(layer name, row name, site) in model order; unseen layers have site ``None``."""
        by_layer: dict[str, list[tuple[int, _Site]]] = {name: [] for name in self._layers}
        for (name, call), site in self._sites.items():
            by_layer[name].append((call, site))
        rows: list[tuple[str, str, _Site | None]] = []
        for name, sites in by_layer.items():
            if not sites:
                rows.append((name, name, None))
            rows.extend((name, site.name, site) for _call, site in sorted(sites, key=_first))
        return rows

    def firing_rates(self) -> dict[str, torch.Tensor]:
        """Row name → per-unit firing rate (float64, on the CPU) for every layer seen."""
        rates = {}
        for _layer, key, site in self._ordered_sites():
            if site is not None and site.fired is not None:
                rates[key] = site.fired.double().cpu() / max(site.positions, 1)
        return rates

    def dead_units(self) -> dict[str, list[int]]:
        """Row name → indices of the units that never fired, for every layer seen.

        Example:
            >>> import torch
            >>> from torch import nn
            >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
            >>> with torch.no_grad():
            ...     _ = m[0].bias.copy_(torch.tensor([-1e3, 0.0, -1e3]))
            >>> with DeadUnitMonitor(m) as mon:
            ...     _ = m(torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]))
            >>> mon.dead_units()
            {'1': [0, 2]}
        """
        return {
            key: torch.nonzero(site.fired == 0).flatten().tolist()
            for _layer, key, site in self._ordered_sites()
            if site is not None and site.fired is not None
        }

    def report(self) -> list[LayerStats]:
        """One :class:`LayerStats` per monitored layer (per call position with ``per_call``)."""
        rows = []
        for name, key, site in self._ordered_sites():
            layer = self._layers[name]
            rule = f"{layer.on} > {layer.above:.4g}"
            if site is None or site.fired is None or site.acc is None:
                rows.append(LayerStats(key, layer.member, rule, 0, 0, 0, 0, 0, math.nan, math.nan))
                continue
            fired = site.fired.cpu()
            rates = fired.double() / max(site.positions, 1)
            m = Moments.from_sums(site.acc, site.shift or 0.0)
            elements = m.count + m.nan
            nonzero = int(fired.sum()) if layer.nonnegative else m.nonzero
            rows.append(
                LayerStats(
                    name=key,
                    member=layer.member,
                    rule=rule,
                    units=site.units,
                    calls=site.calls,
                    inputs_per_unit=site.positions,
                    dead=int((fired == 0).sum()),
                    rare=int(((fired > 0) & (rates < self.rare_threshold)).sum()),
                    sparsity=(elements - nonzero) / elements if elements else 0.0,
                    mean_firing_rate=float(rates.mean()) if site.units else math.nan,
                    mean=m.mean,
                    std=m.std,
                    max_abs=m.max_abs,
                    kurtosis=m.kurtosis,
                    nan=m.nan,
                )
            )
        return rows

    def to_dict(self, *, units: bool = False) -> dict[str, Any]:
        """The report as a JSON-ready dict; ``units=True`` adds each row's per-unit firing
        rates (``"firing_rates"``).

        Example:
            >>> import json, torch
            >>> from torch import nn
            >>> m = nn.Sequential(nn.Linear(2, 2), nn.ELU())
            >>> with DeadUnitMonitor(m) as mon:
            ...     _ = m(torch.zeros(1, 2))
            >>> sorted(json.loads(json.dumps(mon.to_dict())))
            ['batches', 'layers', 'rare_threshold']
        """
        rows = [row.to_dict() for row in self.report()]
        if units:
            rates = self.firing_rates()
            for row in rows:
                row["firing_rates"] = rates[row["name"]].tolist() if row["name"] in rates else []
        return {"rare_threshold": self.rare_threshold, "batches": self._sampled, "layers": rows}

    def to_json(self, **kwargs: Any) -> str:
        """:meth:`to_dict` serialised with :func:`json.dumps` (``kwargs`` are passed on)."""
        return json.dumps(self.to_dict(), **kwargs)

    def table(self, kind: Literal["rich", "text"] = "rich") -> Any:
        """The report as a :class:`rich.table.Table` (``kind="rich"``) or a plain string.

        Nothing is printed; print the result yourself (``rich.print(monitor.table())``).

        Example:
            >>> import torch
            >>> from torch import nn
            >>> m = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
            >>> with DeadUnitMonitor(m) as mon:
            ...     _ = m(torch.ones(3, 2))
            >>> print(mon.table("text").splitlines()[0][:48])
            layer  member  units  dead  rare  sparsity  mean
        """
        header = (
            "layer",
            "member",
            "units",
            "dead",
            "rare",
            "sparsity",
            "mean rate",
            "mean",
            "std",
            "max |x|",
            "kurtosis",
            "calls",
        )

        def num(value: float, fmt: str = ".3f") -> str:
            return "-" if math.isnan(value) else format(value, fmt)

        body = [
            (
                r.name or "(model)",
                r.member,
                str(r.units),
                str(r.dead),
                str(r.rare),
                num(r.sparsity),
                num(r.mean_firing_rate),
                num(r.mean, ".3g"),
                num(r.std, ".3g"),
                num(r.max_abs, ".3g") if r.units else "-",
                num(r.kurtosis, ".3g"),
                str(r.calls),
            )
            for r in self.report()
        ]
        if kind == "text":
            widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
            lines = [
                "  ".join(
                    cell.ljust(w) if i < 2 else cell.rjust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                ).rstrip()
                for row in [header, *body]
            ]
            return "\n".join(lines)
        if kind != "rich":
            raise ValueError(f"DeadUnitMonitor.table: kind must be 'rich' or 'text', got {kind!r}")
        from rich.table import Table

        table = Table(title=f"Dead units (rare < {self.rare_threshold:.1%})")
        for i, col in enumerate(header):
            table.add_column(col, justify="left" if i < 2 else "right")
        for row in body:
            table.add_row(*row)
        return table

    # ------------------------------------------------------------------ revival

    def _producers(self, name: str) -> tuple[list[nn.Module], str]:
        """Modules whose per-unit parameters feed layer ``name``, or a reason why none."""
        leaves = [(n, m) for n, m in self.model.named_modules() if not any(m.children())]
        names = [n for n, _ in leaves]
        if name not in names:
            return [], "not a leaf module"
        chain: list[nn.Module] = []
        for _n, module in reversed(leaves[: names.index(name)]):
            if isinstance(module, _WEIGHTED):
                return [module, *reversed(chain)], ""
            if isinstance(module, _NORMS):
                chain.append(module)
            elif not isinstance(module, _PASS_THROUGH):
                break
        return [], "no Linear/Conv layer found directly before it (pass producers=...)"

    def reinitialize_dead(
        self,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        init: str = "he_normal",
        seed: int | torch.Generator = 0,
        producers: Mapping[str, str | Sequence[str]] | None = None,
    ) -> Revival:
        r"""Re-draw the incoming weights and bias of every dead unit; reset their optimizer state.

        For each layer with dead units the monitor finds the ``nn.Linear``/``nn.ConvNd`` that
        feeds it — the nearest preceding leaf module in registration order, looking through
        normalisation (BatchNorm, GroupNorm, InstanceNorm), dropout and pooling layers — or
        takes ``producers[name]`` (one module name or a sequence of them). For dead unit ``j``
        it re-draws row ``j`` of the weight with ``init`` (bias 0 for the symmetric inits, the
        joint row draw for ``"rai"``), resets channel ``j`` of the normalisation layers in
        between (weight 1, bias 0, running mean 0, running variance 1) and zeroes row ``j`` of
        every optimizer state tensor shaped like the parameter (momentum, Adam moments).
        Layers called more than once per forward pass, or without a producer, are skipped and
        listed with the reason. Afterwards all counts are reset, since they describe the old
        weights.

        Args:
            optimizer: the optimizer whose per-parameter state should forget the old units.
            init: one of ``"he_normal"``, ``"he_uniform"``, ``"lecun_normal"``,
                ``"glorot_uniform"``, ``"rai"``.
            seed: ``int`` seed or :class:`torch.Generator` for the new draws.
            producers: explicit row name (as in the report) → producer module name(s).

        Example:
            >>> import torch
            >>> from torch import nn
            >>> m = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
            >>> with torch.no_grad():
            ...     _ = m[0].bias.copy_(torch.tensor([-1e3, 0.0, 0.0]))
            >>> mon = DeadUnitMonitor(m).start()
            >>> _ = m(torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]))
            >>> mon.reinitialize_dead(seed=0).touched
            {'1': 1}
            >>> m[0].bias.detach()[0].item()
            0.0
        """
        fn = "DeadUnitMonitor.reinitialize_dead"
        _check_init(init, fn)
        gen = _as_generator(seed, fn)
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"{fn}: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        named = dict(self.model.named_modules())
        touched: dict[str, int] = {}
        skipped: dict[str, str] = {}
        dead_by_row = self.dead_units()
        for name, key, _site in self._ordered_sites():
            dead = dead_by_row.get(key)
            if not dead:
                continue
            if producers is not None and key in producers:
                spec = producers[key]
                names_ = [spec] if isinstance(spec, str) else list(spec)
                unknown = [n for n in names_ if n not in named]
                if unknown:
                    raise ValueError(f"{fn}: producers[{key!r}] names unknown modules {unknown}")
                chain, reason = [named[n] for n in names_], ""
            elif self.per_call or self._max_calls_per_pass.get(name, 0) > 1:
                chain, reason = [], "called more than once per forward pass (pass producers=...)"
            else:
                chain, reason = self._producers(name)
            if not chain:
                skipped[key] = reason
                continue
            reason = _revive(chain, dead, init, gen, optimizer)
            if reason:
                skipped[key] = reason
            else:
                touched[key] = len(dead)
        self.reset()
        return Revival(touched, skipped)


def _revive(
    chain: list[nn.Module],
    units: list[int],
    init: str,
    gen: torch.Generator,
    optimizer: torch.optim.Optimizer | None,
) -> str:
    """Re-draw ``units`` in every module of ``chain``; return a reason if that is impossible."""
    for module in chain:
        if isinstance(module, _WEIGHTED):
            if module.weight.shape[0] <= max(units):
                return f"{type(module).__name__} has {module.weight.shape[0]} outputs, too few"
        elif isinstance(module, _NORMS):
            size = module.num_channels if isinstance(module, nn.GroupNorm) else module.num_features
            if size <= max(units):
                return f"{type(module).__name__} has {size} channels, too few"
        else:
            return f"cannot re-draw units of {type(module).__name__}"
    index = torch.tensor(units, dtype=torch.long)
    for module in chain:
        params: list[torch.Tensor] = []
        with torch.no_grad():
            if isinstance(module, _WEIGHTED):
                weight = module.weight
                fan_in = weight[0].numel()
                fan_out = weight.shape[0] * (weight[0].numel() // weight.shape[1])
                bias = module.bias
                w, b = sample_layer(
                    init,
                    len(units),
                    fan_in,
                    generator=gen,
                    fan_out=fan_out,
                    bias="zeros" if bias is not None else None,
                )
                idx = index.to(weight.device)
                weight[idx] = w.reshape(len(units), *weight.shape[1:]).to(weight)
                params.append(weight)
                if bias is not None and b is not None:
                    bias[idx] = b.to(bias)
                    params.append(bias)
            else:
                if getattr(module, "weight", None) is not None:
                    module.weight[index.to(module.weight.device)] = 1.0
                    params.append(module.weight)
                if getattr(module, "bias", None) is not None:
                    module.bias[index.to(module.bias.device)] = 0.0
                    params.append(module.bias)
                if getattr(module, "running_mean", None) is not None:
                    module.running_mean[index.to(module.running_mean.device)] = 0.0
                    module.running_var[index.to(module.running_var.device)] = 1.0
        if optimizer is not None:
            for param in params:
                state = optimizer.state.get(param, {})
                for value in state.values():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        value[index.to(value.device)] = 0.0
    return ""
