"""The report folder: every file there and readable, the page self-contained, checked in a real
headless browser when one is installed."""

from __future__ import annotations

import base64
import csv
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from relukit.study.report import check_out

PNG = b"\x89PNG\r\n\x1a\n"
COMPARE_FIGURES = (
    "gallery.png",
    "accuracy.png",
    "learning_curves.png",
    "dead_units.png",
    "gradient_flow.png",
)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.tables: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.images.append(values.get("src") or "")
        if tag in ("a", "link", "script"):
            self.links.append(values.get("href") or values.get("src") or "")
        if tag == "table":
            self.tables.append(values.get("class") or "")


def _refuse_nan(text: str) -> float:
    raise AssertionError(f"results.json holds {text}")


def test_every_file_is_written_and_readable(tiny_report: Path):
    names = {p.name for p in tiny_report.iterdir()}
    files = {"index.html", "results.json", "results.csv", "summary.csv", *COMPARE_FIGURES}
    assert {*files, "runs"} == names
    assert len(list((tiny_report / "runs").glob("*.json"))) == 2
    for figure in COMPARE_FIGURES:
        assert (tiny_report / figure).read_bytes().startswith(PNG)
    results = json.loads((tiny_report / "results.json").read_text(), parse_constant=_refuse_nan)
    assert results["completed"] == results["planned"] == 2 and not results["interrupted"]
    assert [run["spec"]["activation"] for run in results["runs"]] == ["relu", "tanh"]
    assert [g["activation"] for g in results["groups"]] == ["relu", "tanh"]
    assert results["data"]["name"] == "digits" and results["environment"]["cores"] >= 1
    with (tiny_report / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    measures = {row["measure"] for row in rows}
    assert {"test_accuracy", "dead_fraction", "sparsity", "grad_norm_at_init", "val_accuracy"} <= (
        measures
    )
    relu_accuracy = [
        float(r["value"])
        for r in rows
        if r["measure"] == "test_accuracy" and r["activation"] == "relu"
    ]
    assert relu_accuracy == [results["runs"][0]["test_accuracy"]]
    with (tiny_report / "summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert [row["activation"] for row in summary] == ["relu", "tanh"]
    assert float(summary[0]["test_accuracy_mean"]) == relu_accuracy[0]


def test_the_reproduce_line_names_the_jobs_and_threads_and_never_none(tiny_report: Path):
    page = (tiny_report / "index.html").read_text()
    line = page.split("<dt>reproduce</dt><dd>", 1)[1].split("</dd>", 1)[0]
    assert line.startswith("relukit study --activations relu,tanh --seeds 1 --width 16 --epochs 2")
    assert "--jobs 1 --threads 1" in line and "None" not in line and "--quick" in line


def test_the_page_is_self_contained(tiny_report: Path):
    page = _Page()
    page.feed((tiny_report / "index.html").read_text())
    assert len(page.images) == len(COMPARE_FIGURES)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert all(not link.startswith(("http:", "https:", "//")) for link in page.links)
    assert "summary" in page.tables and "claims" in page.tables


def test_an_existing_report_is_refused_without_force(tmp_path: Path):
    assert check_out(tmp_path / "new", force=False) == tmp_path / "new"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "index.html").write_text("keep me")
    with pytest.raises(ValueError, match=r"already exists; use --resume .* or --force"):
        check_out(tmp_path / "old", force=False)
    assert check_out(tmp_path / "old", force=True) == tmp_path / "old"
    assert check_out(tmp_path / "old", force=False, resume=True) == tmp_path / "old"
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        check_out(tmp_path / "file", force=True)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium for a real browser")
def test_the_page_renders_in_a_headless_browser(tiny_report: Path, tmp_path: Path):
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        (tiny_report / "index.html").resolve().as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    page = _Page()
    page.feed(dom)
    assert "summary" in page.tables
    assert len(page.images) == len(COMPARE_FIGURES)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert "relu" in dom and "tanh" in dom and "The claims about ReLU, checked" in dom
