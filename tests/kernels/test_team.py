"""relukit.kernels.cpu.team: kernels' chunks on the process's OpenMP team."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch  # noqa: F401  (loads PyTorch's OpenMP runtime)
from numba.core.caching import NullCache

from relukit import threads
from relukit.kernels.cpu import host, team
from relukit.kernels.cpu.team import START, STOP, Part, Segments, Words

pytestmark = pytest.mark.skipif(not host.available(), reason="needs Numba")

LINUX = sys.platform.startswith("linux")


def test_bind_gives_each_chunk_its_part_its_bounds_and_the_rest_whole():
    x = np.arange(200.0)
    codes = np.arange(50, dtype=np.uint8)  # 2 bits per element
    whole = np.zeros(3)
    bound = team.bind((Part(x), Part(codes, 2), whole, START, STOP, True), 64, 130)
    assert bound[0].tolist() == x[64:130].tolist()
    assert bound[1].tolist() == codes[16:33].tolist()  # ceil(130 * 2 / 8) = 33
    assert bound[2] is whole and bound[3:] == (64, 130, True)


def test_layout_declines_what_a_trampoline_cannot_pass():
    kernel = host._kernel("copy")
    x = np.zeros(8)
    assert team.layout(kernel, (Part(x), Part(x), False)) is not None
    assert team.layout(lambda *a: None, (Part(x), Part(x), False)) is None  # not compiled
    assert team.layout(kernel, (Part(x), np.zeros((2, 4)), False)) is None  # not 1-D
    assert team.layout(kernel, (Part(x), Part(x[::2]), False)) is None  # strided
    assert team.layout(kernel, (Part(x), Part(x), "text")) is None


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_pytorch_s_runtime_is_found_once_torch_is_imported():
    assert team.available()


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_call_on_the_team_gives_the_bits_of_one_thread(dtype):
    n = 300_007
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    x[::97] = np.nan
    kernel = host._kernel("mask_forward", host._module().RELU, 1, False)
    p = np.zeros(8, dtype=dtype)
    p[4], p[5] = 0.0, np.inf
    codes = np.zeros(3, dtype=np.int64)
    aux = np.zeros(1, dtype=dtype)
    y1, m1 = np.empty_like(x), np.empty(-(-n // 8), dtype=np.uint8)
    kernel(x, aux, y1, m1, p, codes, 0, False)
    y2, m2 = np.full_like(x, 7.0), np.zeros_like(m1)
    args = (Part(x), aux, Part(y2), Part(m2, 1), p, codes, START, False)
    bounds = [*range(0, n, 64 * 500), n]
    team.run(kernel, args, bounds, 2, team.layout(kernel, args))
    assert y1.tobytes() == y2.tobytes() and m1.tobytes() == m2.tobytes()


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_kernels_called_with_one_layout_share_its_trampoline_and_each_runs_its_own_code():
    n = 70_001
    x = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    p = np.zeros(8, dtype=np.float32)
    p[0], p[4], p[5] = 0.1, -np.inf, np.inf
    codes = np.zeros(3, dtype=np.int64)
    aux = np.zeros(1, dtype=np.float32)
    bounds = [*range(0, n, 64 * 300), n]
    launches = []
    kinds = None
    for member in (host._module().RELU, host._module().LEAKY_RELU):
        kernel = host._kernel("mask_forward", member, 1, False)
        y1, m1 = np.empty_like(x), np.empty(-(-n // 8), dtype=np.uint8)
        kernel(x, aux, y1, m1, p, codes, 0, False)
        y2, m2 = np.full_like(x, 7.0), np.zeros_like(m1)
        args = (Part(x), aux, Part(y2), Part(m2, 1), p, codes, START, False)
        kinds = team.layout(kernel, args)
        team.run(kernel, args, bounds, 2, kinds)
        assert y1.tobytes() == y2.tobytes() and m1.tobytes() == m2.tobytes()
        launches.append(kinds.launches[kernel, False])
    # one trampoline and launcher compiled per layout, not per kernel; each kernel's own address
    assert launches[0][0] is launches[1][0] and launches[0][2] is launches[1][2]
    assert len(launches[0][2].signatures) == 1
    assert launches[0][4] != launches[1][4]


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_a_kernel_returning_other_than_nothing_or_an_integer_is_refused():
    from numba import njit

    x = np.ones(1_000)
    for kernel in (njit(lambda v: v.size > 0), njit(lambda v: v.sum())):
        args = (Part(x),)
        with pytest.raises(TypeError, match="nothing or an integer"):
            team.run(kernel, args, [0, 512, 1_000], 2, team.layout(kernel, args))


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_every_chunk_runs_once_with_its_bounds_and_scalars():
    # the stream copy kernel over chunks of odd sizes, float32 scalars passed through
    n = 100_003
    x = np.arange(n, dtype=np.float32)
    y = np.zeros_like(x)
    kernel = host._kernel("copy")
    args = (Part(x), Part(y), False)
    bounds = [0, 64, 128, 50_048, 50_112, n]
    team.run(kernel, args, bounds, 2, team.layout(kernel, args))
    np.testing.assert_array_equal(y, x)


def _child(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


_CACHED_CALL = """
import numpy as np, torch
from relukit.kernels.cpu import host, team
from relukit.kernels.cpu.team import START, Part
n, dtype = 70_001, np.{dtype}
x = np.random.default_rng(2).standard_normal(n).astype(dtype)
kernel = host._kernel("mask_forward", host._module().{member}, 1, False)
p = np.zeros(8, dtype=dtype)
p[0], p[4], p[5] = 0.1, -np.inf, np.inf
codes, aux = np.zeros(3, dtype=np.int64), np.zeros(1, dtype=dtype)
y1, m1 = np.empty_like(x), np.empty(-(-n // 8), dtype=np.uint8)
kernel(x, aux, y1, m1, p, codes, 0, False)
y2, m2 = np.full_like(x, 7.0), np.zeros_like(m1)
args = (Part(x), aux, Part(y2), Part(m2, 1), p, codes, START, False)
kinds = team.layout(kernel, args)
team.run(kernel, args, [*range(0, n, 64 * 300), n], 2, kinds)
found = kinds.launches[kernel, False]
same = y1.tobytes() == y2.tobytes() and m1.tobytes() == m2.tobytes()
print(int(same), found[0].cache_hits, sum(found[2].stats.cache_hits.values()))
"""


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_fresh_processes_load_each_layout_s_trampoline_and_launcher_from_disk(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path)}

    def run(member: str, dtype: str) -> str:
        return _child(_CACHED_CALL.format(member=member, dtype=dtype), env)

    assert run("RELU", "float32") == "1 0 0"  # (compiled, and written to the cache)
    assert (tmp_path / "relukit_team").is_dir()
    assert run("RELU", "float32") == "1 1 1"  # (both loaded: no compiling)
    # another kernel of that layout: its own bits, through the layout's trampoline and launcher
    assert run("LEAKY_RELU", "float32") == "1 1 1"
    assert run("RELU", "float64") == "1 0 0"  # (another layout: both its own)


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_with_nowhere_to_write_the_trampolines_are_compiled_uncached(monkeypatch):
    monkeypatch.setattr(team, "_modules", lambda: None)
    # (the trampolines made so far, kept per layout, set aside for this test)
    monkeypatch.setattr(team, "_trampoline", functools.cache(team._trampoline.__wrapped__))
    n = 10_007
    x = np.arange(n, dtype=np.float64)
    y = np.zeros_like(x)
    kernel = host._kernel("copy")
    args = (Part(x), Part(y), False)
    kinds = team.Layout(team.layout(kernel, args).kinds)  # (a layout of its own: none made)
    team.run(kernel, args, [0, 64, 5_056, n], 2, kinds)
    np.testing.assert_array_equal(y, x)
    trampoline = kinds.launches[kernel, False][0]
    assert isinstance(trampoline._cache, NullCache) and trampoline.cache_hits == 0


def test_a_module_file_of_other_contents_is_written_again_and_failures_fall_back(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(team, "_modules", lambda: tmp_path)
    source = "def f():\n    return value"
    assert team._generated(source, "f", {"value": 5}, lambda f: f, "id")() == 5
    (written,) = tmp_path.glob("f_*.py")
    written.write_text("def f(:")  # (cut short: a crash while writing, say)
    assert team._generated(source, "f", {"value": 6}, lambda f: f, "id")() == 6
    assert written.read_text().endswith(source + "\n")

    def fails(function):
        raise RuntimeError("cannot cache")

    assert team._generated(source, "f", {"value": 7}, fails, "id") is None
    assert not any(name.startswith("relukit_team_f_") for name in sys.modules)


def test_each_source_stamp_has_its_folder_and_unused_ones_are_pruned(monkeypatch, tmp_path):
    from numba.core import config
    from numba.core.caching import _CacheLocator

    from relukit.kernels.cpu.compile import STAMP

    base = tmp_path / "relukit_team"
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    old = time.time() - (team.PRUNE_AFTER_DAYS + 1) * 86_400
    made = {}
    for name in ("123", "456", "notes", str(STAMP)):  # (456 used lately; notes not a stamp)
        folder = base / name
        cache = tmp_path / _CacheLocator.get_suitable_cache_subpath(str(folder / "m.py"))
        for place in (folder / "__pycache__", cache):
            place.mkdir(parents=True)
            (place / "trampoline_0.trampoline-2.py311.nbi").write_bytes(b"x")
        (folder / "trampoline_0.py").write_text("def trampoline(data):\n    pass\n")
        if name != "456":
            os.utime(folder, (old, old))
        made[name] = (folder, cache)
    assert team._modules.__wrapped__() == base / str(STAMP)
    assert not made["123"][0].exists() and not made["123"][1].exists()
    for name in ("456", "notes", str(STAMP)):
        assert made[name][1].exists() and (made[name][0] / "trampoline_0.py").exists()
    assert (base / str(STAMP)).stat().st_mtime > old + 86_400  # (in use: set again)


_NUMPY_ONLY = """
import os, sys
import numpy as np
import relukit
from relukit.kernels.cpu import host, pool, team
def runtimes():
    return sorted({l.split()[-1] for l in open("/proc/self/maps") if "/lib" in l and any(
        l.split()[-1].rsplit("/", 1)[-1].startswith(r) for r in team.RUNTIMES)})
x = np.random.default_rng(0).standard_normal(300_001).astype(np.float32)
with relukit.threads.limit(1):
    whole, whole_mask = relukit.gelu(x), relukit.relu.forward_with_mask(x)[1]
split = np.empty_like(x)
with relukit.threads.limit(2):  # (out=: the split ufunc; the mask path: planned)
    relukit.gelu(x, out=split)
    split_mask = relukit.relu.forward_with_mask(x)[1]
    own = team._parallel() is pool.team().parallel and bool(host._split_calls)
print(own, runtimes() == [], "torch" in sys.modules, whole.tobytes() == split.tobytes(),
      whole_mask.tobytes() == split_mask.tobytes())
if os.fork() == 0:  # (a child that uses PyTorch's team: hung after libgomp's threads had run)
    with relukit.threads.limit(2):  # (on relukit.threads' pool: the team is not in the child)
        ours = relukit.gelu(x).tobytes() == whole.tobytes() and not team.available()
    import torch
    torch.set_num_threads(2)
    t = torch.randn(2_000_000)
    os._exit(0 if ours and torch.equal(t.exp().log1p(), t.exp().log1p()) else 1)
print(os.wait()[1])
import torch
again = np.empty_like(x)
with relukit.threads.limit(2):
    relukit.gelu(x, out=again)  # (the split ufunc alone: it asks for the team once torch came)
    words = [int(d[6]) for c in host._split_calls for d in c.split_data]
    mine = team._runtime[0] is pool.team().parallel
    moved = bool(words) and all(w == team.parallel_address() for w in words)
    print(not mine, moved, again.tobytes() == whole.tobytes())
"""


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_a_process_without_pytorch_runs_split_calls_on_relukit_s_own_team_until_torch_comes():
    first, forked, second = _child(_NUMPY_ONLY, {}).splitlines()
    # relukit's team, no OpenMP runtime loaded, torch not imported, the bits of one thread
    assert first == "True True False True True"
    assert forked == "0"  # (a forked child's PyTorch ran on 2 threads)
    # import torch: PyTorch's team from then on, the split ufuncs made before too
    assert second == "True True True"


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_relukit_openmp_0_turns_the_team_off():
    code = "import torch; from relukit.kernels.cpu import team; print(team.available())"
    assert _child(code, {"RELUKIT_OPENMP": "0"}) == "False"
    assert _child(code, {"RELUKIT_OPENMP": "1"}) == "True"


def test_a_split_call_on_the_team_measures_no_wake_up_of_relukit_s_pool(monkeypatch):
    if not team.available():
        pytest.skip("no team in this process")
    import relukit

    grains, runs = [], []
    grain, run = host.grain, team.run
    monkeypatch.setattr(host, "grain", lambda *a, **k: grains.append(k) or grain(*a, **k))
    monkeypatch.setattr(team, "run", lambda *a, **k: runs.append(1) or run(*a, **k))
    x = np.random.default_rng(2).standard_normal(1 << 21).astype(np.float32)
    with threads.limit(2):
        relukit.leaky_relu.forward_with_mask(x)  # (_spread: its mask path's kernels)
    assert runs and {"asleep": True} not in grains


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_on_relukit_s_pool_and_gets_the_same_bits(in_fork):
    x = np.random.default_rng(1).standard_normal(1 << 20)
    import relukit

    with threads.limit(2):  # twice: the second call repeats the first's launch on the team
        expected = relukit.relu(x)
        assert relukit.relu(x).tobytes() == expected.tobytes()

    def child() -> bytes:
        with threads.limit(2):
            same = relukit.relu(x).tobytes() == expected.tobytes()
        return b"%d%d" % (team.available(), same)

    assert in_fork(child) == (0, b"01")


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "gelu"])
def test_a_repeated_split_call_takes_its_kept_launch_and_gives_the_same_bits(name, monkeypatch):
    import relukit
    from relukit.kernels import dispatch

    monkeypatch.setattr(host, "GRAIN_LINEAR", 4096)
    monkeypatch.setattr(host, "GRAIN_SMOOTH", 4096)
    repeated: list[bool] = []
    launch = host.Calls._launch

    def counted(self, *args):  # type: ignore[no-untyped-def]
        repeated.append(launch(self, *args))
        return repeated[-1]

    monkeypatch.setattr(host.Calls, "_launch", counted)
    function = relukit.get(name)
    rng = np.random.default_rng(3)
    for n in (20_000, 100_003):  # (a launch kept for fewer elements would leave some out)
        x = rng.standard_normal(n).astype(np.float32)
        x[::101] = np.nan
        g = rng.standard_normal(n).astype(np.float32)
        with dispatch.forced("compiled"), threads.limit(1):  # one thread, one chunk
            want = function(x)
            want_d = function.derivative(x)
            if function.spec.piecewise_linear:
                want_y, want_m = function.forward_with_mask(x)
                want_dx = function.backward_from_mask(g, want_m)
        for count in (2, 2, 1, 2):  # the thread count changes the chunks: a launch of its own
            with threads.limit(count):
                assert function(x).tobytes() == want.tobytes()
                assert function.derivative(x).tobytes() == want_d.tobytes()
                if function.spec.piecewise_linear:
                    y, m = function.forward_with_mask(x)
                    assert y.tobytes() == want_y.tobytes() and np.array_equal(m, want_m)
                    assert function.backward_from_mask(g, m).tobytes() == want_dx.tobytes()
    assert True in repeated and False in repeated


def test_words_and_segments_give_each_chunk_its_own():
    words = np.arange(10, dtype=np.uint64)
    values = np.arange(100.0)
    offsets = np.array([0, 7, 7, 30], dtype=np.int64)
    args = (Words(words), Segments(values, offsets))
    first, second = team.bind(args, 64, 200, 1), team.bind(args, 200, 300, 2)
    assert first[0].tolist() == [1, 2] and first[1].size == 0  # words 1..2 lie inside [64, 200)
    assert second[0].tolist() == [3] and second[1].tolist() == values[7:30].tolist()


@pytest.mark.skipif(not LINUX, reason="the OpenMP team is used on Linux")
def test_what_each_chunk_returns_comes_back_in_order():
    from relukit.kernels.cpu import slopes

    x = np.random.default_rng(3).standard_normal(70_000)
    chunks = [(0, 640), (640, 30_016), (30_016, 70_000)]
    got = host.run_chunks(slopes.count_off, (Part(x), True), chunks, returns=True)
    assert got == [int(np.sum(~(x[a:b] > 0))) for a, b in chunks]


def test_no_two_kernels_share_a_symbol_name():
    # the trampolines link kernels by symbol; kernels from the disk cache keep the names their
    # compiling processes gave them (qualified name + a per-process count), so the names must
    # differ by the kernel's own codes (two map kernels once shared "...kernel$187")
    k = host._module()
    kernels = [
        host._kernel("map", k.RELU, k.FORWARD, True),
        host._kernel("map", k.GELU, k.FORWARD, False),
        host._kernel("map", k.GELU, k.DERIVATIVE, False),
        host._kernel("map", k.SILU, k.DERIVATIVE, False),
        host._kernel("mask_forward", k.RELU, 1, False),
        host._kernel("mask_forward", k.LEAKY_RELU, 1, False),
        host._kernel("mask_backward", 1, 0, False),
        host._kernel("mask_backward", 2, 0, False),
    ]
    names = [kernel.py_func.__qualname__ for kernel in kernels]
    assert len(set(names)) == len(names), names


@pytest.mark.parametrize("n", [100_000, 300_000, 1_000_003, 5_000_000])
@pytest.mark.parametrize("count", [2, 3])
def test_a_split_has_a_multiple_of_the_thread_count_of_chunks(n, count):
    # 3 chunks on 2 threads take two turns of one chunk's time: no faster than 2 chunks. Up
    # to ``count`` chunks take one turn (how many the measured grain allows: 2 of 3 threads)
    with threads.limit(count):
        chunks = host._chunks(n, True)
    assert chunks[0][0] == 0 and chunks[-1][1] == n
    assert len(chunks) <= count or len(chunks) % count == 0


def test_a_layout_passes_its_arrays_scalars_and_offsets_to_the_launcher():
    x = np.arange(10.0)
    offsets = np.zeros(3, dtype=np.int64)
    args = (Part(x), Words(np.zeros(2, np.uint64)), Segments(x, offsets), START, 2.5, True, 7)
    kinds = team.layout(host._kernel("copy"), args)
    assert kinds is not None
    values = kinds.values(args)
    assert values[0] is x and values[2] is x and values[3] is offsets
    assert values[4:] == (2.5, True, 7)
    assert team.layout(host._kernel("copy"), args) == kinds
