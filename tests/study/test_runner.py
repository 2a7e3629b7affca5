"""Runs spread over worker processes: the same numbers as in one process with the same threads,
in plan order, and a clean stop on Ctrl-C."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from relukit import study
from relukit.study.runner import cores, workers
from relukit.study.training import Event

CONFIG = {
    "activations": ("relu", "tanh"),
    "seeds": 2,
    "epochs": 2,
    "width": 16,
    "depth": 2,
    "threads": 1,
    "modules": "relukit",
    "out": None,
}


def _numbers(result: study.StudyResult) -> list[tuple]:
    return [
        (r.spec.index, r.spec.activation, r.spec.seed, r.loss, r.dead, r.test_accuracy)
        for r in result.runs
    ]


def test_workers_never_ask_for_more_threads_than_cores():
    processes, threads = workers(None, None, 100)
    assert processes == cores() and processes * threads <= max(cores(), processes)
    assert workers(8, None, 3)[0] == 3 and workers(1, None, 10) == (1, cores())


def test_processes_give_the_numbers_of_one_process_in_plan_order():
    parallel = study.run(study.StudyConfig(**CONFIG, jobs=2))
    serial = study.run(study.StudyConfig(**CONFIG, jobs=1))
    assert [r.spec.index for r in parallel.runs] == [0, 1, 2, 3]
    assert _numbers(parallel) == _numbers(serial)
    assert (
        parallel.environment["jobs"] == 2 and parallel.environment["torch_threads_per_process"] == 1
    )


def test_ctrl_c_stops_the_workers_and_keeps_what_completed():
    # The Ctrl-C comes when the main thread first sees a run done; the others must still be
    # unfinished then. With 4 runs of 2 epochs (0.15 s each) a main thread 0.2-0.4 s late
    # (a loaded machine) found every run done and kept all 4. Runs of 60 epochs (about 1 s
    # here), three per worker, leave the rest unfinished unless it is 2 runs' time late; the
    # stop cuts the runs under way short, so only the first run is paid for in full.
    config = {**CONFIG, "epochs": 60, "seeds": 3}
    seen: list[str] = []

    def progress(event: Event) -> None:
        seen.append(event.kind)
        if event.kind == "done" and "stopping" not in seen:
            raise KeyboardInterrupt

    result = study.run(study.StudyConfig(**config, jobs=2), progress=progress)
    assert result.interrupted and "stopping" in seen
    assert 1 <= len(result.runs) < result.planned
    assert [r.spec.index for r in result.runs] == sorted(r.spec.index for r in result.runs)


def _without_timing(run: dict) -> dict:
    return {k: v for k, v in run.items() if k not in ("epoch_seconds", "seconds_to_target")}


def test_a_dask_cluster_gives_the_numbers_of_a_local_run_bit_for_bit():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        remote = study.run(study.StudyConfig(**CONFIG, cluster=cluster.scheduler_address))
    local = study.run(study.StudyConfig(**CONFIG, jobs=1))
    assert remote.environment["engine"].startswith("Dask cluster at ")
    assert [_without_timing(r.to_dict()) for r in remote.runs] == [
        _without_timing(r.to_dict()) for r in local.runs
    ]


def test_without_dask_the_runs_go_one_at_a_time_in_this_process_and_it_says_so(monkeypatch):
    from relukit.study import runner

    monkeypatch.setattr(runner, "engine_available", lambda: False)
    alone = study.run(study.StudyConfig(**CONFIG, jobs=2))
    assert "dask.distributed is not installed" in alone.environment["engine"]
    local = study.run(study.StudyConfig(**CONFIG, jobs=1))
    assert _numbers(alone) == _numbers(local)


def test_an_interrupted_study_resumed_equals_an_uninterrupted_one_and_trains_each_run_once(
    tmp_path, monkeypatch
):
    import json

    from relukit.study import runner

    config = {**CONFIG, "seeds": 2, "epochs": 6, "jobs": 1}
    del config["out"]
    whole = study.run(study.StudyConfig(**config, out=tmp_path / "whole"))
    assert whole.reused == 0 and not whole.interrupted
    out = tmp_path / "resumed"
    trained: list[int] = []

    def stop_at_third(event: Event) -> None:
        if event.kind == "start":
            trained.append(event.run)
            if event.run == 2:
                raise KeyboardInterrupt

    # The "start" of run 2 reaches the main thread through Dask's event topic, which may come
    # after the run itself has finished (a CI run kept runs 0-2, rightly: work done before the
    # Ctrl-C is kept). So run 2 here trains only once the stop is asked for, as a long run
    # would: the interrupt then always lands while it is under way.
    real_train = runner.train

    def third_run_waits_for_the_stop(spec, tensors, **kwargs):
        if spec.index == 2:
            deadline = time.monotonic() + 60
            while not kwargs["should_stop"]() and time.monotonic() < deadline:
                time.sleep(0.01)
        return real_train(spec, tensors, **kwargs)

    monkeypatch.setattr(runner, "train", third_run_waits_for_the_stop)
    first = study.run(study.StudyConfig(**config, out=out), progress=stop_at_third)
    monkeypatch.setattr(runner, "train", real_train)
    assert first.interrupted and [r.spec.index for r in first.runs] == [0, 1]
    assert len(list((out / "runs").glob("*.json"))) == 2
    trained.clear()
    second = study.run(
        study.StudyConfig(**config, out=out, resume=True),
        progress=lambda event: trained.append(event.run) if event.kind == "start" else None,
    )
    assert sorted(trained) == [2, 3] and second.reused == 2 and not second.interrupted
    saved = json.loads((out / "results.json").read_text())
    reference = json.loads((tmp_path / "whole" / "results.json").read_text())
    assert saved["reused"] == 2 and saved["trained"] == 2
    assert [_without_timing(r) for r in saved["runs"]] == [
        _without_timing(r) for r in reference["runs"]
    ]
    trained.clear()
    more = study.run(
        study.StudyConfig(**{**config, "seeds": 3}, out=out, resume=True),
        progress=lambda event: trained.append(event.run) if event.kind == "start" else None,
    )
    assert sorted(trained) == [4, 5] and more.reused == 4  # only the new seed is trained


class _SpawningCluster:
    """Stands in for LocalCluster: starts a child process, then gets a Ctrl-C, as when the user
    presses it while the workers start."""

    closed = False

    def __init__(self, **_kwargs):
        import os
        import signal
        import subprocess
        import sys

        code = "import signal as s; print(int(s.SIGINT in s.pthread_sigmask(s.SIG_BLOCK, [])))"
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        type(self).child_blocks_sigint = child.stdout.strip() == "1"
        os.kill(os.getpid(), signal.SIGINT)

    def close(self):
        type(self).closed = True


def _engine_with(monkeypatch):
    import distributed

    from relukit.study import runner

    monkeypatch.setattr(distributed, "LocalCluster", _SpawningCluster)
    monkeypatch.setattr(
        distributed, "Client", lambda *_a, **_k: (_ for _ in ()).throw(RuntimeError("stop here"))
    )
    _SpawningCluster.closed = False
    return runner


def test_a_ctrl_c_while_the_workers_start_is_kept_and_the_workers_never_see_it(monkeypatch):
    runner = _engine_with(monkeypatch)
    stop = runner.StopRequest()
    with stop.handling():
        with pytest.raises(RuntimeError, match="stop here"):
            runner._Dask(None, 2, None)
        waited = 0.0
        while stop.count == 0 and waited < 10:  # another thread may take the signal first
            time.sleep(0.01)
            waited += 0.01
    assert stop.count == 1  # acted on once the workers are up, not lost
    assert _SpawningCluster.child_blocks_sigint  # processes started meanwhile ignore Ctrl-C


def test_a_ctrl_c_while_the_workers_start_raises_under_the_default_handler(monkeypatch):
    import distributed

    runner = _engine_with(monkeypatch)

    def client_after_a_while(*_args, **_kwargs):
        # With SIGINT blocked in the main thread, the kernel hands the Ctrl-C to another thread
        # (PyTorch's, Dask's, the kernels' pool). Python 3.11 then runs the handler at the main
        # thread's next check for signals, not at once (its eval breaker is only set by the
        # main thread): check, as the study's own waiting does, for up to 10 s.
        for _ in range(1000):
            signal.pthread_sigmask(signal.SIG_BLOCK, [])  # runs pending handlers, changes nothing
            time.sleep(0.01)
        raise RuntimeError("stop here")

    monkeypatch.setattr(distributed, "Client", client_after_a_while)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"SIGINT handler before this test: {previous!r}")  # shown if it fails
    try:
        with pytest.raises(KeyboardInterrupt):
            runner._Dask(None, 2, None)
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("after", ["an error", "nothing"])
def test_a_ctrl_c_dropped_inside_the_raising_block_still_ends_it(monkeypatch, after):
    """A Ctrl-C whose KeyboardInterrupt is dropped where it is raised (in a ctypes callback:
    LLVM's, while Numba caches a kernel the report draws with on a cold cache, then failed
    with RuntimeError("no compiled object yet")) still ends the block with KeyboardInterrupt,
    whether the code then fails or goes on, and Python's report of the dropped exception is
    left out; without a Ctrl-C the block's own error passes, and other unraisable errors are
    reported."""
    import ctypes

    from relukit.study import runner

    reported = []

    def report(unraisable) -> None:
        reported.append(unraisable)

    monkeypatch.setattr(sys, "unraisablehook", report)
    stop = runner.StopRequest()
    callback = ctypes.CFUNCTYPE(None)(lambda: stop())  # (the SIGINT handler, called from C)

    with pytest.raises(KeyboardInterrupt), stop.raising():
        callback()  # (ctypes drops the KeyboardInterrupt the handler raises)
        if after == "an error":
            raise RuntimeError("no compiled object yet")
    assert stop.mode == "count" and stop.count == 1
    assert reported == [] and sys.unraisablehook is report

    def fails() -> None:
        raise ValueError("reported")

    with pytest.raises(RuntimeError, match="its own"), stop.raising():
        ctypes.CFUNCTYPE(None)(fails)()
        raise RuntimeError("its own")
    assert [type(r.exc_value) for r in reported] == [ValueError]
    with stop.raising():
        pass
    assert stop.count == 1
