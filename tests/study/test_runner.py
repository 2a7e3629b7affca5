"""Runs spread over worker processes: the same numbers as in one process with the same threads,
in plan order, and a clean stop on Ctrl-C."""

from __future__ import annotations

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
    seen: list[str] = []

    def progress(event: Event) -> None:
        seen.append(event.kind)
        if event.kind == "done" and "stopping" not in seen:
            raise KeyboardInterrupt

    result = study.run(study.StudyConfig(**CONFIG, jobs=2), progress=progress)
    assert result.interrupted and "stopping" in seen
    assert 1 <= len(result.runs) < result.planned
    assert [r.spec.index for r in result.runs] == sorted(r.spec.index for r in result.runs)
