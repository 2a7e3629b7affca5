"""Runs grouped over seeds, and the claims' verdicts following their written rules."""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import pytest

from relukit.study.config import StudyConfig
from relukit.study.scenarios import Stat, StudyResult, claims, groups
from relukit.study.training import RunResult


def _result(spec, *, epochs_to_target=None, grads=(1.0, 1.0), sparsity=0.0, dead=(0.0, 0.0)):
    """A hand-made run: two epochs, one hidden layer."""
    return RunResult(
        spec=spec,
        epochs_run=2,
        loss=[2.0, 1.0, 0.5],
        accuracy=[0.1, 0.8, 0.9],
        val_loss=[2.0, 1.0, 0.6],
        val_accuracy=[0.1, 0.7, 0.8],
        dead=[[dead[0]], [dead[1]], [dead[1]]],
        sparsity=[[sparsity]] * 3,
        epoch_seconds=[0.1, 0.1],
        grad_norms=list(grads),
        test_loss=0.6,
        test_accuracy=0.85,
        epochs_to_target=epochs_to_target,
        seconds_to_target=None if epochs_to_target is None else 0.1 * epochs_to_target,
    )


def _study(config: StudyConfig, runs: list[RunResult]) -> StudyResult:
    settings = {name: asdict(config.settings(name)) for name in config.scenarios}
    return StudyResult(config, {}, settings, len(runs), runs)


def test_stat_leaves_out_missing_values_and_counts_them():
    assert Stat.of_values([1.0, 3.0]) == Stat(2.0, 1.0, 2, 2)
    missing = Stat.of_values([None, math.nan])
    assert math.isnan(missing.mean) and (missing.n, missing.of) == (0, 2)


def test_groups_average_over_seeds_and_pad_diverged_curves():
    config = StudyConfig(activations=("relu",), seeds=2, modules="relukit")
    first, second = config.plan()
    short = replace(_result(second, epochs_to_target=2), epochs_run=1, loss=[2.0, 4.0])
    (group,) = groups([_result(first, epochs_to_target=1), short])
    assert group.seeds == (0, 1) and group.epochs_to_target == Stat(1.5, 0.5, 2, 2)
    assert group.curves["loss"] == [2.0, 2.5, 0.5]  # the third epoch from the one run that has it


def _by_seed(value, spec):
    """``value`` itself, or its entry for ``spec.seed`` when it is a list (one per seed)."""
    return value[spec.seed] if isinstance(value, list) else value


SPEED = [
    # epochs to the target per seed (None: never, counted as epochs + 1 = 3 here)
    ({"relu": [1, 1, 1], "sigmoid": None, "tanh": [2, 2, 3]}, "holds", "holds"),
    ({"relu": [1, 2, 1], "sigmoid": None, "tanh": [2, 1, 1]}, "holds", "inconclusive at 3 seeds"),
    (
        {"relu": [2, 2, 2], "sigmoid": [2, 2, 2], "tanh": [1, 1, 1]},
        "does not hold",
        "does not hold",
    ),
]


@pytest.mark.parametrize(("epochs", "against_sigmoid", "against_tanh"), SPEED)
def test_convergence_claim_is_a_paired_interval(epochs, against_sigmoid, against_tanh):
    config = StudyConfig(activations=tuple(epochs), seeds=3)
    runs = [_result(s, epochs_to_target=_by_seed(epochs[s.activation], s)) for s in config.plan()]
    sigmoid, tanh = claims(_study(config, runs))[:2]
    assert sigmoid.claim == "ReLU converges faster than sigmoid"
    assert (sigmoid.verdict, tanh.verdict) == (against_sigmoid, against_tanh)
    assert sigmoid.interval is not None and sigmoid.interval.n == 3
    assert sigmoid.effect.startswith("speed-up ") and "per seed" in sigmoid.evidence


def test_one_seed_is_inconclusive():
    config = StudyConfig(activations=("relu", "tanh"), seeds=1)
    runs = [
        _result(s, epochs_to_target={"relu": 1, "tanh": 2}[s.activation]) for s in config.plan()
    ]
    (found,) = [c for c in claims(_study(config, runs)) if c.claim.endswith("than tanh")]
    assert found.verdict == "inconclusive at 1 seed" and found.effect == "speed-up 2×"


def test_vanishing_gradient_and_sparsity_claims():
    config = StudyConfig(activations=("relu", "sigmoid"), seeds=3)
    grads = {"relu": (1.0, 1.0), "sigmoid": [(0.01, 1.0), (0.02, 1.0), (0.015, 1.0)]}
    sparsity = {"relu": [0.5, 0.51, 0.52], "sigmoid": 0.0}
    runs = [
        _result(
            s, grads=_by_seed(grads[s.activation], s), sparsity=_by_seed(sparsity[s.activation], s)
        )
        for s in config.plan()
    ]
    found = {c.claim: c for c in claims(_study(config, runs))}
    assert found["ReLU avoids vanishing gradients (against sigmoid)"].verdict == "holds"
    assert found["ReLU makes networks sparse"].verdict == "holds"
    runs = [_result(s, sparsity=[0.05, 0.06, 0.07][s.seed]) for s in config.plan()]
    found = {c.claim: c for c in claims(_study(config, runs))}
    assert found["ReLU makes networks sparse"].verdict == "does not hold"
    equal = found["ReLU avoids vanishing gradients (against sigmoid)"]
    assert equal.verdict == "does not hold" and equal.effect == "ratio 1× [1, 1]"


def test_dying_claims():
    config = StudyConfig(scenario="dying", seeds=3)
    dead = {
        ("relu", "he_normal"): [(0.1, 0.3), (0.1, 0.31), (0.1, 0.32)],
        ("relu", "rai"): [(0.0, 0.2), (0.0, 0.21), (0.0, 0.22)],
        ("leaky_relu", "he_normal"): [(0.1, 0.05), (0.1, 0.06), (0.1, 0.07)],
        ("prelu", "he_normal"): [(0.1, 0.2), (0.1, 0.4), (0.1, 0.32)],
        ("elu", "he_normal"): [(0.1, 0.4), (0.1, 0.45), (0.1, 0.42)],
    }
    runs = [
        _result(s, dead=_by_seed(dead.get((s.activation, s.init), (0.0, 0.0)), s))
        for s in config.plan()
    ]
    found = {c.claim: c for c in claims(_study(config, runs))}
    assert found["ReLU units die under a high learning rate and a negative bias"].verdict == "holds"
    assert found["leaky_relu fixes dying units"].verdict == "holds"
    assert found["prelu fixes dying units"].verdict == "inconclusive at 3 seeds"
    assert found["elu fixes dying units"].verdict == "does not hold"
    rai = found["Randomized asymmetric initialisation (RAI) keeps ReLU units alive (at the end)"]
    assert rai.verdict == "holds" and "rai 21.0 %" in rai.evidence
    assert not any(c.startswith("ReLU converges faster") for c in found)  # compare did not run


def test_a_speed_up_over_a_baseline_that_never_reached_the_target_is_a_lower_bound():
    config = StudyConfig(activations=("relu", "sigmoid", "tanh"), seeds=2)
    epochs = {"relu": [1, 1], "sigmoid": None, "tanh": [2, 2]}
    runs = [_result(s, epochs_to_target=_by_seed(epochs[s.activation], s)) for s in config.plan()]
    sigmoid, tanh = claims(_study(config, runs))[:2]
    assert sigmoid.effect.startswith("speed-up ≥ ") and "lower bound" in sigmoid.effect
    assert "≥" not in tanh.effect and "bound" not in tanh.effect


def test_a_speed_up_where_relu_never_reached_the_target_is_not_an_estimate():
    config = StudyConfig(activations=("relu", "tanh"), seeds=2)
    epochs = {"relu": None, "tanh": [1, 1]}
    runs = [_result(s, epochs_to_target=_by_seed(epochs[s.activation], s)) for s in config.plan()]
    (found,) = [c for c in claims(_study(config, runs)) if c.claim.endswith("than tanh")]
    assert "not an estimate: relu missed" in found.effect


def test_memory_claims_hold_output_to_the_seed_spread_and_bits_to_one_std():
    config = StudyConfig(scenario="memory", activations=("gelu",), seeds=3)
    accuracy = {"input": [0.90, 0.92, 0.94], "output": [0.90, 0.92, 0.94], "bits=3": [0.9] * 3}
    loss = {"input": [0.30, 0.32, 0.34], "output": [0.30, 0.32, 0.35], "bits=3": [0.31] * 3}
    runs = [
        replace(
            _result(s),
            test_accuracy=accuracy[s.backward][s.seed],
            test_loss=loss[s.backward][s.seed],
        )
        for s in config.plan()
    ]
    output, bits = claims(_study(config, runs))
    assert output.claim.startswith("gelu with backward=output") and "seed spread" in output.claim
    assert output.verdict == "holds" and output.interval is not None
    assert output.effect.startswith("Δ accuracy 0.00 pts [0.00, 0.00]")
    # bits=3: accuracy 0.90 is 0.02 below the mean 0.92, more than one std (0.0163)
    assert bits.verdict == "does not hold" and "one standard deviation" in bits.claim
    one_seed = [r for r in runs if r.spec.seed == 0]
    assert {c.verdict for c in claims(_study(config, one_seed))} == {"inconclusive at 1 seed"}
