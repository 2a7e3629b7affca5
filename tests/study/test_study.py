"""``relukit study`` end to end: the command, its refusals (nothing written), same seed same
numbers, and Ctrl-C keeping the completed runs and a report of them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from relukit import study
from relukit.cli import main
from relukit.study.progress import RichProgress
from relukit.study.training import Event

from .conftest import SERIAL, TINY

TINY_CONFIG = {
    "activations": ("relu", "tanh"),
    "seeds": 1,
    "epochs": 2,
    "width": 16,
    "jobs": 1,
    "threads": 1,
    "modules": "relukit",
}


def test_the_command_prints_the_summary_and_where_the_report_is(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["study", "--quick", *TINY, *SERIAL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "compare: 2 activations × 1 seed" in printed and "test accuracy" in printed
    assert "relu" in printed and "tanh" in printed
    assert f"report: {(out / 'index.html').resolve()}" in printed
    before = (out / "index.html").read_bytes()

    assert main(["study", "--quick", *TINY, *SERIAL, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.strip().splitlines()[-1].startswith("relukit study: error: report folder")
    assert "--force" in error and (out / "index.html").read_bytes() == before

    (out / "depth.png").write_bytes(b"a figure from an older study")
    assert main(["study", "--quick", *TINY, *SERIAL, "--out", str(out), "--force"]) == 0
    assert not (out / "depth.png").exists()  # no stale figure left beside the new report


def _npz(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


X = np.arange(40.0).reshape(20, 2)
Y = np.arange(20) % 2


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: _npz(p, X=X), "missing array 'y'"),
        (lambda p: _npz(p, X=X, y=Y[:5]), "X has 20 rows but y has 5 labels"),
        (lambda p: _npz(p, X=np.where(X > 30, np.nan, X), y=Y), "contains NaN"),
        (lambda p: _npz(p, X=X, y=Y * 0.5), "not an integer label"),
        (lambda p: _npz(p, X=X, y=Y * 0), "a single class"),
        (lambda p: str(Path(p, "empty.csv").touch() or Path(p, "empty.csv")), "is empty"),
    ],
)
def test_malformed_data_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, make, fragment):
    data = make(tmp_path)
    out = tmp_path / "report"
    argv = ["study", *TINY, *SERIAL, "--data", data, "--out", str(out)]
    if data.endswith(".csv"):
        argv += ["--label", "y"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("relukit study: error: ") and fragment in lines[-1]
    assert not out.exists()


def test_bad_settings_are_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["study", "--activations", "relu,nope", "--out", str(out)]) == 2
    assert "unknown activation 'nope'" in capsys.readouterr().err
    assert main(["study", "--depths", "2,x", "--scenario", "depth", "--out", str(out)]) == 2
    assert "--depths takes whole numbers" in capsys.readouterr().err
    assert not out.exists()


def _numbers(result: study.StudyResult) -> list[dict]:
    timing = {"epoch_seconds", "seconds_to_target"}
    return [{k: v for k, v in run.to_dict().items() if k not in timing} for run in result.runs]


def test_same_seed_same_numbers():
    config = study.StudyConfig(**TINY_CONFIG, out=None)
    first, again = study.run(config), study.run(config)
    assert _numbers(first) == _numbers(again)
    other = study.run(study.StudyConfig(**TINY_CONFIG, seed=5, out=None))
    assert _numbers(other) != _numbers(first)


def _interrupt_at(run: int):
    """A Ctrl-C when run ``run`` starts (runs go one at a time here, so the runs before it
    have finished; the run is long enough for the stop to reach it)."""

    def progress(event: Event) -> None:
        if event.kind == "start" and event.run == run:
            raise KeyboardInterrupt

    return progress


LONGER = {**TINY_CONFIG, "epochs": 12}


def test_ctrl_c_keeps_the_completed_runs_and_reports_them(tmp_path):
    out = tmp_path / "report"
    config = study.StudyConfig(**LONGER, out=out)
    result = study.run(config, progress=_interrupt_at(1))
    assert result.interrupted and result.planned == 2
    assert [run.spec.activation for run in result.runs] == ["relu"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["interrupted"] and saved["completed"] == 1 and len(saved["runs"]) == 1
    page = (out / "index.html").read_text()
    assert "Interrupted." in page and "after 1 of 2 runs" in page


def test_ctrl_c_before_any_run_completes_still_leaves_a_report(tmp_path):
    out = tmp_path / "report"
    result = study.run(study.StudyConfig(**LONGER, out=out), progress=_interrupt_at(0))
    assert result.interrupted and result.runs == []
    assert "No run completed." in (out / "index.html").read_text()


def test_ctrl_c_in_the_command_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(self, event: Event) -> None:
        if event.kind == "start" and event.run == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(RichProgress, "__call__", interrupted)
    out = tmp_path / "report"
    assert main(["study", *TINY, *SERIAL, "--epochs", "12", "--out", str(out)]) == 130
    printed = capsys.readouterr().out
    assert "Stopped (Ctrl-C)" in printed and "1 of 2 runs" in printed
    assert (out / "index.html").exists()


def test_both_modules_set_relukit_nn_and_torch_nn_side_by_side(tmp_path):
    from relukit.study.report.tables import cost_table

    config = study.StudyConfig(**{**TINY_CONFIG, "modules": "both", "seeds": 2}, out=None)
    result = study.run(config)
    assert [(r.spec.activation, r.spec.modules) for r in result.runs[:3]] == [
        ("relu", "relukit"),
        ("relu", "torch"),
        ("tanh", "torch"),
    ]
    assert [g.name for g in result.groups("compare")] == ["relu", "tanh"]
    table = cost_table(result)
    assert table is not None and [row[0] for row in table.rows] == ["relu"]
    assert table.rows[0][-1] == "2/2 seeds"  # relukit.nn trains bit for bit as torch.nn does


@pytest.mark.parametrize("where", ["/proc/relukit-report", "a-file/sub", "a-file"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_run(
    tmp_path, capsys, monkeypatch, where
):
    monkeypatch.chdir(tmp_path)
    Path("a-file").write_text("keep")
    started: list[Event] = []
    monkeypatch.setattr(RichProgress, "__call__", lambda self, event: started.append(event))
    assert main(["study", *TINY, *SERIAL, "--out", where]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"relukit study: error: report folder '{where}'")
    assert started == [] and Path("a-file").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


MEMORY = ["--scenario", "memory", "--activations", "gelu,relu", "--seeds", "1", "--epochs", "1"]
MEMORY += ["--depth", "1", "--width", "16", *SERIAL]


def test_memory_scenario_counts_what_each_mode_keeps_and_reports_it(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["study", *MEMORY, "--backward", "input,output", "bits", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "memory: 2 members × backward modes × 1 seed" in printed
    saved = json.loads((out / "results.json").read_text())
    kept = {(r["spec"]["activation"], r["spec"]["backward"]): r for r in saved["runs"]}
    assert list(kept) == [
        ("gelu", "input"),
        ("gelu", "output"),
        ("gelu", "bits=3"),
        ("relu", "input"),
    ]
    hidden = 64 * 16 * 4  # one batch of 64 rows, one hidden layer of 16 units, float32
    # output: gelu's input is no longer kept, its output is (the next Linear keeps it anyway)
    # plus one bit per element; bits=3: three bits per element instead of the input
    gelu = kept["gelu", "input"]["kept_bytes"]
    assert kept["gelu", "output"]["kept_bytes"] == gelu - hidden + 64 * 16 // 8
    assert kept["gelu", "bits=3"]["kept_bytes"] == gelu - hidden + 64 * 16 * 3 // 8
    assert kept["gelu", "input"]["kept_by_activations"] == hidden
    assert {"memory.png", "memory_curves.png"} <= {p.name for p in out.iterdir()}
    page = (out / "index.html").read_text()
    assert "gelu with backward=output trains as with its exact gradient" in page
    assert "kept for backward, KiB/batch" in page and "backward input, output, bits=3" in page


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--backward", "output,bits=7"], "backward mode 'bits=7' is not one of"),
        (["--activations", "gelu,nope"], "unknown activation 'nope'"),
        (["--modules", "both"], "memory scenario trains relukit.nn's modules"),
    ],
)
def test_memory_scenario_refuses_bad_modes_in_one_line_writing_nothing(
    tmp_path, capsys, flags, fragment
):
    out = tmp_path / "report"
    assert main(["study", *MEMORY, *flags, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("relukit study: error: ") and fragment in lines[0]
    )
    assert not out.exists()
