"""How many threads relukit's compiled kernels use, and the pool they run on.

The count comes from, in order: :func:`limit` (a context manager, per thread of the caller),
:func:`set_num_threads`, the environment variable ``RELUKIT_NUM_THREADS`` (read once, at the first
call, as OpenMP reads ``OMP_NUM_THREADS``, and again at ``set_num_threads(None)``: asking
``os.environ`` costs 0.7 µs, which every kernel call from 2^13 elements up would pay), and
otherwise the number of cores this process may run on. When PyTorch is imported, the default is
also capped by ``torch.get_num_threads()``, so that a program that limited PyTorch's threads (to
leave cores to data-loading workers, say) is not oversubscribed by relukit.

The kernels are compiled with Numba without ``parallel=True``: each is a serial loop that
releases the GIL, and a call splits its array into contiguous chunks. On Linux the threads of
the OpenMP team of the process take them (:mod:`relukit.kernels.cpu.team`: PyTorch's, so that
relukit's work and PyTorch's share one set of threads), or, before PyTorch is imported,
relukit's own team of compiled threads (:mod:`relukit.kernels.cpu.pool`). Otherwise (another
system, a forked child, ``RELUKIT_OPENMP=0``) the calling thread and a shared pool of worker
threads take them one at a time (:func:`run_all`), each chunk's call taking the GIL. A worker spins,
without the GIL, for :data:`SPIN_SECONDS` after its last task and then sleeps: a call soon
after another hands its chunks over with a store instead of a wake-up (which costs the caller
some 30 µs in a virtual machine), and between bursts of calls the pool leaves the cores to
PyTorch's (OpenMP) threads. While one thread of the caller uses the pool, another's calls run on
their own thread.

>>> import relukit.threads as threads
>>> with threads.limit(1):
...     threads.get_num_threads()
1
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from relukit.errors import UserTypeError, UserValueError

ENV = "RELUKIT_NUM_THREADS"

_setting: int | None = None


class _Local(threading.local):
    limit: int | None = None  # (a class default: found without an AttributeError)


_local = _Local()


_cores: list[int] = []


def cores() -> int:
    """The number of cores this process may run on (looked up once per process)."""
    if not _cores:
        try:
            _cores.append(len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            _cores.append(os.cpu_count() or 1)
    return _cores[0]


def _check(n: Any, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise UserTypeError(f"{where}: n must be an integer, got {type(n).__name__}")
    if n < 1:
        raise UserValueError(f"{where}: n={n!r} must be >= 1")
    return n


_UNREAD = object()
_environment: Any = _UNREAD  # RELUKIT_NUM_THREADS's count as read (None: not set), one object
_torch_count: list[Callable[[], int]] = []  # torch.get_num_threads, once torch is imported


def _from_env() -> int | None:
    """RELUKIT_NUM_THREADS's count (None: not set), read from the environment the first time."""
    global _environment
    read = _environment  # (one read: set_num_threads(None) may reset it from another thread)
    if read is not _UNREAD:
        return read  # type: ignore[no-any-return]
    text = os.environ.get(ENV)
    value = None
    if text is not None and text.strip():
        try:
            number = int(text)
        except ValueError:
            raise UserValueError(f"{ENV}={text!r} is not an integer") from None
        value = _check(number, ENV)  # (an error is raised again at the next call: not kept)
    _environment = value
    return value


def get_num_threads() -> int:
    """The number of threads the next compiled kernel called from this thread will use."""
    override = _local.limit
    if override is not None:
        return override
    if _setting is not None:
        return _setting
    env = _environment  # (_from_env, without its call once read: this is on every call's path)
    if env is _UNREAD:
        env = _from_env()
    if env is not None:
        return env  # type: ignore[no-any-return]
    n = _cores[0] if _cores else cores()
    if not _torch_count:
        torch = sys.modules.get("torch")
        if torch is None or not hasattr(torch, "get_num_threads"):
            return n
        _torch_count.append(torch.get_num_threads)
    capped = _torch_count[0]()
    if capped < n:  # (min and max cost 0.2 µs: this is on every large kernel call's path)
        n = capped if capped > 1 else 1
    return n


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (``None``: back to ``RELUKIT_NUM_THREADS``, read again from
    the environment, or the default)."""
    global _setting, _environment
    _setting = None if n is None else _check(n, "relukit.set_num_threads")
    if n is None:
        _environment = _UNREAD


@contextmanager
def limit(n: int) -> Iterator[None]:
    """Use at most ``n`` threads for the calls made by this thread inside the ``with`` block."""
    n = _check(n, "relukit.threads.limit")
    previous = _local.limit
    _local.limit = n if previous is None else min(n, previous)
    try:
        yield
    finally:
        _local.limit = previous


# ---------------------------------------------------------------------------------------------
# The pool: workers that stay awake a little after each task


SPIN_SECONDS = 1e-4
"""How long a worker (and a caller waiting for one) stays awake spinning before it sleeps: long
enough to span the gap between a module's forward and backward or two calls in a row (tens of
µs), short enough to leave the core to PyTorch's own threads soon after."""

SETTLE_SECONDS = 5e-6
"""How long a worker that sees a post waits before it takes the GIL: the caller posts, then
claims its first task and enters its kernel, which lets the GIL go. A thread that asks for the
GIL while another holds it sleeps until woken, some 40 µs in a virtual machine (measured)."""

_POSTED, _SLEEPING = 0, 1


class _Call:
    """One :func:`run_all`: its tasks, claimed one at a time by whichever thread is free."""

    def __init__(self, tasks: Sequence[Callable[[], Any]]) -> None:
        self.tasks = tasks
        self.claims = iter(range(len(tasks)))  # next() is atomic under the GIL
        self.finished = itertools.count(1)
        self.done = _zeros(1)  # 1 once every task has finished
        self.error: BaseException | None = None

    def drain(self) -> bool:
        """Run unclaimed tasks until none is left; True if this thread finished the last."""
        last = False
        for j in self.claims:
            try:
                self.tasks[j]()
            except BaseException as error:  # re-raised by the caller
                self.error = self.error or error
            last = next(self.finished) == len(self.tasks)
        return last

    def wait(self) -> None:
        """Until every task has finished: spinning for :data:`SPIN_SECONDS`, then polling
        between sleeps that double up to a millisecond (a long wait costs little CPU)."""
        pause = SPIN_SECONDS
        if _spin(self.done, 0, 0, _rounds()) == 0:
            while self.done[0] == 0:
                time.sleep(pause)
                pause = min(2 * pause, 1e-3)
        if self.error is not None:
            raise self.error


class _Worker(threading.Thread):
    """A pool thread: takes the latest call posted to it, spins for the next, then sleeps."""

    def __init__(self, number: int) -> None:
        super().__init__(name=f"relukit-{number}", daemon=True)
        self.state = _zeros(2)  # [sequence number of the latest post, asleep]
        self.call: _Call | None = None
        self.wake = threading.Semaphore(0)
        self.start()

    def post(self, call: _Call) -> None:
        self.call = call
        self.state[_POSTED] += 1  # only the posting thread (holding the pool's lock) writes it
        if self.state[_SLEEPING]:
            self.wake.release()

    def run(self) -> None:
        state, seen = self.state, 0
        rounds, settle = _rounds(), _rounds(SETTLE_SECONDS)
        finished = None  # the call whose last task this thread finished: told without the GIL
        while True:
            posted = _spin(state, _POSTED, seen, rounds, settle, finished)
            finished = None
            if posted == seen:
                # Statements under the GIL run one at a time, so either the post sees the flag
                # or this sees the post. A spare permit only makes one more round.
                state[_SLEEPING] = 1
                while state[_POSTED] == seen:
                    self.wake.acquire()
                state[_SLEEPING] = 0
                continue
            seen = posted
            call, self.call = self.call, None
            if call is not None and call.drain():
                finished = call.done


_workers: list[_Worker] = []
_busy = threading.Lock()


def _zeros(n: int) -> Any:
    import numpy as np

    return np.zeros(n, dtype=np.int64)


_spin_rate: list[float] = []


def _rounds(seconds: float = SPIN_SECONDS) -> int:
    """``seconds`` in rounds of the compiled spin (0 where it is not available)."""
    if not _spin_rate:
        try:
            from relukit.kernels.cpu import spin
        except ImportError:  # no Numba: wait by sleeping only
            _spin_rate.append(0.0)
        else:
            _spin_rate.append(spin.rounds_per_second())
    return max(1, int(seconds * _spin_rate[0])) if _spin_rate[0] else 0


def _spin(state: Any, index: int, old: int, rounds: int, settle: int = 0, done: Any = None) -> int:
    """:func:`relukit.kernels.cpu.spin.spin` (``done[0] = 1`` first); without Numba, a read."""
    if rounds == 0:
        if done is not None:
            done[0] = 1
        return int(state[index])
    from relukit.kernels.cpu.spin import spin

    return int(spin(state, index, old, rounds, settle, done, 1))


def _forget_after_fork() -> None:
    """A forked child has none of the parent's threads: start a pool of its own when needed."""
    global _busy
    _cores.clear()
    _workers.clear()
    _busy = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def run_all(tasks: Sequence[Callable[[], Any]], wake: bool = True) -> None:
    """Run ``tasks`` on up to :func:`get_num_threads` threads: the calling thread and pool
    workers take them one at a time until none is left, so a worker that wakes late, or shares
    its core with other work, takes fewer (a call is then no slower than the caller alone would
    be). The caller waits for the tasks the workers took. Without ``wake``, workers that have
    gone to sleep are left asleep (waking one costs the caller more than a small call gains).
    A call made while the pool serves another thread's runs on its own thread."""
    threads = min(len(tasks), get_num_threads())
    if threads <= 1 or not _busy.acquire(blocking=False):
        for task in tasks:
            task()
        return
    try:
        call = _Call(tasks)
        while len(_workers) < threads - 1:
            _workers.append(_Worker(len(_workers) + 1))
        for worker in _workers[: threads - 1]:
            if wake or not worker.state[_SLEEPING]:
                worker.post(call)
        if call.drain():
            call.done[0] = 1
        call.wait()
    finally:
        _busy.release()
