"""Finished runs kept on disk, so that a stopped study resumes and a larger one trains only
what is new.

Every run that finishes is written at once to ``<report folder>/runs/<key>.json``, where the key
is a hash of everything that fixes its numbers: the run's spec without its place in the plan
(:attr:`~relukit.study.config.RunSpec.cell`: scenario, activation, seed, network, training
settings, modules, PyTorch threads), the data's content (:func:`data_hash`) and relukit's
version. The write is atomic (a temporary file in the same folder, then :func:`os.replace`),
so a cell is either whole or absent, whatever stops the process. ``relukit study --resume``
reuses every cell whose key matches a planned run and trains only the others; ``--seeds 10``
after ``--seeds 5`` trains the five new seeds.

Example:
    >>> import tempfile
    >>> from relukit.study.config import StudyConfig
    >>> from relukit.study.data import load
    >>> from relukit.study.training import RunResult
    >>> spec = StudyConfig(activations=("relu",), seeds=1).plan()[0]
    >>> cells = Cells(Path(tempfile.mkdtemp()) / "runs", data_hash(load()))
    >>> cells.get(spec) is None
    True
    >>> cells.put(RunResult(spec, test_accuracy=0.5))
    >>> cells.get(spec).test_accuracy
    0.5
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from relukit.study.config import RunSpec
from relukit.study.data import Dataset
from relukit.study.training import RunResult

__all__ = ["FOLDER", "Cells", "data_hash", "run_key"]

FOLDER = "runs"
"""The cells' folder inside the report folder."""


def data_hash(data: Dataset) -> str:
    """SHA-256 of the data set as the runs see it: every split's arrays (dtype, shape, bytes)
    and the class labels."""
    digest = hashlib.sha256()
    for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        array = np.ascontiguousarray(getattr(data, key))
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    digest.update(repr(data.labels).encode())
    return digest.hexdigest()


def run_key(spec: RunSpec, data: str) -> str:
    """The cell key of ``spec`` on the data of hash ``data``: 32 hex digits."""
    from relukit import __version__

    text = json.dumps({"spec": spec.cell, "data": data, "relukit": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Cells:
    """The finished runs of a study folder, keyed by :func:`run_key`."""

    def __init__(self, folder: Path, data: str) -> None:
        self.folder = Path(folder)
        self.data = data

    def path(self, spec: RunSpec) -> Path:
        """Where the cell of ``spec`` lives."""
        return self.folder / f"{run_key(spec, self.data)}.json"

    def get(self, spec: RunSpec) -> RunResult | None:
        """The stored result of ``spec`` (its ``index`` set to ``spec``'s), or None when there
        is none or it cannot be read (then the run is trained again)."""
        path = self.path(spec)
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            result = RunResult.from_dict(fields["result"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if result.spec.cell != spec.cell:
            return None
        result.spec = spec
        return result

    def put(self, result: RunResult) -> None:
        """Store ``result`` atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(result.spec)
        text = json.dumps({"key": path.stem, "result": result.to_dict()}, allow_nan=False)
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".cell-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        """Remove every stored cell (``--force``)."""
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            if path.suffix in (".json", ".tmp") and path.is_file():
                path.unlink()
