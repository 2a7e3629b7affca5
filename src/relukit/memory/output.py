"""The derivative from the output (``backward="output"``): f'(x) recovered from y = f(x).

A layer after the activation (Linear, Conv) keeps the activation's output for its own weight
gradient anyway. If the activation's backward can work from that output, the input need not
be kept at all (Tempo, Andoorveedu et al., NeurIPS 2022).

Closed forms
    A member whose derivative is a function of its output gives it in the registry as
    ``from_output`` ``(m, y, **params)``: elu ``y + α`` where ``y ≤ 0`` (α ≥ 0), selu, celu,
    softplus ``−expm1(−β·y)``, sigmoid ``y(1 − y)``, tanh ``1 − y²``, squared_relu ``2√y``.
    ``from_output_check`` refuses the parameters where the output does not fix the input
    (elu with α < 0; softplus with a threshold so low that its jump at the threshold
    exceeds float32's resolution).

One bit and an inverse: gelu (both forms), silu, mish
    These are not monotonic: each has one minimum ``(x*, y*)`` and every ``y`` in ``(y*, 0)``
    comes from two inputs. The forward keeps one bit, ``x < x*``, and the backward inverts
    the member on that side. It does so without transcendental-function solves: per member a
    table, built once (in float64, from the registry's own forward and derivative, by
    bisection), holds piecewise polynomials of ``f'`` in a variable that makes it smooth on
    each side:

    - right of the minimum, ``v = √(y − y*)`` (``x − x*`` is an analytic function of ``v``),
      up to where ``f`` is the identity and ``f' = 1`` in float64;
    - left of it, ``q = √(−log(y/y*))``, which is again analytic at the minimum and grows
      like ``|x|`` (gelu) or ``√|x|`` (silu, mish) in the tail; there the table holds
      ``f'/y`` and the result is ``y·P(q)``, so it keeps its relative accuracy down to the
      smallest normal output (below, f'/y is held at its last value).

    Segments are ``h`` wide, with a polynomial of degree 3 (float32 and 16-bit inputs,
    evaluated in float32) or 7 (float64) through Chebyshev points of each segment.

Accuracy
    The inverse is as exact as the data allows: ``y`` carries a rounding error of half an ulp,
    and ``f'`` recovered from it moves by ``f''·δy/f'``. Near the minimum, where ``f' → 0``,
    that becomes ``√(2·f''·δy)``: with float32 outputs about 1e-4 absolute at the minimum of
    gelu, silu and mish, falling to the float32 resolution of ``f'`` 0.5 away from it.
    ``benchmarks/memory_error.py`` measures it against the exact derivative (float64
    and mpmath) for every member and dtype; the table is in ``benchmarks/RESULTS.md``.

>>> import numpy as np, relukit
>>> from relukit.memory.output import branch_bit, derivative_from_output
>>> x = np.array([-3.0, -1.0, -0.5, 0.0, 2.0, 40.0])
>>> spec, params = relukit.gelu.spec, {"approximate": "none"}
>>> d = derivative_from_output(spec, params, relukit.gelu(x), branch_bit(spec, params, x))
>>> bool(np.abs(d - relukit.gelu.derivative(x)).max() < 1e-14)
True
>>> derivative_from_output(relukit.elu.spec, {"alpha": 1.0}, relukit.elu(x)).round(6)
array([0.049787, 0.367879, 0.606531, 1.      , 1.      , 1.      ])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from relukit.family import Activation, lookup

WHERE = "relukit.memory.output"


def kind(spec: Activation) -> str | None:
    """How ``spec`` recovers f' from its output: "closed", "branch" (one bit), or None."""
    if not spec.elementwise or spec.piecewise_linear:
        return None
    if spec.from_output is not None:
        return "closed"
    return "branch" if not spec.monotonic else None


def refusal(spec: Activation, params: Mapping[str, Any]) -> str | None:
    """Why ``backward="output"`` cannot work for ``spec`` with ``params`` (None when it can)."""
    how = kind(spec)
    if how is None:
        if spec.elementwise and spec.piecewise_linear:
            return (
                f"{spec.name} is piecewise linear: its one-bit mask already keeps less "
                "than the output"
            )
        return f"{spec.name} has no derivative that its output alone determines"
    if how == "closed" and spec.from_output_check is not None:
        return spec.from_output_check(params)
    return None


def needs_bit(spec: Activation) -> bool:
    """True when the output mode keeps one bit per element beside the output."""
    return kind(spec) == "branch"


@dataclass(frozen=True)
class Minimum:
    """The minimum of a member that is not monotonic: ``x``, ``y = f(x)`` and ``f''(x)``."""

    x: float
    y: float
    curvature: float


def _bound(spec: Activation, params: Mapping[str, Any]) -> Any:
    from relukit.activation import make

    return make(spec, dict(params))


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))


@functools.lru_cache(maxsize=64)
def _minimum(name: str, key: tuple[tuple[str, Any], ...]) -> Minimum:
    from scipy.optimize import brentq

    spec = lookup(name)
    f = _bound(spec, dict(key))

    def d(x: float) -> float:
        return float(np.asarray(f.derivative(np.array([x])))[0])

    grid = np.linspace(-10.0, 0.0, 1001)
    slopes = np.asarray(f.derivative(grid))
    turn = np.flatnonzero((slopes[:-1] < 0) & (slopes[1:] >= 0))
    if turn.size != 1:
        raise ValueError(f"{WHERE}: {spec.name} has no single minimum in [-10, 0]")
    lo, hi = grid[turn[0]], grid[turn[0] + 1]
    x = brentq(d, lo, hi, xtol=1e-300, rtol=8.9e-16, maxiter=500)
    h = 1e-5
    y = float(np.asarray(f(np.array([x])))[0])
    return Minimum(float(x), y, (d(x + h) - d(x - h)) / (2 * h))


def minimum(spec: Activation, params: Mapping[str, Any]) -> Minimum:
    """The minimum of ``spec`` (gelu, silu, mish), in float64, from the registry's derivative."""
    return _minimum(spec.name, _key(spec.bind(params)))


def branch_bit(spec: Activation, params: Mapping[str, Any], x: Any) -> Any:
    """The bit the output mode keeps: True where ``x`` lies below the member's minimum."""
    return x < minimum(spec, params).x


@dataclass(frozen=True)
class InverseTable:
    """Piecewise polynomials of f' over ``v`` (right of the minimum) and of f'/y over ``q``.

    ``coefficients`` has one row per segment, ``degree + 1`` coefficients in powers of the
    position ``t ∈ [0, 1)`` within the segment: rows ``0 … right − 1`` for ``v``, row
    ``right`` the constant limit ``f'(+∞)``, then ``left`` rows for ``q`` and one holding f'/y
    at the smallest normal output.
    """

    y_min: float
    step: float
    right: int
    left: int
    degree: int
    coefficients: np.ndarray


def _bisect(f: Any, target: np.ndarray, lo: float, hi: float, increasing: bool) -> np.ndarray:
    low, high = np.full_like(target, lo), np.full_like(target, hi)
    for _ in range(2200):
        mid = low + (high - low) / 2
        if np.all((mid == low) | (mid == high)):
            break
        value = np.asarray(f(mid))
        up = value < target if increasing else value > target
        low, high = np.where(up, mid, low), np.where(up, high, mid)
    return low + (high - low) / 2


@functools.lru_cache(maxsize=64)
def _table(name: str, key: tuple[tuple[str, Any], ...], step: float, degree: int) -> InverseTable:
    spec = lookup(name)
    f = _bound(spec, dict(key))
    low = _minimum(name, key)
    x_min, y_min = low.x, low.y
    limit = spec.limits.derivative(dict(key))[1] if spec.limits is not None else 1.0
    with np.errstate(all="ignore"):
        # right end: where f is the identity and f' its limit, in float64
        grid = np.arange(0.0, 1000.0, 0.25)
        flat = (np.asarray(f.derivative(grid)) == limit) & (np.asarray(f(grid)) == grid)
        x_right = float(grid[np.argmax(flat)]) if flat.any() else 1000.0
        # left end: where f underflows to 0 (or -1000)
        grid = -np.arange(1.0, 1000.0, 0.25)
        gone = np.asarray(f(grid)) == 0
        x_left = float(grid[np.argmax(gone)]) if gone.any() else -1000.0
    v_max = math.sqrt(x_right - y_min)
    q_max = math.sqrt(math.log(-y_min) - math.log(np.finfo(np.float64).tiny))
    right, left = math.ceil(v_max / step), math.ceil(q_max / step)
    nodes = (1 - np.cos(np.pi * (2 * np.arange(degree + 1) + 1) / (2 * (degree + 1)))) / 2
    vander = np.vander(nodes, degree + 1, increasing=True)
    v = (np.arange(right)[:, None] + nodes[None, :]) * step
    xr = _bisect(f, (v * v + y_min).ravel(), x_min, x_right + 1, increasing=True)
    dr = np.asarray(f.derivative(xr)).reshape(v.shape)
    q = (np.arange(left)[:, None] + nodes[None, :]) * step
    yl = y_min * np.exp(-q * q)
    xl = _bisect(f, yl.ravel(), x_left, x_min, increasing=False)
    with np.errstate(all="ignore"):
        gl = np.asarray(f.derivative(xl)).reshape(q.shape) / yl
        missed = np.abs(np.asarray(f(xl)).reshape(q.shape) / yl - 1) > 1e-6
    # the table ends where the forward stops reaching the targets (a forward that loses its
    # digits in the far tail) or f'/y stops being finite
    bad = np.flatnonzero((missed | ~np.isfinite(gl)).any(axis=1))
    if bad.size:
        left = int(bad[0])
        gl = gl[:left] if left else np.zeros((1, degree + 1))
    rows = [
        np.linalg.solve(vander, dr.T).T,
        np.eye(1, degree + 1) * limit,
        np.linalg.solve(vander, gl[:left].T).T,
        np.eye(1, degree + 1) * gl[-1, -1],  # beyond: f'/y held at its last value
    ]
    return InverseTable(y_min, step, right, left, degree, np.concatenate(rows))


def inverse_table(spec: Activation, params: Mapping[str, Any], wide: bool) -> InverseTable:
    """The table for ``spec``: degree 7 on 0.05 (``wide``: float64) or 3 on 0.02 (float32)."""
    step, degree = (0.05, 7) if wide else (0.02, 3)
    return _table(spec.name, _key(spec.bind(params)), step, degree)


_DEVICE_TABLES: dict[tuple[int, str, str], tuple[Any, ...]] = {}


def _columns(xp: Any, table: InverseTable, like: Any) -> tuple[Any, ...]:
    """The table's coefficient columns as arrays of ``like``'s namespace, dtype and device."""
    device = array_api_compat.device(like)
    key = (id(table), str(like.dtype), str(device))
    found = _DEVICE_TABLES.get(key)
    if found is None:
        found = tuple(
            xp.asarray(np.ascontiguousarray(column), dtype=like.dtype, device=device)
            for column in table.coefficients.T
        )
        _DEVICE_TABLES[key] = found
    return found


def invert(table: InverseTable, y: Any, below: Any) -> Any:
    """f' from ``y`` and the bit ``below`` by the table, in ``y``'s namespace and dtype."""
    if array_api_compat.is_torch_array(y):
        return _invert_torch(table, y, below)
    xp = array_api_compat.array_namespace(y)
    shape = y.shape
    y, below = xp.reshape(y, (-1,)), xp.reshape(below, (-1,))
    y_min = xp.asarray(table.y_min, dtype=y.dtype)
    scale = 1 / table.step
    with np.errstate(all="ignore"):
        v = xp.sqrt(xp.clip(y - y_min, min=0)) * scale
        q = xp.sqrt(xp.clip(-xp.log(y / y_min), min=0)) * scale
    c = xp.where(below, xp.clip(q, max=table.left) + (table.right + 1), xp.clip(v, max=table.right))
    c = xp.where(xp.isnan(c), xp.zeros_like(c), c)
    segment = xp.floor(c)
    t = c - segment
    index = xp.astype(segment, xp.int64)
    columns = _columns(xp, table, y)
    p = xp.take(columns[-1], index)
    for column in columns[-2::-1]:
        p = p * t + xp.take(column, index)
    d = xp.where(below, y * p, p)
    return xp.reshape(xp.where(xp.isnan(y), y, d), shape)


def _invert_torch(table: InverseTable, y: Any, below: Any) -> Any:
    """:func:`invert` with PyTorch's operations, in place where it can (the same arithmetic)."""
    import torch

    flat, bit = y.reshape(-1), below.reshape(-1)
    scale = 1 / table.step
    z = torch.where(bit, torch.log(flat / table.y_min).neg_(), flat - table.y_min)
    c = z.clamp_(min=0).sqrt_().mul_(scale)
    c = torch.where(bit, c.clamp(max=table.left).add_(table.right + 1), c.clamp_(max=table.right))
    c = c.nan_to_num_(nan=0.0)
    index = c.to(torch.int64)  # c >= 0: truncation is floor
    t = c.sub_(index)
    columns = _columns(torch, table, flat)
    p = columns[-1].take(index)
    for column in columns[-2::-1]:
        p = column.take(index).addcmul_(p, t)
    d = torch.where(bit, p * flat, p)
    return torch.where(flat.isnan(), flat, d).view(y.shape)


def derivative_from_output(
    spec: Activation, params: Mapping[str, Any], y: Any, below: Any = None
) -> Any:
    """f'(x) from ``y = f(x)`` (and the bit of :func:`branch_bit` where the member needs it).

    Any Array-API array; 16-bit floats are computed in float32 and rounded once, as the
    reference path does. Raises ValueError (naming member and parameters) where the output
    mode cannot work.
    """
    bound = spec.bind(params)
    problem = refusal(spec, bound)
    if problem is not None:
        raise ValueError(f"{WHERE}: backward='output' for {spec.name}: {problem}")
    xp = array_api_compat.array_namespace(y)
    dtype = y.dtype
    low = str(dtype).removeprefix("torch.") in ("float16", "bfloat16")
    work = xp.astype(y, xp.float32) if low else y
    if kind(spec) == "closed":
        from relukit.kernels.reference import Math

        with np.errstate(all="ignore"):
            d = spec.from_output(Math(xp, work.dtype), work, **bound)
    else:
        if below is None:
            raise ValueError(f"{WHERE}: {spec.name} needs the branch bit (x below its minimum)")
        d = invert(inverse_table(spec, bound, wide=work.dtype == xp.float64), work, below)
    return d if d.dtype == dtype else xp.astype(d, dtype)
