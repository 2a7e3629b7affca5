"""The registry is consistent: every member is complete, its kinks and limits agree with its
formulas, its flags describe it, and the example in its docstring runs."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import relukit
from relukit.family import MEMBERS, lookup

ELEMENTWISE = [spec for spec in MEMBERS if spec.elementwise]
STRUCTURAL = [spec for spec in MEMBERS if not spec.elementwise]

# Parameter sets beyond the defaults, to check kinks and limits where they move.
PARAMS: dict[str, list[dict]] = {
    "leaky_relu": [{"negative_slope": 0.07}, {"negative_slope": -0.5}, {"negative_slope": 0.0}],
    "prelu": [{"weight": 0.5}, {"weight": -1.5}, {"weight": 0.0}],
    "rrelu": [{"lower": 0.1, "upper": 0.3}, {"lower": 0.0, "upper": 0.0}],
    "hardtanh": [{"min_val": -2.0, "max_val": 3.0}, {"min_val": 0.5, "max_val": 0.75}],
    "general_relu": [
        {"negative_slope": 0.1, "max_value": 3.0, "threshold": 1.0},
        {"max_value": 6.0},
        {"negative_slope": -0.2, "threshold": -1.0},
        {"negative_slope": 0.1, "max_value": 3.0, "threshold": -2.0},
        {"negative_slope": 0.5, "max_value": 5.0, "threshold": 5.0},
    ],
    "elu": [{"alpha": 2.0}, {"alpha": 0.5}],
    "celu": [{"alpha": 2.0}, {"alpha": 0.25}],
    "gelu": [{"approximate": "tanh"}],
    "softplus": [{"beta": 2.0, "threshold": 5.0}, {"beta": 0.5}],
}


def _cases(specs):
    return [
        pytest.param(spec, params, id=f"{spec.name}-{i}")
        for spec in specs
        for i, params in enumerate([{}, *PARAMS.get(spec.name, [])])
    ]


def _same(a, b) -> bool:
    """Equal values, NaN equal to NaN, the sign of zero respected."""
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


# ---------------------------------------------------------------------------------------------
# completeness


@pytest.mark.parametrize("spec", MEMBERS, ids=lambda s: s.name)
def test_every_member_is_complete(spec):
    assert callable(spec.forward)
    assert spec.elementwise == (spec.derivative is not None)
    assert (spec.vjp is not None) == (not spec.elementwise)
    for text in (spec.summary, spec.formula, spec.latex, spec.reference, spec.output_range):
        assert text.strip(), spec.name
    assert 1980 <= spec.year <= 2030
    assert ">>>" in spec.example
    assert spec.name == spec.name.lower() and spec.name.isidentifier()


def test_elementwise_members_have_limits_and_structural_members_change_the_shape():
    assert {s.name for s in STRUCTURAL} == {"crelu", "maxout"}
    for spec in ELEMENTWISE:
        assert spec.limits is not None, spec.name
    for spec in STRUCTURAL:
        assert spec.limits is None and not spec.piecewise_linear


@pytest.mark.parametrize("spec", MEMBERS, ids=lambda s: s.name)
def test_every_member_and_alias_is_exported(spec):
    for name in spec.names:
        function = getattr(relukit, name)
        assert function.spec is spec
        assert name in relukit.__all__
        assert relukit.get(name).spec is spec
    assert hasattr(relukit.get(spec.name), "derivative") == spec.elementwise
    assert hasattr(relukit.get(spec.name), "vjp")


def test_family_lists_the_registry_in_order():
    assert relukit.family() == list(MEMBERS)
    core = relukit.family(include_baselines=False)
    assert [s.name for s in MEMBERS if s not in core] == ["sigmoid", "tanh"]
    assert all(spec.in_family for spec in core)


def test_integer_policies():
    policy = {spec.name: spec.integers for spec in MEMBERS}
    assert {n for n, p in policy.items() if p == "same"} == {"relu", "relu6", "hardtanh"}
    assert {n for n, p in policy.items() if p == "float"} == {"sigmoid", "tanh"}


def test_torch_names_exist_in_torch():
    named = {spec.name: spec.torch_name for spec in MEMBERS if spec.torch_name}
    assert set(named) == {
        "relu", "leaky_relu", "prelu", "rrelu", "relu6", "hardtanh", "elu", "selu", "celu",
        "gelu", "silu", "mish", "softplus", "sigmoid", "tanh",
    }  # fmt: skip
    for torch_name in named.values():
        assert callable(
            getattr(torch.nn.functional, torch_name, None) or getattr(torch, torch_name)
        )


@pytest.mark.parametrize("spec", MEMBERS, ids=lambda s: s.name)
def test_public_docstring_carries_formula_conventions_and_example(spec):
    doc = relukit.get(spec.name).__doc__
    assert spec.formula in doc
    assert spec.example.strip() in doc
    for kink in spec.kinks:
        assert f"{kink.where}: {kink.chosen}" in doc
    for parameter in spec.parameters:
        assert f"{parameter.name} (default {parameter.default!r})" in doc


# ---------------------------------------------------------------------------------------------
# docstring examples


@pytest.mark.parametrize("spec", MEMBERS, ids=lambda s: s.name)
def test_docstring_example_runs(spec):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(spec.example, {}, f"relukit.{spec.name}", spec.name, 0)
    assert test.examples, spec.name
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)


# ---------------------------------------------------------------------------------------------
# kinks


@pytest.mark.parametrize(("spec", "params"), _cases([s for s in ELEMENTWISE if s.kinks]))
def test_derivative_on_each_kink_is_the_chosen_one(spec, params):
    f = relukit.get(spec.name, **params)
    bound = f.params
    for kink in spec.kinks:
        at = kink.at(bound)
        if not math.isfinite(at):  # absent for these parameters
            continue
        x = np.array([at])
        assert _same(f.derivative(x)[0], kink.derivative(bound)), (kink.where, params)
        # The chosen value is the derivative of one side (PyTorch takes one branch's formula).
        sides = f.derivative(np.array([np.nextafter(at, -np.inf), np.nextafter(at, np.inf)]))
        assert any(math.isclose(s, kink.derivative(bound), rel_tol=1e-12) for s in sides)


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE if s.kinks], ids=lambda s: s.name)
def test_kinks_are_real_kinks(spec):
    """Left and right of each kink the derivative jumps, for some of the parameter sets
    (elu's kink vanishes for alpha = 1)."""
    for kink in spec.kinks:
        jumps = []
        for params in [{}, *PARAMS.get(spec.name, [])]:
            f = relukit.get(spec.name, **params)
            at = kink.at(f.params)
            if math.isfinite(at):
                left, right = f.derivative(np.array([at - 1e-9, at + 1e-9]))
                jumps.append(abs(left - right))
        assert max(jumps) > 1e-3, kink.where


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda s: s.name)
def test_smooth_members_have_no_kinks(spec):
    if spec.smooth:
        assert not spec.kinks
        assert not spec.piecewise_linear


# ---------------------------------------------------------------------------------------------
# limits


@pytest.mark.parametrize(("spec", "params"), _cases(ELEMENTWISE))
def test_limits_are_the_values_at_infinity(spec, params):
    f = relukit.get(spec.name, **params)
    x = np.array([-np.inf, np.inf])
    for op, declared in (
        (f, spec.limits.forward(f.params)),
        (f.derivative, spec.limits.derivative(f.params)),
    ):
        got = op(x)
        for value, limit in zip(got, declared, strict=True):
            assert not np.isnan(value)
            if limit is not None:
                assert value == limit, (op, declared, got)


@pytest.mark.parametrize(("spec", "params"), _cases(ELEMENTWISE))
def test_limits_are_approached_by_large_finite_inputs(spec, params):
    """The declared limits are the mathematical ones: the formulas approach them."""
    f = relukit.get(spec.name, **params)
    x = np.array([-1e8, 1e8])
    for op in ("forward", "derivative"):
        values = (f if op == "forward" else f.derivative)(x)
        limits = getattr(spec.limits, op)(f.params)
        at_inf = (f if op == "forward" else f.derivative)(np.array([-np.inf, np.inf]))
        for value, limit, exact in zip(values, limits, at_inf, strict=True):
            target = exact if limit is None else limit
            if math.isinf(target):
                assert np.sign(value) == np.sign(target) and abs(value) >= 1e3, (op, value)
            else:
                assert abs(value - target) <= 1e-9 * max(1.0, abs(target)), (op, value, target)


@pytest.mark.parametrize(("spec", "params"), _cases(ELEMENTWISE))
def test_nan_in_gives_nan_out(spec, params):
    f = relukit.get(spec.name, **params)
    x = np.array([np.nan, -np.nan])
    assert np.isnan(f(x)).all() and np.isnan(f.derivative(x)).all()
    assert np.isnan(f.vjp(x, np.ones(2))).all()


# ---------------------------------------------------------------------------------------------
# flags


GRID = np.linspace(-12.0, 12.0, 4801)


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda s: s.name)
def test_flags_describe_the_default_member(spec):
    f = relukit.get(spec.name)
    y, d = f(GRID), f.derivative(GRID)
    assert (np.all(np.diff(y) >= 0)) == spec.monotonic
    low, high = f(np.array([-np.inf, np.inf]))
    assert spec.bounded == (math.isfinite(low) and math.isfinite(high))
    if spec.zero_centred:
        assert f(np.array([0.0]))[0] == 0 and y.min() < 0 < y.max()
    if spec.piecewise_linear:
        assert len(np.unique(d)) <= spec.derivative_pieces(f.params)
    else:
        assert len(np.unique(d)) > 4


@pytest.mark.parametrize(
    "spec", [s for s in ELEMENTWISE if s.piecewise_linear], ids=lambda s: s.name
)
def test_piecewise_linear_derivative_takes_its_pieces(spec):
    for params in [{}, *PARAMS.get(spec.name, [])]:
        f = relukit.get(spec.name, **params)
        values = np.unique(f.derivative(GRID))
        assert len(values) <= spec.derivative_pieces(f.params), (params, values)
        assert spec.derivative_bits(f.params) >= 1


def test_lookup_of_every_name():
    for spec in MEMBERS:
        for name in spec.names:
            assert lookup(name.upper()) is spec
