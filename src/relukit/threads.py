"""How many threads relukit's compiled kernels use, and the pool they run on.

The count comes from, in order: :func:`limit` (a context manager, per thread of the caller),
:func:`set_num_threads`, the environment variable ``RELUKIT_NUM_THREADS``, and otherwise the number
of cores this process may run on. When PyTorch is imported, the default is also capped by
``torch.get_num_threads()``, so that a program that limited PyTorch's threads (to leave cores to
data-loading workers, say) is not oversubscribed by relukit.

The kernels are compiled with Numba without ``parallel=True``: each is a serial loop that
releases the GIL, and a call splits its array into contiguous chunks that run on a shared pool
of ``cores − 1`` worker threads plus the calling thread. This pool never spins while idle, so
it does not compete with PyTorch's (OpenMP) threads between calls, and two threads of the caller
calling relukit at once share the same workers instead of each starting their own.

>>> import relukit.threads as threads
>>> with threads.limit(1):
...     threads.get_num_threads()
1
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from relukit.errors import UserTypeError, UserValueError

ENV = "RELUKIT_NUM_THREADS"

_setting: int | None = None
_local = threading.local()
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cores() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _check(n: Any, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int):
        raise UserTypeError(f"{where}: n must be an integer, got {type(n).__name__}")
    if n < 1:
        raise UserValueError(f"{where}: n={n!r} must be >= 1")
    return n


def _from_env() -> int | None:
    text = os.environ.get(ENV)
    if text is None or not text.strip():
        return None
    try:
        value = int(text)
    except ValueError:
        raise UserValueError(f"{ENV}={text!r} is not an integer") from None
    return _check(value, ENV)


def get_num_threads() -> int:
    """The number of threads the next compiled kernel called from this thread will use."""
    override = getattr(_local, "limit", None)
    if override is not None:
        return override
    if _setting is not None:
        return _setting
    env = _from_env()
    if env is not None:
        return env
    n = cores()
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        n = min(n, max(1, torch.get_num_threads()))
    return n


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (``None``: back to ``RELUKIT_NUM_THREADS`` or the default)."""
    global _setting
    _setting = None if n is None else _check(n, "relukit.set_num_threads")


@contextmanager
def limit(n: int) -> Iterator[None]:
    """Use at most ``n`` threads for the calls made by this thread inside the ``with`` block."""
    n = _check(n, "relukit.threads.limit")
    previous = getattr(_local, "limit", None)
    _local.limit = n if previous is None else min(n, previous)
    try:
        yield
    finally:
        _local.limit = previous


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=max(1, cores() - 1), thread_name_prefix="relukit"
                )
    return _pool


_handoff: float | None = None


def handoff_seconds() -> float:
    """What handing a task to the pool and waiting for it costs on this machine, measured once
    (the best of 30 rounds of two empty tasks, one on the pool, less the cost of running both on
    the calling thread): what a chunk must outweigh for a split to pay."""
    global _handoff
    if _handoff is None:

        def nothing() -> None:
            return None

        best = float("inf")
        for _ in range(30):
            start = time.perf_counter()
            run_all([nothing, nothing])
            split = time.perf_counter() - start
            start = time.perf_counter()
            nothing()
            nothing()
            best = min(best, split - (time.perf_counter() - start))
        _handoff = max(best, 1e-6)
    return _handoff


def run_all(tasks: Sequence[Callable[[], Any]]) -> None:
    """Run ``tasks`` at once: all but the last on the pool, the last on the calling thread."""
    if len(tasks) == 1:
        tasks[0]()
        return
    futures: list[Future[Any]] = [_executor().submit(task) for task in tasks[:-1]]
    try:
        tasks[-1]()
    finally:
        for future in futures:
            future.result()
