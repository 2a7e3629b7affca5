"""relukit.kernels.cpu.host: the size from which outputs are streamed, measured or pinned."""

from __future__ import annotations

import numpy as np
import pytest

from relukit import threads
from relukit.errors import UserValueError
from relukit.kernels.cpu import host

MIB = 1 << 20


@pytest.fixture
def measured(monkeypatch):
    """Nothing pinned, nothing measured yet, a 64 MiB cache of which 32 MiB are measured, from
    1 MiB (a core's L2 of 1 MiB or less)."""
    monkeypatch.setattr(host, "STREAM_FLOOR", MIB)
    monkeypatch.setattr(host, "STREAM_BYTES", None)
    monkeypatch.setattr(host, "_stream_found", [])
    monkeypatch.setattr(host, "CACHE_HALF", 32 * MIB)
    monkeypatch.setattr(host, "STREAM_MEASURE_TOP", 32 * MIB)


def asked(wins_from: int | None, alone: tuple[int, ...] = ()) -> tuple[list[int], object]:
    sizes: list[int] = []

    def wins(size: int) -> bool:
        sizes.append(size)
        return size in alone or (wins_from is not None and size >= wins_from)

    return sizes, wins


@pytest.mark.usefixtures("measured")
def test_the_threshold_is_the_first_of_two_sizes_where_streaming_wins():
    sizes, wins = asked(4 * MIB)
    assert host._stream_threshold(wins) == 4 * MIB
    assert sizes == [MIB, 2 * MIB, 4 * MIB, 8 * MIB]  # (stops at the second win)
    # a win at one size alone is noise, not a threshold
    sizes, wins = asked(16 * MIB, alone=(2 * MIB,))
    assert host._stream_threshold(wins) == 16 * MIB
    # no two wins up to the largest size measured: half the last-level cache, as before
    sizes, wins = asked(None, alone=(16 * MIB,))
    assert host._stream_threshold(wins) == 32 * MIB
    assert sizes == [MIB << k for k in range(6)]


def test_a_win_at_the_largest_size_measured_is_taken_below_half_a_larger_cache(monkeypatch):
    # a VM reading its host's 300 MiB: measured up to 32 MiB, not up to 150
    monkeypatch.setattr(host, "STREAM_FLOOR", MIB)
    monkeypatch.setattr(host, "CACHE_HALF", 150 * MIB)
    monkeypatch.setattr(host, "STREAM_MEASURE_TOP", 32 * MIB)
    sizes, wins = asked(32 * MIB)
    assert host._stream_threshold(wins) == 32 * MIB
    assert sizes[-1] == 32 * MIB
    sizes, wins = asked(None)
    assert host._stream_threshold(wins) == 150 * MIB
    sizes, wins = asked(2 * MIB)
    assert host._stream_threshold(wins) == 2 * MIB


def test_the_measurement_stops_below_half_the_cache(monkeypatch):
    monkeypatch.setattr(host, "STREAM_FLOOR", MIB)
    monkeypatch.setattr(host, "CACHE_HALF", 6 * MIB)  # (a 12 MiB last-level cache)
    monkeypatch.setattr(host, "STREAM_MEASURE_TOP", 32 * MIB)
    sizes, wins = asked(None)
    assert host._stream_threshold(wins) == 6 * MIB
    assert sizes == [MIB, 2 * MIB, 4 * MIB]


@pytest.mark.usefixtures("measured")
def test_it_is_measured_once_and_only_for_outputs_that_large(monkeypatch):
    sizes, wins = asked(2 * MIB)
    monkeypatch.setattr(host, "_streaming_wins", wins)
    with threads.limit(1):
        assert not host._large(MIB - 1, True)  # below the floor: nothing measured
        assert host.alone(MIB - 1, True)
        assert sizes == []
        assert not host._large(2 * MIB - 1, True)
        assert host._large(2 * MIB, True) == host.STREAM
        assert host.alone(2 * MIB, True) != host.STREAM and host.alone(2 * MIB, False)
    assert host.stream_bytes() == (2 * MIB if host.STREAM else 32 * MIB)
    assert len(sizes) == (3 if host.STREAM else 0)  # once per process
    with threads.limit(2):  # a split call: each core's caches hold their part
        assert not host._large(3 * MIB, True)
        assert host._large(3 * MIB, False) == host.STREAM
        assert host._large(4 * MIB, True) == host.STREAM


def test_a_pinned_size_is_taken_as_it_is(monkeypatch):
    def never(size: int) -> bool:
        raise AssertionError("measured")

    monkeypatch.setattr(host, "_streaming_wins", never)
    monkeypatch.setattr(host, "STREAM_BYTES", 0)  # (every output, as the tests pin it)
    assert host.stream_bytes() == 0 and host._large(64, True)
    monkeypatch.setattr(host, "STREAM_BYTES", 1 << 40)
    assert not host._large(1 << 30, True)


def test_the_environment_pins_it_in_bytes(monkeypatch):
    monkeypatch.setenv(host.STREAM_ENV, " 4194304 ")
    assert host._stream_pin() == 4 * MIB
    monkeypatch.setenv(host.STREAM_ENV, "")
    assert host._stream_pin() is None
    monkeypatch.setenv(host.STREAM_ENV, "4M")
    with pytest.raises(UserValueError, match=r"^RELUKIT_STREAM_BYTES='4M' is not a whole number"):
        host._stream_pin()
    monkeypatch.setenv(host.STREAM_ENV, "\u00b2")  # (a digit to str.isdigit, not to int)
    with pytest.raises(UserValueError, match="is not a whole number of bytes"):
        host._stream_pin()


def test_the_environment_pins_it_where_nothing_else_does(monkeypatch):
    def never(size: int) -> bool:
        raise AssertionError("measured")

    monkeypatch.setattr(host, "_streaming_wins", never)
    monkeypatch.setattr(host, "STREAM_BYTES", None)
    monkeypatch.setattr(host, "_stream_found", [])
    monkeypatch.setattr(host, "_STREAM_ENV_SET", True)
    monkeypatch.setenv(host.STREAM_ENV, "0")
    assert host.stream_bytes() == 0
    with threads.limit(1):
        assert host._large(64, True)  # (every output, below the floor too)
    monkeypatch.setenv(host.STREAM_ENV, "lots")
    with pytest.raises(UserValueError, match="RELUKIT_STREAM_BYTES='lots'"):
        host._large(64, True)


@pytest.mark.skipif(not host.STREAM, reason="streaming stores are x86-64's")
def test_the_measurement_copies_both_ways():
    winner = host._streaming_wins(MIB, rounds=2)
    assert isinstance(winner, bool)
    x = np.arange(1000, dtype=np.float32)
    y = np.zeros_like(x)
    host._kernel("copy")(x, y, True)  # (the kernel it times, streamed: the same copy)
    assert np.array_equal(x, y)


def caches(root, sizes, siblings=None):
    """A sysfs cache folder: (level, size, shared_cpu_list) per cache, and the first CPU's SMT
    siblings beside it."""
    for index, (level, size, shared) in enumerate(sizes):
        folder = root / "cache" / f"index{index}"
        folder.mkdir(parents=True)
        if level is not None:
            (folder / "level").write_text(f"{level}\n")
        (folder / "size").write_text(size + "\n")
        if shared is not None:
            (folder / "shared_cpu_list").write_text(shared + "\n")
    if siblings is not None:
        (root / "topology").mkdir()
        (root / "topology" / "thread_siblings_list").write_text(siblings + "\n")
    return str(root / "cache")


def test_outputs_below_a_cores_l2_never_stream(tmp_path, monkeypatch):
    # the floor is a core's share of the L2 where it is above 1 MiB (the Xeon's 2 MiB), else
    # 1 MiB; an L2 shared by a module of cores counts for each its share, SMT siblings as one
    xeon = caches(
        tmp_path / "xeon",
        [(1, "48K", "0"), (1, "32K", "0"), (2, "2048K", "0"), (3, "307200K", "0-1")],
        siblings="0",
    )
    assert host.cache_sizes(xeon) == {1: 48 << 10, 2: 2 * MIB, 3: 300 * MIB}
    assert host.level_two_per_core(xeon) == 2 * MIB and host.stream_floor(xeon) == 2 * MIB
    zen = caches(tmp_path / "zen", [(1, "32K", "0,16"), (2, "1024K", "0,16"), (3, "32768K", None)])
    assert host.stream_floor(zen) == MIB
    smt = caches(tmp_path / "smt", [(2, "2048K", "0,64")], siblings="0,64")
    assert host.level_two_per_core(smt) == 2 * MIB
    module = caches(tmp_path / "module", [(2, "4096K", "0-3")], siblings="0")
    assert host.level_two_per_core(module) == MIB and host.stream_floor(module) == MIB
    unknown = caches(tmp_path / "unknown", [(None, "4096K", None)])  # (no level: not an L2)
    assert host.stream_floor(unknown) == MIB and host.last_level_cache(unknown) == 4 * MIB
    assert host.stream_floor(str(tmp_path / "missing")) == MIB
    # below the floor nothing is measured and nothing streams, on one thread
    monkeypatch.setattr(host, "STREAM_FLOOR", 2 * MIB)
    monkeypatch.setattr(host, "STREAM_BYTES", None)
    monkeypatch.setattr(host, "_stream_found", [])
    monkeypatch.setattr(host, "_STREAM_ENV_SET", False)
    sizes, wins = asked(MIB)
    monkeypatch.setattr(host, "_streaming_wins", wins)
    with threads.limit(1):
        assert host.alone(2 * MIB - 1, True) and not host._large(2 * MIB - 1, True)
        assert sizes == []
        assert host._stream_threshold(wins) == 2 * MIB  # (measured from the floor up)
        assert sizes == [2 * MIB, 4 * MIB]
