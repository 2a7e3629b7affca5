"""Shared test configuration: a deterministic, modest hypothesis profile for the whole suite,
and a check that no test leaves the process's Ctrl-C handling changed.

``RELUKIT_HYPOTHESIS=thorough`` switches to a random, ten times longer search, for hunting
edge cases before a change lands (CI keeps the deterministic profile).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("relukit", derandomize=True, max_examples=50, **_COMMON)
settings.register_profile("thorough", derandomize=False, max_examples=500, **_COMMON)
settings.load_profile(
    "thorough" if os.environ.get("RELUKIT_HYPOTHESIS") == "thorough" else "relukit"
)


def _sigint() -> tuple[object, bool]:
    """SIGINT's handler, and whether this thread blocks it."""
    return signal.getsignal(signal.SIGINT), signal.SIGINT in signal.pthread_sigmask(
        signal.SIG_BLOCK, []
    )


@pytest.fixture(autouse=True)
def _sigint_left_as_found(request: pytest.FixtureRequest):
    """Fails the test after which SIGINT's handler or mask differs (a later Ctrl-C test would
    otherwise fail for it, inside the whole suite only), and puts them back."""
    before = _sigint()
    yield
    after = _sigint()
    if after == before:
        return
    if before[0] is not None:
        signal.signal(signal.SIGINT, before[0])
    signal.pthread_sigmask(signal.SIG_BLOCK if before[1] else signal.SIG_UNBLOCK, {signal.SIGINT})
    pytest.fail(
        f"{request.node.nodeid} left SIGINT changed: handler {before[0]!r} -> {after[0]!r}, "
        f"blocked {before[1]} -> {after[1]}"
    )


@pytest.fixture(autouse=True)
def _block_buffer_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees an aliased output go through the block buffer, as if measured so: the
    routes of large calls then depend neither on this machine nor on whether an earlier test
    in the same process happened to measure it (``host._buffer_pays``). Tests of the other
    answers pin ``host.ALIAS_BUFFER`` themselves."""
    try:
        from relukit.kernels.cpu import host
    except ImportError:  # (no Numba: no kernels)
        return
    monkeypatch.setattr(host, "ALIAS_BUFFER", True)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` imported as a module (its ``main`` not run), with
    ``benchmarks/`` on ``sys.path`` as when it runs (for a script that imports another)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def benchmark_script() -> Callable[[str], ModuleType]:
    """:func:`load_benchmark`, for the tests of the scripts in ``benchmarks/``."""
    return load_benchmark


def answer_from_fork(child: Callable[[], bytes]) -> tuple[int, bytes]:
    """``child()`` run in a forked copy of this process, which never returns to pytest: its
    exit status (1 and its traceback on stderr if it raised, SIGALRM's if it ran past 60 s)
    and the bytes it returned (up to 64)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # (no handler of a plugin's)
            signal.alarm(60)
            os.write(write, child())
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            os._exit(status)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    answer = os.read(read, 64)
    os.close(read)
    return status, answer


@pytest.fixture
def in_fork() -> Callable[[Callable[[], bytes]], tuple[int, bytes]]:
    """:func:`answer_from_fork`, for the tests of what a forked child does."""
    return answer_from_fork


@pytest.fixture
def planning(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[int]]:
    """``start()``: from then on, the element counts of the calls that take the host's planned
    route (``host.whole`` asked) rather than a kept plan or a ufunc, in the list it returns."""

    def start() -> list[int]:
        from relukit.kernels.cpu import host

        asked: list[int] = []
        whole = host.whole

        def spy(n: int, nbytes: int, cost: int) -> bool:
            asked.append(n)
            return whole(n, nbytes, cost)

        monkeypatch.setattr(host, "whole", spy)
        return asked

    return start
