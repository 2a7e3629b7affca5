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
    config = StudyConfig(activations=("relu",), seeds=2)
    first, second = config.plan()
    short = replace(_result(second, epochs_to_target=2), epochs_run=1, loss=[2.0, 4.0])
    (group,) = groups([_result(first, epochs_to_target=1), short])
    assert group.seeds == (0, 1) and group.epochs_to_target == Stat(1.5, 0.5, 2, 2)
    assert group.curves["loss"] == [2.0, 2.5, 0.5]  # the third epoch from the one run that has it


SPEED = [
    ({"relu": 2, "sigmoid": None, "tanh": 3}, "holds"),
    ({"relu": 2, "sigmoid": None, "tanh": 1}, "partly"),
    ({"relu": 4, "sigmoid": 3, "tanh": 3}, "does not hold"),
]


@pytest.mark.parametrize(("epochs", "verdict"), SPEED)
def test_convergence_claim(epochs, verdict):
    config = StudyConfig(activations=tuple(epochs), seeds=1)
    runs = [_result(s, epochs_to_target=epochs[s.activation]) for s in config.plan()]
    speed = claims(_study(config, runs))[0]
    assert speed.claim.startswith("ReLU converges faster") and speed.verdict == verdict
    assert "sigmoid: never" in speed.evidence or verdict == "does not hold"


def test_vanishing_gradient_and_sparsity_claims():
    config = StudyConfig(activations=("relu", "sigmoid"), seeds=1)
    grads = {"relu": (1.0, 1.0), "sigmoid": (0.01, 1.0)}
    sparsity = {"relu": 0.5, "sigmoid": 0.0}
    runs = [
        _result(s, grads=grads[s.activation], sparsity=sparsity[s.activation])
        for s in config.plan()
    ]
    found = {c.claim: c for c in claims(_study(config, runs))}
    assert found["ReLU avoids vanishing gradients"].verdict == "holds"
    assert found["ReLU makes networks sparse"].verdict == "holds"
    runs = [_result(s, sparsity=0.05) for s in config.plan()]
    found = {c.claim: c for c in claims(_study(config, runs))}
    assert found["ReLU makes networks sparse"].verdict == "does not hold"
    assert found["ReLU avoids vanishing gradients"].verdict == "does not hold"  # equal ratios


def test_dying_claims():
    config = StudyConfig(scenario="dying", seeds=1)
    dead = {
        ("relu", "he_normal"): (0.1, 0.3),
        ("relu", "rai"): (0.0, 0.2),
        ("leaky_relu", "he_normal"): (0.1, 0.05),
        ("prelu", "he_normal"): (0.1, 0.0),
        ("elu", "he_normal"): (0.1, 0.4),
    }
    runs = [_result(s, dead=dead.get((s.activation, s.init), (0.0, 0.0))) for s in config.plan()]
    found = {c.claim: c for c in claims(_study(config, runs))}
    assert found["ReLU units die under a high learning rate or a negative bias"].verdict == "holds"
    assert found["Leaky ReLU, PReLU and ELU fix dying units"].verdict == "partly"
    rai = found["Randomized asymmetric initialisation (RAI) keeps ReLU units alive"]
    assert rai.verdict == "holds" and "rai 0.0 %" in rai.evidence
    assert "ReLU converges faster than sigmoid and tanh" not in found  # compare did not run
