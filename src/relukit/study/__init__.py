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
    from relukit.study.parallel import cores

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

    Raises:
        ValueError: a wrong setting, malformed data, or an existing report folder without
            ``force``; raised before anything is written.
    """
    from relukit.study.parallel import execute, workers
    from relukit.study.scenarios import StudyResult
    from relukit.study.training import Event

    config = (config or StudyConfig()).check()
    specs = config.plan()
    settings = {name: asdict(config.settings(name)) for name in config.scenarios}
    data = load(config.data, config.label)
    out = None
    if config.out is not None:
        from relukit.study.report import check_out

        out = check_out(config.out, force=config.force)
    emit = progress or (lambda _event: None)
    jobs, threads = workers(config.jobs, config.threads, len(specs))
    environment = _environment(jobs, threads)
    emit(Event("plan", total=len(specs)))
    started = time.perf_counter()
    runs, interrupted = execute(specs, data, jobs=jobs, threads=threads, emit=emit)
    environment["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result = StudyResult(
        config=config,
        data=data.describe(),
        settings=settings,
        planned=len(specs),
        runs=runs,
        interrupted=interrupted,
        seconds=time.perf_counter() - started,
        environment=environment,
    )
    if out is not None:
        from relukit.study.report import write_report

        emit(Event("report", label=str(out)))
        result.report = write_report(result, out)
    return result
