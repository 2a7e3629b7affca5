r"""Dead-unit and sparsity monitor for any PyTorch model.

:class:`DeadUnitMonitor` hooks every activation module of a model — relukit's own modules (they
carry a ``relukit_member`` class attribute) and ``torch.nn``'s — and counts, streaming, how
often each unit *fires*. A unit is one output feature: one channel of an ``(N, C, H, W)`` map,
one feature of an ``(N, F)`` batch or of an ``(N, T, C)`` sequence.

Firing rule (:data:`FIRING_RULES`, the one table to extend when a member is added):

======================================================  ========  ============================
members                                                 rule      unit fires where
======================================================  ========  ============================
relu, relu6, squared_relu, crelu, maxout                output    :math:`y > 0`
leaky_relu, prelu, rrelu, elu, selu, celu, gelu, silu,   input     :math:`x > 0`
mish, hardtanh, general_relu, softplus, sigmoid, tanh
======================================================  ========  ============================

The output rule serves members whose output is exactly zero on the inactive side. Members
whose output is negative there (leaky_relu, elu, …) or never exactly zero (softplus, sigmoid)
would never look dead by their output, so they fire on a positive input, the side on which
their derivative is the large one. For maxout, whose gradient never stops, "dead" means only
"never positive".

Per layer the monitor reports ``units``, ``dead`` (never fired over everything it saw),
``rare`` (fired, but on fewer than ``rare_threshold`` of its inputs; dead units are not counted
again), ``sparsity`` (fraction of exact zeros in the module's outputs) and the mean firing
rate. A unit's inputs are all the positions it is evaluated at: ``N·H·W`` per batch for a
convolution channel, ``N·T`` for a sequence feature.

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

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import nn

from relukit.diagnostics.init import _as_generator, _check_init, sample_layer

__all__ = [
    "FIRING_RULES",
    "TORCH_MEMBERS",
    "DeadUnitMonitor",
    "LayerStats",
    "Revival",
    "find_activations",
    "member_of",
]

Rule = Literal["output", "input"]

FIRING_RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "relu": "output",
        "relu6": "output",
        "squared_relu": "output",
        "crelu": "output",
        "maxout": "output",
        "leaky_relu": "input",
        "prelu": "input",
        "rrelu": "input",
        "elu": "input",
        "selu": "input",
        "celu": "input",
        "gelu": "input",
        "silu": "input",
        "mish": "input",
        "hardtanh": "input",
        "general_relu": "input",
        "softplus": "input",
        "sigmoid": "input",
        "tanh": "input",
    }
)
"""Registry member name → firing rule: ``"output"`` (fires where output > 0) or ``"input"``
(fires where input > 0)."""

TORCH_MEMBERS: Mapping[type[nn.Module], str] = MappingProxyType(
    {
        nn.ReLU: "relu",
        nn.ReLU6: "relu6",
        nn.LeakyReLU: "leaky_relu",
        nn.PReLU: "prelu",
        nn.RReLU: "rrelu",
        nn.ELU: "elu",
        nn.SELU: "selu",
        nn.CELU: "celu",
        nn.GELU: "gelu",
        nn.SiLU: "silu",
        nn.Mish: "mish",
        nn.Hardtanh: "hardtanh",
        nn.Softplus: "softplus",
        nn.Sigmoid: "sigmoid",
        nn.Tanh: "tanh",
    }
)
"""``torch.nn`` activation class → registry member name (subclasses are matched too)."""

_FN = "DeadUnitMonitor"


def member_of(module: nn.Module) -> str | None:
    """The registry member a module computes, or ``None`` if it is not a known activation.

    A ``relukit_member`` string attribute wins; otherwise the nearest ``torch.nn`` class of
    :data:`TORCH_MEMBERS` in the module's MRO decides (so ``nn.ReLU6`` is ``"relu6"``, not
    ``"hardtanh"``).

    Example:
        >>> from torch import nn
        >>> member_of(nn.ReLU6()), member_of(nn.Linear(1, 1))
        ('relu6', None)
    """
    member = getattr(module, "relukit_member", None)
    if isinstance(member, str):
        return member
    for cls in type(module).__mro__:
        if cls in TORCH_MEMBERS:
            return TORCH_MEMBERS[cls]
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


@dataclass(frozen=True)
class LayerStats:
    """One row of the monitor's report.

    Attributes:
        name: qualified module name (``"name[k]"`` for the k-th call when ``per_call=True``).
        member: registry member name (``"custom"`` for a module with an explicit rule).
        rule: ``"output"`` or ``"input"``, see :data:`FIRING_RULES`.
        units: number of units (0 if the module was never called).
        calls: number of forward calls seen.
        inputs_per_unit: positions each unit was evaluated at, summed over calls.
        dead: units that never fired.
        rare: units that fired, but on fewer than ``rare_threshold`` of their inputs.
        sparsity: fraction of exact zeros in the outputs (``nan`` if never called).
        mean_firing_rate: firing rate averaged over units (``nan`` if never called).
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

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``nan`` becomes ``None``)."""
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
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

    __slots__ = ("calls", "dim", "elements", "fired", "name", "nonzero", "positions", "units")

    def __init__(self, name: str, dim: int | str) -> None:
        self.name = name
        self.dim = dim
        self.units: int = 0
        self.fired: torch.Tensor | None = None  # float64 (exact integers), one per unit
        self.positions: int = 0  # inputs per unit
        self.nonzero: torch.Tensor | None = None  # float64 scalar, non-zero outputs
        self.elements: int = 0  # output elements seen
        self.calls: int = 0


_NONNEGATIVE = frozenset({"relu", "relu6", "squared_relu", "crelu"})
"""Output-rule members whose output is never negative: a shortcut for the counting, not a
rule (a member missing here is counted by the general path, just as exactly)."""

_CHUNK = 1 << 18  # elements per scratch block on the CPU: small enough to stay in cache
_FLOAT32_EXACT = 1 << 24  # float32 adds integers exactly up to here


def _count(
    t: torch.Tensor, dim: int, positive: bool, nonzero: bool, nonnegative: bool = False
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-unit counts of ``t > 0`` along ``dim`` and the total count of ``t != 0``.

    NaN counts as neither. ``nonnegative`` promises ``t >= 0`` (or NaN), so that the positive
    count is also the non-zero count and one reduction gives both. On the CPU the work runs
    over blocks of at most ``_CHUNK`` elements: one small scratch tensor per block instead of
    an activation-sized one keeps the hook's memory traffic in cache. Block counts are exact
    (float32 up to 2**24 elements, float64 beyond) and the totals add in float64.
    """
    if t.is_complex():
        raise TypeError(f"{_FN}: complex activations have no firing rule, got {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    units = t.shape[dim]
    outer = math.prod(t.shape[:dim])
    inner = math.prod(t.shape[dim + 1 :])
    view = t.reshape(outer, units, inner)
    if t.device.type == "cpu":
        rows = max(1, _CHUNK // max(units * inner, 1))
        cols = inner if units * inner <= _CHUNK else max(1, _CHUNK // max(units, 1))
    else:  # accelerators: one block, fewer kernel launches
        rows, cols = max(outer, 1), max(inner, 1)
    acc = torch.float32 if rows * units * cols <= _FLOAT32_EXACT else torch.float64
    sums: list[torch.Tensor] = []  # per block: positives - negatives, or positives
    counts: list[torch.Tensor] = []  # per block: positives + negatives (non-zeros)
    for i in range(0, outer, rows):
        for j in range(0, inner, cols):
            sign = torch.sign(view[i : i + rows, :, j : j + cols])  # -1, 0, 1 or NaN
            if positive and nonnegative:
                sums.append(torch.nansum(sign, dim=(0, 2), dtype=acc))  # sign is 0, 1 or NaN
            elif positive and nonzero:
                sums.append(torch.nansum(sign, dim=(0, 2), dtype=acc))
                counts.append(torch.nansum(sign.abs_(), dim=(0, 2), dtype=acc))
            elif positive:
                sums.append(torch.nansum(sign.clamp_(min=0), dim=(0, 2), dtype=acc))
            else:
                counts.append(torch.nansum(sign.abs_(), dtype=acc))
    pos = nz = None
    if nonzero and not (positive and nonnegative):
        count = (
            torch.stack(counts).sum(0, dtype=torch.float64)
            if counts
            else torch.zeros(units, dtype=torch.float64, device=t.device)
        )
        nz = count.sum()
    if positive:
        pos = (
            torch.stack(sums).sum(0, dtype=torch.float64)
            if sums
            else torch.zeros(units, dtype=torch.float64, device=t.device)
        )
        if nonzero and nonnegative:
            nz = pos.sum()
        elif nonzero:
            pos = (pos + count) / 2
    return pos, nz


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
    r"""Count dead, rarely firing and sparse units of a model, streaming, through forward hooks.

    The hooks are attached when the monitor is created and removed by :meth:`close` or on
    leaving a ``with`` block; the statistics stay readable afterwards. Memory is O(units): per
    unit one counter, per layer two more; no activation is stored. Counts are exact: they are
    summed in float32 over cache-sized blocks and kept in float64 (exact to 2**53). A NaN
    counts as not firing and, in the sparsity, as a zero. The counters live on the
    activations' device and are read only when a report is asked for, so monitoring adds no
    host-device synchronisation. The hooks work under ``torch.no_grad()`` and during training
    and never touch the autograd graph.

    A module called several times per forward pass (a shared ``nn.ReLU`` or a recurrent
    cell) is one layer whose counts add over all calls; its units must agree in number. With
    ``per_call=True`` each call position within a forward pass of ``model`` is a separate row,
    named ``"name[k]"`` — right for one ``nn.ReLU`` reused after different layers. Activations
    applied functionally (``torch.relu(x)`` inside ``forward``) have no module and cannot be
    hooked; wrap them in modules or convert the model first.

    Args:
        model: any ``torch.nn.Module``.
        channel_dim: the dimension that indexes units. ``"auto"`` (default): ``1`` for ``(N, F)``
            and for ``(N, C, *spatial)`` maps with 4 or more dimensions, ``-1`` for 3-d
            ``(N, T, C)`` sequences, ``0`` for a 1-d tensor. Conv1d maps ``(N, C, L)`` need
            ``channel_dim=1``. An int applies to every layer; a mapping from layer name to int
            or ``"auto"`` sets it per layer (unlisted layers use ``"auto"``).
        modules: ``None`` to monitor every activation :func:`find_activations` finds; otherwise
            exactly the modules named: an iterable of qualified names or module objects, or a
            mapping from those to a firing rule (``"output"``/``"input"``) or member name,
            which lets any module be monitored.
        rare_threshold: firing rate below which a live unit counts as rare (default 1 %).
        per_call: report each call position of a shared module separately.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(288, 2))
        >>> monitor = DeadUnitMonitor(model)
        >>> _ = model(torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)))
        >>> stats = monitor.report()[0]
        >>> stats.units, stats.inputs_per_unit, 0 < stats.sparsity < 1
        (8, 144, True)
        >>> monitor.close()
    """

    def __init__(
        self,
        model: nn.Module,
        channel_dim: int | Literal["auto"] | Mapping[str, int | Literal["auto"]] = "auto",
        modules: Iterable[str | nn.Module] | Mapping[str | nn.Module, str] | None = None,
        *,
        rare_threshold: float = 0.01,
        per_call: bool = False,
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
        self.model = model
        self.rare_threshold = float(rare_threshold)
        self.per_call = per_call
        self._layers = self._select(model, modules)  # name -> (module, member, rule)
        self._dims = self._dim_specs(channel_dim)
        self._sites: dict[tuple[str, int], _Site] = {}
        self._calls_this_pass: dict[str, int] = {}
        self._max_calls_per_pass: dict[str, int] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.reset()
        self.attach()

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _select(model: nn.Module, modules: object) -> dict[str, tuple[nn.Module, str, Rule]]:
        named = dict(model.named_modules())
        by_id = {id(m): n for n, m in named.items()}
        if modules is None:
            chosen: dict[str, str | None] = dict.fromkeys(find_activations(model))
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
        layers: dict[str, tuple[nn.Module, str, Rule]] = {}
        for name, rule in chosen.items():
            module = named[name]
            if rule is None:
                member = member_of(module)
                if member is None:
                    raise ValueError(
                        f"{_FN}: module {name!r} ({type(module).__name__}) is not a known "
                        f"activation; give its firing rule, e.g. modules={{{name!r}: 'output'}}"
                    )
            elif rule in ("output", "input"):
                member = member_of(module) or "custom"
                layers[name] = (module, member, rule)  # type: ignore[assignment]
                continue
            else:
                member = rule
            if not isinstance(member, str) or member not in FIRING_RULES:
                raise ValueError(
                    f"{_FN}: module {name!r} has member {member!r}, which has no firing rule in "
                    f"FIRING_RULES; add it there or pass modules={{{name!r}: 'output'}}"
                )
            layers[name] = (module, member, FIRING_RULES[member])
        return layers

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

    def attach(self) -> DeadUnitMonitor:
        """Attach the hooks (done on creation; needed again only after :meth:`close`)."""
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._new_pass))
        for name, (module, member, rule) in self._layers.items():
            if rule == "input":
                self._handles.append(module.register_forward_pre_hook(self._input_hook(name)))
            nonnegative = (
                rule == "output" and member in _NONNEGATIVE and member_of(module) == member
            )
            hook = self._output_hook(name, rule, nonnegative)
            self._handles.append(module.register_forward_hook(hook))
        return self

    def close(self) -> None:
        """Remove every hook; statistics stay readable."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> DeadUnitMonitor:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self) -> None:
        """Forget every count (hooks stay attached)."""
        self._sites = {}
        self._calls_this_pass = dict.fromkeys(self._layers, 0)
        self._max_calls_per_pass = dict.fromkeys(self._layers, 0)

    # ------------------------------------------------------------------ hooks

    def _new_pass(self, _module: nn.Module, _args: tuple[Any, ...]) -> None:
        for name in self._calls_this_pass:
            self._calls_this_pass[name] = 0

    def _site(self, name: str, call: int) -> _Site:
        key = (name, call if self.per_call else 0)
        site = self._sites.get(key)
        if site is None:
            row = f"{name}[{call}]" if self.per_call else name
            site = self._sites[key] = _Site(row, self._dims[name])
        return site

    def _add(
        self, site: _Site, t: torch.Tensor, firing: bool, zeros: bool, nonnegative: bool = False
    ) -> None:
        """Add ``t``'s per-unit positive counts (``firing``) and non-zero count (``zeros``)."""
        if firing:
            dim = _unit_dim(t.ndim, site.dim, site.name)
            units = t.shape[dim]
            if site.fired is not None and units != site.units:
                raise ValueError(
                    f"{_FN}: layer {site.name!r} had {site.units} units and now has {units} "
                    f"(shape {tuple(t.shape)}, channel_dim={site.dim!r}); monitor differently "
                    "shaped calls with per_call=True or a different channel_dim"
                )
        else:
            dim = max(t.ndim - 1, 0)
        flat = t.reshape(1) if t.ndim == 0 else t
        pos, nonzero = _count(flat, dim, firing, zeros, nonnegative)
        if pos is not None:
            if site.fired is None:
                site.fired, site.units = pos, t.shape[dim]
            else:
                site.fired += pos.to(site.fired.device)
            site.positions += t.numel() // max(t.shape[dim], 1)
        if nonzero is not None:
            site.nonzero = nonzero if site.nonzero is None else site.nonzero + nonzero
            site.elements += t.numel()

    def _input_hook(self, name: str):
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            if not args or not isinstance(args[0], torch.Tensor):
                raise TypeError(f"{_FN}: layer {name!r} was called without a tensor input")
            site = self._site(name, self._calls_this_pass[name])
            with torch.no_grad():
                self._add(site, args[0].detach(), firing=True, zeros=False)

        return hook

    def _output_hook(self, name: str, rule: Rule, nonnegative: bool):
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"{_FN}: layer {name!r} returned {type(output).__name__}, not a tensor"
                )
            call = self._calls_this_pass[name]
            site = self._site(name, call)
            with torch.no_grad():
                self._add(site, output.detach(), rule == "output", True, nonnegative)
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
            _module, member, rule = self._layers[name]
            if site is None or site.fired is None:
                rows.append(LayerStats(key, member, rule, 0, 0, 0, 0, 0, math.nan, math.nan))
                continue
            fired = site.fired.cpu()
            rates = fired.double() / max(site.positions, 1)
            nonzero = int(site.nonzero.item()) if site.nonzero is not None else 0
            rows.append(
                LayerStats(
                    name=key,
                    member=member,
                    rule=rule,
                    units=site.units,
                    calls=site.calls,
                    inputs_per_unit=site.positions,
                    dead=int((fired == 0).sum()),
                    rare=int(((fired > 0) & (rates < self.rare_threshold)).sum()),
                    sparsity=(site.elements - nonzero) / site.elements if site.elements else 0.0,
                    mean_firing_rate=float(rates.mean()) if site.units else math.nan,
                )
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict.

        Example:
            >>> import json, torch
            >>> from torch import nn
            >>> m = nn.Sequential(nn.Linear(2, 2), nn.ELU())
            >>> with DeadUnitMonitor(m) as mon:
            ...     _ = m(torch.zeros(1, 2))
            >>> sorted(json.loads(json.dumps(mon.to_dict())))
            ['layers', 'rare_threshold']
        """
        return {
            "rare_threshold": self.rare_threshold,
            "layers": [row.to_dict() for row in self.report()],
        }

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
            >>> print(mon.table("text").splitlines()[0])
            layer  member  units  dead  rare  sparsity  mean rate  calls
        """
        header = ("layer", "member", "units", "dead", "rare", "sparsity", "mean rate", "calls")
        body = [
            (
                r.name or "(model)",
                r.member,
                str(r.units),
                str(r.dead),
                str(r.rare),
                "-" if math.isnan(r.sparsity) else f"{r.sparsity:.3f}",
                "-" if math.isnan(r.mean_firing_rate) else f"{r.mean_firing_rate:.3f}",
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
            >>> mon = DeadUnitMonitor(m)
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
