"""The derivative from the output: closed forms, the one-bit inverse, refusals."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

import relukit
from relukit.memory.output import (
    branch_bit,
    derivative_from_output,
    inverse_table,
    kind,
    minimum,
    needs_bit,
    refusal,
)

BRANCH = [("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}), ("mish", {})]
CLOSED = [
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("celu", {"alpha": 2.0}),
    ("softplus", {}),
    ("softplus", {"beta": 2.0, "threshold": 30.0}),
    ("sigmoid", {}),
    ("tanh", {}),
    ("squared_relu", {}),
]


def _mp_member(name: str, params: dict):
    s2 = mpmath.sqrt(2)
    if name == "gelu" and params.get("approximate") == "tanh":
        c = mpmath.sqrt(2 / mpmath.pi)
        return lambda x: x * (1 + mpmath.tanh(c * (x + mpmath.mpf("0.044715") * x**3))) / 2
    return {
        "gelu": lambda x: x * mpmath.erfc(-x / s2) / 2,
        "silu": lambda x: x / (1 + mpmath.exp(-x)),
        "mish": lambda x: x * mpmath.tanh(mpmath.log1p(mpmath.exp(x))),
    }[name]


@pytest.mark.parametrize(("name", "params"), BRANCH)
def test_minimum_against_mpmath(name, params):
    mpmath.mp.dps = 40
    f = _mp_member(name, params)
    x = mpmath.findroot(lambda t: mpmath.diff(f, t), -1.0)
    low = minimum(relukit.get(name).spec, params)
    assert low.x == pytest.approx(float(x), abs=1e-12)
    assert low.y == pytest.approx(float(f(x)), rel=1e-15)
    assert low.curvature == pytest.approx(float(mpmath.diff(f, x, 2)), rel=1e-6)


def _tolerance(y, d, curvature, low, unit):
    """What rounding y to ``unit`` relative allows: f''·δy/|f'|, and √(2 f''·δy) at the minimum,
    plus the rounding of the inverse's own few operations (in units of |f'| + |y|)."""
    dy = unit * (np.abs(y) + abs(low.y))
    slope_term = np.abs(curvature) * dy / np.maximum(np.abs(d), 1e-300)
    rounding = 16 * unit * (np.abs(d) + np.abs(y))
    return np.minimum(slope_term, np.sqrt(2 * abs(low.curvature) * dy)) * 4 + rounding


@pytest.mark.parametrize(("name", "params"), BRANCH)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_branch_inverse_is_as_exact_as_the_rounded_output(name, params, dtype):
    f = relukit.get(name, **params)
    spec, bound = f.spec, f.params
    low = minimum(spec, bound)
    # (gelu from -5: beyond, the float64 gelu forward cancels in 1 + erf(x/√2) and loses
    # digits, and the table ends where the forward stops reaching its targets)
    start = -5 if name == "gelu" else -12
    x = np.concatenate([np.linspace(start, 25, 30_001), low.x + np.linspace(-0.3, 0.3, 3001)])
    # the output as a correctly rounded forward gives it: float64 values rounded once
    x = x.astype(dtype).astype(np.float64)
    y = np.asarray(f(x)).astype(dtype)
    d = np.asarray(f.derivative(x))
    h = 1e-6
    curvature = (np.asarray(f.derivative(x + h)) - np.asarray(f.derivative(x - h))) / (2 * h)
    got = derivative_from_output(spec, bound, y, branch_bit(spec, bound, x)).astype(np.float64)
    unit = np.finfo(dtype).eps / 2
    tol = _tolerance(y.astype(np.float64), d, curvature, low, unit)
    tol += 1e-13 if dtype == np.float64 else 0
    bad = np.abs(got - d) > tol
    assert not bad.any(), (x[bad][:5], got[bad][:5], d[bad][:5])
    assert got.dtype == np.float64


@pytest.mark.parametrize(("name", "params"), CLOSED)
def test_closed_forms_against_the_derivative(name, params):
    f = relukit.get(name, **params)
    x = np.linspace(-8, 8, 16_001)
    y = np.asarray(f(x))
    d = np.asarray(f.derivative(x))
    got = derivative_from_output(f.spec, f.params, y)
    assert not needs_bit(f.spec) and kind(f.spec) == "closed"
    # y + alpha cancels as y -> -alpha: an absolute error of a few ulp of the scale
    np.testing.assert_allclose(got, d, rtol=1e-12, atol=1e-14 * max(np.abs(d).max(), 1))


def test_kink_derivatives_follow_torch():
    # at x = 0 the output is 0 and the x <= 0 branch is taken, as torch's autograd does
    for name, params in [("elu", {"alpha": 0.7}), ("selu", {}), ("celu", {"alpha": 2.0})]:
        f = relukit.get(name, **params)
        x = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        getattr(torch.nn.functional, name)(x, **params).backward()
        got = derivative_from_output(f.spec, f.params, np.zeros(1))
        assert got[0] == x.grad.item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_torch_tensors_keep_their_dtype_and_special_values(dtype):
    spec = relukit.gelu.spec
    x = torch.tensor([-2.0, -0.5, 0.0, 1.0, math.inf, math.nan], dtype=dtype)
    y = torch.nn.functional.gelu(x)
    y[4] = math.inf  # (torch's gelu gives NaN there)
    d = derivative_from_output(spec, {}, y, branch_bit(spec, {}, x))
    assert d.dtype == dtype
    exact = torch.tensor(np.asarray(relukit.gelu.derivative(x.double().numpy())))
    assert d[4].item() == 1.0 and math.isnan(d[5].item())
    assert torch.allclose(d[:4].double(), exact[:4], atol=0.02 if dtype.itemsize == 2 else 1e-6)
    s = derivative_from_output(relukit.softplus.spec, {}, torch.nn.functional.softplus(x))
    assert s.dtype == dtype


def test_far_tails():
    spec = relukit.silu.spec
    x = np.array([-700.0, -100.0, -40.0, 40.0, 700.0])
    d = derivative_from_output(spec, {}, np.asarray(relukit.silu(x)), branch_bit(spec, {}, x))
    np.testing.assert_allclose(d, np.asarray(relukit.silu.derivative(x)), rtol=1e-6, atol=1e-300)
    table = inverse_table(spec, {}, wide=True)
    assert table.degree == 7 and inverse_table(spec, {}, wide=False).degree == 3


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("relu", {}, "relu is piecewise linear"),
        ("leaky_relu", {}, "one-bit mask"),
        ("maxout", {}, "no derivative that its output alone determines"),
        ("elu", {"alpha": -1.0}, "alpha=-1.0 < 0"),
        ("softplus", {"threshold": 5.0}, "threshold=5.0 < 17"),
    ],
)
def test_refusals_name_member_and_reason(name, params, match):
    spec = relukit.get(name).spec
    bound = spec.bind(params)
    assert match in refusal(spec, bound)
    with pytest.raises(ValueError, match=f"backward='output' for {name}"):
        derivative_from_output(spec, bound, np.zeros(3))


def test_branch_members_need_the_bit():
    assert [needs_bit(relukit.get(n).spec) for n in ("gelu", "silu", "mish", "elu")] == [
        True,
        True,
        True,
        False,
    ]
    with pytest.raises(ValueError, match="gelu needs the branch bit"):
        derivative_from_output(relukit.gelu.spec, {}, np.zeros(3))
