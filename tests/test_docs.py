"""The docs tables are generated from the registry and the committed copy is current."""

from __future__ import annotations

from pathlib import Path

import relukit
from relukit import docs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "family.md"


def test_committed_family_table_is_current():
    assert DOCS.read_text(encoding="utf-8") == docs.family_markdown(), (
        "docs/family.md is stale: run `relukit list --markdown docs/family.md`"
    )


def test_every_member_has_a_row_with_its_kinks_and_limits():
    rows = {row["name"]: row for row in docs.rows()}
    assert list(rows) == [spec.name for spec in relukit.family()]
    assert rows["relu6"]["kinks"] == "x = 0 → 0; x = 6 → 0"
    assert rows["gelu"]["limits"] == "0, ∞"
    assert rows["leaky_relu"]["derivative_limits"] == "0.01, 1"
    assert "baseline" in rows["tanh"]["flags"]
    assert "derivative in 1 bit" in rows["relu"]["flags"]
