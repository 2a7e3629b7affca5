"""Few-Bit's optimal step derivative: the ``2**bits``-level step function closest to ``f'``.

Few-Bit Backward (Novikov et al., ICML 2023) trains with a ``bits``-bit code of each input
instead of the input. The backward multiplies the incoming gradient by ``q(x)``, a step
function with ``2**bits`` levels, where ``q`` minimises

    ∫ (f'(x) − q(x))² w(x) dx

for a weight ``w`` (the standard normal density by default: pre-activations after a
normalisation layer are roughly standard normal). For given borders ``t₁ < … < t_{k−1}`` the
best level on an interval is the weighted mean of ``f'`` there, and what is left is a
one-dimensional partition problem, solved exactly by dynamic programming over the candidate
borders of a fine grid: ``cells`` equal cells of ``[low, high]`` (default 1,600 cells of 0.01
on ``[−8, 8]``; the first and last intervals extend to ∓∞, and the weight beyond the grid is
left out, 1e-15 of the Gaussian). Each cell's integrals of ``w``, ``w·f'`` and ``w·f'²`` come
from 5-point Gauss–Legendre quadrature, so a kink of ``f'`` at 0 (elu, celu) lies on a cell
edge and costs no accuracy. ``f'`` is the registry's own derivative, evaluated in float64.

The code of an element is the number of borders below it,
``searchsorted(borders, x, side="left")`` (``torch.bucketize(x, borders)``), so an input equal
to a border takes the lower level: at a kink on a border (elu, selu and celu at 0) that is the
x ≤ 0 branch, the registry's and PyTorch's choice. A NaN input gets the last level.

>>> import relukit
>>> from relukit.memory.steps import optimal_steps
>>> q = optimal_steps("gelu", 1)
>>> q.borders, [round(v, 4) for v in q.levels]
((0.0,), [0.0908, 0.9092])
>>> round(q.error, 5) == round(q.weighted_error(), 5)
True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from relukit.family import Activation, ParameterError, lookup

Weight = Callable[[np.ndarray], np.ndarray]

BITS = (1, 2, 3, 4)
DEFAULT_SPAN = (-8.0, 8.0)
DEFAULT_CELLS = 1600
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(5)


def gaussian(x: np.ndarray) -> np.ndarray:
    """The standard normal density, Few-Bit's default weight."""
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class StepDerivative:
    """A step function that stands in for ``f'`` in the backward of ``bits`` mode.

    ``borders`` (``2**bits − 1``, increasing) split the real line into intervals; ``levels``
    (``2**bits``) are the derivative used on each; ``error`` is the weighted mean squared
    error ``∫(f'−q)²w / ∫w`` over ``[low, high]`` that the dynamic program reached.
    """

    member: str
    params: tuple[tuple[str, Any], ...]
    bits: int
    borders: tuple[float, ...]
    levels: tuple[float, ...]
    error: float
    weight: str = "gaussian"
    span: tuple[float, float] = DEFAULT_SPAN

    def codes(self, x: Any) -> np.ndarray:
        """The code (interval index) of each element of ``x``, as uint8."""
        return np.searchsorted(np.asarray(self.borders), np.asarray(x), side="left").astype(
            np.uint8
        )

    def __call__(self, x: Any) -> np.ndarray:
        """``q(x)``: the level of each element's interval, float64."""
        return np.asarray(self.levels)[self.codes(x)]

    def weighted_error(self, weight: Weight | None = None, points: int = 200_001) -> float:
        """``∫(f'−q)²w / ∫w`` over the span by the trapezoid rule on ``points`` points.

        An independent check of :attr:`error` (which the dynamic program computed by
        quadrature per cell), and the measure for a step function made some other way.
        """
        w_fn = gaussian if weight is None else weight
        x = np.linspace(*self.span, points)
        spec = lookup(self.member)
        d = _derivative(spec, dict(self.params), x)
        w = w_fn(x)
        return float(np.trapezoid((d - self(x)) ** 2 * w, x) / np.trapezoid(w, x))


def _derivative(spec: Activation, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    from relukit.activation import make

    return np.asarray(make(spec, params).derivative(x), dtype=np.float64)


def _member(where: str, member: Activation | str) -> Activation:
    if isinstance(member, Activation):
        spec = member
    elif isinstance(member, str):
        spec = lookup(member)
    else:
        raise TypeError(
            f"{where}: member must be an Activation or a name, got {type(member).__name__}"
        )
    if not spec.elementwise or spec.piecewise_linear:
        kind = "piecewise-linear (its one-bit mask is exact)" if spec.elementwise else "not"
        raise ValueError(
            f"{where}: member {spec.name!r} is {kind} elementwise; a step derivative is for the "
            "smooth elementwise members"
        )
    return spec


def check_bits(where: str, bits: Any) -> int:
    """``bits`` if it is an integer in 1–4; otherwise TypeError/ValueError naming ``where``."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"{where}: bits must be an integer in 1-4, got {bits!r}")
    if bits not in BITS:
        raise ValueError(f"{where}: bits={bits} is outside 1-4")
    return bits


def cell_integrals(
    d: Callable[[np.ndarray], np.ndarray], w: Weight, edges: np.ndarray
) -> np.ndarray:
    """Per cell ``[edges[i], edges[i+1]]``: ``(∫w, ∫w·d, ∫w·d²)``, shape ``(3, cells)``."""
    half = np.diff(edges) / 2
    mid = (edges[:-1] + edges[1:]) / 2
    x = mid[:, None] + half[:, None] * _NODES[None, :]
    dx, wx = d(x.ravel()).reshape(x.shape), w(x.ravel()).reshape(x.shape)
    if not np.all(np.isfinite(wx)) or np.any(wx < 0):
        raise ValueError("optimal_steps: weight must be finite and >= 0 on the span")
    q = half[:, None] * _WEIGHTS[None, :] * wx
    return np.stack([q.sum(1), (q * dx).sum(1), (q * dx * dx).sum(1)])


def partition(sums: np.ndarray, intervals: int) -> tuple[np.ndarray, float]:
    """The best split of the cells into ``intervals`` runs, by dynamic programming.

    ``sums`` are the per-cell ``(∫w, ∫w·d, ∫w·d²)`` of :func:`cell_integrals`. A run of cells
    costs ``∫w·d² − (∫w·d)²/∫w``, the weighted squared error of its best constant. Returns the
    cell indices where runs 2…``intervals`` start (increasing) and the total cost.
    """
    cells = sums.shape[1]
    if not 1 <= intervals <= cells:
        raise ValueError(f"partition: {intervals} intervals from {cells} cells")
    cum = np.concatenate([np.zeros((3, 1)), np.cumsum(sums, axis=1)], axis=1)
    w = cum[0][None, :] - cum[0][:, None]
    s1 = cum[1][None, :] - cum[1][:, None]
    s2 = cum[2][None, :] - cum[2][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(w > 0, s2 - s1 * s1 / w, 0.0)
    cost = np.maximum(cost, 0.0)  # rounding in the differences of sums
    cost[np.tril_indices(cells + 1)] = np.inf  # a run from edge i to edge j needs i < j
    best = cost[0].copy()  # best[j]: cells [0, j) in one run
    starts = []
    for _ in range(1, intervals):
        total = best[:, None] + cost
        choice = np.argmin(total, axis=0)
        best = total[choice, np.arange(cells + 1)]
        starts.append(choice)
    split, j = [], cells
    for choice in reversed(starts):
        j = int(choice[j])
        split.append(j)
    return np.array(split[::-1], dtype=np.int64), float(best[cells])


def optimal_steps(
    member: Activation | str,
    bits: int = 3,
    weight: Weight | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    span: tuple[float, float] = DEFAULT_SPAN,
    cells: int = DEFAULT_CELLS,
) -> StepDerivative:
    """The ``2**bits``-level step function minimising ``∫(f'−q)²w`` for ``member``.

    ``member`` is a registry record or a name; ``params`` its parameters (defaults for the
    rest); ``weight`` a function of a float64 array giving ``w ≥ 0`` (default: the standard
    normal density); borders are chosen among the ``cells + 1`` edges of equal cells of
    ``span``. Tables for the defaults are shipped (:func:`steps_for` reads them).

    Example:
        >>> q = optimal_steps("silu", 2)
        >>> len(q.borders), len(q.levels), q.error < optimal_steps("silu", 1).error
        (3, 4, True)
    """
    where = "relukit.memory.optimal_steps"
    spec = _member(where, member)
    bits = check_bits(where, bits)
    try:
        bound = spec.bind(dict(params or {}))
    except ParameterError as error:
        raise ParameterError(f"{where}: {spec.name}: {error}") from None
    low, high = (float(v) for v in span)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{where}: span={span!r} must be two finite numbers, low < high")
    if isinstance(cells, bool) or not isinstance(cells, int) or cells < 2**bits:
        raise ValueError(f"{where}: cells={cells!r} must be an integer >= 2**bits")
    edges = np.linspace(low, high, cells + 1)
    sums = cell_integrals(lambda x: _derivative(spec, bound, x), weight or gaussian, edges)
    split, cost = partition(sums, 2**bits)
    cum = np.concatenate([[0], split, [cells]])
    levels = []
    for a, b in itertools.pairwise(cum):
        w, s1 = sums[0, a:b].sum(), sums[1, a:b].sum()
        if w > 0:
            levels.append(float(s1 / w))
        else:  # no weight on the interval: any level is optimal; take f' at its middle
            middle = np.array([(edges[a] + edges[b]) / 2])
            levels.append(float(_derivative(spec, bound, middle)[0]))
    total = sums[0].sum()
    if not total > 0:
        raise ValueError(f"{where}: weight integrates to {total} on the span; it must be > 0")
    return StepDerivative(
        member=spec.name,
        params=tuple(sorted(bound.items())),
        bits=bits,
        borders=tuple(round(float(v), 12) for v in edges[split]),
        levels=tuple(levels),
        error=cost / float(total),
        weight="gaussian" if weight is None else getattr(weight, "__name__", "custom"),
        span=(low, high),
    )


def steps_for(
    member: Activation | str, bits: int = 3, params: Mapping[str, Any] | None = None
) -> StepDerivative:
    """The default-weight step derivative: the shipped table when there is one, else computed.

    Computed tables (non-default parameters) are kept for the life of the process.
    """
    from relukit.memory import step_tables

    where = "relukit.memory.steps_for"
    spec = _member(where, member)
    bits = check_bits(where, bits)
    try:
        bound = spec.bind(dict(params or {}))
    except ParameterError as error:
        raise ParameterError(f"{where}: {spec.name}: {error}") from None
    key = (spec.name, tuple(sorted(bound.items())), bits)
    found = _COMPUTED.get(key)
    if found is None and key in step_tables.TABLES:
        borders, levels, error = step_tables.TABLES[key]
        found = StepDerivative(spec.name, key[1], bits, borders, levels, error)
        _COMPUTED[key] = found
    elif found is None:
        found = optimal_steps(spec, bits, params=bound)
        _COMPUTED[key] = found
    return found


_COMPUTED: dict[tuple[str, tuple[tuple[str, Any], ...], int], StepDerivative] = {}
