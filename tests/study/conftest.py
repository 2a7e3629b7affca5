"""Shared pieces of the study's tests: a tiny configuration and one report made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from relukit.cli import main

TINY = ["--activations", "relu,tanh", "--seeds", "1", "--epochs", "2", "--width", "16"]
TINY += ["--modules", "relukit"]
"""A study in about a second: two activations, one seed, two epochs, 16 units."""

SERIAL = ["--jobs", "1", "--threads", "1"]
"""One process, one thread: fast to start, and no competition for cores under ``pytest -n``."""


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report folder of ``relukit study --quick`` on the tiny configuration."""
    out = tmp_path_factory.mktemp("study") / "report"
    status = main(["study", "--quick", *TINY, *SERIAL, "--out", str(out)])
    assert status == 0
    return out
