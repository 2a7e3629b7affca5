"""The progress bars draw what the study reports."""

from __future__ import annotations

import io

from rich.console import Console

from relukit.study.progress import RichProgress
from relukit.study.training import Event


def test_bars_follow_the_events():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with RichProgress(console) as progress:
        progress(Event("plan", total=2))
        progress(Event("start", run=0, label="relu · seed 0", epochs=3))
        progress(Event("epoch", run=0, label="relu · seed 0", epoch=1, epochs=3, accuracy=0.5))
        progress(Event("done", run=0, label="relu · seed 0", accuracy=0.9))
        progress(Event("start", run=1, label="tanh · seed 0", epochs=3))
        progress(Event("stopping"))
        progress(Event("report", label="out"))
    text = screen.getvalue()
    assert progress.completed == 1
    assert "study" in text and "relu · seed 0" in text and "1/2" in text


def test_a_study_that_reports_nothing_draws_nothing():
    # (a study refused by its checks raises before its first event: its one-line error stands
    # alone on the console, with no empty line of a display that never showed)
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    with RichProgress(console):
        pass
    assert screen.getvalue() == ""
