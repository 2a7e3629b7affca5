"""Split calls as NumPy ufuncs (``Calls.split_ufunc``, ``kernels.ufunc_loop``): a call that splits
over threads and whose output does not stream goes from NumPy's C to the OpenMP team with no
Python in between. Its loop must cut the chunks as the host's split calls do, hand them to the
team's ``GOMP_parallel`` through its trampoline, and give every element the bits of one thread;
other calls (pinned grains, streamed outputs, 16-bit floats, a forked child) keep the host's
route."""

from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
import pytest
import torch  # noqa: F401  (loads PyTorch's OpenMP runtime: split calls go to its team)

import relukit
from relukit import threads
from relukit.kernels.cpu import host, team

pytestmark = pytest.mark.skipif(
    not (host.available() and host.UFUNCS and sys.platform.startswith("linux")),
    reason="needs Numba, the ufuncs (x86-64) and the OpenMP team (Linux)",
)

GRAIN = 4096
CASES = [
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.07}),
    ("hardtanh", {"min_val": -0.1, "max_val": 2.5}),
    ("gelu", {}),
    ("silu", {}),
]


@pytest.fixture
def small_grain(monkeypatch: pytest.MonkeyPatch) -> None:
    """A grain of 4,096 elements for every cost class, the planned route's and the split
    ufuncs' (as if measured so), so that calls of some ten thousand elements split over two
    threads whatever this machine measures."""
    if not team.available():
        pytest.skip("no OpenMP team in this process")
    small_grain_again(monkeypatch)


def _sample(n: int, dtype: type, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(n) * 4
    x[::97] = np.nan
    x[1::89] = np.inf
    x[2::83] = -0.0
    return x.astype(dtype)


@pytest.mark.parametrize("n", [1, 8191, 8192, 9000, 100_003, 1 << 20])
@pytest.mark.parametrize("count", [1, 2, 3, 16])
@pytest.mark.parametrize("pieces", [1, 4])
def test_the_loops_cut_their_chunks_as_the_host_does(n, count, pieces):
    k = host._module()
    bounds = np.empty(k.split_parts(n, count, GRAIN, pieces) + 1, dtype=np.int64)
    k.split_bounds(n, bounds.size - 1, k.SPLIT_ALIGN, bounds)
    assert bounds.size - 1 == k.split_parts.py_func(n, count, GRAIN, pieces)
    python = np.empty_like(bounds)
    k.split_bounds.py_func(n, bounds.size - 1, host.ALIGN, python)
    assert np.array_equal(bounds, python), "compiled and host (Python) alike"
    assert bounds[0] == 0 and bounds[-1] == n and np.all(np.diff(bounds) > 0)
    assert np.all(bounds[1:-1] % 64 == 0)
    assert bounds.size - 1 == 1 or (n >= 2 * GRAIN and np.all(np.diff(bounds) >= GRAIN - 64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_split_calls_take_the_ufunc_and_give_the_bits_of_one_thread(
    name, params, dtype, small_grain, planning
):
    function = relukit.get(name, **params).bind()  # (its own Calls)
    function(np.ones(4, dtype))  # (makes them: the first call of a dtype asks host.whole)
    asked = planning()
    for n in (9000, 20_003, 100_003):
        x = _sample(n, dtype, n)
        with threads.limit(1):  # (whole: the small calls' route)
            want = function(x)
            want_d = function.derivative(x)
        y = np.full_like(x, 7.0)
        with threads.limit(2):
            for _ in range(2):
                assert function(x).tobytes() == want.tobytes()
                y[:] = 7.0
                assert function(x, out=y) is y and y.tobytes() == want.tobytes()
                assert function.derivative(x, out=y) is y and y.tobytes() == want_d.tobytes()
                z = x.copy()
                assert function(z, out=z) is z and z.tobytes() == want.tobytes()
                matrix = x[: n - n % 7].reshape(7, -1)
                assert function(matrix).tobytes() == want[: matrix.size].tobytes()
    assert asked == [], "none took the host's route"
    calls = function._fast._calls[np.dtype(dtype)]
    kept = {key[:3] for key, ufunc in calls.split_ufuncs.items() if ufunc}
    assert kept == {("forward", False, 2), ("derivative", False, 2), ("forward", True, 2)}


def _fake_parallel(seen: list[tuple[int, np.ndarray]]) -> tuple[object, int]:
    """A stand-in for ``GOMP_parallel(fn, data, threads, flags)``: records the thread count and
    the block it was handed (chunks, claimed, addresses, the bounds), then runs ``fn(data)`` on
    the calling thread, which then claims every chunk. (The callback and its address.)"""
    task = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    head_words = host._module().SPLIT_HEAD

    def parallel(fn: int, data: int, count: int, flags: int) -> None:
        head = (ctypes.c_int64 * head_words).from_address(data)
        block = (ctypes.c_int64 * (head_words + head[0] + 1)).from_address(data)
        seen.append((count, np.array(block[:], dtype=np.int64)))
        task(fn)(data)

    kind = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint)
    callback = kind(parallel)
    return callback, ctypes.cast(callback, ctypes.c_void_p).value or 0


def _split_data_for(calls: host.Calls, op: str, inplace: bool, count: int) -> np.ndarray:
    """The data of ``calls``' split ufunc for ``op``, made here (the last one made)."""
    made = len(calls.split_data)
    assert calls.split_ufunc(op, inplace, count)
    assert len(calls.split_data) == made + 1
    return calls.split_data[-1]


CALLS = {
    "out=": lambda f, x, y: f(x, out=y),
    "allocating": lambda f, x, y: f(x),
    "in place": lambda f, x, y: f(y, out=y),
    "derivative out=": lambda f, x, y: f.derivative(x, out=y),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("call", list(CALLS))
def test_the_loop_hands_the_team_the_host_s_chunks_through_its_trampoline(
    call, dtype, small_grain, monkeypatch
):
    function = relukit.get("gelu").bind()
    x = _sample(30_011, dtype, 5)
    with threads.limit(1):
        want = CALLS[call](function, x, x.copy())
    calls = function._fast._calls[np.dtype(dtype)]
    op = "derivative" if call.startswith("derivative") else "forward"
    k = host._module()
    seen: list[tuple[int, np.ndarray]] = []
    callback, address = _fake_parallel(seen)
    # one ufunc per thread count and chunks per thread, each made once
    for count, pieces in ((3, 1), (2, 1), (3, 1), (2, 4)):
        monkeypatch.setattr(host, "PIECES_TEAM", pieces)
        key = (op, call == "in place", count, pieces)
        if key not in calls.split_ufuncs:
            data = _split_data_for(calls, op, call == "in place", count)
            assert list(data[3:6]) == [count, GRAIN, pieces]
            assert data[k.UFUNC_PARALLEL] == team.parallel_address()
            data[k.UFUNC_PARALLEL] = address  # (a bound function of this test's alone)
        y = x.copy() if call == "in place" else np.full_like(x, 7.0)
        with threads.limit(count):
            got = CALLS[call](function, x, y)
            chunks = host._chunks(x.size, calls.cost)
        assert got.tobytes() == want.tobytes()
        assert len(seen) == 1, "one hand-off"
        threads_given, block = seen.pop()
        # (30,011 elements hold 7 grains: 2 or 3 chunks, one a thread; 4 a thread: 6 on 2)
        assert block[0] == len(chunks) == (6 if pieces == 4 else count)
        assert threads_given == count, "no more threads than asked for"
        assert block[1] == 0, "no chunk claimed before the team starts"
        assert block[2] == (y if call == "in place" else x).ctypes.data
        assert block[3] == got.ctypes.data
        assert block[7] == data[k.UFUNC_KERNEL] != 0  # (the kernel's C wrapper)
        assert list(block[k.SPLIT_HEAD :]) == [a for a, _ in chunks] + [x.size]
    del callback


@pytest.mark.parametrize(
    ("n", "count", "pieces", "parts"),
    [
        (8191, 2, 1, 1),
        (8192, 2, 1, 2),
        (100_003, 2, 1, 2),
        (100_003, 3, 4, 12),
        (50_000, 2, 4, 8),
        (30_000, 3, 4, 6),  # (7 chunks of the grain: 6, a multiple of the threads)
        (30_000, 16, 1, 7),
        (1 << 20, 1, 4, 1),
    ],
)
def test_the_split_rule_itself(n, count, pieces, parts):
    k = host._module()
    assert k.split_parts(n, count, GRAIN, pieces) == parts
    bounds = np.empty(4, dtype=np.int64)
    k.split_bounds(1000, 3, 64, bounds)
    assert bounds.tolist() == [0, 320, 640, 1000]


def test_streamed_or_aliased_outputs_pinned_grains_and_16_bit_floats_keep_the_host_s_route(
    small_grain, monkeypatch, planning
):
    x = _sample(1 << 18, np.float32, 9)  # (1 MiB: host.ALIAS_BYTES)
    with threads.limit(1):
        want = relukit.relu(x)
        want_d = relukit.relu.derivative(x)
        want_small = relukit.relu(x[:50_000])
    cases = {
        "a pinned grain": (lambda: monkeypatch.setattr(host, "GRAIN_LINEAR", GRAIN), "out="),
        "a streamed output": (
            lambda: monkeypatch.setattr(host, "_large", lambda n, c: True),
            "out=",
        ),
        "a fresh output that would stream": (
            lambda: monkeypatch.setattr(host, "_large", lambda n, c: True),
            "small",
        ),
        "an aliased output": (lambda: monkeypatch.setattr(host, "aliased", lambda *a: True), "d"),
    }
    for make, call in cases.values():
        function = relukit.relu.bind()
        function(np.ones(4, np.float32))  # (makes its Calls)
        make()
        asked = planning()
        y = np.empty_like(x)
        with threads.limit(2):
            if call == "out=":
                assert function(x, out=y).tobytes() == want.tobytes()
            elif call == "small":
                assert function(x[:50_000]).tobytes() == want_small.tobytes()
            else:
                assert function.derivative(x, out=y).tobytes() == want_d.tobytes()
                assert function(x, out=y).tobytes() == want.tobytes()  # (one pass: the ufunc)
        assert asked == [x.size if call != "small" else 50_000]
        monkeypatch.undo()  # (tests/conftest.py's pin of the buffer too: set again)
        small_grain_again(monkeypatch)
        monkeypatch.setattr(host, "ALIAS_BUFFER", True)
    half = relukit.relu.bind()
    h = x.astype(np.float16)
    with threads.limit(2):
        for _ in range(2):  # (the first call of a dtype takes the general route)
            assert half(h).tobytes() == np.maximum(h, np.float16(0)).tobytes()
    assert not any(half._fast._calls[np.dtype(np.float16)].split_ufuncs.values())


def test_fresh_outputs_from_alias_bytes_take_the_ufuncs_where_written_directly(
    small_grain, monkeypatch
):
    # a one-pass forward writes from its registers wherever NumPy puts its output; another op
    # does so once the buffer is declined (host.buffer_declined), and until then takes the
    # planned route, which allocates the output itself and asks whether it is aliased
    x = _sample(1 << 18, np.float32, 5)  # (1 MiB: host.ALIAS_BYTES)
    function = relukit.relu.bind()
    parts = range(0, x.size, 50_000)  # (below ALIAS_BYTES: the small calls' ufuncs)
    want = np.concatenate([function(x[i : i + 50_000]) for i in parts])
    want_d = np.concatenate([function.derivative(x[i : i + 50_000]) for i in parts])
    aliased = host.aliased
    asked: list[str] = []
    calling = ["forward"]

    def spy(*arrays):  # type: ignore[no-untyped-def]
        asked.append(calling[0])
        return aliased(*arrays)

    monkeypatch.setattr(host, "aliased", spy)
    for count in (1, 2):
        for pinned in (True, False):
            monkeypatch.setattr(host, "ALIAS_BUFFER", pinned)
            asked.clear()
            with threads.limit(count):
                calling[0] = "forward"
                got = function(x)
                calling[0] = "derivative"
                got_d = function.derivative(x)
            assert got.tobytes() == want.tobytes() and got_d.tobytes() == want_d.tobytes()
            assert asked == (["derivative"] if pinned else []), (count, pinned)


def test_no_team_yet_is_asked_again(small_grain, monkeypatch, planning):
    function = relukit.relu.bind()
    function(np.ones(4, np.float32))
    x = _sample(50_000, np.float32, 3)
    y = np.empty_like(x)
    calls = function._fast._calls[np.dtype(np.float32)]
    monkeypatch.setattr(team, "available", lambda: False)  # (as before torch is imported)
    with threads.limit(2):
        function(x, out=y)
    assert not calls.split_ufuncs
    monkeypatch.undo()
    small_grain_again(monkeypatch)
    monkeypatch.setattr(host, "ALIAS_BUFFER", True)
    asked = planning()
    with threads.limit(2):
        function(x, out=y)
    assert calls.split_ufuncs[("forward", False, 2, host.PIECES_TEAM)] and asked == []


def small_grain_again(monkeypatch: pytest.MonkeyPatch) -> None:
    for cost in range(3):
        monkeypatch.setitem(host._measured, (cost, False), GRAIN)
        for inplace in (False, True):
            monkeypatch.setitem(host._ufunc_measured, (cost, inplace), GRAIN)
    monkeypatch.setattr(host, "WHOLE_BELOW", [2 * GRAIN] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [2 * GRAIN] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [2 * GRAIN] * 3)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_forgets_the_split_ufuncs_and_gets_the_same_bits(
    small_grain, in_fork, monkeypatch
):
    monkeypatch.setattr(host, "WHOLE_BELOW", [4 * GRAIN] * 3)  # (SPLIT_BELOW: 2·GRAIN)
    monkeypatch.setitem(host._ufunc_found, False, (1e-6, 1e-10))
    function = relukit.relu.bind()
    x = _sample(100_003, np.float32, 11)
    y = np.empty_like(x)
    with threads.limit(1):
        want = function(x).tobytes()
    with threads.limit(2):
        assert function(x, out=y).tobytes() == want
    calls = function._fast._calls[np.dtype(np.float32)]
    assert calls.split_ufuncs[("forward", False, 2, host.PIECES_TEAM)]
    k = host._module()

    def child() -> bytes:
        with threads.limit(2):
            same = function(x, out=y).tobytes() == want
        cleared = all(data[k.UFUNC_PARALLEL] == 0 for data in calls.split_data)
        kept = any(calls.split_ufuncs.values())
        # (no split ufuncs: calls split where the planned route does, measured again if a
        # team comes)
        thresholds = (host.SPLIT_BELOW, host.INPLACE_SPLIT_BELOW, host.WHOLE_BELOW)
        planned = thresholds == ([4 * GRAIN] * 3,) * 3
        forgotten = not (host._ufunc_measured or host._ufunc_found)
        return b"%d%d%d%d" % (same, cleared, kept, planned and forgotten)

    assert in_fork(child) == (0, b"1101")


@pytest.mark.parametrize("inplace", [False, True])
def test_calls_split_from_the_split_ufuncs_own_threshold_below_the_planned_routes(
    inplace, small_grain, monkeypatch, planning
):
    # the split ufunc's hand-off costs less than the planned route's: its calls split from
    # host.SPLIT_BELOW, below host.WHOLE_BELOW, each ufunc for its own variant's grain (in
    # place, a grain of its own), and none asks the host
    monkeypatch.setitem(host._measured, (host.LINEAR, False), 40_000)
    monkeypatch.setattr(host, "WHOLE_BELOW", [80_000] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [20_000] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [20_000] * 3)
    monkeypatch.setitem(host._ufunc_measured, (host.LINEAR, True), 2 * GRAIN)
    function = relukit.relu.bind()
    function(np.ones(4, np.float32))  # (makes its Calls)
    calls = function._fast._calls[np.dtype(np.float32)]
    k = host._module()
    data = _split_data_for(calls, "forward", inplace, 2)
    assert data[4] == (2 * GRAIN if inplace else GRAIN), "the variant's grain, not the planned"
    seen: list[tuple[int, np.ndarray]] = []
    callback, address = _fake_parallel(seen)
    data[k.UFUNC_PARALLEL] = address
    asked = planning()
    for n, splits in ((16_000, False), (20_011, True)):
        x = _sample(n, np.float32, 3)
        with threads.limit(1):
            want = function(x).tobytes()
        y = x.copy() if inplace else np.full_like(x, 7.0)
        with threads.limit(2):
            got = function(y, out=y) if inplace else function(x, out=y)
        assert got.tobytes() == want and asked == []
        # (below SPLIT_BELOW: whole, by the small calls' route, though the loop would split)
        assert len(seen) == splits and (not splits or seen[0][1][0] == 2)
        seen.clear()
    del callback


def test_a_call_the_split_ufunc_declines_below_the_planned_threshold_runs_whole_by_its_ufunc(
    small_grain, monkeypatch, planning
):
    # an out= of another order than x's, between SPLIT_BELOW and WHOLE_BELOW: the whole ufunc
    # takes it (NumPy handles the strides), not the general path
    monkeypatch.setattr(host, "WHOLE_BELOW", [80_000] * 3)
    function = relukit.relu.bind()
    function(np.ones(4, np.float32))
    x = _sample(200 * 101, np.float32, 6).reshape(200, 101)
    out = np.empty_like(x, order="F")
    with threads.limit(1):
        want = function(x)
    asked = planning()
    ran = []
    calls = function._fast._calls[np.dtype(np.float32)]
    ufunc = calls.ufunc("forward")
    monkeypatch.setitem(calls.ufuncs, "forward", lambda *args: ran.append(1) or ufunc(*args))
    with threads.limit(2):
        assert function(x, out=out) is out
    assert out.tobytes(order="C") == want.tobytes() and asked == [] and ran == [1]


@pytest.mark.parametrize("inplace", [False, True])
def test_calls_in_place_split_from_their_own_threshold(inplace, small_grain, monkeypatch):
    # (in place an element costs about half what it does out=: its calls split later, and
    # below that take the small calls' route, not the split ufunc's whole run)
    monkeypatch.setattr(host, "WHOLE_BELOW", [80_000] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [20_000] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [40_000] * 3)
    function = relukit.relu.bind()
    function(np.ones(4, np.float32))
    calls = function._fast._calls[np.dtype(np.float32)]
    asked = []
    split_ufunc = calls.split_ufunc
    monkeypatch.setattr(
        calls, "split_ufunc", lambda *args: asked.append(args) or split_ufunc(*args)
    )
    x = _sample(30_011, np.float32, 8)
    y = x.copy()
    with threads.limit(2):
        if inplace:
            function(y, out=y)
        else:
            function(x, out=y)
    assert [args[1] for args in asked] == ([] if inplace else [False])


def test_a_split_ufunc_splits_every_call_the_planned_route_would(small_grain, monkeypatch):
    # (its own grain measured at a slow moment of the machine may be the larger: the planned
    # route's is then its grain, so that it splits from WHOLE_BELOW whatever)
    monkeypatch.setitem(host._measured, (host.LINEAR, False), 30_016)
    monkeypatch.setitem(host._ufunc_measured, (host.LINEAR, True), 100_032)
    function = relukit.relu.bind()
    function(np.ones(4, np.float32))
    calls = function._fast._calls[np.dtype(np.float32)]
    assert _split_data_for(calls, "forward", True, 2)[4] == 30_016
    assert _split_data_for(calls, "forward", False, 2)[4] == GRAIN
