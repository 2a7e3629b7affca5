"""Tests of the born-dead Monte Carlo against cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from scipy import integrate, stats

from relukit.diagnostics import (
    BornDeadEstimate,
    born_dead_curve,
    born_dead_grid,
    born_dead_probability,
    plot_born_dead,
    wilson_interval,
)
from relukit.diagnostics.init import RAI_SIGMA_SCALE


def covers(estimate: BornDeadEstimate, p: float) -> bool:
    return estimate.ci_low <= p <= estimate.ci_high


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(81, 263)  # Wilson (1927) style textbook example
    z = stats.norm.ppf(0.975)
    p, n = 81 / 263, 263
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert (lo, hi) == pytest.approx((centre - half, centre + half), rel=1e-12)
    assert wilson_interval(0, 7)[0] == 0.0 and wilson_interval(7, 7)[1] == 1.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(8, 7)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_width_one_single_positive_input_is_dead_with_probability_1_minus_2_to_minus_depth(depth):
    # One unit per layer, zero bias, input x = 1: layer l is dead iff its weight is <= 0, and
    # it stays alive only if every weight so far is positive.
    est = born_dead_probability(1, depth, [[1.0]], trials=4000, seed=depth)
    assert covers(est, 1 - 2.0**-depth)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_one_layer_single_input_is_dead_with_probability_2_to_minus_width(width):
    est = born_dead_probability(width, 1, np.array([[0.3, -1.2]]), trials=4000, seed=width)
    assert covers(est, 2.0**-width)


def test_symmetric_inputs_never_kill_the_first_layer_but_zero_input_always_does():
    x = np.array([[1.0, 2.0], [-1.0, -2.0]])
    for init in ("he_normal", "he_uniform", "lecun_normal", "glorot_uniform"):
        assert born_dead_probability(2, 1, x, init=init, trials=300).dead_count == 0
    zero = np.zeros((1, 2))
    assert born_dead_probability(3, 1, zero, trials=200).probability == 1.0
    # with biases drawn like the weights, the layer dies only if all three biases are <= 0
    same = born_dead_probability(3, 1, zero, bias_init="same", trials=4000, seed=1)
    assert covers(same, 1 / 8)
    assert same.bias_init == "same"


def test_rai_one_unit_matches_the_integral():
    # width 1, depth 1, input x = 1: z = w + b where one of (w, b) is Beta(2, 1) and the other
    # N(0, sigma^2), sigma = 0.6007 / sqrt(1). Dead iff z <= 0:
    # P = integral_0^1 Phi(-t / sigma) * 2t dt.
    p, _ = integrate.quad(lambda t: stats.norm.cdf(-t / RAI_SIGMA_SCALE) * 2 * t, 0, 1)
    est = born_dead_probability(1, 1, [[1.0]], init="rai", trials=20000, seed=0)
    assert covers(est, p)
    assert est.bias_init == "rai"


def test_monte_carlo_agrees_with_an_independent_numpy_simulation():
    x = np.random.default_rng(0).uniform(-np.sqrt(3), np.sqrt(3), size=(40, 1))
    width, depth, trials = 3, 6, 3000
    rng = np.random.default_rng(123)
    dead = 0
    for _ in range(trials):
        h = x
        for _layer in range(depth):
            w = rng.normal(0.0, np.sqrt(2.0 / h.shape[1]), size=(h.shape[1], width))
            h = np.maximum(h @ w, 0.0)
            if not h.any():
                dead += 1
                break
    ours = born_dead_probability(width, depth, x, trials=trials, seed=0)
    # two independent estimates of the same p: their difference is within ~4 standard errors
    p = (dead + ours.dead_count) / (2 * trials)
    se = np.sqrt(2 * p * (1 - p) / trials)
    assert abs(ours.probability - dead / trials) < 4 * se
    assert 0.05 < ours.probability < 0.95  # a non-trivial case


def test_curve_matches_single_depth_calls_and_is_monotone():
    x = np.random.default_rng(1).normal(size=(30, 2))
    curve = born_dead_curve(2, 12, x, init="he_uniform", trials=500, seed=4)
    for depth in (1, 5, 12):
        single = born_dead_probability(2, depth, x, init="he_uniform", trials=500, seed=4)
        assert single == curve[depth - 1]
    counts = [e.dead_count for e in curve]
    assert counts == sorted(counts) and [e.depth for e in curve] == list(range(1, 13))


def test_deterministic_given_seed_and_inputs_kinds():
    x = np.random.default_rng(2).normal(size=(25, 3))
    a = born_dead_probability(3, 8, x, trials=400, seed=7)
    assert a == born_dead_probability(3, 8, torch.tensor(x), trials=400, seed=7)
    assert a == born_dead_probability(3, 8, x.tolist(), trials=400, seed=7)
    assert a != born_dead_probability(3, 8, x, trials=400, seed=8)


def test_rai_lowers_the_born_dead_probability_of_deep_narrow_networks():
    x = np.random.default_rng(3).uniform(-1, 1, size=(64, 2))
    for width in (2, 3, 4):
        he = born_dead_probability(width, 20, x, trials=600)
        rai = born_dead_probability(width, 20, x, init="rai", trials=600)
        assert rai.ci_high < he.ci_low, width


def test_large_case_runs_with_bounded_memory():
    # width 10, depth 50, a few hundred points; the speed itself is in the benchmark
    x = np.random.default_rng(4).uniform(-1, 1, size=(300, 2))
    est = born_dead_probability(10, 50, x, init="rai", trials=100)
    assert 0 <= est.probability <= 1 and est.trials == 100


def test_grid_and_figure(tmp_path):
    x = np.random.default_rng(5).uniform(-1, 1, size=(16, 1))
    grid = born_dead_grid([2, 3, 4], [1, 5, 10], x, trials=60)
    assert len(grid) == 2 * 3 * 3
    assert {e.init for e in grid} == {"he_normal", "rai"}
    again = born_dead_curve(3, 10, x, init="rai", trials=60)
    assert next(e for e in grid if (e.init, e.width, e.depth) == ("rai", 3, 5)) == again[4]
    fig = plot_born_dead(grid)
    assert isinstance(fig, Figure) and list(tmp_path.iterdir()) == []
    plot_born_dead(grid, path=tmp_path / "born_dead.svg")
    assert (tmp_path / "born_dead.svg").read_text().lstrip().startswith("<?xml")
    assert grid[0].to_dict()["init"] == "he_normal"
    with pytest.raises(TypeError, match="plot_born_dead"):
        plot_born_dead([])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": 0}, ValueError, "born_dead_probability: width must be >= 1, got 0"),
        ({"depth": True}, TypeError, "born_dead_probability: depth must be an int"),
        ({"trials": 0}, ValueError, "trials must be >= 1, got 0"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"init": "xavier"}, ValueError, "init must be one of"),
        ({"bias_init": "ones"}, ValueError, "bias_init must be one of"),
        ({"inputs": np.ones(3)}, ValueError, r"inputs must have shape \(N, d_in\)"),
        ({"inputs": np.full((2, 1), np.nan)}, ValueError, "inputs must be finite"),
        ({"inputs": "abc"}, TypeError, "inputs must be an array"),
    ],
)
def test_argument_errors(kwargs, error, match):
    args = {"width": 2, "depth": 2, "inputs": np.ones((2, 1)), "trials": 5}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        born_dead_probability(**args)
