"""The study's data: the bundled digits, user files, and every malformed file refused in one
line that names the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relukit.study.data import load, prepare


def test_digits_are_split_standardised_and_indexed():
    data = load()
    assert (data.name, data.features, data.classes) == ("digits", 64, 10)
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 1797
    assert data.X_train.dtype == np.float32 and data.y_train.dtype == np.int64
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    assert set(np.unique(data.y_test)) <= set(range(10))
    again = load()
    np.testing.assert_array_equal(data.X_test, again.X_test)  # a fixed split


def test_npz_with_a_split(tmp_path: Path):
    rng = np.random.default_rng(0)
    path = tmp_path / "split.npz"
    np.savez(
        path,
        X_train=rng.normal(size=(40, 3)),
        y_train=np.arange(40) % 3,
        X_test=rng.normal(size=(10, 3)),
        y_test=np.arange(10) % 3,
    )
    data = load(path)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (32, 8, 10)
    assert data.classes == 3 and data.features == 3


def test_npz_with_x_y_and_images_flattened(tmp_path: Path):
    path = tmp_path / "xy.npz"
    np.savez(path, X=np.arange(20 * 4, dtype=np.uint8).reshape(20, 2, 2), y=np.arange(20) % 2 + 5)
    data = load(path)
    assert data.features == 4 and data.labels == (5, 6)
    assert set(np.unique(data.y_train)) == {0, 1}


def test_csv_with_a_label_column(tmp_path: Path):
    path = tmp_path / "table.csv"
    rows = ["a,kind,b"] + [f"{i},{i % 2},{-i / 3}" for i in range(12)]
    path.write_text("\n".join(rows) + "\n")
    data = load(path, label="kind")
    assert data.features == 2 and data.classes == 2
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 12


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


X = np.arange(30.0).reshape(10, 3)
Y = np.arange(10) % 2

MALFORMED = {
    "missing array": (
        lambda p: _npz(p, X_train=X, y_train=Y, X_test=X),
        None,
        "missing array 'y_test'",
    ),
    "missing y": (lambda p: _npz(p, X=X), None, "missing array 'y'"),
    "no arrays": (lambda p: _npz(p, Z=X), None, "missing array 'X'"),
    "mismatched lengths": (lambda p: _npz(p, X=X, y=Y[:9]), None, "X has 10 rows but y has 9"),
    "NaN feature": (
        lambda p: _npz(p, X=np.where(X == 7, np.nan, X), y=Y),
        None,
        "contains NaN (row 2, feature 1)",
    ),
    "inf feature": (
        lambda p: _npz(p, X=np.where(X == 4, np.inf, X), y=Y),
        None,
        "contains an infinite value",
    ),
    "fractional label": (lambda p: _npz(p, X=X, y=Y + 0.5), None, "not an integer label"),
    "string label": (lambda p: _npz(p, X=X, y=np.array(list("ababababab"))), None, "not integers"),
    "single class": (lambda p: _npz(p, X=X, y=np.zeros(10, int)), None, "a single class"),
    "features differ": (
        lambda p: _npz(p, X_train=X, y_train=Y, X_test=X[:, :2], y_test=Y),
        None,
        "disagree on the number of features",
    ),
    "1-D features": (lambda p: _npz(p, X=Y * 1.0, y=Y), None, "must be 2-D"),
    "no rows": (lambda p: _npz(p, X=np.zeros((0, 3)), y=np.zeros(0, int)), None, "has no rows"),
    "empty npz": (lambda p: _npz(p), None, "missing array 'X'"),
    "empty file": (lambda p: _csv(p, ""), "y", "is empty"),
    "empty npz file": (lambda p: _file(p, "e.npz", b""), None, "is empty"),
    "not an npz": (
        lambda p: _file(p, "bad.npz", b"hello"),
        None,
        "not a readable",
    ),
    "csv without rows": (lambda p: _csv(p, "a,y\n"), "y", "no data rows"),
    "csv without the label": (lambda p: _csv(p, "a,b\n1,2\n"), "y", "no column 'y'"),
    "csv text feature": (lambda p: _csv(p, "a,y\n1,0\nx,1\n"), "y", "'x', not a number"),
    "csv empty feature": (lambda p: _csv(p, "a,y\n1,0\n,1\n"), "y", "is empty"),
    "csv ragged": (lambda p: _csv(p, "a,y\n1,0\n1,1,1\n"), "y", "line 3 has 3 fields"),
    "csv text label": (lambda p: _csv(p, "a,y\n1,cat\n2,dog\n"), "y", "holds 'cat' on line 2"),
    "csv nan feature": (
        lambda p: _csv(
            p, "a,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(["nan", 1, 2, 3, 4, 5]))
        ),
        "y",
        "contains NaN",
    ),
    "csv single class": (
        lambda p: _csv(p, "a,y\n" + "".join(f"{v},1\n" for v in range(8))),
        "y",
        "a single class",
    ),
    "csv without --label": (lambda p: _csv(p, "a,y\n1,0\n"), None, "--label COLUMN"),
    "label with npz": (lambda p: _npz(p, X=X, y=Y), "y", "--label applies only"),
    "wrong suffix": (lambda p: p / "data.txt", None, "must end in .npz or .csv"),
    "no such file": (lambda p: p / "absent.npz", None, "does not exist"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_data_is_refused_in_one_line_naming_the_problem(tmp_path: Path, case: str):
    make, label, fragment = MALFORMED[case]
    path = make(tmp_path)
    with pytest.raises(ValueError) as caught:
        load(path, label=label)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_labels_may_be_integral_floats():
    data = prepare("toy", {"X": X, "y": Y.astype(float)}, "toy")
    assert data.classes == 2
