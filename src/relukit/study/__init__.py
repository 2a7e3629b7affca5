"""``relukit study``, the main job: the ReLU family trained side by side on real data, the claims
about ReLU put to the test, and a report people can read.

:func:`run` takes a :class:`StudyConfig`, checks everything it can before it writes anything
(the configuration, the data, the report folder), trains every (activation, seed) run of the
chosen scenarios, in this process or over ``jobs`` worker processes, and writes the report
folder: ``index.html`` (self-contained, figures embedded), the figures as PNG,
``results.json``, ``results.csv`` and ``summary.csv``. A Ctrl-C stops the study cleanly: the
completed runs are kept and reported, and the result says ``interrupted``.

Nothing here prints. Pass ``progress``, a callable receiving
:class:`~relukit.study.training.Event` objects, to watch (the CLI passes
:class:`~relukit.study.progress.RichProgress`).

Example:
    >>> import relukit.study as study
    >>> config = study.StudyConfig(activations=("relu", "sigmoid"), seeds=1, epochs=2,
    ...                            width=16, threads=1, out=None)
    >>> result = study.run(config)
    >>> [(g.activation, g.test_accuracy.n) for g in result.groups()]
    [('relu', 1), ('sigmoid', 1)]
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from relukit.study.config import DEFAULT_ACTIVATIONS, SCENARIOS, RunSpec, StudyConfig
from relukit.study.data import Dataset, load

if TYPE_CHECKING:
    from relukit.study.scenarios import Claim, Group, Stat, StudyResult, claims
    from relukit.study.training import Event, RunResult

_LAZY = {
    "Claim": "scenarios",
    "Group": "scenarios",
    "Stat": "scenarios",
    "StudyResult": "scenarios",
    "claims": "scenarios",
    "Event": "training",
    "RunResult": "training",
}


def __getattr__(name: str) -> Any:
    """The names that need PyTorch are imported on first use (the CLI starts faster)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'relukit.study' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"relukit.study.{_LAZY[name]}"), name)


__all__ = [
    "DEFAULT_ACTIVATIONS",
    "SCENARIOS",
    "Claim",
    "Dataset",
    "Event",
    "Group",
    "RunResult",
    "RunSpec",
    "Stat",
    "StudyConfig",
    "StudyResult",
    "claims",
    "load",
    "run",
]


def _environment(jobs: int, threads: int) -> dict[str, Any]:
    import numpy
    import torch

    from relukit import __version__
    from relukit.study.runner import cores

    return {
        "relukit": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cores": cores(),
        "jobs": jobs,
        "torch_threads_per_process": threads,
        "load_average_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run(
    config: StudyConfig | None = None, progress: Callable[[Event], None] | None = None
) -> StudyResult:
    """Run the study ``config`` describes (default: :class:`StudyConfig` ``()``).

    Every check comes first: the settings, the data, the report folder (it must be new or
    empty, or ``force``/``resume`` be given, and be a folder that can be written). Then the
    runs train (:func:`relukit.study.runner.execute`); each finished run is stored in the
    report folder at once (:mod:`relukit.study.cells`). Then the report is drawn, and only
    then its files replace the previous ones, each atomically.

    Ctrl-C (in the main thread, where this installs its own SIGINT handler meanwhile): during
    the runs, the study stops and the finished runs are reported (the result says
    ``interrupted``); while the report is drawn, ``KeyboardInterrupt`` is raised and the report
    folder keeps its previous report (the finished runs are stored, ``resume`` reports them);
    while the files are put in place, it waits for that to end (milliseconds).

    Raises:
        ValueError: a wrong setting, malformed data, or a report folder that exists without
            ``force`` or ``resume`` or cannot be written; raised before anything is written.
    """
    from relukit.study.cells import FOLDER, Cells, data_hash
    from relukit.study.runner import StopRequest, execute, workers
    from relukit.study.scenarios import StudyResult
    from relukit.study.training import Event

    config = (config or StudyConfig()).check()
    data = load(config.data, config.label)
    image_shape = data.image_shape(config.image_shape) if "cnn" in config.scenarios else ()
    out = None
    if config.out is not None:
        from relukit.study.report import check_out

        out = check_out(config.out, force=config.force, resume=config.resume)
    planned = len(config.plan())
    if config.cluster is None:
        jobs, threads = workers(config.jobs, config.threads, planned)
    else:
        jobs, threads = 0, config.threads or 1
    specs = config.plan(threads=threads, image_shape=image_shape)
    settings = {name: asdict(config.settings(name)) for name in config.scenarios}
    cells = Cells(out / FOLDER, data_hash(data)) if out is not None else None
    if cells is not None and config.force:
        cells.clear()
    emit = progress or (lambda _event: None)
    environment = _environment(jobs, threads)
    stop = StopRequest()
    started = time.perf_counter()
    with stop.handling():
        outcome = execute(
            specs,
            data,
            jobs=max(jobs, 1),
            cluster=config.cluster,
            cells=cells,
            resume=config.resume,
            emit=emit,
            stop=stop,
        )
        environment["load_average_after"] = (
            list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        )
        environment["engine"] = outcome.engine
        if config.cluster is not None:
            environment["jobs"] = outcome.workers
        result = StudyResult(
            config=config,
            data=data.describe(),
            settings=settings,
            planned=len(specs),
            runs=outcome.runs,
            interrupted=outcome.interrupted,
            seconds=time.perf_counter() - started,
            environment=environment,
            reused=outcome.reused,
        )
        if out is not None:
            from relukit.study.report import commit, render

            with contextlib.suppress(KeyboardInterrupt):
                emit(Event("report", label=str(out)))
            with stop.raising():
                files = render(result)
            result.report = commit(files, out)
    return result
