"""The study's report: a folder people can open, and tables for the terminal.

:func:`write_report` writes into the report folder

* ``index.html`` — self-contained: styles inline, every figure embedded as a base64 PNG, no
  script, no network; readable offline and by any browser;
* the figures as PNG: ``gallery.png`` (every member and its derivative, from
  :func:`relukit.plot.gallery`), and per scenario ``accuracy.png``, ``learning_curves.png``,
  ``dead_units.png``, ``gradient_flow.png`` (compare), ``dying.png`` (dying), ``depth.png``
  (depth);
* ``results.json`` — everything: configuration, data, environment, claims, groups, every run
  with its per-epoch curves;
* ``results.csv`` — every number in long form, one per row: ``scenario, activation, init, depth,
  seed, epoch, layer, measure, value`` (``epoch`` and ``layer`` are empty where they do not
  apply; ``value`` is empty for "never");
* ``summary.csv`` — one row per activation (per init and depth) with means and standard
  deviations over the seeds.

:func:`check_out` refuses an existing, non-empty folder unless ``force`` is given; it writes
nothing. :func:`summary_tables` gives the summary as rows of text, which the HTML page and the
terminal (:func:`rich_tables`) both show.
"""

from __future__ import annotations

import base64
import csv
import functools
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from relukit.study.scenarios import BASELINES, Group, Stat, StudyResult, claims

__all__ = [
    "FIGURES",
    "Table",
    "check_out",
    "print_summary",
    "rich_tables",
    "summary_tables",
    "write_report",
]

FIGURES: tuple[str, ...] = (
    "gallery.png",
    "accuracy.png",
    "learning_curves.png",
    "dead_units.png",
    "gradient_flow.png",
    "dying.png",
    "depth.png",
)
"""Every figure a report may hold (a scenario that was not run leaves its figures out)."""

_FILES = ("index.html", "results.json", "results.csv", "summary.csv", *FIGURES)


def check_out(out: str | Path, *, force: bool) -> Path:
    """The report folder, refused (ValueError) if it exists, is not empty and ``force`` is not
    set, or is a file. Nothing is created.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> check_out(folder, force=False) == folder
        True
        >>> _ = (folder / "index.html").write_text("old")
        >>> check_out(folder, force=False)
        Traceback (most recent call last):
        ...
        ValueError: report folder ... already exists; use --force to overwrite it
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ValueError(f"report folder {str(out)!r} is a file, not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise ValueError(f"report folder {str(out)!r} already exists; use --force to overwrite it")
    return path


# --------------------------------------------------------------------------- formatting


def _pct(stat: Stat) -> str:
    if stat.n == 0:
        return "—"
    if stat.of == 1:
        return f"{100 * stat.mean:.1f} %"
    return f"{100 * stat.mean:.1f} ± {100 * stat.std:.1f} %"


def _num(stat: Stat, digits: int = 3, unit: str = "") -> str:
    if stat.n == 0:
        return "—"
    if stat.of == 1:
        return f"{stat.mean:.{digits}g}{unit}"
    return f"{stat.mean:.{digits}g} ± {stat.std:.{digits - 1}g}{unit}"


def _to_target(stat: Stat, unit: str = "", digits: int = 1) -> str:
    if stat.n == 0:
        return "never"
    text = f"{stat.mean:.{digits}f}"
    if stat.of > 1:
        text += f" ± {stat.std:.{digits}f}"
    text += unit
    if stat.n < stat.of:
        text += f" ({stat.n}/{stat.of} seeds)"
    return text


@dataclass(frozen=True)
class Table:
    """A summary table as text: title, column headers, rows, and a note under it."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _depth_cell(group: Group | None) -> str:
    if group is None:
        return "—"
    return f"{_pct(group.test_accuracy)} · {group.first_layer_grad.mean:.2g}"


def summary_tables(result: StudyResult) -> list[Table]:
    """The summary of every scenario that ran, as tables of text (mean ± std over seeds)."""
    tables = []
    target = f"{100 * result.config.target:.0f} %"
    for scenario in result.scenarios:
        found = result.groups(scenario)
        settings = result.settings[scenario]
        seeds = _plural(max(len(g.seeds) for g in found), "seed")
        training = f"{settings['optimizer']} lr {settings['lr']:g}"
        if scenario == "compare":
            rows = tuple(
                (
                    g.activation,
                    _pct(g.test_accuracy),
                    _to_target(g.epochs_to_target),
                    _to_target(g.seconds_to_target, " s", 2),
                    _num(g.final_loss),
                    _pct(g.dead_end),
                    _pct(g.sparsity_end),
                    _num(g.first_layer_grad),
                    _num(g.seconds_per_epoch, 2, " s"),
                )
                for g in found
            )
            tables.append(
                Table(
                    f"compare: {_plural(len(found), 'activation')} × {seeds}, "
                    f"{settings['depth']} hidden layers of {settings['width']}, "
                    f"{settings['epochs']} epochs, {training}",
                    (
                        "activation",
                        "test accuracy",
                        f"epochs to {target}",
                        f"seconds to {target}",
                        "final loss",
                        "dead units",
                        "sparsity",
                        "grad ‖∂L/∂W₁‖ at init",
                        "s / epoch",
                    ),
                    rows,
                    f"mean ± std over seeds; 'to {target}': training accuracy; dead units and "
                    "sparsity: hidden layers after the last epoch; loss: training loss at the "
                    "end; seconds: the family runs on relukit.nn's modules, sigmoid and tanh on "
                    "torch.nn's",
                )
            )
        elif scenario == "dying":
            rows = tuple(
                (
                    g.activation,
                    g.init,
                    _pct(g.dead_init),
                    _pct(g.dead_max),
                    _pct(g.dead_end),
                    _pct(g.test_accuracy),
                    f"{g.diverged}/{len(g.seeds)}",
                )
                for g in found
            )
            tables.append(
                Table(
                    f"dying: {training}, every hidden bias shifted by "
                    f"{settings['bias_shift']:g}, {seeds}, {settings['epochs']} epochs",
                    (
                        "activation",
                        "init",
                        "dead at init",
                        "dead at peak",
                        "dead at the end",
                        "test accuracy",
                        "diverged",
                    ),
                    rows,
                    "dead: hidden units that fire on no training row (relu: output > 0; "
                    "leaky_relu, prelu, elu: input > 0), averaged over layers and seeds",
                )
            )
        else:
            depths = sorted({g.depth for g in found})
            names = list(dict.fromkeys(g.activation for g in found))
            cell = {(g.activation, g.depth): g for g in found}

            rows = tuple(
                (name, *(_depth_cell(cell.get((name, depth))) for depth in depths))
                for name in names
            )
            tables.append(
                Table(
                    f"depth: {seeds}, width {settings['width']}, "
                    f"{settings['epochs']} epochs, {training}",
                    ("activation", *(f"{d} layers" for d in depths)),
                    rows,
                    "each cell: test accuracy (mean ± std) · first-layer gradient norm at init",
                )
            )
    return tables


def rich_tables(result: StudyResult) -> list[Any]:
    """:func:`summary_tables` as :class:`rich.table.Table` objects for the terminal."""
    from rich.table import Table as RichTable

    out = []
    for table in summary_tables(result):
        rich = RichTable(title=table.title, caption=table.note, title_style="bold")
        for index, header in enumerate(table.headers):
            rich.add_column(header, justify="left" if index == 0 else "right")
        for row in table.rows:
            rich.add_row(*row)
        out.append(rich)
    return out


_VERDICT_STYLE = {
    "holds": "bold green",
    "partly": "bold yellow",
    "does not hold": "bold red",
    "not tested": "dim",
}


def print_summary(result: StudyResult, console: Any) -> None:
    """Print the summary tables, the claims' verdicts and where the report is on ``console``
    (a :class:`rich.console.Console`; one narrower than 160 columns and not a terminal is
    widened so that the tables keep their shape in logs)."""
    from rich.console import Console

    if not console.is_terminal and console.width < 160:
        console = Console(file=console.file, width=160)
    if result.interrupted:
        console.print(
            f"[bold yellow]Stopped (Ctrl-C)[/]: {len(result.runs)} of {result.planned} runs "
            "completed; the summary and the report show those."
        )
    for table in rich_tables(result):
        console.print(table)
    found = claims(result)
    if found:
        console.print("[bold]The claims about ReLU, checked on this data:[/]")
        for claim in found:
            style = _VERDICT_STYLE.get(claim.verdict, "")
            console.print(f"  [{style}]{claim.verdict:>13}[/]  {claim.claim}", highlight=False)
    console.print(
        f"{_plural(len(result.runs), 'run')} in {result.seconds:.1f} s "
        f"({result.environment.get('jobs')} process(es) × "
        f"{result.environment.get('torch_threads_per_process')} thread(s))",
        highlight=False,
    )
    if result.report is not None:
        console.print(f"report: [bold]{result.report.resolve()}[/]", highlight=False)


# --------------------------------------------------------------------------- figures


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
    names = [g.activation for g in found]
    y = np.arange(len(found))[::-1]
    colours = [styles[n][0] for n in names]
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
    axes.plot(x, values, color=colour, linestyle=style, label=group.activation, linewidth=1.6)
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


def _figure_dead(found: Sequence[Group], styles: dict) -> Figure:
    figure = Figure(figsize=(13, 4.2))
    dead_axes, sparse_axes, layer_axes = figure.subplots(1, 3)
    for group in found:
        _plot_curve(dead_axes, group, "dead", styles, 100, "dead_std")
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
            label=group.activation,
        )
    dead_axes.set_title("Dead units (%) over training", fontsize="medium")
    sparse_axes.set_title("Sparsity: exact zeros among outputs (%)", fontsize="medium")
    layer_axes.set_title("Dead units (%) per layer after training", fontsize="medium")
    for axes in (dead_axes, sparse_axes):
        axes.set_xlabel("epoch (0 = at initialisation)")
    layer_axes.set_xlabel("hidden layer")
    layer_axes.xaxis.get_major_locator().set_params(integer=True)
    for axes in (dead_axes, sparse_axes, layer_axes):
        axes.grid(True, alpha=0.3)
        axes.set_ylim(bottom=-2)
    sparse_axes.legend(fontsize="small", ncols=2, loc="best")
    figure.tight_layout()
    return figure


def _figure_gradients(found: Sequence[Group], styles: dict) -> Figure:
    figure = Figure(figsize=(12, 4.4))
    absolute, relative = figure.subplots(1, 2)
    last = max((len(g.grad_norms) for g in found), default=1)
    for group in found:
        colour, style = styles[group.activation]
        norms = np.asarray(group.grad_norms, dtype=float)
        layers = np.arange(1, len(norms) + 1)
        for axes, values in ((absolute, norms), (relative, norms / norms[-1])):
            axes.plot(
                layers,
                values,
                color=colour,
                linestyle=style,
                marker="o",
                markersize=4,
                label=group.activation,
            )
    for axes in (absolute, relative):
        axes.set_yscale("log")
        axes.set_xticks(np.arange(1, last + 1), [*(str(i) for i in range(1, last)), "output"])
        axes.set_xlabel("layer (1 = nearest the input)")
        axes.grid(True, which="both", alpha=0.3)
    absolute.set_title("‖∂L/∂W‖ per layer at initialisation", fontsize="medium")
    relative.set_title("The same, relative to the output layer's", fontsize="medium")
    relative.legend(fontsize="small", ncols=2, loc="lower right")
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


def _figures(result: StudyResult) -> dict[str, tuple[bytes, str]]:
    """File name → (PNG bytes, caption) of every figure this result has."""
    names = [run.spec.activation for run in result.runs]
    styles = _colours(names)
    figures: dict[str, tuple[bytes, str]] = {}
    compare = result.groups("compare")
    if compare:
        figures["accuracy.png"] = (
            _png(_figure_accuracy(compare, styles, result.config.target)),
            "Left: test accuracy after the last epoch. Right: the first epoch whose training "
            "accuracy reached the target, the convergence-speed claim ('never' within the "
            "epochs run counts as never).",
        )
        figures["learning_curves.png"] = (
            _png(_figure_learning(compare, styles)),
            "Mean over seeds. Every activation starts from the same weights and sees the same "
            "batches; only the activation differs.",
        )
        figures["dead_units.png"] = (
            _png(_figure_dead(compare, styles)),
            "A unit is dead when it fires on no training row. Sparsity counts exact zeros, "
            "which only relu and relu6 produce.",
        )
        figures["gradient_flow.png"] = (
            _png(_figure_gradients(compare, styles)),
            "Norm of the loss gradient of each weight matrix before training. A line falling "
            "towards layer 1 is a vanishing gradient.",
        )
    dying = result.groups("dying")
    if dying:
        figures["dying.png"] = (
            _png(_figure_dying(dying, styles, result.settings["dying"])),
            "Fraction of hidden units that fire on no training row, over training. For relu "
            "a dead unit gets no gradient; for leaky_relu, prelu and elu it still does, and "
            "can come back.",
        )
    depth = result.groups("depth")
    if depth:
        figures["depth.png"] = (
            _png(_figure_depth(depth, styles)),
            "Left: the gradient norm reaching the first layer before training, as the network "
            "deepens (log scale). Right: what training made of it.",
        )
    studied = [spec.name for spec in _registry() if spec.name in names]
    figures["gallery.png"] = (
        _gallery_png(),
        "Every member of the family and the baselines: the function (solid) and its derivative "
        f"(dashed). This study trained: {', '.join(studied)}.",
    )
    return figures


@functools.cache
def _gallery_png() -> bytes:
    """The gallery of every member, drawn once per process (it depends on no result)."""
    from relukit import plot

    return _png(plot.gallery())


def _registry() -> list[Any]:
    from relukit.family import MEMBERS

    return list(MEMBERS)


# --------------------------------------------------------------------------- data files


def _csv_rows(result: StudyResult) -> list[list[Any]]:
    rows: list[list[Any]] = []

    def add(spec: Any, epoch: Any, layer: Any, measure: str, value: Any) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            value = ""
        rows.append(
            [
                spec.scenario,
                spec.activation,
                spec.init,
                spec.depth,
                spec.seed,
                epoch,
                layer,
                measure,
                "" if value is None else value,
            ]
        )

    for run in result.runs:
        spec = run.spec
        add(spec, "", "", "test_accuracy", run.test_accuracy)
        add(spec, "", "", "test_loss", run.test_loss)
        add(spec, "", "", "epochs_to_target", run.epochs_to_target)
        add(spec, "", "", "seconds_to_target", run.seconds_to_target)
        add(spec, "", "", "epochs_run", run.epochs_run)
        add(spec, "", "", "diverged", int(run.diverged))
        for layer, norm in enumerate(run.grad_norms, start=1):
            add(spec, 0, layer, "grad_norm_at_init", norm)
        for epoch in range(len(run.loss)):
            add(spec, epoch, "", "train_loss", run.loss[epoch])
            add(spec, epoch, "", "train_accuracy", run.accuracy[epoch])
            add(spec, epoch, "", "val_loss", run.val_loss[epoch])
            add(spec, epoch, "", "val_accuracy", run.val_accuracy[epoch])
            if epoch >= 1:
                add(spec, epoch, "", "epoch_seconds", run.epoch_seconds[epoch - 1])
            for layer, value in enumerate(run.dead[epoch], start=1):
                add(spec, epoch, layer, "dead_fraction", value)
            for layer, value in enumerate(run.sparsity[epoch], start=1):
                add(spec, epoch, layer, "sparsity", value)
    return rows


def _summary_rows(result: StudyResult) -> tuple[list[str], list[list[Any]]]:
    stats = (
        "test_accuracy",
        "test_loss",
        "final_loss",
        "epochs_to_target",
        "seconds_to_target",
        "seconds_per_epoch",
        "dead_init",
        "dead_end",
        "dead_max",
        "sparsity_end",
        "first_layer_grad",
    )
    header = ["scenario", "activation", "init", "depth", "seeds"]
    for name in stats:
        header += [f"{name}_mean", f"{name}_std", f"{name}_n"]
    header += ["diverged"]
    rows = []
    for group in result.groups():
        row: list[Any] = [
            group.scenario,
            group.activation,
            group.init,
            group.depth,
            len(group.seeds),
        ]
        for name in stats:
            stat: Stat = getattr(group, name)
            row += [
                "" if math.isnan(stat.mean) else stat.mean,
                "" if math.isnan(stat.std) else stat.std,
                stat.n,
            ]
        row.append(group.diverged)
        rows.append(row)
    return header, rows


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #dde2ea; --soft: #f5f7fa; --accent: #2457c5; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 8px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
.sub { color: var(--muted); margin: 0; }
.banner { background: #fff4e0; border: 1px solid #f0c36d; padding: 10px 14px; border-radius: 6px;
          margin: 14px 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line); }
tbody tr:nth-child(even) { background: #fafbfc; }
td.best { font-weight: 700; color: #0f6b2f; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 16px; }
.claims td, .claims th { white-space: normal; text-align: left; vertical-align: top; }
.claims td.rule { color: var(--muted); font-size: 12.5px; }
.verdict { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12.5px;
           font-weight: 600; white-space: nowrap; }
.v-holds { background: #dff3e4; color: #11652b; }
.v-partly { background: #fff1d6; color: #8a5a00; }
.v-does-not-hold { background: #fde2e1; color: #a01d1d; }
.v-not-tested { background: #eceff3; color: #5b6475; }
figure { margin: 16px 0 26px; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0; }
dt { color: var(--muted); }
dd { margin: 0; }
code { background: var(--soft); padding: 1px 5px; border-radius: 3px; font-size: 13px; }
ul.files { columns: 3; padding-left: 18px; }
.scroll { overflow-x: auto; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _html_table(table: Table, best: dict[int, set[int]] | None = None) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in table.headers)
    body = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, value in enumerate(row):
            mark = ' class="best"' if best and r in best.get(c, set()) else ""
            cells.append(f"<td{mark}>{_esc(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<h3>{_esc(table.title)}</h3><div class="scroll"><table class="summary">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="note">{_esc(table.note)}</p>'
    )


def _best_cells(result: StudyResult, table: Table, scenario: str) -> dict[int, set[int]]:
    """Row indices to highlight: best test accuracy and fastest to target (compare only)."""
    if scenario != "compare":
        return {}
    found = result.groups("compare")
    accuracy = [g.test_accuracy.mean for g in found]
    epochs = [
        g.epochs_to_target.mean
        if g.epochs_to_target.n == g.epochs_to_target.of and g.epochs_to_target.n
        else math.inf
        for g in found
    ]
    best: dict[int, set[int]] = {}
    finite = [a for a in accuracy if math.isfinite(a)]
    if finite:
        top = max(finite)
        best[1] = {i for i, a in enumerate(accuracy) if a == top}
    if any(math.isfinite(e) for e in epochs):
        low = min(epochs)
        best[2] = {i for i, e in enumerate(epochs) if e == low}
    return best


def _claims_html(result: StudyResult) -> str:
    rows = []
    for claim in claims(result):
        css = "v-" + claim.verdict.replace(" ", "-")
        rows.append(
            f"<tr><td><b>{_esc(claim.claim)}</b></td>"
            f'<td><span class="verdict {css}">{_esc(claim.verdict)}</span></td>'
            f"<td>{_esc(claim.evidence)}</td>"
            f'<td class="rule">{_esc(claim.rule)}</td></tr>'
        )
    if not rows:
        return ""
    return (
        "<h2>The claims about ReLU, checked</h2>"
        '<table class="claims"><thead><tr><th>claim</th><th>here</th><th>evidence</th>'
        "<th>rule for the verdict</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        '<p class="note">Verdicts describe this study: this data, this network, these settings '
        "and seeds. Change them and the verdicts may change; that is the point of checking.</p>"
    )


def _layer_table(found: Sequence[Group], title: str, values: str, fmt: str, note: str) -> str:
    width = max((len(getattr(g, values)) for g in found), default=0)
    if not width:
        return ""
    last_is_output = values == "grad_norms"
    headers = ["activation"] + [
        "output" if last_is_output and i == width else f"layer {i}" for i in range(1, width + 1)
    ]
    rows = tuple((g.activation, *(format(v, fmt) for v in getattr(g, values))) for g in found)
    return _html_table(Table(title, tuple(headers), rows, note))


def _setup_html(result: StudyResult) -> str:
    config = result.config
    data = result.data
    env = result.environment
    items = [
        ("data", f"{data['name']}: {data['source']}"),
        (
            "rows",
            f"{data['train']} train · {data['validation']} validation · {data['test']} test; "
            f"{data['features']} features, {data['classes']} classes; standardised with the "
            "training split's mean and std",
        ),
        (
            "training",
            f"cross-entropy, batch size {config.batch_size}, same batches in the same "
            "order for every activation",
        ),
        ("target", f"{100 * config.target:.0f} % training accuracy"),
        ("init", f"hidden layers {config.init}; output layer lecun_normal"),
    ]
    for scenario, settings in result.settings.items():
        layers = (
            f"{settings['depth']} hidden layers"
            if settings["depth"]
            else "depths " + ", ".join(map(str, settings["depths"]))
        )
        items.append(
            (
                scenario,
                f"{', '.join(settings['activations'])}; {settings['seeds']} seeds from "
                f"{config.seed}; {layers} of {settings['width']}; {settings['epochs']} epochs; "
                f"{settings['optimizer']}"
                + (" (momentum 0.9)" if settings["optimizer"] == "sgd" else "")
                + f", lr {settings['lr']:g}"
                + (f"; bias shift {settings['bias_shift']:g}" if settings["bias_shift"] else "")
                + (f"; inits {', '.join(settings['inits'])}" if scenario == "dying" else ""),
            )
        )
    load = env.get("load_average_before")
    items += [
        (
            "runs",
            f"{len(result.runs)} of {result.planned} completed in {result.seconds:.1f} s"
            + (" (interrupted)" if result.interrupted else ""),
        ),
        (
            "machine",
            f"{env.get('processor')}, {env.get('cores')} cores; {env.get('jobs')} "
            f"job(s) × {env.get('torch_threads_per_process')} torch thread(s); load "
            f"average before {load[0]:.2f}"
            if load
            else f"{env.get('cores')} cores",
        ),
        (
            "software",
            f"relukit {env.get('relukit')}, Python {env.get('python')}, PyTorch "
            f"{env.get('torch')}, NumPy {env.get('numpy')}",
        ),
        ("reproduce", _command(config)),
    ]
    body = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items)
    return f"<h2>Setup</h2><dl>{body}</dl>"


def _command(config: Any) -> str:
    parts = ["relukit study"]
    defaults = type(config)()
    for key, value in config.to_dict().items():
        if key in ("force", "out") or value == getattr(defaults, key, None):
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        if isinstance(value, bool):
            if value:
                parts.append(f"--{key.replace('_', '-')}")
            continue
        parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def _page(result: StudyResult, figures: dict[str, tuple[bytes, str]]) -> str:
    when = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    data = result.data
    scenarios = ", ".join(result.settings)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>relukit study: {_esc(data['name'])}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>relukit study: the ReLU family on {_esc(data['name'])}</h1>",
        f'<p class="sub">{_esc(scenarios)} · {len(result.runs)} runs · '
        f"{result.seconds:.0f} s · {_esc(when)}</p></header>",
    ]
    if result.interrupted:
        parts.append(
            f'<div class="banner"><b>Interrupted.</b> The study was stopped after '
            f"{len(result.runs)} of {result.planned} runs; this report shows the completed "
            "runs only.</div>"
        )
    parts.append(_claims_html(result))
    parts.append("<h2>Summary</h2>")
    tables = summary_tables(result)
    for scenario, table in zip(result.scenarios, tables, strict=True):
        parts.append(_html_table(table, _best_cells(result, table, scenario)))
    if not tables:
        parts.append('<p class="note">No run completed.</p>')
    order = [name for name in FIGURES if name in figures and name != "gallery.png"]
    titles = {
        "accuracy.png": "Accuracy and convergence speed",
        "learning_curves.png": "Learning curves",
        "dead_units.png": "Dead units and sparsity",
        "gradient_flow.png": "Gradient flow at initialisation",
        "dying.png": "Dying units under a high learning rate and a negative bias",
        "depth.png": "Depth: vanishing gradients",
        "gallery.png": "The family",
    }
    if order:
        parts.append("<h2>Figures</h2>")
    for name in [*order, "gallery.png"]:
        if name not in figures:
            continue
        png, caption = figures[name]
        encoded = base64.b64encode(png).decode("ascii")
        if name == "gallery.png":
            parts.append("<h2>The family</h2>")
        else:
            parts.append(f"<h3>{_esc(titles[name])}</h3>")
        parts.append(
            f'<figure><img alt="{_esc(titles[name])}" src="data:image/png;base64,{encoded}">'
            f'<figcaption>{_esc(caption)} <a href="{name}">{name}</a></figcaption></figure>'
        )
    compare = result.groups("compare")
    if compare:
        parts.append("<h2>Per layer</h2>")
        parts.append(
            _layer_table(
                compare,
                "Dead units per hidden layer after training",
                "dead_per_layer",
                ".1%",
                "fraction of each layer's units that fire on no training row, mean over seeds",
            )
        )
        parts.append(
            _layer_table(
                compare,
                "Sparsity per hidden layer after training",
                "sparsity_per_layer",
                ".1%",
                "fraction of exact zeros among each layer's outputs, mean over seeds",
            )
        )
        parts.append(
            _layer_table(
                compare,
                "Gradient norm per layer at initialisation",
                "grad_norms",
                ".3g",
                "‖∂L/∂W‖ of each weight matrix before training, on the whole training split",
            )
        )
    parts.append(_setup_html(result))
    links = "".join(
        f'<li><a href="{name}">{name}</a></li>'
        for name in ("results.json", "results.csv", "summary.csv", *figures)
    )
    parts.append(
        "<h2>Files</h2><p>Every number of this page, and more, is in the files beside it "
        f'(<code>results.csv</code>: one number per row).</p><ul class="files">{links}</ul>'
    )
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)


def write_report(result: StudyResult, out: str | Path) -> Path:
    """Write the report folder (see the module docstring); return the path of ``index.html``.

    Files of an earlier report with the same names are replaced, and its figures that this
    result does not have are removed, so the folder never mixes two studies.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name in _FILES:
        (folder / name).unlink(missing_ok=True)
    figures = _figures(result)
    for name, (png, _caption) in figures.items():
        (folder / name).write_bytes(png)
    (folder / "results.json").write_text(
        json.dumps(result.to_dict(), indent=1, allow_nan=False), encoding="utf-8"
    )
    _write_csv(
        folder / "results.csv",
        ["scenario", "activation", "init", "depth", "seed", "epoch", "layer", "measure", "value"],
        _csv_rows(result),
    )
    _write_csv(folder / "summary.csv", *_summary_rows(result))
    index = folder / "index.html"
    index.write_text(_page(result, figures), encoding="utf-8")
    return index
