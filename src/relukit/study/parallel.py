"""Running the study's runs: in this process, or spread over worker processes (``jobs > 1``).

Runs are independent, so they go to a :class:`~concurrent.futures.ProcessPoolExecutor` (spawn
start method: no process inherits PyTorch's thread pools) whose workers each set
``torch.set_num_threads(max(1, cores // jobs))`` so that ``jobs`` processes never ask for more
threads than there are cores (:func:`workers`; the default is one process per core with one
thread each, which on a busy machine is also far steadier than threads competing for cores).
Each run seeds everything it draws from its spec, and the results come back in the plan's order,
so the numbers do not depend on which worker ran what, nor when. They can depend, in the last
digits, on the number of threads per process (the order of floating-point sums inside PyTorch),
which is why a study records it.

Stopping: a ``KeyboardInterrupt`` (Ctrl-C) ends the study cleanly. In this process it simply
abandons the run under way. With workers, which ignore SIGINT themselves, the parent sets a
shared stop flag that every worker polls before each training step; the runs under way stop at
once, the queued ones are cancelled. Either way the completed runs are returned, with
``interrupted=True``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue as queues
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

import torch

from relukit.study.config import RunSpec
from relukit.study.data import Dataset
from relukit.study.training import Emit, Event, RunResult, Stopped, Tensors, train

__all__ = ["cores", "execute", "threads_per_worker"]


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(jobs: int) -> int:
    """PyTorch threads for each of ``jobs`` processes: ``max(1, cores // jobs)``."""
    return max(1, cores() // jobs)


def workers(jobs: int | None, threads: int | None, runs: int) -> tuple[int, int]:
    """``(processes, torch threads per process)`` for ``runs`` runs: ``jobs`` (default one
    per core, never more than the runs) and ``threads`` (default ``max(1, cores // jobs)``).

    Example:
        >>> workers(1, None, 30) == (1, cores())
        True
        >>> workers(4, 2, 3)
        (3, 2)
    """
    processes = max(1, min(jobs if jobs is not None else cores(), runs))
    return processes, threads if threads is not None else threads_per_worker(processes)


def _ignore(_event: Event) -> None:
    return None


def execute(
    specs: Sequence[RunSpec],
    data: Dataset,
    *,
    jobs: int = 1,
    threads: int = 1,
    emit: Emit | None = None,
) -> tuple[list[RunResult], bool]:
    """Run ``specs`` on ``data`` in ``jobs`` processes of ``threads`` PyTorch threads; return
    the completed results in plan order and whether the study was interrupted."""
    emit = emit or _ignore
    if jobs <= 1 or len(specs) <= 1:
        return _serial(specs, data, threads, emit)
    return _parallel(specs, data, min(jobs, len(specs)), threads, emit)


def _start(spec: RunSpec) -> Event:
    return Event("start", run=spec.index, label=spec.label, epochs=spec.epochs)


def _done(result: RunResult) -> Event:
    spec = result.spec
    return Event(
        "done",
        run=spec.index,
        label=spec.label,
        epoch=result.epochs_run,
        epochs=spec.epochs,
        accuracy=result.test_accuracy,
        loss=result.test_loss,
    )


def _warm_up(spec: RunSpec, tensors: Tensors) -> None:
    """One throwaway epoch of ``spec``: the first steps of a process pay for PyTorch's lazy
    set-up, which would otherwise be charged to the first run's seconds per epoch."""
    train(replace(spec, index=-1, epochs=1), tensors)


def _serial(
    specs: Sequence[RunSpec], data: Dataset, threads: int, emit: Emit
) -> tuple[list[RunResult], bool]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    tensors = Tensors.of(data)
    results: list[RunResult] = []
    try:
        if specs:
            _warm_up(specs[0], tensors)
        for spec in specs:
            emit(_start(spec))
            results.append(train(spec, tensors, emit=emit))
            emit(_done(results[-1]))
    except KeyboardInterrupt:
        emit(Event("stopping"))
        return results, True
    finally:
        torch.set_num_threads(previous)
    return results, False


_WORKER: dict[str, Any] = {}


def _init_worker(data: Dataset, threads: int, events: Any, stop: Any, first: RunSpec) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    events.cancel_join_thread()
    tensors = Tensors.of(data)
    _warm_up(first, tensors)
    _WORKER.update(tensors=tensors, events=events, stop=stop)


def _work(spec: RunSpec) -> RunResult:
    events, stop = _WORKER["events"], _WORKER["stop"]
    events.put(_start(spec))
    return train(spec, _WORKER["tensors"], emit=events.put, should_stop=stop.is_set)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored meanwhile (in the main thread): processes started now inherit that, so a
    Ctrl-C reaches only the parent, which stops the workers through the stop flag."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _drain(events: Any, emit: Emit) -> None:
    while True:
        try:
            emit(events.get_nowait())
        except queues.Empty:
            return


def _parallel(
    specs: Sequence[RunSpec], data: Dataset, jobs: int, threads: int, emit: Emit
) -> tuple[list[RunResult], bool]:
    context = multiprocessing.get_context("spawn")
    events = context.Queue()
    stop = context.Event()
    results: dict[int, RunResult] = {}
    interrupted = False
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(data, threads, events, stop, specs[0]),
    )
    with _sigint_ignored():  # the workers start (on submit) ignoring Ctrl-C from the outset
        futures: dict[Future[RunResult], RunSpec] = {pool.submit(_work, s): s for s in specs}
    pending = set(futures)
    try:
        while pending:
            finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            _drain(events, emit)
            for future in finished:
                result = future.result()
                results[result.spec.index] = result
                emit(_done(result))
    except KeyboardInterrupt:
        interrupted = True
        emit(Event("stopping"))
        stop.set()
        for future in futures:
            future.cancel()
        for future in futures:
            if future.cancelled():
                continue
            try:
                result = future.result()
            except (Stopped, BrokenProcessPool):
                continue
            results[result.spec.index] = result
    finally:
        # Every run has ended: the workers need no waiting for (their exit takes a while).
        pool.shutdown(wait=False, cancel_futures=True)
    _drain(events, emit)
    return [results[index] for index in sorted(results)], interrupted
