"""The fuzz harness: unusual and wrong input for every public function and CLI command.

Hypothesis draws, for every member, its ``__call__``, ``derivative``, ``vjp`` (also with respect
to prelu's weight), ``forward_with_mask`` and ``backward_from_mask``, and for ``relukit.get`` and
the ``list``, ``eval`` and ``plot`` commands:

- inputs of every kind (Python numbers and lists, NumPy arrays, torch tensors) and dtype
  (floats of 16 to 128 bits, ints, unsigned ints, bools, complex), in every layout (C and F
  order, strided, reversed, transposed, 0-d, empty), with ±0, ±inf, NaN, subnormals and the
  extremes of the dtype among ordinary values;
- parameters spelled as Python, NumPy and torch scalars, lists, huge (``10**400``, ``1e308``),
  tiny (``5e-324``) and special values, values of the wrong kind, and equal bounds;
- ``out=`` buffers that fit, are read-only, have the wrong dtype or shape, alias the input, or
  are torch leaves that require grad; gradients and masks of the wrong shape, dtype or kind.

Four properties are checked on every call:

1. The result agrees with the reference path (``dispatch.forced("reference")``): bit for bit
   (dtype, kind and shape included) for the piecewise-linear members; for those computed
   through exp, erf, tanh or log (elu, selu and celu too, the accuracy tests' members), whose
   compiled kernels and reference path are two evaluations each within its documented
   accuracy of the true value, within the sum of the two bounds (:func:`agrees`); or the call
   raises a ``TypeError``/``ValueError`` that is
   relukit's own :class:`relukit.UserError`, on one line, naming the function (and the
   reference path raises the same).
2. The caller's input (x, grad_out, the mask, the parameters' arrays) is unchanged, unless it
   is ``out`` itself.
3. Nothing else is raised.
4. An element's result does not depend on the array's length or layout
   (:func:`test_result_does_not_depend_on_length_or_layout`).

The CI profile tries a few dozen examples per test; ``RELUKIT_HYPOTHESIS=thorough`` ten times
more (see ``conftest.py``). ``pytest tests/test_fuzz.py --hypothesis-show-statistics`` counts
the examples tried; with ``RELUKIT_FUZZ_TALLY=file.json`` the calls made and how each ended
(a result, or a clear error) are added up per area into that file.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import math
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis.extra.numpy as hnp
import ml_dtypes
import numpy as np
import pytest
import torch
from family.truth import FLOAT64_REFERENCE_ULPS, SMOOTH_CASES, member_id
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import relukit
from relukit import cli
from relukit.family import MEMBERS
from relukit.kernels import dispatch

BUDGET = settings.default.max_examples  # 50 in CI, 500 in the thorough profile
FUZZ = settings(max_examples=BUDGET, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=max(3, BUDGET // 10), suppress_health_check=list(HealthCheck))

BY_NAME = {spec.name: spec for spec in MEMBERS}
ALIASES = {alias: spec for spec in MEMBERS for alias in spec.names}
NAMES = sorted(BY_NAME)
BF16 = np.dtype(ml_dtypes.bfloat16)

TALLY: collections.Counter[tuple[str, str]] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    """Add this run's calls per area to ``$RELUKIT_FUZZ_TALLY`` (a JSON file), if set."""
    yield
    path = os.environ.get("RELUKIT_FUZZ_TALLY")
    if path:
        total = json.loads(Path(path).read_text()) if Path(path).exists() else {}
        for (area, outcome), count in TALLY.items():
            total.setdefault(area, {}).setdefault(outcome, 0)
            total[area][outcome] += count
        Path(path).write_text(json.dumps(total, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# parameters


def _scalar_spellings(value: float) -> st.SearchStrategy[Any]:
    """``value`` as a Python, NumPy or torch scalar, or a 0-d array."""
    forms: list[Any] = [value, np.float64(value), np.array(value)]
    if abs(value) < 3e38 or not math.isfinite(value):
        forms += [np.float32(value), torch.tensor(value, dtype=torch.float64)]
    if float(value).is_integer() and abs(value) < 2**62:
        forms += [int(value), np.int64(int(value)), torch.tensor(int(value))]
    return st.sampled_from(forms)


SPECIAL = [
    0.0, -0.0, 1.0, -1.0, 0.5, 6.0, 1e-300, 5e-324, 1e308, -1e308,
    math.inf, -math.inf, math.nan, 3.4028235e38,
]  # fmt: skip
WRONG: list[Any] = [
    None,
    "x",
    "",
    True,
    np.bool_(False),
    1j,
    [0.1, 0.2],
    (),
    {},
    10**400,
    -(10**400),
]

VALID: dict[str, st.SearchStrategy[Any]] = {
    "negative_slope": st.floats(-3, 3),
    "weight": st.one_of(
        st.floats(-2, 2),
        st.lists(st.floats(-2, 2), min_size=1, max_size=4),
        st.lists(st.floats(-2, 2), min_size=1, max_size=4).map(np.array),
    ),
    "axis": st.integers(-4, 4),
    "lower": st.floats(0, 1),
    "upper": st.floats(0, 1),
    "training": st.booleans(),
    "seed": st.one_of(st.none(), st.integers(0, 2**40)),
    "min_val": st.floats(-5, 5),
    "max_val": st.floats(-5, 5),
    "max_value": st.one_of(st.none(), st.floats(-1, 8)),
    "threshold": st.floats(-5, 25),
    "alpha": st.floats(0.05, 3),
    "approximate": st.sampled_from(["none", "tanh", "erf"]),
    "beta": st.floats(0.05, 5),
    "pieces": st.integers(0, 4),
}


@st.composite
def parameter_value(draw: st.DrawFn, name: str) -> Any:
    choice = draw(st.integers(0, 9))
    if choice <= 4:
        return draw(VALID[name])
    if choice <= 6:
        value = draw(VALID[name])
        if isinstance(value, float):
            return draw(_scalar_spellings(value))
        return value
    if choice == 7:
        return draw(st.sampled_from(SPECIAL).flatmap(_scalar_spellings))
    return draw(st.sampled_from(WRONG))


@st.composite
def parameters(draw: st.DrawFn, name: str, valid_only: bool = False) -> dict[str, Any]:
    spec = BY_NAME[name]
    params: dict[str, Any] = {}
    for p in spec.parameters:
        if draw(st.booleans()):
            params[p.name] = draw(VALID[p.name] if valid_only else parameter_value(p.name))
    tie = draw(st.integers(0, 5)) == 0
    if tie and name == "hardtanh":
        params["max_val"] = params["min_val"] = draw(st.floats(-3, 3))
    elif tie and name == "rrelu":
        params["upper"] = params["lower"] = draw(st.floats(0, 1))
    elif tie and name == "general_relu":
        params["max_value"] = params["threshold"] = draw(st.floats(0, 6))
    if draw(st.integers(0, 19)) == 0 and not valid_only:
        params["nonsense"] = draw(st.sampled_from([1.0, np.zeros(2000)]))
    return params


# ---------------------------------------------------------------------------------------------
# inputs

FLOAT_DTYPES = ["float64", "float32", "float16", "bfloat16", "longdouble"]
OTHER_DTYPES = ["int8", "int32", "int64", "uint8", "bool", "complex128"]
LAYOUTS = ["C", "F", "strided", "reversed", "transposed"]


def _float_elements(dtype: np.dtype) -> st.SearchStrategy[float]:
    info = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    extremes = [float(info.max), -float(info.max), float(info.tiny), float(info.smallest_subnormal)]
    return st.one_of(
        st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1.0, -1.0, 6.0, *extremes]),
        st.floats(-10, 10),
        st.floats(allow_nan=False, allow_infinity=False, width=64),
    )


@st.composite
def host_array(draw: st.DrawFn, dtype_name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous NumPy array of ``dtype_name`` and ``shape``."""
    if dtype_name in FLOAT_DTYPES:
        dtype = BF16 if dtype_name == "bfloat16" else np.dtype(dtype_name)
        values = draw(hnp.arrays(np.float64, shape, elements=_float_elements(dtype)))
        with np.errstate(over="ignore"):
            return values.astype(dtype)
    return draw(hnp.arrays(np.dtype(dtype_name), shape))


def _lay_out(a: np.ndarray, layout: str) -> np.ndarray:
    """A view of a copy of ``a`` in ``layout`` holding ``a``'s values in ``a``'s shape
    (``transposed`` is a transposed view of the transposed values)."""
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        wide = np.zeros((*a.shape[:-1], 2 * a.shape[-1]) if a.ndim else (), dtype=a.dtype)
        if a.ndim == 0:
            wide[()] = a
            return wide
        wide[..., ::2] = a
        return wide[..., ::2]
    if layout == "reversed":
        return a.copy() if a.ndim == 0 else np.flip(np.flip(a, -1).copy(), -1)
    if layout == "transposed":
        return np.ascontiguousarray(a.T).T
    return a.copy()


def _to_torch(a: np.ndarray, layout: str) -> torch.Tensor | None:
    if a.dtype == BF16:
        t = torch.from_numpy(np.ascontiguousarray(a.astype(np.float32))).to(torch.bfloat16)
    elif a.dtype == np.longdouble and np.dtype(np.longdouble).itemsize > 8:
        return None
    else:
        t = torch.from_numpy(np.ascontiguousarray(a))
    if layout == "strided" and t.ndim:
        wide = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype)
        wide[..., ::2] = t
        return wide[..., ::2]
    if layout == "transposed" and t.ndim >= 2:
        return t.mT.contiguous().mT
    return t


@dataclass
class Drawn:
    """A drawn input: what the caller passes, and its NumPy picture for the checks."""

    value: Any
    kind: str  # numpy, torch, list, scalar

    def snapshot(self) -> Any:
        if isinstance(self.value, np.ndarray):
            return self.value.copy()
        if isinstance(self.value, torch.Tensor):
            return self.value.detach().clone()
        return pickle.dumps(self.value)

    def unchanged_since(self, before: Any) -> bool:
        if isinstance(self.value, (np.ndarray, torch.Tensor)):
            return same(self.value, before)
        return pickle.dumps(self.value) == before


@st.composite
def inputs(draw: st.DrawFn, shape: tuple[int, ...] | None = None) -> Drawn:
    dtype_name = draw(st.sampled_from(FLOAT_DTYPES * 3 + OTHER_DTYPES))
    if shape is None:
        if draw(st.integers(0, 7)) == 0:
            shape = (draw(st.integers(1020, 1100)),)  # (many threads' chunks, vector tails)
        else:
            shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))
    a = draw(host_array(dtype_name, shape))
    kind = draw(st.sampled_from(["numpy", "numpy", "torch", "list", "scalar"]))
    layout = draw(st.sampled_from(LAYOUTS))
    if kind == "torch":
        t = _to_torch(a, layout)
        if t is not None:
            if t.is_floating_point() and draw(st.integers(0, 9)) == 0:
                t = t.detach().requires_grad_(True)
            return Drawn(t, "torch")
        kind = "numpy"
    if kind == "list" and a.dtype != BF16:
        return Drawn(a.tolist(), "list")
    if kind == "scalar" and a.dtype.kind in "iuf" and a.dtype != BF16:
        return Drawn(a.ravel()[0].item() if a.size else 0.5, "scalar")
    return Drawn(_lay_out(a, layout), "numpy")


# ---------------------------------------------------------------------------------------------
# checks


def as_f64(value: Any) -> np.ndarray:
    """Any result as a NumPy array of float64 (complex kept), exactly."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dtype == torch.bfloat16:
            value = value.float()
        value = value.numpy()
    a = np.asarray(value)
    if a.dtype == BF16:
        a = a.astype(np.float32)
    return a


def same(a: Any, b: Any) -> bool:
    """Same kind, dtype, shape and bits (NaN equal to NaN, the sign of zero respected)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if getattr(a, "dtype", None) != getattr(b, "dtype", None):
        return False
    x, y = as_f64(a), as_f64(b)
    if x.shape != y.shape:
        return False
    if x.dtype.kind not in "fc":
        return bool(np.array_equal(x, y))
    with np.errstate(invalid="ignore"):
        both_nan = np.isnan(x) & np.isnan(y)
        equal = (x == y) & (np.signbit(x.real) == np.signbit(y.real))
    return bool((both_nan | equal).all())


# Each path's bound on its error in ulps against the true value, by result dtype: the bars of
# issue 13 for the compiled kernels (2 ulp in float32 and float64, 1 in float16 and bfloat16,
# tests/family/test_accuracy.py), the reference path's float64 exceptions measured in
# truth.FLOAT64_REFERENCE_ULPS, and half an ulp for the reference path, which rounds a float64
# evaluation once, in 32 and 16 bits.
TRANSCENDENTAL = {name for name, _ in SMOOTH_CASES}  # members the accuracy tests hold to ulps
PATH_ULPS = {"float32": (2.0, 0.5), "float16": (1.0, 0.5), "bfloat16": (1.0, 0.5)}


def agrees(name: str, params: dict[str, Any], op: str, a: Any, b: Any) -> bool:
    """``same(a, b)``; for a smooth member's float result, NaN, ±inf, zeros' signs and dtype
    as ``same`` and every other element within the two paths' bounds (counted in ulps of the
    result's dtype at the larger of the two, as the accuracy tests count them)."""
    if same(a, b) or name not in TRANSCENDENTAL or type(a) is not type(b):
        return same(a, b)
    if isinstance(a, tuple) or getattr(a, "dtype", None) != getattr(b, "dtype", None):
        return False
    x, y = as_f64(a), as_f64(b)
    if x.shape != y.shape or x.dtype.kind != "f":
        return False
    dtype = np.dtype(BF16) if str(getattr(a, "dtype", "")).endswith("bfloat16") else x.dtype
    if dtype == np.float64:
        which = "forward" if op == "__call__" else "derivative"
        key = (member_id(name, params), which)
        bound = 2.0 + FLOAT64_REFERENCE_ULPS.get(key, 2.0)
    else:
        bound = sum(PATH_ULPS[dtype.name])
    if op == "vjp":
        bound += 1.0  # the product with grad_out is rounded once more on each path
    with np.errstate(invalid="ignore", over="ignore"):
        special = ~np.isfinite(x) | ~np.isfinite(y) | ((x == 0) & (y == 0))
        exact = (x == y) & (np.signbit(x) == np.signbit(y)) | (np.isnan(x) & np.isnan(y))
        if not (exact | ~special).all():
            return False
        magnitude = np.maximum(np.abs(x), np.abs(y)).astype(dtype)
        ulp = np.spacing(np.where(special, 1, magnitude)).astype(np.float64)
        # results below the smallest normal number are not held to ulps (as in the accuracy
        # tests): there the kernels may flush to a zero of the same sign
        tiny = float(ml_dtypes.finfo(dtype).smallest_normal)
        allowed = np.where(magnitude.astype(np.float64) < tiny, tiny, bound * ulp)
        signs = (np.signbit(x) == np.signbit(y)) | special
        return bool((np.abs(x - y)[~special] <= allowed[~special]).all() and signs.all())


def attempt(call: Any) -> tuple[Any, Exception | None]:
    """``call()``'s result, or the TypeError/ValueError it raised; anything else propagates."""
    try:
        return call(), None
    except (TypeError, ValueError) as error:
        return None, error


def assert_clear(error: Exception, names: tuple[str, ...]) -> None:
    message = str(error)
    assert isinstance(error, relukit.UserError), (
        f"{type(error).__name__} not from relukit's checks: {message}"
    )
    assert "\n" not in message and len(message) < 600, message
    assert any(name in message for name in names), f"{message!r} names none of {names}"


def checked_call(
    name: str, call: Any, reference: Any, params: dict[str, Any] | None = None, op: str = ""
) -> tuple[Any, Exception | None]:
    """Run ``call`` (the default path) and ``reference`` (same call, reference path) and check
    properties 1 and 3; returns the default path's outcome."""
    result, error = attempt(call)
    with dispatch.forced("reference"):
        expected, expected_error = attempt(reference)
    TALLY["members", "clear error" if error is not None else "result"] += 1
    if error is not None or expected_error is not None:
        assert error is not None and expected_error is not None, (error, expected_error)
        assert type(error) is type(expected_error), (error, expected_error)
        assert_clear(error, (f"relukit.{name}", "relukit.get"))
        return None, error
    assert agrees(name, params or {}, op, result, expected), (
        f"{name}.{op}: default path {result!r}, reference {expected!r}"
    )
    return result, None


# ---------------------------------------------------------------------------------------------
# out= buffers


def out_buffer(kind: str, like: Any, x: Any) -> Any:
    """An ``out=`` buffer for a result like ``like`` (a NumPy array or torch tensor)."""
    if kind == "alias":
        return x
    if isinstance(like, torch.Tensor):
        if kind == "leaf" and like.is_floating_point():
            return torch.zeros_like(like).requires_grad_(True)
        if kind == "wrong_dtype":
            return torch.zeros(
                like.shape, dtype=torch.float16 if like.dtype != torch.float16 else torch.float32
            )
        if kind == "wrong_shape":
            return torch.zeros((*like.shape, 2), dtype=like.dtype)
        if kind == "numpy":
            return np.zeros(tuple(like.shape))
        return torch.zeros_like(like)
    like = np.asarray(like)
    if kind == "wrong_dtype":
        return np.zeros(like.shape, dtype=np.float16 if like.dtype != np.float16 else np.float32)
    if kind == "wrong_shape":
        return np.zeros((*like.shape, 2), dtype=like.dtype)
    if kind == "torch":
        return torch.zeros(like.shape, dtype=torch.float64)
    out = np.zeros_like(like)
    if kind == "fortran":
        out = np.asfortranarray(out)
    if kind == "readonly":
        out.flags.writeable = False
    return out


OUT_KINDS = ["none"] * 4 + [
    "good",
    "fortran",
    "readonly",
    "wrong_dtype",
    "wrong_shape",
    "alias",
    "leaf",
    "torch",
    "numpy",
]


def copy_of(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy() if value.flags.writeable else value
    if isinstance(value, torch.Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    return value


# ---------------------------------------------------------------------------------------------
# properties 1-3: every operation of every member


def _grad_for(draw: st.DrawFn, y: Any, x: Drawn) -> Any:
    """A gradient for output ``y``: usually of its shape and dtype, sometimes not."""
    choice = draw(st.integers(0, 11))
    if choice == 0:
        return None
    if choice == 1:
        return draw(inputs()).value
    if choice == 2:
        return "grad"
    shape = tuple(np.shape(as_f64(y))) if y is not None else tuple(np.shape(as_f64(x.value)))
    if choice == 3:
        shape = (*shape, 2)
    dtype = draw(st.sampled_from(["float64", "float32", "float16"] if choice == 4 else ["float64"]))
    g = draw(host_array(dtype, shape))
    if isinstance(x.value, torch.Tensor):
        return torch.from_numpy(g).to(
            x.value.dtype if x.value.is_floating_point() else torch.float64
        )
    if choice == 5:
        return g.tolist()
    if isinstance(y, np.ndarray) and y.dtype.kind == "f" and choice > 6:
        return g.astype(y.dtype)
    return g


@FUZZ
@given(data=st.data(), name=st.sampled_from(NAMES))
def test_every_operation_of_every_member(data, name):
    f = relukit.get(name)
    params = data.draw(parameters(name), label="params")
    x = data.draw(inputs(), label="x")
    x_before = x.snapshot()
    params_before = pickle.dumps(params)

    def call(method: str, *args: Any, **kwargs: Any) -> tuple[Any, Exception | None]:
        fresh = [copy_of(a) for a in args]
        return checked_call(
            name,
            lambda: getattr(f, method)(*args, **kwargs, **params),
            lambda: getattr(f, method)(*fresh, **kwargs, **params),
            params,
            method,
        )

    # forward, with and without out=
    y, error = call("__call__", x.value)
    if error is None:
        kind = data.draw(st.sampled_from(OUT_KINDS), label="out")
        if kind != "none" and isinstance(y, (np.ndarray, torch.Tensor)):
            out = out_buffer(kind, y, x.value)
            alias = out is x.value
            result, out_error = attempt(lambda: f(x.value, out=out, **params))
            TALLY["members", "clear error" if out_error is not None else "result"] += 1
            if out_error is not None:
                assert_clear(out_error, (f"relukit.{name}",))
            else:
                assert result is out
                assert same(out, y), f"{name}: out= holds {out!r}, the result is {y!r}"
            if alias:
                return  # x was out: its change is the point
    assert x.unchanged_since(x_before), f"{name}: x was modified by the forward"

    if BY_NAME[name].elementwise:
        d, error = call("derivative", x.value)
        assert x.unchanged_since(x_before), f"{name}: x was modified by the derivative"
        integers = np.asarray(as_f64(x.value)).dtype.kind in "iu" if d is not None else False
        if integers:  # issue 10 item 1: an integer x is promoted, never truncated
            if isinstance(x.value, torch.Tensor):
                wide = x.value.to(d.dtype)
            else:
                wide = np.asarray(x.value).astype(np.asarray(d).dtype)
            expected = as_f64(f.derivative(wide, **params))
            assert as_f64(d).dtype == expected.dtype
            np.testing.assert_array_equal(as_f64(d), expected)

    g = _grad_for(data.draw, y, x)
    g_drawn = Drawn(g, "grad")
    g_before = g_drawn.snapshot()
    call("vjp", x.value, g)
    if name == "prelu":
        call("vjp", x.value, g, wrt="weight")
    assert x.unchanged_since(x_before), f"{name}: x was modified by the vjp"
    assert g_drawn.unchanged_since(g_before), f"{name}: grad_out was modified by the vjp"

    pair, error = call("forward_with_mask", x.value)
    if error is None:
        _, mask = pair
        if data.draw(st.integers(0, 4)) == 0:
            mask = data.draw(st.sampled_from([mask[:-1], np.zeros(3, np.int64), None, [1, 2]]))
        mask_before = Drawn(mask, "mask").snapshot()
        call("backward_from_mask", g, mask)
        assert Drawn(mask, "mask").unchanged_since(mask_before)
        assert g_drawn.unchanged_since(g_before)
    assert x.unchanged_since(x_before), f"{name}: x was modified by the mask path"
    assert pickle.dumps(params) == params_before, f"{name}: a parameter was modified"


# ---------------------------------------------------------------------------------------------
# property 4: one answer whatever the array's length and layout


def _length_cases() -> list[Any]:
    return [
        pytest.param(name, dtype, id=f"{name}-{dtype}")
        for name in NAMES
        if BY_NAME[name].elementwise
        for dtype in ("float64", "float32", "float16")
    ]


@FEW
@pytest.mark.parametrize(("name", "dtype"), _length_cases())
@given(data=st.data())
def test_result_does_not_depend_on_length_or_layout(name, dtype, data):
    params = data.draw(parameters(name, valid_only=True), label="params")
    params.pop("training", None)  # rrelu in training draws a slope per element of the array
    if name == "prelu" and not isinstance(params.get("weight", 0.0), float):
        params["weight"] = 0.25  # per-channel slopes depend on the shape by design
    try:
        f = relukit.get(name, **params)
    except relukit.ParameterError:
        assume(False)
        return
    n = data.draw(st.integers(1, 40), label="n")
    x = data.draw(host_array(dtype, (n,)), label="x")
    g = data.draw(host_array(dtype, (n,)), label="g")
    filler = data.draw(host_array(dtype, (1037,)), label="filler")
    long_x, long_g = np.concatenate([x, filler]), np.concatenate([g, filler])

    def results(xs: np.ndarray, gs: np.ndarray) -> dict[str, np.ndarray]:
        y, mask = f.forward_with_mask(xs) if BY_NAME[name].piecewise_linear else (f(xs), None)
        out = {"forward": y, "derivative": f.derivative(xs), "vjp": f.vjp(xs, gs)}
        if mask is not None:
            out["backward_from_mask"] = f.backward_from_mask(gs, mask)
        return out

    short = results(x, g)
    TALLY["length and layout", "result"] += 5
    for label, (xs, gs) in {
        "long": (long_x, long_g),
        "strided": (_lay_out(x, "strided"), _lay_out(g, "strided")),
        "reversed": (_lay_out(x, "reversed"), _lay_out(g, "reversed")),
        "2-d F-order": (np.asfortranarray(x.reshape(1, n)), np.asfortranarray(g.reshape(1, n))),
    }.items():
        other = results(xs, gs)
        for op, value in short.items():
            got = np.asarray(other[op]).reshape(-1)[:n]
            assert same(got, value), f"{name} {op} [{dtype}] differs in the {label} array"


# ---------------------------------------------------------------------------------------------
# relukit.get


def _name_spellings() -> st.SearchStrategy[Any]:
    names = [n for spec in MEMBERS for n in spec.names]
    return st.one_of(
        st.sampled_from(names),
        st.sampled_from(names).map(lambda n: f" {n.upper().replace('_', '-')} "),
        st.text(max_size=12),
        st.sampled_from([None, 3, b"relu", ["relu"], relukit.relu]),
    )


@FUZZ
@given(data=st.data(), name=_name_spellings())
def test_get(data, name):
    spec = ALIASES.get(name.strip().lower().replace("-", "_")) if isinstance(name, str) else None
    params = data.draw(parameters(spec.name), label="params") if spec else {}
    before = pickle.dumps(params)
    f, error = attempt(lambda: relukit.get(name, **params))
    TALLY["relukit.get", "clear error" if error is not None else "result"] += 1
    assert pickle.dumps(params) == before
    if error is not None:
        assert_clear(error, ("relukit.get", f"relukit.{spec.name if spec else ''}"))
        return
    assert isinstance(f, relukit.Function) and f.spec is spec
    assert repr(pickle.loads(pickle.dumps(f))) == repr(f)


# ---------------------------------------------------------------------------------------------
# the command line


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as exit_:  # argparse: the usage, then one error line
            TALLY[f"CLI {argv[0]}", "clear error"] += 1
            status = exit_.code if isinstance(exit_.code, int) else 1
            lines = err.getvalue().splitlines()
            assert status == 2 and lines[0].startswith("usage: relukit"), err.getvalue()
            assert re.match(r"relukit( \w+)?: error: ", lines[-1]), err.getvalue()
            return -status, out.getvalue(), err.getvalue()
    TALLY[f"CLI {argv[0]}", "clear error" if status else "result"] += 1
    return status, out.getvalue(), err.getvalue()


NUMBER_TEXT = st.one_of(
    st.floats().map(repr),
    st.sampled_from(
        ["-1e3", "-0", "nan", "-inf", "1e400", "-1e400", "0x10", "1_000", "abc", "", "-", "--x"]
    ),
    st.integers(-(10**30), 10**30).map(str),
)
PARAM_TEXT = st.one_of(NUMBER_TEXT, st.sampled_from(["none", "true", "false", "tanh", "x"]))


@st.composite
def param_pairs(draw: st.DrawFn, name: str) -> list[str]:
    spec = BY_NAME.get(name)
    keys = [p.name for p in spec.parameters] if spec else []
    keys += ["nope", ""]
    return draw(
        st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(keys), PARAM_TEXT), max_size=3)
    )


def assert_one_line_error(command: str, status: int, out: str, err: str) -> None:
    assert status == 2 and out == "", (status, out, err)
    assert err.count("\n") == 1 and err.startswith(f"relukit {command}: error: "), err


@FUZZ
@given(
    data=st.data(),
    name=st.one_of(st.sampled_from(NAMES), st.sampled_from(["nope", "ReLU", "leaky-relu"])),
)
def test_cli_eval(data, name):
    values = data.draw(st.lists(NUMBER_TEXT, min_size=1, max_size=5), label="values")
    pairs = data.draw(param_pairs(name), label="params")
    derivative = data.draw(st.booleans(), label="derivative")
    argv = ["eval", name, *values, *[a for p in pairs for a in ("--param", p)]]
    argv += ["--derivative"] if derivative else []
    status, out, err = run_cli(argv)
    if status < 0:
        return  # argparse refused the command line (usage + one line, status 2)
    if status != 0:
        assert_one_line_error("eval", status, out, err)
        return
    f = relukit.get(name, **cli.parse_params(name, pairs))
    x = np.array([float(v) for v in values])
    expected = f.derivative(x) if derivative else f(x)
    assert out == " ".join(cli._format_number(v) for v in np.ravel(expected)) + "\n"
    assert err == ""


@FEW
@given(
    data=st.data(),
    names=st.lists(st.one_of(st.sampled_from(NAMES), st.just("nope")), max_size=2),
    suffix=st.sampled_from([".png", ".svg", ".jpg", ""]),
)
def test_cli_plot(tmp_path_factory, data, names, suffix):
    folder = tmp_path_factory.mktemp("plot")
    specs = [
        n
        + (
            ":" + ",".join(data.draw(param_pairs(n), label="params"))
            if data.draw(st.booleans())
            else ""
        )
        for n in names
    ]
    low, high = data.draw(st.tuples(NUMBER_TEXT, NUMBER_TEXT), label="range")
    target = folder / f"figure{suffix}"
    argv = ["plot", *specs, "--range", low, high, "-o", str(target)]
    argv += ["--derivative"] if data.draw(st.booleans()) else []
    status, out, err = run_cli(argv)
    if status == 0:
        assert target.stat().st_size > 0 and out == f"wrote {target}\n"
        return
    if status > 0:
        assert_one_line_error("plot", status, out, err)
    assert list(folder.iterdir()) == [], "a refused plot left a file behind"


@FEW
@given(where=st.sampled_from(["-", "family.md", "sub/family.md", "missing/dir/x.md"]))
def test_cli_list(tmp_path_factory, where):
    from relukit import docs

    folder = tmp_path_factory.mktemp("list")
    target = where if where == "-" else str(folder / where)
    if where == "sub/family.md":
        (folder / "sub").mkdir()
    status, out, err = run_cli(["list", "--markdown", target])
    if where == "-":
        assert (status, out) == (0, docs.family_markdown())
    elif where.startswith("missing"):
        assert_one_line_error("list", status, out, err)
    else:
        assert status == 0 and Path(target).read_text(encoding="utf-8") == docs.family_markdown()
    status, out, _ = run_cli(["list"])
    assert status == 0 and re.search(r"general_relu", out)


def test_the_agreement_rule_allows_the_documented_accuracy_and_nothing_more():
    one = np.float64(1.5)
    near = np.nextafter(one, 2.0)  # 1 ulp away: within tanh's float64 bounds, not relu's
    far = one + 64 * np.spacing(one)
    assert agrees("tanh", {}, "__call__", np.array([one]), np.array([near]))
    assert not agrees("relu", {}, "__call__", np.array([one]), np.array([near]))
    assert not agrees("tanh", {}, "__call__", np.array([one]), np.array([far]))
    assert not agrees("tanh", {}, "__call__", np.array([np.nan]), np.array([0.0]))
    assert not agrees("tanh", {}, "__call__", np.array([-0.0]), np.array([0.0]))
    assert not agrees("tanh", {}, "__call__", np.array([np.inf]), np.array([1e308]))
    tiny = np.float16(2**-24)  # float16's smallest subnormal, 1 ulp from 0
    assert agrees("gelu", {}, "__call__", np.array([0], np.float16), np.array([tiny]))
    assert not agrees(
        "gelu", {}, "__call__", np.array([0], np.float32), np.array([1.0], np.float32)
    )
    flushed = np.array([-0.0], np.float32), np.array([-2.7e-44], np.float32)  # a subnormal
    assert agrees("silu", {}, "__call__", *flushed)
    assert not agrees("silu", {}, "__call__", np.array([0.0], np.float32), flushed[1])
