"""``relukit bench`` checks its output paths before it measures anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from relukit import bench
from relukit.cli import main


@pytest.mark.parametrize(
    ("option", "where", "fragment"),
    [
        ("--png", "x.txt", "must end in .png or .svg"),
        ("--json", "/proc/x.json", "cannot be written"),
        ("--png", "/proc/x.png", "cannot be written"),
        ("--json", "a-file/x.json", "'a-file' is a file"),
        ("--json", "no-such-folder/x.json", "cannot be written"),
    ],
)
def test_a_bad_output_path_is_refused_before_any_measurement(
    tmp_path, capsys, monkeypatch, option, where, fragment
):
    monkeypatch.chdir(tmp_path)
    Path("a-file").write_text("keep")
    measured: list[object] = []
    monkeypatch.setattr(bench, "_measure", lambda *args: measured.append(args))
    assert main(["bench", "--quick", option, where]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("relukit bench: error: ") and fragment in error
    assert measured == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
