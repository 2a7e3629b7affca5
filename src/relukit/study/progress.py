"""Live progress of a study in the terminal: one bar per run under way and one for the study.

The library core never prints; it sends :class:`~relukit.study.training.Event` objects to a
callback. :class:`RichProgress` is the callback the command line uses: a context manager that
draws with `rich <https://rich.readthedocs.io>`_ on standard error, so that standard output
keeps only the summary table.

Example:
    >>> from relukit.study.training import Event
    >>> with RichProgress(disable=True) as progress:
    ...     progress(Event("plan", total=1))
    ...     progress(Event("start", run=0, label="relu · seed 0", epochs=2))
    ...     progress(Event("done", run=0, label="relu · seed 0", accuracy=0.97))
    >>> progress.completed
    1
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from relukit.study.training import Event

__all__ = ["RichProgress"]


class RichProgress:
    """Progress bars fed by the study's events (use as a context manager).

    Args:
        console: where to draw; default a console on standard error.
        disable: draw nothing (events are still counted).
    """

    def __init__(self, console: Console | None = None, *, disable: bool = False) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=disable,
            transient=False,
        )
        self._overall: TaskID | None = None
        self._runs: dict[int, TaskID] = {}
        self.completed = 0
        self._started = False

    def __enter__(self) -> RichProgress:
        # (the display starts at the first event: a study refused by its checks, before any,
        # leaves the console as it was, its one-line error alone)
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._started:
            return
        for task in list(self._runs.values()):
            self._progress.remove_task(task)
        self._runs.clear()
        self._progress.stop()

    def __call__(self, event: Event) -> None:
        """Show ``event``."""
        progress = self._progress
        if not self._started:
            progress.start()
            self._started = True
        if event.kind == "plan":
            self._overall = progress.add_task(
                "[bold]study", total=event.total, note="runs", start=True
            )
        elif event.kind == "start":
            self._runs[event.run] = progress.add_task(
                f"  {event.label}", total=event.epochs, note="epochs"
            )
        elif event.kind == "epoch" and event.run in self._runs:
            progress.update(
                self._runs[event.run],
                completed=event.epoch,
                note=f"train acc {event.accuracy:6.1%}  loss {event.loss:.3f}",
            )
        elif event.kind == "done":
            self.completed += 1
            task = self._runs.pop(event.run, None)
            if task is not None:
                progress.remove_task(task)
            if self._overall is not None:
                progress.update(
                    self._overall,
                    completed=self.completed,
                    note=f"runs · last: {event.label} test acc {event.accuracy:.1%}",
                )
        elif event.kind == "stopping":
            for task in list(self._runs.values()):
                progress.remove_task(task)
            self._runs.clear()
            if self._overall is not None:
                progress.update(self._overall, note="runs · stopping, keeping the completed runs")
        elif event.kind == "report" and self._overall is not None:
            progress.update(self._overall, note=f"runs · writing the report to {event.label}")
