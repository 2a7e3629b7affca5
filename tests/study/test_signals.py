"""Ctrl-C at random moments, once, twice and three times, as a terminal sends it (SIGINT to the
process group): the command never prints a traceback, and the report folder ends either in
its previous state or with a consistent report of every finished run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from relukit import study

SMALL = {"activations": ("relu", "tanh"), "epochs": 3, "width": 16, "jobs": 1, "threads": 1}
ARGS = ["--activations", "relu,tanh", "--epochs", "3", "--width", "16", "--jobs", "1"]
ARGS += ["--threads", "1", "--seeds", "3", "--resume"]


def _startup(env: dict[str, str]) -> float:
    """Seconds a fresh Python takes to import the command and the study (now, on this load)."""
    started = time.monotonic()
    code = "import relukit.cli, relukit.study.runner, relukit.study.training"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.monotonic() - started


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _cells(folder: Path) -> set[str]:
    return {p.stem for p in (folder / "runs").glob("*.json")}


TRIALS = int(os.environ.get("RELUKIT_SIGNAL_TRIALS", "1"))
"""Trials per signal count (CI: 1; set more for a thorough run, each with its own moments)."""


@pytest.mark.parametrize("signals", [1, 2, 3])
@pytest.mark.parametrize("trial", range(TRIALS))
def test_ctrl_c_never_loses_finished_runs(tmp_path: Path, signals: int, trial: int):
    out = tmp_path / "report"
    study.run(study.StudyConfig(**SMALL, seeds=1, out=out))  # the previous state: seed 0
    before, cells_before = _snapshot(out), _cells(out)
    rng = random.Random(f"{signals}-{trial}")
    env = {**os.environ, "PYTHONPATH": str(Path(study.__file__).parents[2])}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "relukit.cli", "study", *ARGS, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    # The first Ctrl-C lands once Python has started relukit (a Ctrl-C inside the interpreter's
    # own start-up ends any Python program with its traceback) and before the report is
    # written; the others soon after.
    time.sleep(1.5 * _startup(env) + rng.uniform(0.0, 8.0))
    for _ in range(signals):
        if process.poll() is not None:
            break
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(rng.uniform(0.0, 1.5))
    _, err = process.communicate(timeout=120)
    note = f"after {time.monotonic() - started:.1f} s, {signals} SIGINT(s): {err.decode()[-600:]}"
    # 130: stopped; 0: it finished first; -SIGINT: a Ctrl-C that landed while Python was still
    # starting up or already shutting down ended it as a terminal's Ctrl-C ends any program.
    assert process.returncode in (0, 130, -signal.SIGINT), note
    assert b"Traceback" not in err, note
    assert _cells(out) >= cells_before, note  # a finished run is never lost
    now = _snapshot(out)
    if now == before:
        return  # stopped while the report was drawn: the previous report, untouched
    saved = json.loads(now["results.json"])
    assert saved["completed"] == len(saved["runs"]) and saved["reused"] >= 1, note
    stored = {
        json.loads((out / "runs" / f"{c}.json").read_text())["result"]["spec"]["seed"]
        for c in _cells(out)
    }
    assert len(saved["runs"]) == len(_cells(out)), note  # every finished run is in the report
    assert {r["spec"]["seed"] for r in saved["runs"]} == stored, note
    assert f"{saved['completed']} of {saved['planned']}" in now["index.html"].decode() or (
        not saved["interrupted"]
    )
