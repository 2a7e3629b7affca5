"""What every integration shares: windows of sampled batches, metrics, end-of-training work.

:class:`TrainingMonitor` drives one :class:`~relukit.diagnostics.DeadUnitMonitor` in manual
batch mode. A framework callback tells it where training batches begin and end; it counts one
batch in ``every`` and, after every ``log_every`` batches, closes a *window*: it turns the
counts into scalar metrics (and per-unit firing rates for histograms), keeps a short summary
for the figures, and starts a new window at the next counted batch. So "dead" in a logged
metric means "never fired during that window". At the end of training it closes the last
window and can write the JSON report, the figure and revive the dead units of the last window.

Metric names, per monitored layer ``L``: ``activations/L/{dead, dead_fraction, rare,
firing_rate, sparsity, mean, std, max_abs, kurtosis}``, plus ``activations/dead_fraction``
over all layers.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from relukit.integrations.core import TrainingMonitor
    >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
    >>> tm = TrainingMonitor(every=1, log_every=2)
    >>> tm.begin(model)
    >>> logged = []
    >>> for step in range(4):
    ...     tm.batch_start()
    ...     _ = model(torch.randn(3, 2))
    ...     window = tm.batch_end(step)
    ...     if window is not None:
    ...         logged.append(sorted(window.metrics)[:2])
    >>> logged[0]
    ['activations/1/dead', 'activations/1/dead_fraction']
    >>> tm.close()
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from relukit.diagnostics.monitor import DeadUnitMonitor, Gate, LayerStats, Revival, find_activations

__all__ = ["EndOfTraining", "TrainingMonitor", "Window"]

STATS = ("dead", "dead_fraction", "rare", "firing_rate", "sparsity", "mean", "std", "max_abs")
STATS += ("kurtosis",)


@dataclass(frozen=True)
class Window:
    """One closed window: its last step, the batches counted, metrics and per-unit rates."""

    step: int
    batches: int
    layers: list[LayerStats]
    metrics: dict[str, float]
    rates: dict[str, torch.Tensor]


@dataclass
class EndOfTraining:
    """What :meth:`TrainingMonitor.end` did: the last window and the files it wrote."""

    window: Window | None
    revival: Revival | None = None
    files: list[Path] = field(default_factory=list)


def _check_positive_int(value: object, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{owner}: {name} must be >= 1, got {value!r}")
    return value


class TrainingMonitor:
    """The framework-independent engine behind the ``ActivationMonitor`` callbacks.

    Args:
        every: count one training batch in ``every`` (default 10).
        log_every: batches per window; ``None`` lets the integration choose (the framework's
            own logging interval).
        modules: as :class:`~relukit.diagnostics.DeadUnitMonitor`'s ``modules`` (``None``:
            every activation module found, with the integration's extra classes).
        channel_dim: as :class:`~relukit.diagnostics.DeadUnitMonitor`.
        rare_threshold: as :class:`~relukit.diagnostics.DeadUnitMonitor`.
        histograms: also hand out per-unit firing rates for histogram logging.
        figures: write ``activation_stats.png`` at the end of training.
        report: write ``activation_stats.json`` (the last window with per-unit firing rates,
            and every window's layer summary) at the end of training.
        revive: re-draw the dead units of the last window at the end of training
            (:meth:`~relukit.diagnostics.DeadUnitMonitor.reinitialize_dead`), resetting their
            optimizer state.
        revive_init, seed: the ``init`` and ``seed`` of that re-draw.
    """

    owner = "ActivationMonitor"

    def __init__(
        self,
        *,
        every: int = 10,
        log_every: int | None = None,
        modules: Iterable[str | nn.Module] | Mapping[str | nn.Module, str | Gate] | None = None,
        channel_dim: Any = "auto",
        rare_threshold: float = 0.01,
        histograms: bool = True,
        figures: bool = False,
        report: bool = True,
        revive: bool = False,
        revive_init: str = "he_normal",
        seed: int = 0,
    ) -> None:
        self.every = _check_positive_int(every, "every", self.owner)
        self.log_every = (
            None if log_every is None else _check_positive_int(log_every, "log_every", self.owner)
        )
        for name, flag in (
            ("histograms", histograms),
            ("figures", figures),
            ("report", report),
            ("revive", revive),
        ):
            if not isinstance(flag, bool):
                raise TypeError(f"{self.owner}: {name} must be a bool, got {flag!r}")
        self.modules = modules
        self.channel_dim = channel_dim
        self.rare_threshold = rare_threshold
        self.histograms = histograms
        self.figures = figures
        self.report = report
        self.revive = revive
        self.revive_init = revive_init
        self.seed = seed
        self.monitor: DeadUnitMonitor | None = None
        self.windows: list[Window] = []
        self._batches = 0  # training batches seen in the current window
        self._stale = False  # the counts belong to a window already logged

    # ------------------------------------------------------------------ life cycle

    def begin(
        self,
        model: nn.Module,
        extra: Callable[[nn.Module], tuple[str, Mapping[str, Any]] | None] | None = None,
        log_every: int | None = None,
    ) -> None:
        """Hook ``model``. ``extra`` names the member of modules the registry cannot (a
        framework's own activation classes); ``log_every`` is the framework's interval."""
        if self.log_every is None:
            self.log_every = log_every or 50
        modules = self.modules
        if modules is None and extra is not None:
            found: dict[str, Any] = dict(find_activations(model))
            for name, module in model.named_modules():
                if name not in found and (named := extra(module)) is not None:
                    found[name] = named
            modules = found or None  # (none found: the monitor finds none again, and warns)
        if modules is not None and not isinstance(modules, Mapping):
            modules = list(modules)
        self.close()
        self.monitor = DeadUnitMonitor(
            model,
            self.channel_dim,
            modules,
            rare_threshold=self.rare_threshold,
            every=self.every,
            batches="manual",
        ).start()
        self.windows = []
        self._batches = 0
        self._stale = False

    def close(self) -> None:
        """Remove the hooks (the counts stay readable)."""
        if self.monitor is not None:
            self.monitor.close()

    def batch_start(self) -> None:
        """A training batch begins."""
        if self.monitor is None:
            return
        if self._stale:
            self.monitor.reset()
            self._stale = False
        self.monitor.next_batch()

    def batch_end(self, step: int) -> Window | None:
        """A training batch ended at ``step``; returns the window it closed, if it closed one."""
        if self.monitor is None:
            return None
        self.monitor.pause()
        self._batches += 1
        assert self.log_every is not None
        if self._batches >= self.log_every:
            return self._close_window(step)
        return None

    def _close_window(self, step: int) -> Window | None:
        assert self.monitor is not None
        self._batches = 0
        if self._stale or self.monitor.batches_counted == 0:
            return None
        layers = self.monitor.report()
        window = Window(
            step,
            self.monitor.batches_counted,
            layers,
            _metrics(layers),
            self.monitor.firing_rates(),
        )
        self.windows.append(window)
        self._stale = True
        return window

    def end(
        self, step: int, out_dir: str | os.PathLike[str] | None, optimizer: Any = None
    ) -> EndOfTraining:
        """Close the last window, then write the report and figure and revive, as configured.

        Returns the window closed here (``None`` if the last one had already been logged) and
        what was done; the hooks are removed.
        """
        if self.monitor is None:
            return EndOfTraining(None)
        self.monitor.pause()
        window = self._close_window(step) if self._batches else None
        result = EndOfTraining(window)
        last = self.windows[-1] if self.windows else None
        if out_dir is not None and last is not None and (self.report or self.figures):
            folder = Path(out_dir)
            folder.mkdir(parents=True, exist_ok=True)
            if self.report:
                path = folder / "activation_stats.json"
                path.write_text(json.dumps(self._report(last), indent=1), encoding="utf-8")
                result.files.append(path)
            if self.figures:
                from relukit.diagnostics.figures import plot_activation_stats

                path = folder / "activation_stats.png"
                plot_activation_stats(self.windows, path=path)
                result.files.append(path)
        if self.revive and last is not None:
            opt = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
            result.revival = self.monitor.reinitialize_dead(
                opt, init=self.revive_init, seed=self.seed
            )
        self.close()
        return result

    def _report(self, last: Window) -> dict[str, Any]:
        rows = [row.to_dict() for row in last.layers]
        for row in rows:
            rate = last.rates.get(row["name"])
            row["firing_rates"] = [] if rate is None else rate.tolist()
        return {
            "every": self.every,
            "log_every": self.log_every,
            "rare_threshold": self.rare_threshold,
            "last_window": {"step": last.step, "batches": last.batches, "layers": rows},
            "windows": [
                {
                    "step": w.step,
                    "batches": w.batches,
                    "layers": [r.to_dict() for r in w.layers],
                }
                for w in self.windows
            ],
        }


def _metrics(layers: list[LayerStats]) -> dict[str, float]:
    out: dict[str, float] = {}
    units = dead = 0
    for row in layers:
        if not row.units:
            continue
        units += row.units
        dead += row.dead
        values = {
            "dead": row.dead,
            "dead_fraction": row.dead / row.units,
            "rare": row.rare,
            "firing_rate": row.mean_firing_rate,
            "sparsity": row.sparsity,
            "mean": row.mean,
            "std": row.std,
            "max_abs": row.max_abs,
            "kurtosis": row.kurtosis,
        }
        for stat in STATS:
            value = float(values[stat])
            if math.isfinite(value):
                out[f"activations/{row.name or 'model'}/{stat}"] = value
    if units:
        out["activations/dead_fraction"] = dead / units
    return out
