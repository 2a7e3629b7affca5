"""The study's data: scikit-learn's bundled digits by default, or the user's ``.npz``/``.csv``.

Every data set comes out the same way: features as float32, standardised with the training
split's mean and standard deviation (a constant feature is centred, not scaled), labels as
int64 class indices ``0 … k-1``, and three splits, train / validation / test, drawn with a fixed
seed so that every run of the study sees the same rows.

* **digits** (default): :func:`sklearn.datasets.load_digits`, 1797 images of 8×8 pixels, 10
  classes, shipped with scikit-learn (no download). Split 60 / 20 / 20.
* **.npz**: arrays ``X_train, y_train, X_test, y_test`` (a validation fifth is taken from the
  training rows; give ``X_val, y_val`` to choose it yourself), or ``X, y`` (split 60 / 20 / 20).
  Features of more than two dimensions (images) are flattened per row.
* **.csv**: a header row, one column of integer labels named by ``label``, every other column a
  number; split 60 / 20 / 20.

Malformed data is refused with a :class:`ValueError` whose message is one line naming the
problem: a missing array or column, mismatched lengths, NaN or infinite features, labels that
are not integers, a single class, an empty file.

Example:
    >>> data = load()
    >>> data.name, data.features, data.classes
    ('digits', 64, 10)
    >>> len(data.y_train), len(data.y_val), len(data.y_test)
    (1079, 359, 359)
    >>> bool(abs(data.X_train.mean()) < 1e-6)
    True
"""

from __future__ import annotations

import csv
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relukit.errors import UserValueError

__all__ = ["SPLIT_SEED", "Dataset", "load", "prepare"]

SPLIT_SEED = 0
"""Seed of the permutation that splits the rows; fixed, so every study sees the same split."""

_VAL_FRACTION = 0.2
_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Dataset:
    """A classification data set split three ways, standardised, ready for the study.

    Attributes:
        name: ``"digits"`` or the file name.
        X_train, X_val, X_test: float32 features, ``(rows, features)``.
        y_train, y_val, y_test: int64 class indices in ``0 … classes-1``.
        labels: the original label of each class index.
        source: one line saying where the data came from and how it was split.
        shape: the shape of one row before it was flattened: ``(1, 8, 8)`` for digits, the
            file's for an ``.npz`` of images (``(C, H, W)``, or ``(H, W)``), ``(features,)``
            otherwise. The cnn scenario reads images of this shape.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    labels: tuple[int, ...]
    source: str
    shape: tuple[int, ...] = ()

    @property
    def features(self) -> int:
        """Number of input features."""
        return int(self.X_train.shape[1])

    @property
    def classes(self) -> int:
        """Number of classes."""
        return len(self.labels)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description: name, source, sizes, features, classes."""
        return {
            "name": self.name,
            "source": self.source,
            "train": len(self.y_train),
            "validation": len(self.y_val),
            "test": len(self.y_test),
            "features": self.features,
            "classes": self.classes,
            "labels": list(self.labels),
            "shape": list(self.shape or (self.features,)),
        }

    def image_shape(self, given: tuple[int, ...] | None = None) -> tuple[int, int, int]:
        """``(channels, height, width)`` of a row as an image: ``given`` (checked against the
        number of features), else :attr:`shape`; ValueError when neither says.

        Example:
            >>> load().image_shape()
            (1, 8, 8)
            >>> load().image_shape((2, 4, 4))
            Traceback (most recent call last):
            ...
            relukit.UserValueError: digits: image shape 2×4×4 has 32 values but ... 64 features
        """
        if given is not None:
            shape = tuple(given)
            if math.prod(shape) != self.features:
                raise UserValueError(
                    f"{self.name}: image shape {'×'.join(map(str, shape))} has "
                    f"{math.prod(shape)} values but a row has {self.features} features"
                )
            return shape  # type: ignore[return-value]
        if len(self.shape) == 3:
            return self.shape  # type: ignore[return-value]
        if len(self.shape) == 2:
            return (1, *self.shape)  # type: ignore[return-value]
        raise UserValueError(
            f"{self.name}: the cnn scenario needs images; give --image-shape C,H,W "
            f"(a row has {self.features} features)"
        )


def load(path: str | Path | None = None, label: str | None = None) -> Dataset:
    """The study's data set: digits when ``path`` is None, else the ``.npz`` or ``.csv`` file.

    Raises:
        ValueError: one line naming the problem with the file or its contents.
    """
    if path is None:
        if label is not None:
            raise UserValueError("--label applies only to a .csv file given with --data")
        return _digits()
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".npz", ".csv"):
        raise UserValueError(f"data file {str(path)!r} must end in .npz or .csv")
    if suffix == ".npz" and label is not None:
        raise UserValueError("--label applies only to a .csv file, not to an .npz file")
    if suffix == ".csv" and label is None:
        raise UserValueError(f"{file.name}: name the label column with --label COLUMN")
    if not file.exists():
        raise UserValueError(f"data file {str(path)!r} does not exist")
    if not file.is_file():
        raise UserValueError(f"data file {str(path)!r} is not a file")
    if file.stat().st_size == 0:
        raise UserValueError(f"data file {str(path)!r} is empty")
    if suffix == ".npz":
        return _from_npz(file)
    assert label is not None
    return _from_csv(file, label)


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _split_and_scale(
        "digits",
        np.asarray(bunch.data),
        np.asarray(bunch.target),
        "scikit-learn's bundled handwritten digits (8×8 pixels, 10 classes)",
        (1, 8, 8),
    )


def _from_npz(file: Path) -> Dataset:
    name = file.name
    if not zipfile.is_zipfile(file):
        raise UserValueError(f"{name}: not a readable .npz archive (write it with numpy.savez)")
    arrays: dict[str, Any] = {}
    key = None
    try:
        with np.load(file, allow_pickle=False) as archive:
            for key in archive.files:
                arrays[key] = archive[key]
                if not isinstance(arrays[key], np.ndarray):  # a member that is not a .npy
                    raise UserValueError(f"{name}: {key} is not a NumPy array (not a .npy member)")
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        zlib.error,
        KeyError,
        NotImplementedError,  # zipfile: unsupported compression, flags or version
        RuntimeError,  # zipfile: an encrypted member
        UnicodeDecodeError,
        MemoryError,  # a damaged header announcing an impossible shape
    ) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise UserValueError(f"{name}: not a readable .npz archive ({detail})") from None
    except ValueError as error:  # a damaged member, or object arrays (allow_pickle=False)
        first = str(error).splitlines()[0] if str(error) else "unreadable array"
        if not first.startswith(f"{name}: "):
            where = f"array {key!r}: " if key is not None else ""
            first = f"{name}: {where}{first}"
        raise UserValueError(first) from None
    split_keys = ("X_train", "y_train", "X_test", "y_test")
    if any(key in arrays for key in split_keys):
        missing = [key for key in split_keys if key not in arrays]
        if missing:
            raise UserValueError(
                f"{name}: missing array {missing[0]!r} "
                "(need X_train, y_train, X_test, y_test, or X, y)"
            )
        if ("X_val" in arrays) != ("y_val" in arrays):
            given, absent = ("X_val", "y_val") if "X_val" in arrays else ("y_val", "X_val")
            raise UserValueError(f"{name}: {given} is given without {absent}")
        parts = {key: arrays[key] for key in (*split_keys, "X_val", "y_val") if key in arrays}
        return prepare(name, parts, f"{name}: the file's train/test split")
    missing = [key for key in ("X", "y") if key not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "no arrays"
        raise UserValueError(
            f"{name}: missing array {missing[0]!r} "
            f"(need X_train, y_train, X_test, y_test, or X, y; found {found})"
        )
    return prepare(name, {"X": arrays["X"], "y": arrays["y"]}, f"{name}: X, y split for you")


def _from_csv(file: Path, label: str) -> Dataset:
    name = file.name
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except UnicodeDecodeError:
        raise UserValueError(f"{name}: not a UTF-8 text file") from None
    except csv.Error as error:
        raise UserValueError(f"{name}: not a readable CSV file ({error})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise UserValueError(f"data file {name!r} is empty")
    header = [cell.strip() for cell in rows[0]]
    if label not in header:
        raise UserValueError(f"{name}: no column {label!r} (columns: {', '.join(header)})")
    if len(set(header)) != len(header):
        duplicate = next(c for c in header if header.count(c) > 1)
        raise UserValueError(f"{name}: column {duplicate!r} appears twice in the header")
    body = rows[1:]
    if not body:
        raise UserValueError(f"{name}: has a header but no data rows")
    if len(header) < 2:
        raise UserValueError(f"{name}: has no feature column besides the label {label!r}")
    label_at = header.index(label)
    features = np.empty((len(body), len(header) - 1), dtype=np.float64)
    labels: list[str] = []
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise UserValueError(
                f"{name}: line {number} has {len(row)} fields, the header has {len(header)}"
            )
        column = 0
        for at, cell in enumerate(row):
            if at == label_at:
                labels.append(cell.strip())
                continue
            text = cell.strip()
            try:
                features[number - 2, column] = float(text)
            except ValueError:
                what = "is empty" if not text else f"holds {text!r}, not a number"
                raise UserValueError(
                    f"{name}: line {number}, column {header[at]!r} {what}"
                ) from None
            column += 1
    y = np.empty(len(labels), dtype=np.int64)
    for number, text in enumerate(labels, start=2):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value == int(value)):
            shown = repr(text) if text else "an empty cell"
            raise UserValueError(
                f"{name}: label column {label!r} holds {shown} on line {number}, not an integer"
            )
        y[number - 2] = int(value)
    return prepare(name, {"X": features, "y": y}, f"{name}: label column {label!r}, split for you")


def _features(name: str, key: str, value: np.ndarray) -> np.ndarray:
    if value.dtype.kind not in "biuf":
        raise UserValueError(f"{name}: {key} is not numeric (dtype {value.dtype})")
    if value.ndim < 2:
        raise UserValueError(
            f"{name}: {key} must be 2-D (rows × features), got shape {tuple(value.shape)}"
        )
    if value.shape[0] == 0:
        raise UserValueError(f"{name}: {key} has no rows")
    flat = value.reshape(value.shape[0], -1)
    if flat.shape[1] == 0:
        raise UserValueError(f"{name}: {key} has no features")
    flat = flat.astype(np.float64)
    bad = ~np.isfinite(flat)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(flat[row, column]) else "an infinite value"
        raise UserValueError(f"{name}: {key} contains {kind} (row {row}, feature {column})")
    return flat


def _labels(name: str, key: str, value: np.ndarray) -> np.ndarray:
    if value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    if value.ndim != 1:
        raise UserValueError(
            f"{name}: {key} must be 1-D (one label per row), got shape {value.shape}"
        )
    if value.dtype.kind in "iub":
        return value.astype(np.int64)
    if value.dtype.kind != "f":
        raise UserValueError(f"{name}: {key} holds labels of dtype {value.dtype}, not integers")
    bad = ~np.isfinite(value) | (value != np.round(value))
    if bad.any():
        row = int(np.argmax(bad))
        raise UserValueError(
            f"{name}: {key} holds {value[row]!r} at row {row}, not an integer label"
        )
    return value.astype(np.int64)


def prepare(name: str, arrays: dict[str, np.ndarray], source: str) -> Dataset:
    """Check, split and standardise ``arrays`` (``X, y`` or ``X_train, y_train, X_test, y_test``
    with optional ``X_val, y_val``) into a :class:`Dataset`. ValueError names any problem.

    Example:
        >>> X = np.arange(40.0).reshape(20, 2); y = np.arange(20) % 2
        >>> prepare("toy", {"X": X, "y": y}, "a toy").classes
        2
        >>> prepare("toy", {"X": X, "y": np.zeros(20)}, "a toy")
        Traceback (most recent call last):
        ...
        relukit.UserValueError: toy: y has a single class (0); a classifier needs at least 2
    """
    pairs = [("X", "y")] if "X" in arrays else [("X_train", "y_train"), ("X_test", "y_test")]
    if "X_val" in arrays:
        pairs.append(("X_val", "y_val"))
    checked: dict[str, np.ndarray] = {}
    shape = tuple(int(d) for d in np.shape(arrays[pairs[0][0]])[1:])
    for x_key, y_key in pairs:
        x = _features(name, x_key, np.asarray(arrays[x_key]))
        y = _labels(name, y_key, np.asarray(arrays[y_key]))
        if len(x) != len(y):
            raise UserValueError(
                f"{name}: {x_key} has {len(x)} rows but {y_key} has {len(y)} labels"
            )
        checked[x_key], checked[y_key] = x, y
    widths = {checked[x_key].shape[1] for x_key, _ in pairs}
    if len(widths) > 1:
        shown = ", ".join(f"{x_key} has {checked[x_key].shape[1]}" for x_key, _ in pairs)
        raise UserValueError(f"{name}: the splits disagree on the number of features ({shown})")
    train_key = pairs[0][1]
    train_classes = np.unique(checked[train_key])
    if len(train_classes) < 2:
        raise UserValueError(
            f"{name}: {train_key} has a single class ({train_classes[0]}); "
            "a classifier needs at least 2"
        )
    if "X" in arrays:
        if len(checked["y"]) < 5:
            raise UserValueError(
                f"{name}: X has {len(checked['y'])} rows; the split needs at least 5"
            )
        return _split_and_scale(name, checked["X"], checked["y"], source, shape)
    if "X_val" not in checked:
        if len(checked["y_train"]) < 2:
            raise UserValueError(f"{name}: X_train has 1 row; a validation split needs at least 2")
        order = np.random.default_rng(SPLIT_SEED).permutation(len(checked["y_train"]))
        n_val = max(1, round(_VAL_FRACTION * len(order)))
        val, train = order[:n_val], order[n_val:]
        x_all, y_all = checked["X_train"], checked["y_train"]
        checked["X_val"], checked["y_val"] = x_all[val], y_all[val]
        checked["X_train"], checked["y_train"] = x_all[train], y_all[train]
        if len(np.unique(checked["y_train"])) < 2:
            raise UserValueError(
                f"{name}: after taking the validation rows, y_train has a single class"
            )
    return _scaled(name, checked, source, shape)


def _split_and_scale(
    name: str, X: np.ndarray, y: np.ndarray, source: str, shape: tuple[int, ...] = ()
) -> Dataset:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    n_test = max(1, round(_TEST_FRACTION * len(y)))
    n_val = max(1, round(_VAL_FRACTION * len(y)))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    parts = {
        "X_train": X[train],
        "y_train": y[train],
        "X_val": X[val],
        "y_val": y[val],
        "X_test": X[test],
        "y_test": y[test],
    }
    if len(np.unique(parts["y_train"])) < 2:
        raise UserValueError(f"{name}: the training split holds a single class; give more rows")
    return _scaled(name, parts, f"{source}; split 60/20/20 with seed {SPLIT_SEED}", shape)


def _scaled(
    name: str, parts: dict[str, np.ndarray], source: str, shape: tuple[int, ...] = ()
) -> Dataset:
    """Standardise every split with the training split's mean and standard deviation.

    Each feature is first divided by its largest magnitude in the training split, so that the
    sums of squares cannot overflow whatever the features' size (1e300 or 1e-300 alike); a
    feature whose spread is below 1e-12 of that magnitude counts as constant (centred only).
    """
    labels = np.unique(np.concatenate([parts["y_train"], parts["y_val"], parts["y_test"]]))
    magnitude = np.max(np.abs(parts["X_train"]), axis=0)
    magnitude[magnitude == 0] = 1.0
    unit = parts["X_train"] / magnitude
    mean = unit.mean(axis=0)
    std = unit.std(axis=0)
    std[std < 1e-12] = 1.0

    def scale(key: str) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = np.ascontiguousarray((parts[key] / magnitude - mean) / std, dtype=np.float32)
        bad = ~np.isfinite(scaled)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise UserValueError(
                f"{name}: {key} feature {column} (row {row}) is too far outside the training "
                "split's range to standardise in float32"
            )
        return scaled

    def index(y: np.ndarray) -> np.ndarray:
        return np.searchsorted(labels, y).astype(np.int64)

    return Dataset(
        name=name,
        X_train=scale("X_train"),
        y_train=index(parts["y_train"]),
        X_val=scale("X_val"),
        y_val=index(parts["y_val"]),
        X_test=scale("X_test"),
        y_test=index(parts["y_test"]),
        labels=tuple(int(v) for v in labels),
        source=source,
        shape=shape,
    )
