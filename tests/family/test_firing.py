"""The registry's firing rules: each flat-region edge is where |f′| reaches FLAT_TOLERANCE."""

from __future__ import annotations

import math

import numpy as np
import pytest

import relukit
from relukit.family import MEMBERS, lookup
from relukit.family.spec import FLAT_TOLERANCE

# Members whose rule is the edge of a flat negative tail, with parameter sets to try.
SMOOTH = {
    "elu": [{}, {"alpha": 0.5}, {"alpha": 3.0}],
    "selu": [{}],
    "celu": [{}, {"alpha": 2.0}],
    "gelu": [{}, {"approximate": "tanh"}],
    "silu": [{}],
    "mish": [{}],
    "softplus": [{}, {"beta": 2.0}],
    "sigmoid": [{}],
    "tanh": [{}],
}
# Piecewise-linear members fire above the kink where the derivative drops to its small side.
KINKED = {
    "squared_relu": [{}],
    "leaky_relu": [{}, {"negative_slope": 0.2}],
    "prelu": [{}],
    "rrelu": [{}],
    "hardtanh": [{}, {"min_val": -3.0, "max_val": 0.5}],
    "general_relu": [{}, {"threshold": 1.5, "negative_slope": 0.1}],
}
ON_OUTPUT_ELEMENTWISE = ["relu", "relu6"]


def test_every_member_has_a_rule_of_a_known_kind():
    assert all(spec.firing is not None for spec in MEMBERS)
    names = {spec.name for spec in MEMBERS}
    assert names == set(SMOOTH) | set(KINKED) | set(ON_OUTPUT_ELEMENTWISE) | {"crelu", "maxout"}
    for spec in MEMBERS:
        assert spec.firing.on == (
            "output" if spec.name in (*ON_OUTPUT_ELEMENTWISE, "crelu", "maxout") else "input"
        )


@pytest.mark.parametrize(
    ("name", "params"), [(n, p) for n, ps in SMOOTH.items() for p in ps], ids=str
)
def test_smooth_edge_is_where_the_derivative_reaches_the_tolerance(name, params):
    spec = lookup(name)
    edge = spec.firing.above(spec.bind(params))
    f = relukit.get(name, **params)
    assert abs(f.derivative(np.array([edge]))[0]) == pytest.approx(FLAT_TOLERANCE, rel=1e-6)
    below = np.linspace(edge - 60, edge, 200_001)
    assert np.all(np.abs(f.derivative(below)) <= FLAT_TOLERANCE * (1 + 1e-6))
    assert abs(f.derivative(np.array([edge + 1e-3]))[0]) > FLAT_TOLERANCE


@pytest.mark.parametrize(
    ("name", "params"), [(n, p) for n, ps in KINKED.items() for p in ps], ids=str
)
def test_kinked_members_fire_where_the_derivative_leaves_its_low_side(name, params):
    spec = lookup(name)
    edge = spec.firing.above(spec.bind(params))
    f = relukit.get(name, **params)
    low = f.derivative(np.array([edge - 1.0, edge]))
    assert low[0] == low[1] < f.derivative(np.array([edge + 1e-6]))[0]


@pytest.mark.parametrize("name", ON_OUTPUT_ELEMENTWISE)
def test_output_rules_judge_the_input_alike(name):
    above = lookup(name).firing.above({})
    x = np.concatenate(
        [np.linspace(-10, 10, 4001), [0.0, -0.0, 5e-324, -math.inf, math.inf, math.nan]]
    )
    y = relukit.get(name)(x)
    assert np.array_equal(y > above, x > above)
