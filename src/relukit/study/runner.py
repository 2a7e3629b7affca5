"""Running the study's runs: one runner, on Dask (``dask.distributed``) from one laptop to a
cluster.

:func:`execute` takes the planned runs, reuses those already stored (:mod:`relukit.study.cells`,
``--resume``), sends the others to an engine, stores each one as soon as it finishes, and
returns them in plan order. The engine is

* a Dask cluster already running, given by its scheduler's address (``cluster``,
  ``relukit study --cluster tcp://host:8786``), its workers started with Dask's own
  ``dask scheduler`` and ``dask worker --nthreads 1`` with relukit installed;
* else a local Dask cluster made for the study: ``jobs`` worker processes (started ignoring
  Ctrl-C, so that only this process sees it), or, for ``jobs == 1``, one worker thread in
  this process;
* else, when ``dask.distributed`` is not installed (it is the ``relukit[cluster]`` extra), one
  worker thread in this process, and the runner says so (:attr:`Outcome.engine`).

Scheduling, stopping and collecting are the same code for every engine. Each run sets
``torch.set_num_threads(spec.threads)``, seeds everything it draws from its spec, and a
process warms up (one throwaway epoch of the same member and network) before it times its
first run of a member; so a run's numbers do not depend on where it ran: the same seed and
the same threads give the same bits on a laptop and on a cluster.

Stopping (Ctrl-C, passed in as ``stop``): the queued runs are cancelled, the runs under way
stop at their next step (every worker polls a Dask ``Event``), and every run that finished is
kept: it was stored when it finished and it is returned, with ``interrupted=True``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any

from relukit.errors import UserValueError
from relukit.study.cells import Cells
from relukit.study.config import RunSpec
from relukit.study.data import Dataset
from relukit.study.training import Emit, Event, RunResult, Stopped, Tensors, train

__all__ = ["Outcome", "StopRequest", "cores", "engine_available", "execute", "workers"]


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


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
    return processes, threads if threads is not None else max(1, cores() // processes)


def engine_available() -> bool:
    """Whether ``dask.distributed`` can be imported (the ``relukit[cluster]`` extra)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


class StopRequest:
    """How often the user asked the study to stop (Ctrl-C), counted by a SIGINT handler
    (:meth:`handling`), and what a Ctrl-C does now (:attr:`mode`):

    * ``"count"`` (while the runs train, and while the report's files are put in place):
      counted only; the runner polls the count, and the files are never left half-replaced;
    * ``"raise"`` (while the report is drawn, nothing written yet): ``KeyboardInterrupt``, so
      the report is abandoned and the folder keeps its previous state.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mode = "count"

    def __call__(self, _signum: int = 0, _frame: Any = None) -> None:
        self.count += 1
        if self.mode == "raise":
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def handling(self) -> Iterator[StopRequest]:
        """This object as the SIGINT handler meanwhile (main thread only; elsewhere nothing
        changes)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """Ctrl-C raises ``KeyboardInterrupt`` meanwhile, and the block ends with it however it
        went. A ``KeyboardInterrupt`` raised where Python cannot pass it on (in a callback from
        C, such as the one LLVM calls while Numba caches a kernel: a first study on a new
        machine compiles kernels while it draws its report) is dropped there, and the code
        around it then fails with an error of its own (Numba: "no compiled object yet"), or goes
        on; Python would print it as an ignored exception with its traceback, which
        ``sys.unraisablehook`` is told to leave out meanwhile."""
        self.mode = "raise"
        before = self.count
        previous_hook = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            if not isinstance(unraisable.exc_value, KeyboardInterrupt):
                previous_hook(unraisable)

        try:
            sys.unraisablehook = hook
            yield
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            if self.count > before:
                raise KeyboardInterrupt from error  # (what the Ctrl-C broke, for the record)
            raise
        finally:
            self.mode = "count"
            sys.unraisablehook = previous_hook
        if self.count > before:
            raise KeyboardInterrupt


@dataclass
class Outcome:
    """What :func:`execute` returns: the finished runs in plan order (reused ones included),
    whether the study was stopped, how many runs were reused, and where the runs went."""

    runs: list[RunResult]
    interrupted: bool
    reused: int
    engine: str
    workers: int


# --------------------------------------------------------------------------- one run


_PROCESS: dict[str, Any] = {"warm": set(), "data": None, "tensors": None}
"""What a worker process keeps between runs: the members it warmed up, the data as tensors."""


def _tensors(data: Dataset) -> Tensors:
    if _PROCESS["data"] is not data:
        _PROCESS["data"], _PROCESS["tensors"] = data, Tensors.of(data)
    return _PROCESS["tensors"]


def _run_one(
    spec: RunSpec, data: Dataset, should_stop: Callable[[], bool], send: Emit
) -> RunResult:
    import torch

    if should_stop():
        raise Stopped
    torch.set_num_threads(spec.threads)
    tensors = _tensors(data)
    warm = (spec.scenario == "cnn", spec.activation, spec.modules, spec.backward, spec.threads)
    if warm not in _PROCESS["warm"]:
        # The first steps of a member in a process pay for lazy set-up (PyTorch's, compiled
        # kernels'), which would otherwise be charged to the run's seconds per epoch.
        train(replace(spec, index=-1, epochs=1), tensors, should_stop=should_stop)
        _PROCESS["warm"].add(warm)
    send(Event("start", run=spec.index, label=spec.label, epochs=spec.epochs))
    return train(spec, tensors, emit=send, should_stop=should_stop)


class _Poll:
    """``should_stop`` for a run on Dask: asks the scheduler's stop ``Event`` at most every
    ``every`` seconds (a round trip per training step would cost more than the step)."""

    def __init__(self, name: str, every: float = 0.05) -> None:
        from distributed import Event as DaskEvent

        self.event = DaskEvent(name)
        self.every = every
        self.last = -float("inf")
        self.answer = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.answer and now - self.last >= self.every:
            self.last = now
            self.answer = bool(self.event.is_set())
        return self.answer


def _dask_task(spec: RunSpec, data: Dataset, name: str) -> RunResult:
    """One run on a Dask worker; progress goes to the client as events of topic ``name``."""
    from distributed import get_worker

    worker = get_worker()

    def send(event: Event) -> None:
        worker.log_event(name, asdict(event))

    return _run_one(spec, data, _Poll(name), send)


# --------------------------------------------------------------------------- engines

_EVENT_FIELDS = tuple(Event.__dataclass_fields__)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked meanwhile (main thread only), then delivered here.

    Processes and threads started meanwhile inherit the blocked mask, so a Ctrl-C at the
    terminal never reaches the workers (this process stops them through the stop event). A
    Ctrl-C pressed meanwhile stays pending and reaches this process when the block ends, so it
    is acted on at once rather than lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _Dask:
    """Runs on a Dask cluster: the one at ``address``, else a local one of ``jobs`` workers."""

    def __init__(self, data: Dataset, jobs: int, address: str | None) -> None:
        from distributed import Client, LocalCluster
        from distributed import Event as DaskEvent

        self.cluster = None
        if address is not None:
            try:
                self.client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as error:
                raise UserValueError(
                    f"study: cannot reach the Dask scheduler at {address!r} ({error})"
                ) from None
            count = len(self.client.scheduler_info().get("workers", {}))
            self.engine = f"Dask cluster at {address} ({count} worker(s))"
        else:
            try:
                with _sigint_held():
                    self.cluster = LocalCluster(
                        n_workers=jobs,
                        threads_per_worker=1,
                        processes=jobs > 1,
                        dashboard_address=":0",
                        silence_logs=logging.ERROR,
                    )
            except BaseException:  # a Ctrl-C held while the workers started lands here
                if self.cluster is not None:
                    self.cluster.close()
                raise
            self.client = Client(self.cluster)
            count = jobs
            kind = "worker processes" if jobs > 1 else "worker thread in this process"
            self.engine = f"Dask local cluster ({jobs} {kind})"
        self.workers = count
        self.name = f"relukit-study-{uuid.uuid4().hex}"
        self.stop_event = DaskEvent(self.name, client=self.client)
        self.events: collections.deque[Event] = collections.deque()
        self.client.subscribe_topic(self.name, self._receive)
        self.data = self.client.scatter(data, broadcast=True, hash=False)

    def _receive(self, event: tuple[float, dict[str, Any]]) -> None:
        fields = event[1]  # Dask adds the worker's address to what the run sent
        self.events.append(Event(**{k: fields[k] for k in _EVENT_FIELDS if k in fields}))

    def submit(self, spec: RunSpec) -> Any:
        return self.client.submit(
            _dask_task, spec, self.data, self.name, key=f"{self.name}-{spec.index}", pure=False
        )

    def stop(self, futures: Sequence[Any]) -> None:
        self.stop_event.set()
        self.client.cancel([f for f in futures if not f.done()])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(self.name)
        if self.cluster is None:
            with contextlib.suppress(Exception):
                self.stop_event.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class _ThisProcess:
    """Runs one after another in a worker thread of this process (no dask.distributed)."""

    def __init__(self, data: Dataset) -> None:
        self.data = data
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relukit-study")
        self.stopped = threading.Event()
        self.events: collections.deque[Event] = collections.deque()
        self.engine = "this process, one run at a time (dask.distributed is not installed: "
        self.engine += "pip install 'relukit[cluster]' to spread the runs over workers)"
        self.workers = 1

    def submit(self, spec: RunSpec) -> Any:
        return self.pool.submit(_run_one, spec, self.data, self.stopped.is_set, self.events.append)

    def stop(self, futures: Sequence[Any]) -> None:
        self.stopped.set()
        for future in futures:
            future.cancel()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the runner


def _done(result: RunResult, reused: bool = False) -> Event:
    spec = result.spec
    return Event(
        "done",
        run=spec.index,
        label=spec.label + (" (reused)" if reused else ""),
        epoch=result.epochs_run,
        epochs=spec.epochs,
        accuracy=result.test_accuracy,
        loss=result.test_loss,
    )


def _ignore(_event: Event) -> None:
    return None


def execute(
    specs: Sequence[RunSpec],
    data: Dataset,
    *,
    jobs: int = 1,
    cluster: str | None = None,
    cells: Cells | None = None,
    resume: bool = False,
    emit: Emit | None = None,
    stop: StopRequest | None = None,
) -> Outcome:
    """Run ``specs`` on ``data`` (see the module docstring) and return the :class:`Outcome`.

    ``cells``: where each finished run is stored (None: nowhere); with ``resume`` the runs
    already stored there are reused. ``stop``: polled; a request, or a ``KeyboardInterrupt``
    raised by ``emit``, stops the study.
    """
    emit = emit or _ignore
    stop = stop or StopRequest()
    runs: dict[int, RunResult] = {}
    todo: list[RunSpec] = []
    for spec in specs:
        found = cells.get(spec) if cells is not None and resume else None
        if found is None:
            todo.append(spec)
        else:
            runs[spec.index] = found
    reused = len(runs)
    emit(Event("plan", total=len(specs), epoch=reused))
    for index in sorted(runs):
        emit(_done(runs[index], reused=True))
    if not todo:
        return Outcome([runs[i] for i in sorted(runs)], False, reused, "none (every run reused)", 0)
    if cluster is None and not engine_available():
        engine: _Dask | _ThisProcess = _ThisProcess(data)
    else:
        engine = _Dask(data, min(jobs, len(todo)), cluster)
    interrupted = False
    futures: dict[Any, RunSpec] = {}
    try:
        futures = {engine.submit(spec): spec for spec in todo}
        pending = set(futures)
        try:
            while pending:
                if stop.count:
                    raise KeyboardInterrupt
                while engine.events:
                    emit(engine.events.popleft())
                finished = [future for future in pending if future.done()]
                for future in finished:
                    pending.discard(future)
                    _collect(future, runs, cells, emit)
                if not finished:
                    time.sleep(0.05)
        except KeyboardInterrupt:
            interrupted = True
            engine.stop(list(pending))
            with contextlib.suppress(KeyboardInterrupt):
                emit(Event("stopping"))
            for future in pending:
                if future.done() and not future.cancelled():
                    with contextlib.suppress(KeyboardInterrupt):
                        _collect(future, runs, cells, _ignore)
    finally:
        engine.close()
    return Outcome(
        [runs[i] for i in sorted(runs)], interrupted, reused, engine.engine, engine.workers
    )


def _collect(future: Any, runs: dict[int, RunResult], cells: Cells | None, emit: Emit) -> None:
    """Keep the result of a finished ``future`` (stored at once); a stopped run is dropped."""
    if future.cancelled():
        return
    try:
        result = future.result()
    except Stopped:
        return
    runs[result.spec.index] = result
    if cells is not None:
        cells.put(result)
    emit(_done(result))
