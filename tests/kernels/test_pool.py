"""relukit.kernels.cpu.pool: relukit's own team, with GOMP_parallel's entry point."""

from __future__ import annotations

import ctypes
import threading
import time

import pytest

from relukit.kernels.cpu import pool

pytestmark = pytest.mark.skipif(not pool.supported(), reason="Linux, x86-64 or AArch64")

TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _job(seconds: float) -> tuple[object, list[tuple[int, int]]]:
    """A job (a C function pointer) that takes ``seconds`` and then records (thread, data)."""
    seen: list[tuple[int, int]] = []

    def run(data: int) -> None:
        time.sleep(seconds)
        seen.append((threading.get_ident(), data or 0))

    return TASK(run), seen


def _call(job: object, data: int, threads: int) -> None:
    pool.team().parallel(ctypes.cast(job, ctypes.c_void_p), data, threads, 0)


def test_a_call_runs_the_job_on_the_caller_and_on_a_worker_and_returns_after_both():
    job, seen = _job(0.005)
    caller = threading.get_ident()
    for k in range(1, 6):
        before = len(seen)
        _call(job, 1000 + k, 2)
        mine = seen[before:]  # (the call waited for every thread that took the job)
        assert (caller, 1000 + k) in mine and all(data == 1000 + k for _, data in mine)
        assert len(mine) <= 2
    assert len({thread for thread, _ in seen}) == 2  # (a worker came, at least once)


def test_one_thread_runs_the_job_alone():
    job, seen = _job(0.0)
    _call(job, 7, 1)
    assert seen == [(threading.get_ident(), 7)]


def test_a_worker_gone_to_sleep_is_woken():
    job, seen = _job(0.01)
    workers = set()
    for _ in range(3):
        time.sleep(0.05)  # (far past the workers' spin: asleep on the sequence word)
        before = len(seen)
        _call(job, 1, 2)
        workers |= {thread for thread, _ in seen[before:]} - {threading.get_ident()}
    assert workers  # (a woken worker took the job while the caller's copy slept 10 ms)


def test_calls_from_several_threads_each_run_their_own_job_and_wait_for_it():
    # each call's job counts itself in and out under the call's number: when a call returns,
    # every thread that took its job has finished it, and no thread ran another call's data
    # (a call made while another holds the team runs alone)
    lock = threading.Lock()
    running: dict[int, int] = {}
    errors: list[str] = []

    def run(data: int) -> None:
        with lock:
            running[data] = running.get(data, 0) + 1
        time.sleep(0.0002 * (data % 3))
        with lock:
            running[data] -= 1

    job = TASK(run)

    def caller(first: int) -> None:
        for k in range(first, first + 150):
            _call(job, k, 2)
            with lock:
                if running.pop(k, 0) != 0:
                    errors.append(f"call {k} returned while its job ran")
            if k % 25 == 0:
                time.sleep(0.0003)  # (around the workers' spin: some calls find them asleep)

    threads = [threading.Thread(target=caller, args=(1 + 1000 * j,)) for j in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(running.values())


def test_machines_without_futex_have_no_team(monkeypatch):
    monkeypatch.setattr(pool.platform, "machine", lambda: "sparc64")
    monkeypatch.setattr(pool, "_made", [])
    assert not pool.supported() and pool.team() is None


def test_a_team_that_cannot_be_made_is_none(monkeypatch):
    def fails(workers: int) -> None:
        raise ImportError("no llvmlite")

    monkeypatch.setattr(pool, "Team", fails)
    monkeypatch.setattr(pool, "_made", [])
    assert pool.team() is None and pool._made == [None]
