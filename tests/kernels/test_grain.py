"""The thread hand-off's grain: one per class of cost per element, each from its own
measurement (never timed here: only which class a call belongs to and what a grain sets)."""

from __future__ import annotations

import numpy as np
import pytest

from relukit.family import lookup
from relukit.kernels.cpu import host


@pytest.mark.parametrize(
    ("member", "params", "dtype", "cost"),
    [
        ("relu", {}, np.float32, host.LINEAR),
        ("relu", {}, np.float64, host.LINEAR),
        ("leaky_relu", {"negative_slope": 0.1}, np.float16, host.LINEAR),
        ("gelu", {"approximate": "none"}, np.float32, host.SMOOTH),
        ("silu", {}, np.float16, host.SMOOTH),
        ("gelu", {"approximate": "none"}, np.float64, host.SMOOTH_WIDE),
        ("softplus", {"beta": 1.0, "threshold": 20.0}, np.float64, host.SMOOTH_WIDE),
    ],
)
def test_a_members_calls_take_the_grain_of_their_cost_class(member, params, dtype, cost):
    if dtype == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    # float64 smooth kernels take 4-9x their float32 ones: a grain of their own
    assert host.Calls(lookup(member), params, dtype).cost == cost


@pytest.mark.parametrize("cost", [host.SMOOTH, host.LINEAR, host.SMOOTH_WIDE])
def test_each_class_measures_its_grain_and_the_size_below_which_calls_run_whole(cost, monkeypatch):
    monkeypatch.setattr(host, "_measured", {})
    monkeypatch.setattr(host, "WHOLE_BELOW", [host.SMALL] * 3)
    grain = host.grain(cost)
    low, high = host.GRAIN_BOUNDS
    assert low <= grain <= high and grain % host.ALIGN == 0
    below = host.STREAM_FLOOR if host.STREAM_BYTES is None else host.STREAM_BYTES
    expected = max(host.SMALL, min(2 * grain, below // 8))  # (nothing below it streams)
    assert host.WHOLE_BELOW[cost] == expected
    others = [host.WHOLE_BELOW[c] for c in range(3) if c != cost]
    assert others == [host.SMALL, host.SMALL]


def test_the_pools_hand_off_is_measured_on_the_chunks_of_a_split_call(monkeypatch):
    # two empty tasks measured only the post (the caller ran both before the worker came):
    # the measurement hands over a split call's chunks, each with work, covering the array
    from relukit import threads

    handed = []
    run_all = threads.run_all

    def recording(tasks, wake=True):
        handed.append(len(tasks))
        return run_all(tasks, wake)

    monkeypatch.setattr(threads, "run_all", recording)
    assert host._pool_handoff(asleep=False) > 0
    assert handed and set(handed) == {2 * host.PIECES}
