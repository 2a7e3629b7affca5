"""One training run: measured per epoch, reproducible from its seed, stoppable, and safe when the
loss blows up."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from relukit.study.config import StudyConfig
from relukit.study.data import load
from relukit.study.training import Event, Stopped, Tensors, train


@pytest.fixture(scope="module")
def data() -> Tensors:
    return Tensors.of(load())


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _spec(**changes):
    config = StudyConfig(activations=("relu",), seeds=1, epochs=2, width=16, depth=2)
    return replace(config.plan()[0], **changes)


def test_a_run_measures_every_epoch_and_every_layer(data):
    result = train(_spec(), data)
    assert result.epochs_run == 2 and not result.diverged
    for curve in (result.loss, result.accuracy, result.val_loss, result.val_accuracy):
        assert len(curve) == 3  # at initialisation and after each epoch
    assert len(result.epoch_seconds) == 2 and all(s > 0 for s in result.epoch_seconds)
    assert [len(layers) for layers in result.dead] == [2, 2, 2]
    assert all(0 <= v <= 1 for layers in result.dead + result.sparsity for v in layers)
    assert 0.3 < result.sparsity[0][0] < 0.7  # relu zeroes about half at initialisation
    assert len(result.grad_norms) == 3 and all(g > 0 for g in result.grad_norms)
    assert result.accuracy[-1] > result.accuracy[0] and 0 < result.test_accuracy <= 1


def test_same_seed_same_numbers_other_seed_other_numbers(data):
    first, again = train(_spec(), data), train(_spec(), data)
    assert first.loss == again.loss and first.dead == again.dead
    assert first.test_accuracy == again.test_accuracy and first.grad_norms == again.grad_norms
    other = train(_spec(seed=1), data)
    assert other.loss != first.loss


def test_time_to_target_and_never(data):
    reached = train(_spec(target=0.5), data)
    assert reached.epochs_to_target is not None and reached.seconds_to_target > 0
    first = reached.epochs_to_target
    assert reached.accuracy[first] >= 0.5 and all(a < 0.5 for a in reached.accuracy[1:first])
    never = train(_spec(target=1.0, epochs=1), data)
    assert never.epochs_to_target is None and never.seconds_to_target is None


def test_a_diverging_run_stops_and_says_so(data):
    result = train(_spec(lr=1e30, optimizer="sgd", epochs=3), data)
    assert result.diverged and result.epochs_run <= 3
    assert len(result.loss) == result.epochs_run + 1
    assert not math.isfinite(result.loss[-1]) or result.test_accuracy < 0.5


def test_events_report_each_epoch(data):
    events: list[Event] = []
    train(_spec(), data, emit=events.append)
    assert [(e.kind, e.epoch, e.epochs) for e in events] == [("epoch", 1, 2), ("epoch", 2, 2)]
    assert all(0 <= e.accuracy <= 1 for e in events)


def test_stop_and_ctrl_c_leave_the_run(data):
    with pytest.raises(Stopped):
        train(_spec(), data, should_stop=lambda: True)

    def interrupt(_event: Event) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_spec(), data, emit=interrupt)
