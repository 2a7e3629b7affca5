"""relukit.kernels.pages: large outputs on transparent huge pages."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from relukit import threads
from relukit.kernels import pages


def _huge_kib(address: int) -> int:
    """AnonHugePages of the mapping holding ``address`` (from /proc/self/smaps)."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split()[0]
            if "-" in first and ":" not in first:
                low, high = (int(part, 16) for part in first.split("-"))
                inside = low <= address < high
            elif inside and first == "AnonHugePages:":
                return int(line.split()[1])
    return 0


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or pages._page_size() == 0,
    reason="needs transparent huge pages (Linux, not 'never')",
)
def test_a_large_fresh_output_lands_on_huge_pages():
    tensor = pages.empty_tensor((pages.HUGE_BYTES // 4,), torch.float32)
    tensor.fill_(1.0)
    assert _huge_kib(tensor.data_ptr() + pages.HUGE_BYTES // 2) > 0


def test_outputs_have_the_shape_dtype_and_order_asked_for():
    a = pages.empty_array((3, pages.HUGE_BYTES // 24 + 1), np.float64, order="F")
    assert a.shape == (3, pages.HUGE_BYTES // 24 + 1) and a.flags.f_contiguous
    t = pages.empty_tensor((2, 5), torch.bfloat16)
    assert t.shape == (2, 5) and t.dtype == torch.bfloat16
    assert pages.empty_array((0,), np.float32).size == 0


def test_small_outputs_and_switched_off_huge_pages_are_left_alone(monkeypatch):
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(pages, "_madvise", lambda: lambda a, n, advice: calls.append((a, n)))
    monkeypatch.setattr(pages, "_page_size", lambda: 1 << 21)
    pages.advise(1 << 21, pages.HUGE_BYTES - 1)
    assert calls == []
    pages.advise((1 << 21) + 5, pages.HUGE_BYTES)  # only the aligned part inside
    assert calls == [(1 << 22, pages.HUGE_BYTES - (1 << 21))]
    monkeypatch.setattr(pages, "_page_size", lambda: 0)
    pages.advise(1 << 21, 2 * pages.HUGE_BYTES)
    assert len(calls) == 1


def test_relukit_huge_pages_0_switches_them_off(monkeypatch):
    pages._page_size.cache_clear()
    monkeypatch.setenv(pages.ENV, "0")
    try:
        assert pages._page_size() == 0
    finally:
        pages._page_size.cache_clear()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore is Linux's")
def test_resident_tells_new_pages_from_written_ones():
    # 64 MiB: above glibc's largest mmap threshold, so a fresh map whose pages are not in yet
    fresh = np.empty(1 << 24, dtype=np.float32)
    assert not pages.resident(fresh)
    fresh[:] = 1.0
    assert pages.resident(fresh)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mincore is Linux's")
def test_a_fresh_output_on_new_pages_is_not_streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    from relukit.kernels.cpu import host

    x = np.ones(1 << 22, dtype=np.float32)  # 16 MiB: streamed when its output's pages are in
    y = np.empty(1 << 24, dtype=np.float32)[: 1 << 22]  # (part of a fresh 64 MiB map)
    with threads.limit(1):  # (16 MiB streams on one thread from a 32 MiB cache: STREAM_BYTES)
        monkeypatch.setattr(host, "STREAM_BYTES", 1 << 24)
        assert not host._stream_to(y, x, fresh=True)
        y[:] = 0.0
        assert host._stream_to(y, x, fresh=True) == host.STREAM
        assert host._stream_to(y, x, fresh=False) == host.STREAM


def test_a_split_call_streams_from_the_whole_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from relukit.kernels.cpu import host

    monkeypatch.setattr(host, "STREAM_BYTES", 1 << 24)  # (split calls: from 32 MiB)
    x = np.ones(1 << 22, dtype=np.float32)
    y = np.ones(1 << 22, dtype=np.float32)  # 16 MiB, its pages in
    with threads.limit(1):
        assert host._stream_to(y, x, fresh=False) == host.STREAM
        assert host._streams(y, False) == host.STREAM
    with threads.limit(2):
        assert not host._stream_to(y, x, fresh=False)
        assert not host._streams(y, False)
        # a mask call into a fresh output (relukit.nn's) streams from half the cache still
        assert host._stream_to(y, x, fresh=True, cached=False) == host.STREAM
        z = np.zeros(1 << 23, dtype=np.float32)  # 32 MiB
        assert host._stream_to(z, x, fresh=False) == host.STREAM
        assert host._streams(z, False) == host.STREAM


def test_on_one_thread_a_call_runs_whole_wherever_it_does_not_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relukit.kernels.cpu import host

    monkeypatch.setattr(host, "STREAM_BYTES", 1 << 24)
    monkeypatch.setattr(host, "WHOLE_BELOW", [8192, 8192, 8192])
    big = 1 << 22  # elements, above WHOLE_BELOW
    with threads.limit(1):
        assert host.whole(big, 4 * big - 4, host.LINEAR)  # below the streaming threshold
        assert not host.whole(big, 4 * big, host.LINEAR)  # streamed: the planned path
        assert host.whole(big, 1 << 30, host.SMOOTH)  # smooth members never stream
    with threads.limit(2):
        assert host.whole(100, 400, host.LINEAR)
        assert not host.whole(big, 4 * big - 4, host.LINEAR)
        assert not host.whole(big, 4 * big - 4, host.SMOOTH)
    monkeypatch.setattr(host, "GRAIN_LINEAR", 4096)
    with threads.limit(1):
        assert not host.whole(100, 400, host.LINEAR)  # a pinned grain plans every call


def test_a_one_thread_call_past_whole_below_takes_no_planned_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """relu out= and the mask paths on 2^16 float32 elements on one thread: the kernel's entry
    point or its ufunc, not Calls.map's chunks and streaming (1.1 µs of Python)."""
    import relukit
    from relukit.kernels.cpu import host

    relu = relukit.get("relu")
    x = np.random.default_rng(1).standard_normal(1 << 16).astype(np.float32)
    expected = np.maximum(x, 0)
    _, mask = relu.forward_with_mask(x)  # (on 2 threads: measures the grain, sets WHOLE_BELOW)
    monkeypatch.setattr(host, "WHOLE_BELOW", [8192, 8192, 8192])

    def planned(*args: object, **kwargs: object) -> None:
        raise AssertionError("planned a call that runs whole")

    monkeypatch.setattr(host, "_chunks", planned)
    with threads.limit(1):
        assert np.array_equal(relu(x), expected)
        out = np.empty_like(x)
        relu(x, out=out)
        assert np.array_equal(out, expected)
        y1, mask1 = relu.forward_with_mask(x, out=out)
        assert np.array_equal(y1, expected) and np.array_equal(mask1, mask)
        g = np.ones_like(x)
        assert np.array_equal(relu.backward_from_mask(g, mask), (x > 0).astype(np.float32))
