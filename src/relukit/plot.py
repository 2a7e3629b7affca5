"""Figures of the members and their derivatives, drawn from the registry.

Figures are built without pyplot's global state (no window, no backend to choose, nothing
left open). The single-member plot follows the classic ReLU programs: the curve over -20..20
by default, with the axes drawn through the origin. The gallery draws every member with its
derivative.

>>> import relukit, relukit.plot
>>> figure = relukit.plot.plot_functions([relukit.get("leaky_relu", negative_slope=0.07)])
>>> [line.get_label() for line in figure.axes[0].get_lines()]
['leaky_relu(negative_slope=0.07)']
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from relukit.activation import Function, make
from relukit.errors import UserValueError
from relukit.family import MEMBERS

FORMATS = (".png", ".svg")


def check_path(path: str | Path) -> Path:
    """The output path, refused (ValueError) unless it ends in .png or .svg."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise UserValueError(f"output file {str(path)!r} must end in .png or .svg")
    return target


def check_range(low: float, high: float) -> None:
    """Refuse (ValueError) a range to draw over that is not finite numbers with low < high and
    a finite width (high − low: the x values are spaced by it)."""
    if not low < high:
        raise UserValueError(f"range low={low!r} must be < high={high!r}")
    if not math.isfinite(high - low):
        raise UserValueError(f"range [{low!r}, {high!r}] must be finite, of a finite width")


def _label(function: Function) -> str:
    text = repr(function)
    return text.removeprefix("relukit.")


def _origin_axes(axes: Axes) -> None:
    """Draw the axes through the origin, as the classic ReLU plots do."""
    axes.spines["left"].set_position("zero")
    axes.spines["bottom"].set_position("zero")
    axes.spines["right"].set_color("none")
    axes.spines["top"].set_color("none")
    axes.grid(True, alpha=0.3)


def _curves(function: Function, x: np.ndarray, derivative: bool) -> list[tuple[str, np.ndarray]]:
    """(label, y) pairs for one member over x: one curve for elementwise members.

    crelu is drawn as its two halves, relu(x) and relu(-x); maxout as the maximum of the two
    lines x and -x/2 (pieces=2 over the stacked input), with its gradient for the first line.
    """
    spec = function.spec
    if spec.elementwise:
        y = function.derivative(x) if derivative else function(x)
        return [("", np.asarray(y, dtype=np.float64))]
    if spec.name == "crelu":
        if derivative:
            grad_pos = function.vjp(x, np.concatenate([np.ones_like(x), np.zeros_like(x)]))
            grad_neg = function.vjp(x, np.concatenate([np.zeros_like(x), np.ones_like(x)]))
            return [(" ∂/∂x first half", grad_pos), (" ∂/∂x second half", grad_neg)]
        halves = function(x)
        return [(" first half", halves[: x.size]), (" second half", halves[x.size :])]
    stacked = np.stack([x, -0.5 * x], axis=-1)
    bound = function.bind(pieces=2, axis=-1)
    if derivative:
        grads = bound.vjp(stacked, np.ones((x.size, 1)))
        return [(" ∂/∂x of max(x, -x/2)", grads[:, 0] - 0.5 * grads[:, 1])]
    return [(" max(x, -x/2)", bound(stacked)[:, 0])]


def draw(
    axes: Axes,
    functions: Sequence[Function],
    low: float = -20.0,
    high: float = 20.0,
    derivative: bool = False,
    points: int = 2001,
) -> None:
    """Draw ``functions`` (or their derivatives) over [low, high] on ``axes``."""
    check_range(low, high)
    x = np.linspace(low, high, points)
    for function in functions:
        for suffix, y in _curves(function, x, derivative):
            prefix = "d/dx " if derivative and function.spec.elementwise else ""
            axes.plot(x, y, label=f"{prefix}{_label(function)}{suffix}")
    _origin_axes(axes)


def plot_functions(
    functions: Sequence[Function],
    low: float = -20.0,
    high: float = 20.0,
    derivative: bool = False,
    path: str | Path | None = None,
) -> Figure:
    """One figure with ``functions`` over [low, high] (their derivatives with ``derivative``).

    The figure is saved to ``path`` (PNG or SVG, by its suffix) when given.
    """
    target = check_path(path) if path is not None else None
    figure = Figure(figsize=(7, 5))
    axes = figure.subplots()
    draw(axes, functions, low, high, derivative)
    axes.legend(loc="upper left", fontsize="small")
    title = "Derivative" if derivative else "Activation"
    axes.set_title(f"{title}: " + ", ".join(_label(f) for f in functions), fontsize="medium")
    if target is not None:
        figure.savefig(target, dpi=120, bbox_inches="tight")
    return figure


def gallery(
    path: str | Path | None = None,
    members: Sequence[str] | None = None,
    low: float = -7.0,
    high: float = 7.0,
) -> Figure:
    """Every member (or the named ones), each with its derivative, one panel per member, over
    [low, high]."""
    target = check_path(path) if path is not None else None
    check_range(low, high)
    specs = [spec for spec in MEMBERS if members is None or spec.name in members]
    columns = 4
    rows = -(-len(specs) // columns)
    figure = Figure(figsize=(4 * columns, 3.2 * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes, spec in zip(grid.flat, specs, strict=False):
        function = make(spec)
        x = np.linspace(low, high, 1001)
        curves = [("f", "-", curve) for curve in _curves(function, x, derivative=False)]
        curves += [("f'", "--", curve) for curve in _curves(function, x, derivative=True)]
        for index, (kind, style, (suffix, y)) in enumerate(curves):
            axes.plot(x, y, color=f"C{index}", linestyle=style, label=f"{kind}{suffix}")
        _origin_axes(axes)
        tag = "" if spec.in_family else " (baseline)"
        axes.set_title(f"{spec.name}{tag}", fontsize="medium")
        axes.legend(loc="upper left", fontsize="x-small")
    for axes in list(grid.flat)[len(specs) :]:
        axes.set_visible(False)
    figure.suptitle("The ReLU family: each function (solid) and its derivative (dashed)")
    if target is not None:
        figure.savefig(target, dpi=100, bbox_inches="tight")
    return figure
