"""What a study runs: scenario defaults, quick, explicit values winning, refusals, the plan."""

from __future__ import annotations

import json

import pytest

from relukit.errors import UserValueError
from relukit.study.config import DEFAULT_ACTIVATIONS, LEARNING_RATES, QUICK, StudyConfig


def test_the_default_study():
    settings = StudyConfig().settings("compare")
    assert settings.activations == DEFAULT_ACTIVATIONS
    assert (settings.seeds, settings.depth, settings.optimizer) == (6, 4, "sgd")
    assert settings.lr == LEARNING_RATES["compare"]["sgd"] and settings.modules == "both"
    plan = StudyConfig().plan()
    family = [a for a in DEFAULT_ACTIVATIONS if a not in ("sigmoid", "tanh")]
    assert len(plan) == (len(DEFAULT_ACTIVATIONS) + len(family)) * 6
    assert [(s.activation, s.modules) for s in plan[:3]] == [
        ("relu", "relukit"),
        ("relu", "torch"),
        ("leaky_relu", "relukit"),
    ]
    assert {s.modules for s in plan if s.activation in ("sigmoid", "tanh")} == {"torch"}


def test_each_scenario_has_its_defaults_and_quick_shrinks_them():
    dying = StudyConfig(scenario="dying").settings("dying")
    assert dying.inits == ("he_normal", "rai") and dying.bias_shift < 0
    assert dying.lr > StudyConfig().settings("compare").lr / 10
    depth = StudyConfig(scenario="depth", quick=True).settings("depth")
    assert depth.depths == QUICK["depths"] and depth.seeds == 1
    assert "sigmoid" in depth.activations and "relu" in depth.activations


def test_explicit_values_win_over_defaults_and_quick():
    config = StudyConfig(quick=True, seeds=2, epochs=3, optimizer="adam", lr=0.5)
    settings = config.settings("dying")
    assert (settings.seeds, settings.epochs, settings.optimizer, settings.lr) == (2, 3, "adam", 0.5)


def test_all_plans_every_scenario_and_seeds_vary_slowest():
    plan = StudyConfig(
        scenario="all", activations=("relu", "tanh"), seeds=2, quick=True, modules="relukit"
    ).plan()
    assert [spec.index for spec in plan] == list(range(len(plan)))
    scenarios = ("compare", "dying", "depth", "cnn")
    assert [s for s in scenarios if any(p.scenario == s for p in plan)] == list(scenarios)
    compare = [p for p in plan if p.scenario == "compare"]
    assert [(p.activation, p.seed) for p in compare] == [
        ("relu", 0),
        ("tanh", 0),
        ("relu", 1),
        ("tanh", 1),
    ]
    assert {p.init for p in plan if p.scenario == "dying"} == {"he_normal", "rai"}


def test_names_are_made_canonical():
    assert StudyConfig(activations=("ReLU", "swish")).check().activations == ("relu", "silu")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"scenario": "nope"}, "scenario must be one of"),
        ({"activations": ("relu", "nope")}, "unknown activation 'nope'"),
        ({"activations": ("relu", "relu")}, "named twice"),
        ({"activations": ()}, "at least one name"),
        ({"seeds": 0}, "seeds must be an int >= 1"),
        ({"epochs": 2.5}, "epochs must be an int >= 1"),
        ({"lr": -1.0}, "lr must be a finite number > 0"),
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"target": 1.5}, "target must be a training accuracy"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        ({"init": "zeros"}, "init must be one of"),
        ({"depths": ()}, "depths must be"),
        ({"jobs": 0}, "jobs must be an int >= 1"),
        ({"bias_shift": float("inf")}, "bias_shift must be a finite number"),
    ],
)
def test_wrong_values_are_refused_naming_the_field(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        StudyConfig(**changes).check()


def test_config_round_trips_to_json_ready_dict():
    data = StudyConfig(activations=("relu",), depths=(2, 3)).to_dict()
    assert data["activations"] == ["relu"] and data["depths"] == [2, 3]
    assert data["out"] == "relukit-report"


def test_jobs_other_than_one_with_a_cluster_is_refused():
    with pytest.raises(UserValueError, match="--jobs sets a local cluster"):
        StudyConfig(cluster="tcp://127.0.0.1:8786", jobs=2).check()
    StudyConfig(cluster="tcp://127.0.0.1:8786", jobs=None).check()


def test_memory_plans_every_mode_of_the_smooth_members_and_relu_once():
    plan = StudyConfig(scenario="memory", seeds=2, activations=("silu", "relu")).plan()
    assert [p.label for p in plan if p.seed == 0] == [
        "memory · silu · input · seed 0",
        "memory · silu · output · seed 0",
        "memory · silu · bits=3 · seed 0",
        "memory · relu · input · seed 0",
    ]
    assert len({p.group for p in plan}) == 4 and {p.modules for p in plan} == {"relukit"}
    modes = StudyConfig(
        scenario="memory", activations=("gelu",), seeds=1, backward=("bits", "bits=1")
    )
    assert [p.backward for p in modes.plan()] == ["bits=3", "bits=1"]
    settings = StudyConfig(scenario="memory").settings("memory")
    assert settings.activations == ("gelu", "silu", "mish", "relu")
    assert settings.backward == ("input", "output", "bits=3") and settings.seeds == 3


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"backward": ("output", "bits=5")}, "backward mode 'bits=5' is not one of"),
        ({"backward": ("sideways",)}, "backward mode 'sideways' is not one of"),
        ({"backward": ("bits", "bits=3")}, "backward must be modes named once each"),
        ({"backward": ()}, "backward must be a non-empty tuple"),
        ({"activations": ("gelu", "nope")}, "unknown activation 'nope'"),
        ({"modules": "torch"}, "memory scenario trains relukit.nn's modules"),
        ({"scenario": "compare", "backward": ("output",)}, "only to the memory scenario"),
    ],
)
def test_memory_refuses_bad_modes_and_members_naming_them(changes, fragment):
    with pytest.raises(ValueError, match=fragment):
        StudyConfig(**{"scenario": "memory", **changes}).check()


def test_a_run_of_the_default_backward_keeps_the_cell_key_it_had_before_the_memory_scenario():
    spec = StudyConfig(activations=("relu",), seeds=1).plan()[0]
    assert "backward" not in spec.cell
    memory = StudyConfig(scenario="memory", activations=("gelu",), seeds=1).plan()
    assert [s.cell.get("backward", "input") for s in memory] == ["input", "output", "bits=3"]
    assert len({json.dumps(s.cell, sort_keys=True) for s in memory}) == 3
