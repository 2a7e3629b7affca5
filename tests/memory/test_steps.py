"""The Few-Bit step derivative: the dynamic program against brute force, the shipped tables."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import relukit
from relukit.family import ParameterError
from relukit.memory import step_tables
from relukit.memory.steps import (
    BITS,
    StepDerivative,
    cell_integrals,
    gaussian,
    optimal_steps,
    partition,
    steps_for,
)


def brute_force(sums: np.ndarray, intervals: int) -> tuple[tuple[int, ...], float]:
    """Every split of the cells into ``intervals`` runs, costed directly."""
    cells = sums.shape[1]
    best: tuple[tuple[int, ...], float] = ((), np.inf)
    for split in itertools.combinations(range(1, cells), intervals - 1):
        bounds = (0, *split, cells)
        cost = 0.0
        for a, b in itertools.pairwise(bounds):
            w, s1, s2 = sums[:, a:b].sum(axis=1)
            cost += s2 - s1 * s1 / w if w > 0 else 0.0
        if cost < best[1]:
            best = (split, cost)
    return best


@given(
    st.lists(st.floats(-3, 3), min_size=6, max_size=10),
    st.lists(st.floats(0.01, 2), min_size=10, max_size=10),
    st.integers(1, 4),
)
def test_partition_is_the_brute_force_optimum(values, weights, intervals):
    d = np.array(values)
    w = np.array(weights[: len(values)])
    sums = np.stack([w, w * d, w * d * d])
    intervals = min(intervals, len(values))
    split, cost = partition(sums, intervals)
    _, expected = brute_force(sums, intervals)
    assert cost == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # the split it returns costs what it says
    bounds = (0, *split.tolist(), len(values))
    assert len(split) == intervals - 1 and all(a < b for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize(("name", "bits"), [("gelu", 1), ("gelu", 2), ("silu", 2), ("elu", 3)])
def test_optimal_steps_on_a_coarse_grid_matches_brute_force(name, bits):
    cells = 12
    spec = relukit.get(name)
    edges = np.linspace(-3.0, 3.0, cells + 1)
    sums = cell_integrals(lambda x: np.asarray(spec.derivative(x)), gaussian, edges)
    split, cost = brute_force(sums, 2**bits)
    q = optimal_steps(name, bits, span=(-3.0, 3.0), cells=cells)
    assert q.borders == tuple(round(float(v), 12) for v in edges[list(split)])
    assert q.error * sums[0].sum() == pytest.approx(cost, rel=1e-12)


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "softplus", "elu"])
def test_error_is_the_integral_and_falls_with_bits(name):
    errors = []
    for bits in BITS:
        q = optimal_steps(name, bits)
        assert len(q.borders) == 2**bits - 1 and len(q.levels) == 2**bits
        assert list(q.borders) == sorted(q.borders)
        assert q.weighted_error() == pytest.approx(q.error, rel=1e-4)
        errors.append(q.error)
    assert errors == sorted(errors, reverse=True)


@pytest.mark.parametrize("name", ["gelu", "silu"])
def test_symmetric_derivative_gives_symmetric_steps(name):
    # gelu'(x) + gelu'(-x) = 1 and the Gaussian is even: borders mirror, levels pair up to 1
    q = optimal_steps(name, 3)
    assert np.allclose(q.borders, [-b for b in reversed(q.borders)], atol=1e-12)
    assert np.allclose(np.add(q.levels, q.levels[::-1]), 1.0, atol=1e-9)


def test_codes_and_levels():
    q = optimal_steps("gelu", 2)
    x = np.array([-10.0, q.borders[0], q.borders[0] + 1e-9, q.borders[1], 0.2, 10.0, np.nan])
    assert q.codes(x).tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert q(x).tolist() == [q.levels[c] for c in [0, 0, 1, 1, 2, 3, 3]]
    # a kink on a border: the x <= 0 branch, as the registry and PyTorch choose
    selu = optimal_steps("selu", 3)
    assert selu.borders[-1] == 0.0 and selu.codes(np.array([0.0])).tolist() == [6]


def test_custom_weight_moves_the_borders():
    wide = optimal_steps("gelu", 2, lambda x: np.exp(-x * x / 8), cells=400)
    narrow = optimal_steps("gelu", 2, cells=400)
    assert wide.weight == "<lambda>"
    assert abs(wide.borders[0]) > abs(narrow.borders[0])


def test_shipped_tables_are_a_fresh_run():
    # the optimum is unique in value; where the derivative is even (sigmoid, tanh) mirrored
    # splits tie, and the last bits of the derivative decide which one the program returns
    for (name, params, bits), (borders, levels, error) in step_tables.TABLES.items():
        q = optimal_steps(name, bits, params=dict(params))
        assert q.error == pytest.approx(error, rel=1e-9), (name, params, bits)
        shipped = StepDerivative(name, params, bits, borders, levels, error)
        assert shipped.weighted_error() == pytest.approx(error, rel=1e-3)  # (trapezoid at jumps)
        if q.borders == borders:
            np.testing.assert_allclose(q.levels, levels, rtol=1e-9, atol=1e-12)


def test_shipped_tables_cover_every_smooth_member():
    names = {key[0] for key in step_tables.TABLES}
    expected = {
        spec.name for spec in relukit.family() if spec.elementwise and not spec.piecewise_linear
    }
    assert names == expected
    assert ("gelu", (("approximate", "tanh"),), 3) in step_tables.TABLES


def test_steps_for_reads_the_table_and_computes_the_rest():
    shipped = steps_for("gelu", 3)
    assert shipped.levels == step_tables.TABLES[("gelu", (("approximate", "none"),), 3)][1]
    other = steps_for("elu", 2, {"alpha": 0.5})
    assert other == optimal_steps("elu", 2, params={"alpha": 0.5})
    assert steps_for("elu", 2, {"alpha": 0.5}) is other


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: optimal_steps("relu", 1), ValueError, "'relu' is piecewise-linear"),
        (lambda: optimal_steps("maxout", 1), ValueError, "'maxout' is not elementwise"),
        (lambda: optimal_steps("gelu", 5), ValueError, "bits=5 is outside 1-4"),
        (lambda: optimal_steps("gelu", 0), ValueError, "bits=0 is outside 1-4"),
        (lambda: optimal_steps("gelu", 2.0), TypeError, "bits must be an integer"),
        (lambda: optimal_steps("gelu", True), TypeError, "bits must be an integer"),
        (lambda: optimal_steps(3, 2), TypeError, "member must be an Activation"),
        (lambda: optimal_steps("gelu", 2, span=(1, -1)), ValueError, "span="),
        (lambda: optimal_steps("gelu", 4, cells=10), ValueError, "cells=10"),
        (lambda: optimal_steps("gelu", 2, lambda x: -x * x), ValueError, "weight must be"),
        (lambda: optimal_steps("gelu", 2, lambda x: 0 * x), ValueError, "weight integrates"),
        (lambda: optimal_steps("elu", 2, params={"beta": 1}), ParameterError, "unknown param"),
        (lambda: steps_for("relu6", 2), ValueError, "relu6"),
    ],
)
def test_bad_choices_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
