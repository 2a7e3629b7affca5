"""The report's figures, drawn on Matplotlib's Agg canvas (no pyplot), as PNG bytes.

:func:`figures` gives every figure a result has, by file name, with its caption. The same
activation has the same colour and line style in every figure (the baselines black and grey,
dashed). The gradient-flow figure is :func:`relukit.diagnostics.plot_gradient_flow`'s, drawn
from the seeds' mean gradient norms.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from relukit.study.scenarios import BASELINES, Group, StudyResult

__all__ = ["FIGURES", "figures"]

FIGURES: tuple[str, ...] = (
    "gallery.png",
    "accuracy.png",
    "learning_curves.png",
    "dead_units.png",
    "gradient_flow.png",
    "dying.png",
    "depth.png",
    "cnn.png",
    "memory.png",
    "memory_curves.png",
)
"""Every figure a report may hold (a scenario that was not run leaves its figures out)."""


def _colours(names: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Colour and line style of each activation: tab10 (its grey left out) or tab20 for the
    family, black and grey dashes for the baselines, the same in every figure of a report."""
    import matplotlib

    family = [n for n in dict.fromkeys(names) if n not in BASELINES]
    if len(family) <= 9:
        palette = [c for i, c in enumerate(matplotlib.colormaps["tab10"].colors) if i != 7]
    else:
        palette = list(matplotlib.colormaps["tab20"].colors)
    styles = {
        n: (matplotlib.colors.to_hex(palette[i % len(palette)]), "-") for i, n in enumerate(family)
    }
    styles["sigmoid"] = ("#222222", "--")
    styles["tanh"] = ("#8c8c8c", "--")
    return styles


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _epochs_axis(length: int) -> np.ndarray:
    return np.arange(length)


def _figure_accuracy(found: Sequence[Group], styles: dict, target: float) -> Figure:
    figure = Figure(figsize=(12, 0.45 * len(found) + 1.8))
    left, right = figure.subplots(1, 2, sharey=True)
    names = [g.name for g in found]
    y = np.arange(len(found))[::-1]
    colours = [styles[g.activation][0] for g in found]
    means = [100 * g.test_accuracy.mean for g in found]
    stds = [100 * g.test_accuracy.std for g in found]
    left.barh(y, means, xerr=stds, color=colours, alpha=0.85, capsize=3)
    low = min((m for m in means if math.isfinite(m)), default=0)
    left.set_xlim(max(0, low - 10), 100)
    left.set_yticks(y, names)
    left.set_xlabel("test accuracy (%), mean ± std over seeds")
    for yy, mean, std in zip(y, means, stds, strict=True):
        if math.isfinite(mean):
            inside = mean - (std if math.isfinite(std) else 0) - 0.3
            left.text(
                inside,
                yy,
                f"{mean:.1f}",
                va="center",
                ha="right",
                fontsize=8,
                color="white",
                fontweight="bold",
            )
    epochs = [g.epochs_to_target.mean if g.epochs_to_target.n else np.nan for g in found]
    e_std = [g.epochs_to_target.std if g.epochs_to_target.n else 0 for g in found]
    finite = [e for e in epochs if math.isfinite(e)]
    right.barh(
        y,
        [0 if math.isnan(e) else e for e in epochs],
        xerr=e_std,
        color=colours,
        alpha=0.85,
        capsize=3,
    )
    top = max(finite, default=1)
    for yy, g, e, spread in zip(y, found, epochs, e_std, strict=True):
        label = " never" if math.isnan(e) else f" {e:.1f}"
        if g.epochs_to_target.n and g.epochs_to_target.n < g.epochs_to_target.of:
            label += f" ({g.reached} seeds)"
        right.text(0 if math.isnan(e) else e + spread, yy, label, va="center", fontsize=8)
    right.set_xlim(0, top * 1.35 + 0.5)
    right.set_xlabel(f"epochs to {100 * target:.0f} % training accuracy (shorter is faster)")
    left.set_title("Final test accuracy", fontsize="medium")
    right.set_title("Convergence speed", fontsize="medium")
    for axes in (left, right):
        axes.grid(True, axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def _plot_curve(
    axes: Any, group: Group, key: str, styles: dict, scale: float = 1.0, band: str | None = None
) -> None:
    values = np.asarray(group.curves[key], dtype=float) * scale
    colour, style = styles[group.activation]
    x = _epochs_axis(len(values))
    axes.plot(x, values, color=colour, linestyle=style, label=group.name, linewidth=1.6)
    if band is not None and len(group.seeds) > 1:
        spread = np.asarray(group.curves[band], dtype=float) * scale
        axes.fill_between(
            x, values - spread, values + spread, color=colour, alpha=0.12, linewidth=0
        )


def _figure_learning(found: Sequence[Group], styles: dict) -> Figure:
    figure = Figure(figsize=(12, 4.4))
    loss_axes, acc_axes = figure.subplots(1, 2)
    for group in found:
        _plot_curve(loss_axes, group, "loss", styles)
        _plot_curve(acc_axes, group, "val_accuracy", styles, 100, "val_accuracy_std")
    loss_axes.set_yscale("log")
    loss_axes.set_title("Training loss (whole training split)", fontsize="medium")
    acc_axes.set_title("Validation accuracy (%), band: ± std over seeds", fontsize="medium")
    acc_axes.set_ylim(0, 100)
    for axes in (loss_axes, acc_axes):
        axes.set_xlabel("epoch (0 = at initialisation)")
        axes.grid(True, alpha=0.3)
    acc_axes.legend(fontsize="small", ncols=2, loc="lower right")
    figure.tight_layout()
    return figure


def _firing_note(names: Sequence[str]) -> str:
    """What "dead" means for each of ``names``: the registry's firing rule of each member."""
    from relukit.family import lookup

    rules = []
    for name in dict.fromkeys(names):
        firing = lookup(name).firing
        if firing is not None:
            rules.append(f"{name} fires where {firing.where}")
    return (
        "a unit is dead when it fires on no training row, by each member's firing rule ("
        + "; ".join(rules)
        + "): above its flat region, where a unit passes at least 1 % of the gradient"
    )


def _figure_dead(found: Sequence[Group], styles: dict) -> Figure:
    family = [g for g in found if g.activation not in BASELINES]
    baselines = [g for g in found if g.activation in BASELINES]
    figure = Figure(figsize=(13, 8.2))
    (family_axes, base_axes), (sparse_axes, layer_axes) = figure.subplots(2, 2)
    for group in family:
        _plot_curve(family_axes, group, "dead", styles, 100)
        _plot_curve(sparse_axes, group, "sparsity", styles, 100)
        colour, style = styles[group.activation]
        layers = np.arange(1, len(group.dead_per_layer) + 1)
        layer_axes.plot(
            layers,
            100 * np.asarray(group.dead_per_layer),
            color=colour,
            linestyle=style,
            marker="o",
            markersize=3,
            label=group.name,
        )
    for group in baselines:
        _plot_curve(base_axes, group, "dead", styles, 100, "dead_std")
    family_axes.set_title(
        "The family: dead units (%) over training, mean over seeds", fontsize="medium"
    )
    base_axes.set_title("Baselines: dead units (%) over training (own scale)", fontsize="medium")
    sparse_axes.set_title("Sparsity: exact zeros among outputs (%)", fontsize="medium")
    layer_axes.set_title("The family: dead units (%) per layer after training", fontsize="medium")
    for axes in (family_axes, base_axes, sparse_axes):
        axes.set_xlabel("epoch (0 = at initialisation)")
    layer_axes.set_xlabel("hidden layer")
    layer_axes.xaxis.get_major_locator().set_params(integer=True)
    for axes in (family_axes, base_axes, sparse_axes, layer_axes):
        axes.grid(True, alpha=0.3)
        axes.set_xlim(left=0 if axes is not layer_axes else 0.8)
        values = [np.asarray(line.get_ydata(), dtype=float) for line in axes.get_lines()]
        finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
        axes.set_ylim(0, max(1.0, 1.15 * float(finite.max(initial=0.0))))
        if axes.get_lines():
            axes.legend(fontsize="small", ncols=2, loc="best", framealpha=0.8)
    if not baselines:
        base_axes.text(
            0.5, 0.5, "no baseline in this study", ha="center", transform=base_axes.transAxes
        )
    figure.tight_layout()
    return figure


def _figure_gradients(found: Sequence[Group], styles: dict) -> Figure:
    """:func:`relukit.diagnostics.plot_gradient_flow` of each group's mean gradient norms."""
    from relukit.diagnostics import plot_gradient_flow
    from relukit.diagnostics.gradient_flow import ActivationGrad, GradientFlow, WeightGrad

    flows = {
        group.name: GradientFlow(
            loss=math.nan,
            weights=tuple(
                WeightGrad(f"layer {i}", (), norm, math.nan)
                for i, norm in enumerate(group.grad_norms, start=1)
            ),
            activations=tuple(
                ActivationGrad(f"layer {i}", group.activation, rms, math.nan, 1, 1)
                for i, rms in enumerate(group.activation_grad_rms, start=1)
            ),
        )
        for group in found
    }
    figure = plot_gradient_flow(flows, title="Gradient flow at initialisation (mean over seeds)")
    figure.set_size_inches(12, 4.6)
    for axes in figure.axes:
        axes.xaxis.get_major_locator().set_params(integer=True)
        for line in axes.get_lines():
            name = str(line.get_label()).removesuffix(" (torch.nn)")
            if name in styles:
                line.set_color(styles[name][0])
                line.set_linestyle(styles[name][1])
                line.set_markersize(4)
        axes.legend(fontsize="small", ncols=2)
    return figure


def _figure_cnn(found: Sequence[Group], styles: dict, target: float) -> Figure:
    """Krizhevsky et al. (2012), Figure 1: training error against epochs, the target marked."""
    figure = Figure(figsize=(12, 4.6))
    epochs_axes, seconds_axes = figure.subplots(1, 2, sharey=True)
    for group in found:
        error = 100 * (1 - np.asarray(group.curves["accuracy"], dtype=float))
        colour, style = styles[group.activation]
        epochs_axes.plot(
            np.arange(len(error)),
            error,
            color=colour,
            linestyle=style,
            label=group.name,
            linewidth=1.8,
        )
        seconds = group.seconds_per_epoch.mean
        if math.isfinite(seconds):
            seconds_axes.plot(
                seconds * np.arange(len(error)),
                error,
                color=colour,
                linestyle=style,
                label=group.name,
                linewidth=1.8,
            )
    for axes in (epochs_axes, seconds_axes):
        axes.axhline(100 * (1 - target), color="#b00", linewidth=0.9, linestyle=":")
        axes.grid(True, alpha=0.3)
        axes.set_ylim(0, 100)
        axes.set_xlim(left=0)
        axes.legend(fontsize="small")
    epochs_axes.set_ylabel("training error (%), mean over seeds")
    epochs_axes.set_xlabel("epochs")
    seconds_axes.set_xlabel("seconds of training (mean s/epoch × epochs)")
    epochs_axes.set_title(
        f"Training error against epochs; dotted: the target ({100 * (1 - target):.0f} %)",
        fontsize="medium",
    )
    seconds_axes.set_title("The same against time", fontsize="medium")
    figure.tight_layout()
    return figure


_MODE_MARKS = {"input": ("o", "-"), "output": ("s", "--")}
"""Marker and line style of each backward mode (``bits=N``: triangles, dotted)."""


def _mode_mark(backward: str) -> tuple[str, str]:
    return _MODE_MARKS.get(backward, ("^", ":"))


def _figure_memory(found: Sequence[Group], styles: dict) -> Figure:
    """Bytes kept for the backward pass against test accuracy, and seconds per epoch."""
    figure = Figure(figsize=(12, 4.8))
    kept_axes, time_axes = figure.subplots(1, 2)
    members = list(dict.fromkeys(g.activation for g in found))
    modes = list(dict.fromkeys(g.backward for g in found))
    width = 0.8 / max(len(modes), 1)
    for group in found:
        colour = styles[group.activation][0]
        marker, _ = _mode_mark(group.backward)
        kept_axes.errorbar(
            group.kept_bytes.mean / 1024,
            100 * group.test_accuracy.mean,
            yerr=100 * group.test_accuracy.std if group.test_accuracy.n > 1 else None,
            color=colour,
            marker=marker,
            markersize=8,
            capsize=3,
            linestyle="none",
            label=group.name,
        )
        offset = (modes.index(group.backward) - (len(modes) - 1) / 2) * width
        hatch = {"input": None, "output": "//"}.get(group.backward, "..")
        time_axes.bar(
            members.index(group.activation) + offset,
            group.seconds_per_epoch.mean,
            width=width,
            yerr=group.seconds_per_epoch.std if group.seconds_per_epoch.n > 1 else None,
            color=colour,
            alpha=0.9 if group.backward == "input" else 0.55,
            hatch=hatch,
            edgecolor="#333333",
            capsize=2,
        )
    kept_axes.set_xlabel("bytes kept for the backward pass of one batch (KiB)")
    kept_axes.set_ylabel("test accuracy (%), mean ± std over seeds")
    kept_axes.set_title("Memory kept against accuracy (up-left is better)", fontsize="medium")
    kept_axes.legend(fontsize="small", ncols=2, loc="lower right")
    time_axes.set_xticks(range(len(members)), members)
    time_axes.set_ylabel("seconds per epoch, mean ± std over seeds")
    time_axes.set_title("Time per epoch; bars per member: " + ", ".join(modes), fontsize="medium")
    for axes in (kept_axes, time_axes):
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def _figure_memory_curves(found: Sequence[Group], styles: dict) -> Figure:
    """Per member, training loss and validation accuracy per epoch in each backward mode."""
    members = list(dict.fromkeys(g.activation for g in found))
    figure = Figure(figsize=(max(4.2 * len(members), 8), 7.6))
    panels = figure.subplots(2, len(members), squeeze=False, sharex=True)
    for column, member in enumerate(members):
        loss_axes, acc_axes = panels[0][column], panels[1][column]
        for group in (g for g in found if g.activation == member):
            colour = styles[member][0]
            marker, style = _mode_mark(group.backward)
            for axes, key, scale in ((loss_axes, "loss", 1.0), (acc_axes, "val_accuracy", 100)):
                values = np.asarray(group.curves[key], dtype=float) * scale
                axes.plot(
                    _epochs_axis(len(values)),
                    values,
                    color=colour,
                    linestyle=style,
                    marker=marker,
                    markevery=max(1, len(values) // 8),
                    markersize=4,
                    linewidth=1.5,
                    label=group.backward,
                )
        loss_axes.set_yscale("log")
        loss_axes.set_title(f"{member}: training loss", fontsize="medium")
        acc_axes.set_title(f"{member}: validation accuracy (%)", fontsize="medium")
        acc_axes.set_xlabel("epoch (0 = at initialisation)")
        for axes in (loss_axes, acc_axes):
            axes.grid(True, alpha=0.3)
            axes.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _figure_dying(found: Sequence[Group], styles: dict, settings: dict) -> Figure:
    inits = list(dict.fromkeys(g.init for g in found))
    figure = Figure(figsize=(6 * len(inits), 4.4))
    panels = figure.subplots(1, len(inits), sharey=True, squeeze=False)[0]
    for axes, init in zip(panels, inits, strict=True):
        for group in (g for g in found if g.init == init):
            _plot_curve(axes, group, "dead", styles, 100, "dead_std")
        axes.set_title(f"init: {init}", fontsize="medium")
        axes.set_xlabel("epoch (0 = at initialisation)")
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=-1)
    panels[0].set_ylabel("dead units (%), band: ± std over seeds")
    panels[-1].legend(fontsize="small")
    figure.suptitle(
        f"Dying units: {settings['optimizer']} lr {settings['lr']:g}, hidden biases shifted by "
        f"{settings['bias_shift']:g}",
        fontsize="medium",
    )
    figure.tight_layout()
    return figure


def _figure_depth(found: Sequence[Group], styles: dict) -> Figure:
    figure = Figure(figsize=(12, 4.4))
    grad_axes, acc_axes = figure.subplots(1, 2)
    for name in dict.fromkeys(g.activation for g in found):
        rows = sorted((g for g in found if g.activation == name), key=lambda g: g.depth)
        depths = [g.depth for g in rows]
        colour, style = styles[name]
        grad_axes.plot(
            depths,
            [g.first_layer_grad.mean for g in rows],
            color=colour,
            linestyle=style,
            marker="o",
            markersize=4,
            label=name,
        )
        acc = np.array([100 * g.test_accuracy.mean for g in rows])
        spread = np.array([100 * g.test_accuracy.std for g in rows])
        acc_axes.errorbar(
            depths,
            acc,
            yerr=spread,
            color=colour,
            linestyle=style,
            marker="o",
            markersize=4,
            capsize=2,
            label=name,
        )
    grad_axes.set_yscale("log")
    grad_axes.set_title("Gradient reaching the first layer at initialisation", fontsize="medium")
    grad_axes.set_ylabel("‖∂L/∂W₁‖")
    acc_axes.set_title("Test accuracy after training (%)", fontsize="medium")
    acc_axes.set_ylim(0, 100)
    depths = sorted({g.depth for g in found})
    for axes in (grad_axes, acc_axes):
        axes.set_xticks(depths)
        axes.set_xlabel("hidden layers")
        axes.grid(True, which="both", alpha=0.3)
    acc_axes.legend(fontsize="small", ncols=2, loc="lower left")
    figure.tight_layout()
    return figure


def figures(result: StudyResult) -> dict[str, tuple[bytes, str]]:
    """File name → (PNG bytes, caption) of every figure this result has."""
    names = [run.spec.activation for run in result.runs]
    styles = _colours(names)
    drawn: dict[str, tuple[bytes, str]] = {}
    compare = result.groups("compare")
    if compare:
        drawn["accuracy.png"] = (
            _png(_figure_accuracy(compare, styles, result.config.target)),
            "Left: test accuracy after the last epoch. Right: the first epoch whose training "
            "accuracy reached the target, the convergence-speed claim ('never' within the "
            "epochs run counts as never).",
        )
        drawn["learning_curves.png"] = (
            _png(_figure_learning(compare, styles)),
            "Mean over seeds. Every activation starts from the same weights and sees the same "
            "batches; only the activation differs.",
        )
        drawn["dead_units.png"] = (
            _png(_figure_dead(compare, styles)),
            "Dead units: "
            + _firing_note([g.activation for g in compare])
            + ". The baselines have their own panel and scale. Sparsity counts exact zeros, "
            "which only members like relu and relu6 produce.",
        )
        drawn["gradient_flow.png"] = (
            _png(_figure_gradients(compare, styles)),
            "Before training, mean over seeds: left, the norm of the loss gradient of each "
            "weight matrix (the last is the output layer); right, the RMS gradient reaching "
            "each activation. A line falling towards layer 1 is a vanishing gradient.",
        )
    dying = result.groups("dying")
    if dying:
        drawn["dying.png"] = (
            _png(_figure_dying(dying, styles, result.settings["dying"])),
            "Fraction of hidden units that fire on no training row, over training. For relu "
            "a dead unit gets no gradient; for leaky_relu, prelu and elu it still does, and "
            "can come back.",
        )
    depth = result.groups("depth")
    if depth:
        drawn["depth.png"] = (
            _png(_figure_depth(depth, styles)),
            "Left: the gradient norm reaching the first layer before training, as the network "
            "deepens (log scale). Right: what training made of it.",
        )
    cnn = result.groups("cnn")
    if cnn:
        drawn["cnn.png"] = (
            _png(_figure_cnn(cnn, styles, result.config.target)),
            "After Krizhevsky et al. (2012), Figure 1: the training error of the same "
            "four-layer CNN with each activation, mean over seeds, against epochs and against "
            "seconds. The claims table gives the speed-up to the target with its interval.",
        )
    memory = result.groups("memory")
    if memory:
        drawn["memory.png"] = (
            _png(_figure_memory(memory, styles)),
            "Left: what autograd keeps for the backward pass of one training batch (each "
            "storage once, parameters left out) against the test accuracy, per member and "
            "backward mode (circle: input, square: output, triangle: bits). Right: seconds per "
            "epoch (plain: input, hatched: output, dotted: bits).",
        )
        drawn["memory_curves.png"] = (
            _png(_figure_memory_curves(memory, styles)),
            "Learning curves per backward mode, mean over seeds: the same initial weights and "
            "batches in every mode, only what the backward keeps differs.",
        )
    studied = [spec.name for spec in _registry() if spec.name in names]
    drawn["gallery.png"] = (
        _gallery_png(),
        "Every member of the family and the baselines: the function (solid) and its derivative "
        f"(dashed). This study trained: {', '.join(studied)}.",
    )
    return drawn


@functools.cache
def _gallery_png() -> bytes:
    """The gallery of every member, drawn once per process (it depends on no result)."""
    from relukit import plot

    return _png(plot.gallery())


def _registry() -> list[Any]:
    from relukit.family import MEMBERS

    return list(MEMBERS)
