"""A data-file fuzzer for ``relukit study --data``: malformed .npz and .csv files, encodings,
huge, tiny and constant columns. Each file is either refused with one line naming the file
(a ``ValueError``, before any work), or loaded with every feature standardised, finite, in
float32. The file itself is never changed. ``RELUKIT_HYPOTHESIS=thorough`` searches ten times
longer."""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from relukit.cli import main
from relukit.study.data import load

SCALES = st.sampled_from([1.0, 1e300, -1e300, 1e-300, 5e-324, 1e38, 1e-45, 0.0, 1e308])
DTYPES = st.sampled_from(
    ["float64"] * 4
    + ["float32", "float16", "int64", "int8", "uint8", "bool", "complex64", "U3", "S2"]
)


@st.composite
def _table(draw) -> tuple[np.ndarray, np.ndarray]:
    rows = draw(st.sampled_from([0, 1, 4, *range(5, 31)]))
    columns = draw(st.sampled_from([0, *range(1, 6), *range(1, 6)]))
    X = draw(st.sampled_from([np.zeros, np.ones]))((rows, columns))
    generator = np.random.default_rng(draw(st.integers(0, 2**16)))
    for column in range(columns):
        kind = draw(st.sampled_from(["normal", "constant", "scaled", "spiky"]))
        if kind == "normal":
            X[:, column] = generator.normal(size=rows)
        elif kind == "constant":
            X[:, column] = draw(SCALES)
        elif kind == "scaled":
            X[:, column] = generator.normal(size=rows) * draw(SCALES)
        else:
            X[:, column] = generator.normal(size=rows)
            if rows:
                X[generator.integers(rows), column] = draw(SCALES)
    y = generator.integers(0, draw(st.integers(1, 4)), size=rows)
    if draw(st.integers(0, 3)) == 0 and rows:
        y = y + draw(st.sampled_from([0.5, -3.0, np.nan]))
    return X, y


def _npz_bytes(draw, X: np.ndarray, y: np.ndarray) -> bytes:
    dtype = draw(DTYPES)
    with np.errstate(all="ignore"):
        x_cast = X.astype(dtype)
    if draw(st.booleans()) and X.ndim == 2 and X.shape[1] == 4:
        x_cast = x_cast.reshape(len(X), 1, 2, 2)  # images
    buffer = io.BytesIO()
    layout = draw(st.sampled_from(["X,y", "split", "missing", "extra"]))
    if layout == "X,y":
        np.savez(buffer, X=x_cast, y=y)
    elif layout == "split":
        half = len(X) // 2
        np.savez(
            buffer, X_train=x_cast[:half], y_train=y[:half], X_test=x_cast[half:], y_test=y[half:]
        )
    elif layout == "missing":
        np.savez(buffer, X=x_cast)
    else:
        np.savez(buffer, X=x_cast, y=y, notes=np.array(["a", "b"]))
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none"] * 4 + ["truncate", "flip", "not-npy", "garbage"]))
    if damage == "truncate":
        return data[: draw(st.integers(0, max(0, len(data) - 1)))]
    if damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    if damage == "not-npy":
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("X", "garbage")
            archive.writestr("y.npy", b"\x93NUMPY nonsense")
        return out.getvalue()
    if damage == "garbage":
        return draw(st.binary(max_size=64))
    return data


def _csv_bytes(draw, X: np.ndarray, y: np.ndarray) -> bytes:
    header = ["label", *(f"f{c}" for c in range(X.shape[1]))]
    lines = [",".join(header)]
    for row, label in zip(X, y, strict=True):
        cells = [repr(float(label)) if draw(st.booleans()) else str(label)]
        cells += [repr(float(v)) for v in row]
        lines.append(",".join(cells))
    if draw(st.integers(0, 3)) == 0 and len(lines) > 1:
        lines[draw(st.integers(1, len(lines) - 1))] += draw(
            st.sampled_from([",", "", ",1e400", ",x", '"'])
        )
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\n", "\x00"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


@st.composite
def data_files(draw) -> tuple[str, bytes]:
    X, y = draw(_table())
    if draw(st.booleans()):
        return ".npz", _npz_bytes(draw, X, y)
    return ".csv", _csv_bytes(draw, X, y)


@given(data_files())
def test_every_data_file_is_refused_in_one_line_or_standardised(file):
    suffix, content = file
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(content)
        try:
            data = load(path, "label" if suffix == ".csv" else None)
        except ValueError as error:
            message = str(error)
            assert message and "\n" not in message, message
            assert message.startswith(("data.", "data file")), message
            event(f"refused {suffix}")
        else:
            event(f"trained on {suffix}")
            for split in (data.X_train, data.X_val, data.X_test):
                assert split.dtype == np.float32 and np.isfinite(split).all()
            spread = data.X_train.std(axis=0)
            assert np.all((np.abs(spread - 1) < 1e-3) | (spread == 0)), spread
            assert np.all(np.abs(data.X_train.mean(axis=0)) < 1e-3)
        assert path.read_bytes() == content  # the input is never modified


def test_huge_features_train_standardised_instead_of_overflowing():
    generator = np.random.default_rng(0)
    X = generator.normal(size=(60, 3))
    data = load(_write(X * 1e300))
    reference = load(_write(X))
    assert np.allclose(data.X_train, reference.X_train, atol=1e-5)
    assert np.abs(data.X_train.std(axis=0) - 1).max() < 1e-3


def _write(X: np.ndarray) -> Path:
    path = Path(tempfile.mkdtemp()) / "big.npz"
    np.savez(path, X=X, y=np.arange(len(X)) % 3)
    return path


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("\ufefflabel,a\n1,2\n0,3\n1,4\n0,5\n1,6\n", None),  # a UTF-8 BOM is read as UTF-8
        ("label,a\n1,1e400\n", "contains an infinite value"),
    ],
)
def test_csv_bom_and_infinite_values(tmp_path, content, fragment):
    path = tmp_path / "d.csv"
    path.write_bytes(content.encode("utf-8"))
    if fragment is None:
        assert load(path, "label").classes == 2
    else:
        with pytest.raises(ValueError, match=fragment):
            load(path, "label")


def test_a_corrupt_npz_is_named_as_such_before_any_work(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("X", "garbage")
    out = tmp_path / "report"
    assert main(["study", "--data", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == "relukit study: error: bad.npz: X is not a NumPy array (not a .npy member)"
    assert not out.exists()
