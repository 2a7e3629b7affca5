"""The report's files: the folder checked before any work, every file rendered in memory, then
put in place.

:func:`check_out` refuses, before anything runs, a report folder that cannot be written, or
that exists with files in it unless ``force`` (start afresh) or ``resume`` (continue it) is
given. :func:`render` makes every file of the report as bytes, writing nothing; :func:`commit`
then puts them in the folder, each through a temporary file and :func:`os.replace` (so each
file is always whole), and removes the figures of an earlier report that this one does not
have, so the folder never mixes two studies. The study draws first and commits last: a stop
while drawing leaves the previous report untouched.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relukit._outputs import check_folder
from relukit.errors import UserValueError
from relukit.study.report.figures import FIGURES, figures
from relukit.study.scenarios import Stat, StudyResult

__all__ = ["FILES", "check_out", "commit", "render", "write_report"]

FILES: tuple[str, ...] = ("index.html", "results.json", "results.csv", "summary.csv", *FIGURES)
"""Every file a report may hold, besides the stored runs (``runs/``)."""


def check_out(out: str | Path, *, force: bool, resume: bool = False) -> Path:
    """The report folder, refused (ValueError) if it cannot be written, or if it holds files
    and neither ``force`` nor ``resume`` is set. Nothing is left behind.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> check_out(folder, force=False) == folder
        True
        >>> _ = (folder / "index.html").write_text("old")
        >>> check_out(folder, force=False)
        Traceback (most recent call last):
        ...
        relukit.UserValueError: report folder ... already exists; use --resume to continue it or ...
    """
    path = check_folder(out, "report folder")
    if path.is_dir() and any(path.iterdir()) and not (force or resume):
        raise UserValueError(
            f"report folder {str(out)!r} already exists; use --resume to continue it or "
            "--force to start afresh"
        )
    return path


def _csv_rows(result: StudyResult) -> list[list[Any]]:
    rows: list[list[Any]] = []

    def add(spec: Any, epoch: Any, layer: Any, measure: str, value: Any) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            value = ""
        rows.append(
            [
                spec.scenario,
                spec.activation,
                spec.modules,
                spec.backward,
                spec.init,
                spec.depth,
                spec.seed,
                epoch,
                layer,
                measure,
                "" if value is None else value,
            ]
        )

    for run in result.runs:
        spec = run.spec
        add(spec, "", "", "test_accuracy", run.test_accuracy)
        add(spec, "", "", "test_loss", run.test_loss)
        add(spec, "", "", "epochs_to_target", run.epochs_to_target)
        add(spec, "", "", "seconds_to_target", run.seconds_to_target)
        add(spec, "", "", "epochs_run", run.epochs_run)
        add(spec, "", "", "diverged", int(run.diverged))
        if run.kept_bytes is not None:
            add(spec, "", "", "kept_bytes", run.kept_bytes)
            add(spec, "", "", "kept_by_activations", run.kept_by_activations)
        for layer, norm in enumerate(run.grad_norms, start=1):
            add(spec, 0, layer, "grad_norm_at_init", norm)
        for epoch in range(len(run.loss)):
            add(spec, epoch, "", "train_loss", run.loss[epoch])
            add(spec, epoch, "", "train_accuracy", run.accuracy[epoch])
            add(spec, epoch, "", "val_loss", run.val_loss[epoch])
            add(spec, epoch, "", "val_accuracy", run.val_accuracy[epoch])
            if epoch >= 1:
                add(spec, epoch, "", "epoch_seconds", run.epoch_seconds[epoch - 1])
            for layer, value in enumerate(run.dead[epoch], start=1):
                add(spec, epoch, layer, "dead_fraction", value)
            for layer, value in enumerate(run.sparsity[epoch], start=1):
                add(spec, epoch, layer, "sparsity", value)
    return rows


def _summary_rows(result: StudyResult) -> tuple[list[str], list[list[Any]]]:
    stats = (
        "test_accuracy",
        "test_loss",
        "final_loss",
        "epochs_to_target",
        "seconds_to_target",
        "seconds_per_epoch",
        "dead_init",
        "dead_end",
        "dead_max",
        "sparsity_end",
        "first_layer_grad",
        "grad_ratio",
        "kept_bytes",
        "kept_by_activations",
    )
    header = ["scenario", "activation", "modules", "backward", "init", "depth", "seeds"]
    for name in stats:
        header += [f"{name}_mean", f"{name}_std", f"{name}_n"]
    header += ["diverged"]
    rows = []
    for group in result.groups(every=True):
        row: list[Any] = [
            group.scenario,
            group.activation,
            group.modules,
            group.backward,
            group.init,
            group.depth,
            len(group.seeds),
        ]
        for name in stats:
            stat: Stat = getattr(group, name)
            row += [
                "" if math.isnan(stat.mean) else stat.mean,
                "" if math.isnan(stat.std) else stat.std,
                stat.n,
            ]
        row.append(group.diverged)
        rows.append(row)
    return header, rows


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def render(result: StudyResult) -> dict[str, bytes]:
    """Every file of ``result``'s report, by name, as bytes; nothing is written."""
    from relukit.study.report.html import page

    drawn = figures(result)
    files = {name: png for name, (png, _caption) in drawn.items()}
    files["results.json"] = json.dumps(result.to_dict(), indent=1, allow_nan=False).encode()
    files["results.csv"] = _csv_text(
        [
            "scenario",
            "activation",
            "modules",
            "backward",
            "init",
            "depth",
            "seed",
            "epoch",
            "layer",
            "measure",
            "value",
        ],
        _csv_rows(result),
    )
    files["summary.csv"] = _csv_text(*_summary_rows(result))
    files["index.html"] = page(result, drawn).encode("utf-8")
    return files


def commit(files: dict[str, bytes], out: str | Path) -> Path:
    """Put ``files`` in the folder ``out`` (each atomically), remove the report files it does
    not hold, and return the path of ``index.html``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}-", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(content)
            os.replace(temporary, folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    for name in FILES:
        if name not in files:
            (folder / name).unlink(missing_ok=True)
    return folder / "index.html"


def write_report(result: StudyResult, out: str | Path) -> Path:
    """:func:`render` then :func:`commit`; the path of ``index.html``."""
    return commit(render(result), out)
