"""Figures for the diagnostics: gradient flow, born-dead probability, activation statistics.

Figures are built on Matplotlib's Agg canvas directly (no ``pyplot``, no global backend
switch), returned as :class:`matplotlib.figure.Figure`, and written to disk only when a
``path`` is given.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from relukit.diagnostics import gradient_flow, plot_gradient_flow
    >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    >>> flow = gradient_flow(model, torch.ones(3, 2), lambda out: out.sum())
    >>> fig = plot_gradient_flow({"relu": flow})
    >>> len(fig.axes)
    2
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from relukit.diagnostics.born_dead import BornDeadEstimate
from relukit.diagnostics.gradient_flow import GradientFlow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_activation_stats", "plot_born_dead", "plot_gradient_flow"]


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str] | None, fn: str) -> Figure:
    if path is not None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"{fn}: path must be a str or os.PathLike, got {type(path).__name__}")
        fig.savefig(path, dpi=150)
    return fig


def _log10(value: float) -> float:
    return math.log10(value) if value > 0 else math.nan


def plot_gradient_flow(
    flows: GradientFlow | Mapping[str, GradientFlow],
    *,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Plot gradient norms layer by layer, for one model or several to compare.

    Left: :math:`\\log_{10}` of the weight-gradient norms in parameter order. Right:
    :math:`\\log_{10}` of the RMS gradient reaching each activation, in module order — the
    vanishing-gradient picture when a sigmoid or tanh network is set against a ReLU one.

    Args:
        flows: one :class:`~relukit.diagnostics.GradientFlow` or a mapping label → flow.
        path: where to save the figure (any format Matplotlib knows); ``None`` saves nothing.
        title: figure title.

    Returns:
        The :class:`matplotlib.figure.Figure`.
    """
    fn = "plot_gradient_flow"
    if isinstance(flows, GradientFlow):
        flows = {"model": flows}
    if not isinstance(flows, Mapping) or not flows:
        raise TypeError(f"{fn}: flows must be a GradientFlow or a non-empty mapping of them")
    for label, flow in flows.items():
        if not isinstance(flow, GradientFlow):
            raise TypeError(f"{fn}: flows[{label!r}] must be a GradientFlow, got {flow!r}")
    fig = _new_figure(11, 4)
    ax_w, ax_a = fig.subplots(1, 2)
    for label, flow in flows.items():
        ax_w.plot(
            range(1, len(flow.weights) + 1),
            [_log10(w.grad_norm) for w in flow.weights],
            marker="o",
            label=label,
        )
        ax_a.plot(
            range(1, len(flow.activations) + 1),
            [_log10(a.grad_output_rms) for a in flow.activations],
            marker="o",
            label=label,
        )
    ax_w.set(
        xlabel="weight tensor (input → output)",
        ylabel="log10 ‖∂L/∂W‖",
        title="weight gradients",
    )
    ax_a.set(
        xlabel="activation layer (input → output)",
        ylabel="log10 RMS ∂L/∂y",
        title="gradient reaching each activation",
    )
    for ax in (ax_w, ax_a):
        ax.grid(alpha=0.3)
        ax.legend()
    if title is not None:
        fig.suptitle(title)
    return _save(fig, path, fn)


def plot_born_dead(
    estimates: Sequence[BornDeadEstimate],
    *,
    path: str | os.PathLike[str] | None = None,
    highlight_widths: Sequence[int] = (2, 3, 4, 5),
) -> Figure:
    """Born-dead probability over width × depth, one heat map per initialisation.

    A last panel draws the probability against depth for ``highlight_widths`` with the 95 %
    intervals as bands, one line style per initialisation, so the effect of RAI on deep,
    narrow networks can be read off directly.

    Args:
        estimates: e.g. the output of :func:`~relukit.diagnostics.born_dead_grid`.
        path: where to save the figure; ``None`` saves nothing.
        highlight_widths: widths drawn as curves in the last panel (those present).

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Example:
        >>> import numpy as np
        >>> from relukit.diagnostics import born_dead_grid
        >>> grid = born_dead_grid([2, 3], [1, 2, 3], np.ones((1, 1)), trials=20)
        >>> len(plot_born_dead(grid).axes)   # two heat maps, a colour bar, the curves
        4
    """
    fn = "plot_born_dead"
    estimates = list(estimates)
    if not estimates or not all(isinstance(e, BornDeadEstimate) for e in estimates):
        raise TypeError(f"{fn}: estimates must be a non-empty sequence of BornDeadEstimate")
    import numpy as np

    inits = list(dict.fromkeys(e.init for e in estimates))
    widths = sorted({e.width for e in estimates})
    depths = sorted({e.depth for e in estimates})
    fig = _new_figure(4.2 * len(inits) + 5.0, 4.2)
    axes = fig.subplots(1, len(inits) + 1)
    image = None
    for ax, init in zip(axes[:-1], inits, strict=True):
        grid = np.full((len(widths), len(depths)), np.nan)
        for e in estimates:
            if e.init == init:
                grid[widths.index(e.width), depths.index(e.depth)] = e.probability
        image = ax.imshow(
            grid,
            origin="lower",
            aspect="auto",
            vmin=0.0,
            vmax=1.0,
            cmap="magma",
            extent=(depths[0] - 0.5, depths[-1] + 0.5, widths[0] - 0.5, widths[-1] + 0.5),
            interpolation="nearest",
        )
        ax.set(xlabel="depth (hidden layers)", ylabel="width", title=f"P(born dead), {init}")
    fig.colorbar(image, ax=list(axes[:-1]), label="probability")
    curves = axes[-1]
    styles = ["-", "--", ":", "-."]
    for i, init in enumerate(inits):
        for j, width in enumerate(w for w in highlight_widths if w in widths):
            rows = sorted(
                (e for e in estimates if e.init == init and e.width == width), key=lambda e: e.depth
            )
            xs = [e.depth for e in rows]
            colour = f"C{j}"
            curves.plot(
                xs,
                [e.probability for e in rows],
                styles[i % 4],
                color=colour,
                label=f"{init}, width {width}",
            )
            curves.fill_between(
                xs,
                [e.ci_low for e in rows],
                [e.ci_high for e in rows],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
    curves.set(
        xlabel="depth (hidden layers)",
        ylabel="P(born dead)",
        ylim=(-0.02, 1.02),
        title="narrow networks, 95 % CI",
    )
    curves.grid(alpha=0.3)
    curves.legend(fontsize="small", ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    return _save(fig, path, fn)


def plot_activation_stats(
    windows: Sequence[Any],
    *,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Activation statistics of a training run, layer by layer.

    Left: the per-unit firing rates of the last window, one box per layer, with the dead and
    rare counts written above. Middle: the dead fraction of each layer over the windows.
    Right: the largest magnitude (solid) and the excess kurtosis (dotted, right axis) of each
    layer's outputs over the windows — where transformer outliers show.

    Args:
        windows: the windows of a :class:`~relukit.integrations.core.TrainingMonitor`
            (anything with ``step``, ``layers`` — :class:`~relukit.diagnostics.LayerStats` —
            and ``rates``, a mapping layer → per-unit firing rates).
        path: where to save the figure; ``None`` saves nothing.
        title: figure title.

    Returns:
        The :class:`matplotlib.figure.Figure`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from relukit.integrations.core import TrainingMonitor
        >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 4), nn.GELU())
        >>> tm = TrainingMonitor(every=1, log_every=1)
        >>> tm.begin(model)
        >>> for step in range(3):
        ...     tm.batch_start()
        ...     _ = model(torch.randn(8, 2))
        ...     _ = tm.batch_end(step)
        >>> len(plot_activation_stats(tm.windows).axes)   # three panels and a twin axis
        4
    """
    fn = "plot_activation_stats"
    windows = list(windows)
    if not windows or not all(hasattr(w, "layers") and hasattr(w, "rates") for w in windows):
        raise TypeError(f"{fn}: windows must be a non-empty sequence of monitor windows")
    last = windows[-1]
    names = [row.name for row in last.layers if row.units]
    fig = _new_figure(15, 4.2)
    ax_rates, ax_dead, ax_max = fig.subplots(1, 3)
    data = [last.rates[name].numpy() for name in names]
    if data:
        ax_rates.boxplot(data, showfliers=True)
        ax_rates.set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
        for i, row in enumerate(r for r in last.layers if r.units):
            ax_rates.annotate(
                f"{row.dead}d/{row.rare}r",
                (i + 1, 1.02),
                ha="center",
                fontsize="x-small",
                annotation_clip=False,
            )
    ax_rates.set(ylabel="firing rate per unit", ylim=(-0.02, 1.08), title="last window")
    steps = [w.step for w in windows]
    ax_kurt = ax_max.twinx()
    for j, name in enumerate(names):
        rows = [next((r for r in w.layers if r.name == name), None) for w in windows]
        colour = f"C{j % 10}"
        ax_dead.plot(
            steps,
            [r.dead / r.units if r is not None and r.units else math.nan for r in rows],
            marker="o",
            color=colour,
            label=name,
        )
        ax_max.plot(steps, [r.max_abs if r is not None else math.nan for r in rows], color=colour)
        ax_kurt.plot(
            steps, [r.kurtosis if r is not None else math.nan for r in rows], ":", color=colour
        )
    ax_dead.set(xlabel="step", ylabel="dead fraction", ylim=(-0.02, 1.02), title="dead units")
    ax_max.set(xlabel="step", ylabel="max |y| (solid)", title="outliers")
    ax_kurt.set_ylabel("excess kurtosis (dotted)")
    for ax in (ax_rates, ax_dead, ax_max):
        ax.grid(alpha=0.3)
    if names:
        ax_dead.legend(fontsize="small")
    if title is not None:
        fig.suptitle(title)
    return _save(fig, path, fn)
