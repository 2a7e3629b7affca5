"""relukit against PyTorch, the oracle, for every member PyTorch has.

Forward values, ``derivative`` (against ``torch.autograd.grad`` with a gradient of ones) and
``vjp`` (against ``torch.autograd.grad`` with a random gradient) over shapes from 0-d to 4-d
(empty ones too), non-contiguous views, NumPy and torch inputs, float16, bfloat16, float32 and
float64, and inputs that include ±0, ±inf, NaN, subnormals, the extremes of the dtype and the
kinks themselves.

Piecewise-linear members must agree bit for bit, the sign of zero and NaN positions included.
For the transcendental members PyTorch gives the special values (NaN positions, the values at
±inf, where it overflows), and the true function the rest: relukit must be within 2 ulp of the
true value in float32 and float64 (the bar; a vjp rounds g·f′ once more: 3), 1 ulp in 16-bit
floats, ulps counted relative to the result alone (the
true value comes from ``truth.py``). PyTorch's own distance from the true value is measured in
``benchmarks/accuracy.py``.

Where relukit deliberately differs (NaN in gives NaN out for the derivative, ±inf give the
limits, …) the test asserts relukit's documented value, and the kind of difference must be
listed in :mod:`tests.family.differences`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import ml_dtypes
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import relukit
from relukit.family import MEMBERS, lookup
from relukit.family.differences import DIFFERENCES, Difference

from .truth import exact, truth

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES: dict[str, tuple[np.dtype, torch.dtype]] = {
    "float64": (np.dtype(np.float64), torch.float64),
    "float32": (np.dtype(np.float32), torch.float32),
    "float16": (np.dtype(np.float16), torch.float16),
    "bfloat16": (BF16, torch.bfloat16),
}

NO_PARAMS: st.SearchStrategy[dict[str, Any]] = st.just({})


@dataclass(frozen=True)
class Case:
    """One PyTorch counterpart: relukit's member and parameters, PyTorch's call; ``exact``
    members need bit equality, the others are held to the true function (``id`` as in
    ``truth.py``)."""

    id: str
    member: str
    torch: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor]
    params: st.SearchStrategy[dict[str, Any]] = NO_PARAMS
    exact: bool = False
    dtypes: tuple[str, ...] = tuple(DTYPES)


def _fixed(**strategies: st.SearchStrategy) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(strategies)


# A slope that rounds to 0 would meet the listed zero-slope differences (see DIFFERENCES).
NONZERO_SLOPE = st.one_of(st.just(0.01), st.floats(-2, 2).filter(lambda v: abs(v) >= 1e-3))
# bounds every dtype holds as they are (0, or at least 2^-10 in size)
BOUND = st.just(0.0) | st.floats(-5, 5).filter(lambda v: abs(v) >= 2**-10)
BOUNDS = st.tuples(BOUND, BOUND).filter(lambda b: b[0] != b[1]).map(sorted)
RATES = st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted)

CASES: list[Case] = [
    Case("relu", "relu", lambda t, p: F.relu(t), exact=True),
    Case(
        "leaky_relu",
        "leaky_relu",
        lambda t, p: F.leaky_relu(t, p["negative_slope"]),
        _fixed(negative_slope=NONZERO_SLOPE),
        exact=True,
    ),
    Case(
        "prelu",
        "prelu",
        lambda t, p: F.prelu(t, torch.tensor([p["weight"]], dtype=t.dtype)),
        _fixed(weight=NONZERO_SLOPE),
        exact=True,
    ),
    Case(
        "rrelu",
        "rrelu",
        lambda t, p: F.rrelu(t, p["lower"], p["upper"], training=False),
        # a mean slope every dtype holds as nonzero (a zero slope is a listed difference)
        RATES.map(lambda r: {"lower": r[0], "upper": r[1]}).filter(lambda p: p["upper"] >= 2e-3),
        exact=True,
    ),
    Case("relu6", "relu6", lambda t, p: F.relu6(t), exact=True),
    Case(
        "hardtanh",
        "hardtanh",
        lambda t, p: F.hardtanh(t, p["min_val"], p["max_val"]),
        st.one_of(st.just([-1.0, 1.0]), BOUNDS).map(lambda b: {"min_val": b[0], "max_val": b[1]}),
        exact=True,
    ),
    Case(
        "elu",
        "elu",
        lambda t, p: F.elu(t, p["alpha"]),
        _fixed(alpha=st.just(0.0) | st.floats(1e-3, 3)),
    ),
    Case("selu", "selu", lambda t, p: F.selu(t)),
    # alpha held by float32: PyTorch's celu backward rounds alpha to float32 (see DIFFERENCES).
    Case(
        "celu",
        "celu",
        lambda t, p: F.celu(t, p["alpha"]),
        _fixed(alpha=st.floats(0.125, 4, width=32)),
    ),
    Case(
        "gelu",
        "gelu",
        lambda t, p: F.gelu(t, approximate=p["approximate"]),
        st.just({"approximate": "none"}),
    ),
    Case(
        "gelu-tanh",
        "gelu",
        lambda t, p: F.gelu(t, approximate=p["approximate"]),
        st.just({"approximate": "tanh"}),
    ),
    Case(
        "softplus",
        "softplus",
        lambda t, p: F.softplus(t, p["beta"], p["threshold"]),
        _fixed(beta=st.floats(0.125, 8), threshold=st.floats(0, 30)),
    ),
    Case("silu", "silu", lambda t, p: F.silu(t)),
    Case("mish", "mish", lambda t, p: F.mish(t)),
    Case("sigmoid", "sigmoid", lambda t, p: torch.sigmoid(t)),
    Case("tanh", "tanh", lambda t, p: torch.tanh(t)),
]
BY_ID = {case.id: case for case in CASES}


def _case_for(member: str, params: dict[str, Any]) -> Case:
    if member == "gelu" and params.get("approximate") == "tanh":
        return BY_ID["gelu-tanh"]
    return BY_ID[member]


def _kind(x: float) -> str:
    return "nan" if math.isnan(x) else ("finite" if math.isfinite(x) else f"{x:+}")


def _jax_only(d: Difference) -> bool:
    """A difference from JAX alone: PyTorch gives relukit's value (same bits)."""
    return repr(d.relukit) == repr(d.torch)


LISTED = {
    (_case_for(d.member, d.params).id, "derivative" if d.op == "vjp" else d.op, _kind(d.x))
    for d in DIFFERENCES
    if not _jax_only(d)
}


# ---------------------------------------------------------------------------------------------
# helpers


def to_f64(a: Any) -> np.ndarray:
    """Any result (NumPy or torch, any float dtype) as a float64 NumPy array, exactly."""
    if isinstance(a, torch.Tensor):
        a = a.detach()
        if a.dtype == torch.bfloat16:
            a = a.float()
        return a.numpy().astype(np.float64)
    return np.asarray(a).astype(np.float64)


def to_torch(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A NumPy array (bfloat16 included) as a contiguous torch tensor of ``dtype``, exactly."""
    host = np.array(a.astype(np.float32) if a.dtype == BF16 else a, order="C")
    return torch.from_numpy(host).to(dtype)


def cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float64 values rounded to ``dtype`` and back (the values a dtype can hold)."""
    with np.errstate(over="ignore"):
        return np.asarray(values, dtype=np.float64).astype(dtype).astype(np.float64)


def describe(x: np.ndarray, a: np.ndarray, b: np.ndarray, bad: np.ndarray) -> str:
    rows = [f"x={xi!r} relukit={ai!r} expected={bi!r}" for xi, ai, bi in zip(
        x[bad][:8], a[bad][:8], b[bad][:8], strict=True)]  # fmt: skip
    return "\n".join(rows)


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise: equal values with the same sign of zero, or both NaN."""
    both_nan = np.isnan(a) & np.isnan(b)
    return both_nan | ((a == b) & (np.signbit(a) == np.signbit(b)))


def error_in_ulps(a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """|a - b| in ulps of ``dtype`` at ``b`` (a difference below the smallest normal number
    counts as none: results that are not normal numbers are not held to ulps)."""
    info = ml_dtypes.finfo(dtype)
    with np.errstate(all="ignore"):
        diff = np.abs(a - b)
        diff = np.where(diff <= float(info.tiny), 0.0, diff)
        magnitude = np.maximum(np.abs(b), float(info.tiny))
        ulp = np.exp2(np.floor(np.log2(magnitude)) - info.nmant)
        err = np.where(diff == 0, 0.0, diff / ulp)
    finite = np.isfinite(a) & np.isfinite(b)
    return np.where(finite, err, np.where(same_bits(a, b) | (a == b), 0.0, np.inf))


def true_values(case: Case, op: str, x: np.ndarray, params: dict[str, Any], dtype, g=None):
    """The true ``op`` at the finite ``x`` (NaN elsewhere), in float64; for a vjp ``g`` times
    the true derivative. Beyond the dtype's range: the infinity it rounds to."""
    what = "derivative" if op == "vjp" else op
    flat = np.ravel(x)
    finite = np.isfinite(flat)
    values = np.full(flat.shape, np.nan)
    if dtype == np.float64:
        values[finite] = [exact(case.id, what, float(v), params) for v in flat[finite]]
    else:
        values[finite] = truth(case.id, what, flat[finite], params)
    values = values.reshape(np.shape(x))
    if op == "vjp":
        with np.errstate(invalid="ignore"):
            values = values * g
    big = np.abs(values) > float(ml_dtypes.finfo(dtype).max)
    return np.where(big, cast(values, dtype), values)


def tolerance(case: Case, op: str, dtype) -> float:
    if dtype in (np.float32, np.float64):
        return 3.0 if op == "vjp" else 2.0
    return 1.0


def assert_agrees(case: Case, params, x, ours, expected, dtype, what: str, g=None) -> None:
    x, a, b = to_f64(x), to_f64(ours), np.asarray(expected, dtype=np.float64)
    assert a.shape == b.shape
    nan_mismatch = np.isnan(a) != np.isnan(b)
    assert not nan_mismatch.any(), f"{case.id} {what}: NaN positions\n" + describe(
        x, a, b, nan_mismatch
    )
    if case.exact:
        bad = ~same_bits(a, b)
    else:
        # the special values as expected (PyTorch's or the documented ones), the true value
        # elsewhere
        true = true_values(case, what, x, params, dtype, None if g is None else to_f64(g))
        b = np.where(np.isfinite(b) & np.isfinite(x) & ~np.isnan(true), true, b)
        bad = error_in_ulps(a, b, dtype) > tolerance(case, what, dtype)
        bad |= np.isinf(a) & (a != b)
    assert not bad.any(), f"{case.id} {what} [{dtype}]:\n" + describe(x, a, b, bad)


def documented(case: Case, op: str, x, theirs, precise, dtype, torch_derivative=None):
    """PyTorch's values, with relukit's documented ones put in where relukit differs.

    NaN in gives NaN out. Where PyTorch's value (its derivative, for a vjp) is NaN for an input
    that is not, or overflows to ±inf where relukit's is finite, the expected value is
    relukit's own evaluated in float64 (``precise``): the limit at ±inf, the finite value
    otherwise. Each kind of difference must be listed in DIFFERENCES.
    """
    shape = np.shape(theirs)
    x, theirs, precise = np.ravel(x), np.ravel(theirs), np.ravel(cast(to_f64(precise), dtype))
    basis = theirs if op != "vjp" else np.ravel(torch_derivative)
    nan_in = np.isnan(x)
    overflow = np.isinf(basis) & np.isfinite(x) & np.isfinite(precise)
    broken = ~nan_in & (np.isnan(basis) | overflow)
    expected = theirs.copy()
    expected[broken] = precise[broken]
    expected[nan_in] = np.nan
    changed = ~same_bits(expected, theirs)
    for value in np.unique(x[changed]):
        key = (case.id, "derivative" if op == "vjp" else op, _kind(float(value)))
        assert key in LISTED, f"{key} differs from PyTorch but is not listed in DIFFERENCES"
    return expected.reshape(shape)


# ---------------------------------------------------------------------------------------------
# inputs


def special_values(dtype: np.dtype, kinks: list[float]) -> list[float]:
    info = ml_dtypes.finfo(dtype)
    values = [0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 0.5, -2.0]
    for v in (info.max, info.tiny, info.smallest_subnormal):
        values += [float(v), -float(v)]
    for k in kinks:
        at = np.asarray(k, dtype=dtype)
        values += [float(at), float(np.nextafter(at, at + 1)), float(np.nextafter(at, at - 1))]
    return [float(v) for v in cast(np.array(values), dtype)]


def arrays_of(dtype: np.dtype, shape, specials: list[float]) -> st.SearchStrategy[np.ndarray]:
    """Arrays of ``dtype`` mixing special values, moderate values and any value of the dtype."""
    width = {np.dtype(np.float64): 64, np.dtype(np.float16): 16}.get(dtype, 32)
    host = np.float32 if dtype == BF16 else dtype
    elements = st.one_of(
        st.sampled_from(specials),
        st.floats(-40, 40, width=width),
        st.floats(width=width),
    )
    return hnp.arrays(host, shape, elements=elements).map(lambda a: a.astype(dtype))


LAYOUTS = ("contiguous", "transpose", "step", "reverse")


def view_of(base: Any, layout: str) -> Any:
    """A (usually non-contiguous) view of ``base``, NumPy or torch."""
    if base.ndim == 0 or layout == "contiguous":
        return base
    if layout == "transpose":
        return (
            base.permute(*reversed(range(base.ndim))) if isinstance(base, torch.Tensor) else base.T
        )
    if layout == "step":
        return base[::2]
    return torch.flip(base, [-1]) if isinstance(base, torch.Tensor) else base[..., ::-1]


def kinks_of(member: str, bound: dict[str, Any]) -> list[float]:
    return [k.at(bound) for k in lookup(member).kinks if math.isfinite(k.at(bound))]


def torch_results(case, x_np, tdtype, bound, g_np):
    """PyTorch's forward, gradient of ones and vjp with g, as float64 arrays."""
    t = to_torch(x_np, tdtype).requires_grad_(True)
    y = case.torch(t, bound)
    (ones,) = torch.autograd.grad(y, t, torch.ones_like(y), retain_graph=True)
    (vjp,) = torch.autograd.grad(y, t, to_torch(g_np, tdtype))
    return to_f64(y), to_f64(ones), to_f64(vjp)


# ---------------------------------------------------------------------------------------------
# the property test


PARAMS = [
    pytest.param(case, name, id=f"{case.id}-{name}") for case in CASES for name in case.dtypes
]


@pytest.mark.parametrize(("case", "dtype_name"), PARAMS)
@given(data=st.data())
def test_matches_torch(case: Case, dtype_name: str, data) -> None:
    dtype, tdtype = DTYPES[dtype_name]
    params = data.draw(case.params, label="params")
    if case.member == "prelu":  # PyTorch's weight is a tensor of the input's dtype
        params = {"weight": float(cast(np.array(params["weight"]), dtype))}
    f = relukit.get(case.member, **params)
    bound = f.params
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5), "shape")
    base = data.draw(arrays_of(dtype, shape, special_values(dtype, kinks_of(case.member, bound))))
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    kind = data.draw(st.sampled_from(["numpy", "torch"]), label="array kind")
    g_elements = st.one_of(
        st.floats(-4, 4, width=16), st.sampled_from([0.0, -0.0, math.inf, math.nan])
    )
    g_base = data.draw(hnp.arrays(np.float16, shape, elements=g_elements)).astype(dtype)

    x_np, g_np = view_of(base, layout), view_of(g_base, layout)
    x_in = view_of(to_torch(base, tdtype), layout) if kind == "torch" else x_np
    g_in = view_of(to_torch(g_base, tdtype), layout) if kind == "torch" else g_np
    before = to_f64(x_in).copy()

    forward, derivative, vjp = f(x_in), f.derivative(x_in), f.vjp(x_in, g_in)

    for result in (forward, derivative, vjp):
        assert type(result) is type(x_in)
        assert result.dtype == x_in.dtype and tuple(result.shape) == tuple(x_in.shape)
    assert same_bits(to_f64(x_in), before).all(), "the input was modified"

    x64, g64 = to_f64(x_np), to_f64(g_np)
    t_forward, t_ones, t_vjp = torch_results(case, x_np, tdtype, bound, g_np)
    checks = (
        ("forward", forward, t_forward, f(x64)),
        ("derivative", derivative, t_ones, f.derivative(x64)),
        ("vjp", vjp, t_vjp, f.vjp(x64, g64)),
    )
    # For the smooth members, an infinite incoming gradient times a derivative that underflows
    # to 0 in one library's working precision (but not the other's) is 0·inf: NaN or ±inf by
    # rounding luck, not a convention. There the vjp is only required not to be finite and
    # nonzero. (The piecewise-linear members' zeros are exact and checked bit for bit.)
    underflow = (t_ones == 0) | (to_f64(derivative) == 0) | (to_f64(checks[1][3]) == 0)
    indeterminate = np.isinf(g64) & underflow & ~np.isnan(x64) & (not case.exact)
    for op, ours, theirs, precise in checks:
        expected = documented(case, op, x64, theirs, precise, dtype, t_ones)
        if op == "vjp" and indeterminate.any():
            mine = to_f64(ours)
            assert np.all(~np.isfinite(mine[indeterminate]) | (mine[indeterminate] == 0))
            expected = np.where(indeterminate, mine, expected)
        assert_agrees(case, bound, x64, ours, expected, dtype, op, g64 if op == "vjp" else None)


def test_every_member_pytorch_has_is_compared():
    assert {case.member for case in CASES} == {s.name for s in MEMBERS if s.torch_name}


# ---------------------------------------------------------------------------------------------
# inputs exactly on the kinks, for parameters whose kinks every dtype holds


KINK_PARAMS = [
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.0625}),
    ("leaky_relu", {"negative_slope": -0.5}),
    ("prelu", {"weight": 0.375}),
    ("rrelu", {"lower": 0.125, "upper": 0.375}),
    ("relu6", {}),
    ("hardtanh", {}),
    ("hardtanh", {"min_val": -2.5, "max_val": 0.75}),
    ("elu", {}),
    ("elu", {"alpha": 2.0}),
    ("selu", {}),
]


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize(("member", "params"), KINK_PARAMS, ids=lambda v: str(v))
def test_derivative_on_the_kinks_matches_autograd(member, params, dtype_name):
    dtype, tdtype = DTYPES[dtype_name]
    case = BY_ID[member]
    f = relukit.get(member, **params)
    kinks = kinks_of(member, f.params)
    assert kinks
    x = np.array(special_values(dtype, kinks)[-3 * len(kinks) :]).astype(dtype)
    g = np.linspace(-3, 3, x.size).astype(dtype)
    t_forward, t_ones, t_vjp = torch_results(case, x, tdtype, f.params, g)
    x64 = to_f64(x)
    assert_agrees(case, f.params, x64, f(x), t_forward, dtype, "forward")
    assert_agrees(case, f.params, x64, f.derivative(x), t_ones, dtype, "derivative")
    assert_agrees(case, f.params, x64, f.vjp(x, g), t_vjp, dtype, "vjp", to_f64(g))
    for kink in lookup(member).kinks:
        at = np.array([kink.at(f.params)], dtype=dtype)
        assert to_f64(f.derivative(at))[0] == float(
            cast(np.array(kink.derivative(f.params)), dtype)
        )


# ---------------------------------------------------------------------------------------------
# prelu with one slope per channel, and its weight gradient


@pytest.mark.parametrize("dtype_name", DTYPES)
@given(data=st.data())
def test_prelu_per_channel_and_weight_gradient(dtype_name, data):
    dtype, tdtype = DTYPES[dtype_name]
    channels = data.draw(st.integers(1, 4), label="channels")
    batch = data.draw(st.integers(0, 3), label="batch")
    rest = data.draw(st.lists(st.integers(1, 3), max_size=2), label="spatial")
    shape = (batch, channels, *rest)
    x = data.draw(arrays_of(dtype, shape, special_values(dtype, [0.0])))
    x = np.where(np.isfinite(x), np.clip(x.astype(np.float64), -1e3, 1e3), x.astype(np.float64))
    x = x.astype(dtype)
    slopes = st.floats(-2, 2, width=16).filter(lambda v: v != 0)
    weight = data.draw(hnp.arrays(np.float16, (channels,), elements=slopes))
    weight = weight.astype(dtype)
    g = data.draw(hnp.arrays(np.float16, shape, elements=st.floats(-4, 4, width=16))).astype(dtype)

    t = to_torch(x, tdtype).requires_grad_(True)
    w = to_torch(weight, tdtype).requires_grad_(True)
    y = F.prelu(t, w)
    gx, gw = torch.autograd.grad(y, (t, w), to_torch(g, tdtype))

    case, x64, w64, g64 = BY_ID["prelu"], to_f64(x), to_f64(weight), to_f64(g)
    precise = relukit.prelu(x64, weight=w64)
    expected = documented(case, "forward", x64, to_f64(y), precise, dtype)
    assert_agrees(case, {}, x64, relukit.prelu(x, weight=weight), expected, dtype, "forward")
    (ones,) = torch.autograd.grad(F.prelu(t, w), t, torch.ones_like(y))
    precise = relukit.prelu.vjp(x64, g64, weight=w64)
    expected = documented(case, "vjp", x64, to_f64(gx), precise, dtype, to_f64(ones))
    ours = relukit.prelu.vjp(x, g, weight=weight)
    assert_agrees(case, {}, x64, ours, expected, dtype, "vjp")

    finite = np.isfinite(x64)
    if finite.all():  # the weight gradient sums x·g: compare within the rounding of the sums
        ours_w = to_f64(relukit.prelu.vjp(x, g, weight=weight, wrt="weight"))
        bound = np.sum(np.abs(x64 * to_f64(g)), axis=tuple(i for i in range(x.ndim) if i != 1))
        eps = float(ml_dtypes.finfo(dtype).eps)
        assert ours_w.shape == (channels,)
        assert np.all(
            np.abs(ours_w - to_f64(gw)) <= 4 * eps * bound + float(ml_dtypes.finfo(dtype).tiny)
        )


# ---------------------------------------------------------------------------------------------
# rrelu in training: random slopes from an explicit seed


@given(
    seed=st.integers(0, 2**32 - 1),
    rates=RATES,
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
    dtype_name=st.sampled_from(["float64", "float32"]),
)
def test_rrelu_training_slopes(seed, rates, shape, dtype_name):
    dtype = DTYPES[dtype_name][0]
    lower, upper = rates
    f = relukit.get("rrelu", lower=lower, upper=upper, training=True, seed=seed)
    slopes = -to_f64(f(-np.ones(shape, dtype=dtype)))
    assert np.all(
        (cast(np.array(lower), dtype) <= slopes) & (slopes <= cast(np.array(upper), dtype))
    )
    x = np.linspace(-3, 3, math.prod(shape)).reshape(shape).astype(dtype)
    y, d = to_f64(f(x)), to_f64(f.derivative(x))
    # Same seed, same numbers; the derivative is the slope that was used.
    assert same_bits(y, to_f64(f(x))).all() and same_bits(d, to_f64(f.derivative(x))).all()
    x64 = to_f64(x)
    assert same_bits(d, np.where(x64 > 0, 1.0, slopes)).all()
    assert same_bits(y, np.where(x64 > 0, x64, cast(x64 * slopes, dtype))).all()
    g = np.full(shape, 2.0, dtype=dtype)
    assert same_bits(to_f64(f.vjp(x, g)), cast(2 * d, dtype)).all()


def test_rrelu_training_is_reproducible_across_seed_kinds_and_nan_stays_nan():
    x = np.array([-1.0, -2.0, np.nan, 0.0, 3.0, -np.inf])
    by_int = relukit.rrelu(x, training=True, seed=7)
    by_generator = relukit.rrelu(x, training=True, seed=np.random.default_rng(7))
    assert same_bits(by_int, by_generator).all()
    other = relukit.rrelu(x, training=True, seed=8)
    assert not np.array_equal(by_int[:2], other[:2])
    assert np.isnan(by_int[2]) and by_int[4] == 3.0 and by_int[5] == -np.inf
    d = relukit.rrelu.derivative(x, training=True, seed=7)
    slopes = -relukit.rrelu(-np.ones(6), training=True, seed=7)
    assert np.isnan(d[2]) and d[4] == 1.0 and d[3] == slopes[3]  # the slope at the kink x = 0
    assert d[0] == slopes[0] == -by_int[0]
    rng = np.random.default_rng(7)
    first, second = (relukit.rrelu(x, training=True, seed=rng) for _ in range(2))
    assert not np.array_equal(first[:2], second[:2])  # a Generator is a stream


def test_rrelu_training_in_torch_also_draws_within_bounds():
    """The property the random slopes share with PyTorch's (whose numbers we cannot match)."""
    torch.manual_seed(0)
    t = -torch.ones(1000, dtype=torch.float64, requires_grad=True)
    y = F.rrelu(t, 0.1, 0.3, training=True)
    (d,) = torch.autograd.grad(y, t, torch.ones_like(y))
    ours = relukit.rrelu.derivative(-np.ones(1000), lower=0.1, upper=0.3, training=True, seed=0)
    for slopes in (d.numpy(), ours):
        assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and slopes.std() > 0.03


# ---------------------------------------------------------------------------------------------
# the published differences


def _evaluate(d: Difference) -> tuple[float, float]:
    dtype, tdtype = DTYPES[d.dtype]
    f = relukit.get(d.member, **d.params)
    x = np.full(d.size, d.x).astype(dtype)
    g = np.full(d.size, d.grad_out).astype(dtype)
    t_forward, t_ones, t_vjp = torch_results(_case_for(d.member, d.params), x, tdtype, f.params, g)
    if d.op == "forward":
        return float(to_f64(f(x))[0]), float(t_forward[0])
    if d.op == "derivative":
        return float(to_f64(f.derivative(x))[0]), float(t_ones[0])
    return float(to_f64(f.vjp(x, g))[0]), float(t_vjp[0])


@pytest.mark.parametrize("difference", DIFFERENCES, ids=lambda d: d.label)
def test_listed_difference_still_holds(difference):
    ours, theirs = _evaluate(difference)
    assert same_bits(np.array(ours), np.array(difference.relukit)), ours
    assert same_bits(np.array(theirs), np.array(difference.torch)), theirs
    if _jax_only(difference):  # then it must differ from JAX's value
        assert not same_bits(np.array(ours), np.array(difference.jax))
    else:
        assert not same_bits(np.array(ours), np.array(theirs))
    assert difference.why
    assert isinstance(difference.jax, (float, str))
