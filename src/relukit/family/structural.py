"""Members that change the shape: crelu (doubles an axis) and maxout (divides an axis by k).

They have no elementwise derivative; their vector-Jacobian products are given instead.
"""

from __future__ import annotations

from typing import Any

from relukit.family.spec import (
    Activation,
    Firing,
    Kink,
    Parameter,
    ParameterError,
    constant,
    integer,
)
from relukit.family.spec import positive_integer as _positive_integer


def _axis(x: Any, axis: int, name: str) -> int:
    if x.ndim == 0:
        raise ParameterError(f"{name} needs an input with at least one axis (got a 0-d array)")
    if not -x.ndim <= axis < x.ndim:
        raise ParameterError(f"axis={axis} is out of range for an input with {x.ndim} axes")
    return axis % x.ndim


def _slice(x: Any, axis: int, start: int, stop: int) -> Any:
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, stop)
    return x[tuple(index)]


# ---------------------------------------------------------------------------------------------
# crelu


def _crelu(m: Any, x: Any, axis: int) -> Any:
    ax = _axis(x, axis, "crelu")
    return m.concat([m.where(x < 0, 0, x), m.where(x > 0, 0, -x)], axis=ax)


def _crelu_vjp(m: Any, x: Any, g: Any, axis: int) -> Any:
    ax = _axis(x, axis, "crelu")
    expected = list(x.shape)
    expected[ax] *= 2
    if tuple(g.shape) != tuple(expected):
        raise ParameterError(
            f"grad_out has shape {tuple(g.shape)}; crelu's output has shape {tuple(expected)}"
        )
    n = x.shape[ax]
    positive, negative = _slice(g, ax, 0, n), _slice(g, ax, n, 2 * n)
    grad = m.where(x > 0, positive, m.where(x < 0, -negative, m.zeros_like(positive)))
    return m.where(m.isnan(x), x, grad)


crelu = Activation(
    name="crelu",
    module="CReLU",
    summary="Concatenated ReLU: relu(x) and relu(−x) side by side",
    formula="concat(max(0, x), max(0, −x)) along axis",
    latex=r"[\max(0, x), \max(0, -x)]",
    forward=_crelu,
    vjp=_crelu_vjp,
    parameters=(
        Parameter("axis", -1, "axis along which the two halves are concatenated", integer, int),
    ),
    kinks=(Kink("x = 0", "0 for both halves", constant(0.0), constant(0.0)),),
    output_range="[0, ∞), twice the size along axis",
    monotonic=False,
    firing=Firing(constant(0.0), "y > 0", on="output"),
    reference="Shang, Sohn, Almeida & Lee, Understanding and Improving Convolutional Neural "
    "Networks via Concatenated Rectified Linear Units",
    year=2016,
    example="""
>>> import relukit
>>> relukit.crelu([-2.0, 0.5, 3.0])
array([0. , 0.5, 3. , 2. , 0. , 0. ])
>>> relukit.crelu.vjp([-2.0, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
array([-1.,  1.,  1.])
""",
)

# ---------------------------------------------------------------------------------------------
# maxout


def _groups(m: Any, x: Any, pieces: int, axis: int) -> tuple[Any, int]:
    """x with ``axis`` moved last and split into (groups, pieces)."""
    ax = _axis(x, axis, "maxout")
    n = x.shape[ax]
    if n % pieces:
        raise ParameterError(f"pieces={pieces} does not divide axis {axis} of length {n}")
    last = m.moveaxis(x, ax, -1)
    return m.reshape(last, (*last.shape[:-1], n // pieces, pieces)), ax


def _first_max(m: Any, grouped: Any) -> Any:
    """Mask of the first maximal entry (or first NaN) of each group along the last axis."""
    best = m.max(grouped, axis=-1, keepdims=True)
    hit = (grouped == best) | m.isnan(grouped)
    return hit & (m.cumulative_sum(m.astype(hit, m.int32), axis=-1) == 1)


def _maxout(m: Any, x: Any, pieces: int, axis: int) -> Any:
    grouped, ax = _groups(m, x, pieces, axis)
    # The value of the entry the gradient goes to, so that a tie of -0.0 and 0.0 keeps the sign
    # of the first (as torch.max along a dimension does).
    chosen = m.where(_first_max(m, grouped), grouped, -m.inf)
    return m.moveaxis(m.max(chosen, axis=-1), -1, ax)


def _maxout_vjp(m: Any, x: Any, g: Any, pieces: int, axis: int) -> Any:
    grouped, ax = _groups(m, x, pieces, axis)
    expected = list(x.shape)
    expected[ax] //= pieces
    if tuple(g.shape) != tuple(expected):
        raise ParameterError(
            f"grad_out has shape {tuple(g.shape)}; maxout's output has shape {tuple(expected)}"
        )
    first = _first_max(m, grouped)
    g_last = m.moveaxis(g, ax, -1)[..., None]
    grad = m.where(first, g_last, m.zeros_like(grouped))
    grad = m.reshape(grad, (*grad.shape[:-2], grad.shape[-2] * pieces))
    return m.moveaxis(grad, -1, ax)


maxout = Activation(
    name="maxout",
    module="Maxout",
    summary="Maxout: the maximum over groups of k consecutive features",
    formula="max over each group of `pieces` consecutive entries along axis",
    latex=r"\max_{j \in \text{group } i} x_j",
    forward=_maxout,
    vjp=_maxout_vjp,
    parameters=(
        Parameter(
            "pieces", 2, "k, the number of linear pieces per output unit", _positive_integer, int
        ),
        Parameter(
            "axis", -1, "axis that holds the features (its length divisible by k)", integer, int
        ),
    ),
    kinks=(
        Kink(
            "ties",
            "the whole gradient goes to the first maximal entry (or first NaN)",
            constant(0.0),
            constant(1.0),
        ),
    ),
    output_range="(-∞, ∞), axis divided by pieces",
    firing=Firing(constant(0.0), "y > 0", on="output"),
    reference="Goodfellow, Warde-Farley, Mirza, Courville & Bengio, Maxout Networks",
    year=2013,
    example="""
>>> import relukit
>>> relukit.maxout([1.0, 3.0, -2.0, -5.0], pieces=2)
array([ 3., -2.])
>>> relukit.maxout.vjp([1.0, 3.0, -2.0, -5.0], [10.0, 20.0], pieces=2)
array([ 0., 10., 20.,  0.])
""",
)

MEMBERS = (crelu, maxout)
