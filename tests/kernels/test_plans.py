"""Kept plans (relukit.kernels.cpu.host.Calls._plan): a split call repeated with the same size,
thread count and output launches the last one's chunks on the OpenMP team without planning them
again, until something they were planned from changes."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch  # noqa: F401  (loads PyTorch's OpenMP runtime: split calls go to its team)

import relukit
from relukit import threads
from relukit.kernels.cpu import host, team

pytestmark = pytest.mark.skipif(
    not (host.available() and sys.platform.startswith("linux") and team.available()),
    reason="needs Numba and the OpenMP team",
)


def _split_size(cost: int) -> int:
    """An element count that a call of the ``cost`` class splits over two threads."""
    with threads.limit(2):
        return max(host.WHOLE_BELOW[cost], 2 * host.grain(cost)) + 1001


@pytest.mark.parametrize("name", ["relu", "gelu"])
def test_a_repeated_split_call_launches_its_plan_and_gives_the_bits_of_one_thread(name, planning):
    function = relukit.get(name).bind()  # (its own Calls: no plan from another test)
    linear = function.spec.piecewise_linear
    n = _split_size(host.LINEAR if linear else host.SMOOTH)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(n).astype(np.float32)
    x[::101] = np.nan
    g = rng.standard_normal(n).astype(np.float32)
    with threads.limit(1):
        want = function(x)
        if linear:
            want_y, want_m = function.forward_with_mask(x)
            want_dx = function.backward_from_mask(g, want_m)
    y, dx = np.full_like(x, 7.0), np.full_like(x, 7.0)
    with threads.limit(2):
        function(x, out=y)  # (a plan kept, or the ufunc that splits its calls where it takes it)
        calls = function._fast.last[1]
        calls.map("forward", x, x, y, False, False)  # (the map's route: planned, and kept)
        if linear:
            function.forward_with_mask(x, out=y)
            function.backward_from_mask(g, want_m, out=dx)
        asked = planning()
        for _ in range(2):
            y[:] = 7.0
            assert function(x, out=y).tobytes() == want.tobytes()
            y[:] = 7.0
            calls.map("forward", x, x, y, False, False)
            assert y.tobytes() == want.tobytes()
            if linear:
                y[:] = 7.0
                dx[:] = 7.0
                _, m = function.forward_with_mask(x, out=y)
                assert y.tobytes() == want_y.tobytes() and np.array_equal(m, want_m)
                function.backward_from_mask(g, m, out=dx)
                assert dx.tobytes() == want_dx.tobytes()
    assert asked == []
    kinds = {key[0] for key in function._fast.last[1]._plans}
    assert kinds == ({"map", "mask_forward", "mask_backward"} if linear else {"map"})


def _bump_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(team, "generation", [team.generation[0] + 1])


def _pin_stream_bytes_in_the_environment(mp: pytest.MonkeyPatch) -> None:
    mp.setenv(host.STREAM_ENV, str(1 << 20))
    mp.setattr(host, "_STREAM_ENV_SET", True)


# what changes, and whether a call after it keeps a plan of its own (not while pinned)
CHANGES = {
    "a pinned grain": (lambda mp, n: mp.setattr(host, "GRAIN_LINEAR", 4096), False),
    "the other pinned grain": (lambda mp, n: mp.setattr(host, "GRAIN_SMOOTH", 4096), False),
    "chunks per thread": (lambda mp, n: mp.setattr(host, "PIECES_TEAM", host.PIECES), True),
    "a fork": (lambda mp, n: _bump_generation(mp), True),
    "whole below it": (lambda mp, n: mp.setattr(host, "WHOLE_BELOW", [n + 1] * 3), False),
    "the streaming threshold measured again": (
        lambda mp, n: mp.setattr(host, "_stream_found", [1 << 20]),
        True,
    ),
    "a pinned streaming threshold": (
        lambda mp, n: mp.setattr(host, "STREAM_BYTES", 1 << 20),
        False,
    ),
    "RELUKIT_STREAM_BYTES": (lambda mp, n: _pin_stream_bytes_in_the_environment(mp), False),
}


def _planned_relu() -> tuple[host.Calls, np.ndarray, np.ndarray, np.ndarray]:
    """A bound relu's Calls for float32 (its own: no plan from another test), x, an output y
    and relu(x), after one call of ``y = relu(x)`` on two threads (its plan kept)."""
    function = relukit.relu.bind()
    n = _split_size(host.LINEAR)
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    y = np.empty_like(x)
    with threads.limit(1):
        function(x)  # (whole: nothing kept)
    calls = function._fast.last[1]
    with threads.limit(2):
        calls.map("forward", x, x, y, False, False)
    return calls, x, y, np.maximum(x, np.float32(0))


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_plan_is_not_taken_once_what_it_was_made_from_changes(change, monkeypatch, planning):
    calls, x, y, want = _planned_relu()
    asked = planning()
    with threads.limit(2):
        calls.map("forward", x, x, y, False, False)
        assert asked == []  # (the plan)
        make, kept = CHANGES[change]
        make(monkeypatch, x.size)
        for _ in range(2):
            y[:] = 7.0
            calls.map("forward", x, x, y, False, False)
            assert y.tobytes() == want.tobytes()
    assert asked == [x.size] * (1 if kept else 2)


def test_another_thread_count_or_output_is_planned_on_its_own(planning):
    calls, x, y, want = _planned_relu()
    asked = planning()
    with threads.limit(1):
        calls.map("forward", x, x, y, False, False)  # (one thread: whole)
    with threads.limit(2):
        z = x.copy()
        calls.map("forward", z, z, z, False, False)  # (in place)
        calls.map("forward", x, x, y, False, True)  # (fresh)
        calls.map("derivative", x, x, y, False, False)
        calls.map("forward", x, x, y, False, False)  # (the plan)
    assert asked == [x.size] * 4
    assert z.tobytes() == y.tobytes() == want.tobytes()


def test_a_fresh_output_that_may_stream_keeps_no_plan(monkeypatch, planning):
    # whether it streams depends on its pages, asked at each call; an out= that streams is kept
    monkeypatch.setattr(host, "_large", lambda nbytes, cached: True)
    function = relukit.relu.bind()
    n = _split_size(host.LINEAR)
    x = np.random.default_rng(8).standard_normal(n).astype(np.float32)
    want = np.maximum(x, np.float32(0))
    y = np.empty_like(x)
    with threads.limit(2):
        for _ in range(2):
            assert function(x).tobytes() == want.tobytes()
            assert function(x, out=y).tobytes() == want.tobytes()
        plans = function._fast.last[1]._plans
        asked = planning()
        assert function(x).tobytes() == want.tobytes()
        y[:] = 7.0
        assert function(x, out=y).tobytes() == want.tobytes()
    assert asked == [n]  # (the allocating call, planned again)
    fresh = [key[-1] for key in plans]
    assert fresh == [False]
    assert all(plan[7] == host.STREAM for plan in plans.values())  # (streamed where it can)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_keeps_no_plan_of_its_parent_s_team(monkeypatch, in_fork):
    # one chunk list with and without the team: the child's chunks are its parent's object
    monkeypatch.setattr(host, "PIECES_TEAM", host.PIECES)
    calls, x, y, want = _planned_relu()
    with threads.limit(2):
        calls.map("forward", x, x, y, False, False)  # (a plan on the parent's team)

    (parent_s,) = calls._plans.values()

    def child() -> bytes:  # (the parent's launcher in the child would hang it: SIGALRM)
        same = True
        with threads.limit(2):
            for _ in range(3):  # (the pool; none of it kept as a plan)
                y[:] = 7.0
                calls.map("forward", x, x, y, False, False)
                same = same and y.tobytes() == want.tobytes()
        (only,) = calls._plans.values()
        return b"%d%d%d" % (team.available(), same, only is parent_s)

    assert in_fork(child) == (0, b"011")  # (the parent's one plan, neither taken nor replaced)
