"""benchmarks/kernels.py: its table from a tiny real run, and the RESULTS.md section it writes.

What is checked is the table's shape and the section's replacement, not any number.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from relukit.bench import BenchConfig, run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("kernels")


@pytest.fixture(scope="module")
def report():
    config = BenchConfig(sizes=(1024, 4096), members=("relu",), ops=("forward_out", "forward"),
                         repeats=1, min_time=1e-4, threads=1, compile_cost=False)  # fmt: skip
    return run(config)


def test_cells_hold_copy_numpy_and_torch_ratios(script, report):
    cells = script.cells(report)
    ops = ("forward_out", "forward")
    assert set(cells) == {("relu", op, n) for op in ops for n in (1024, 4096)}
    for ratios in cells.values():
        assert len(ratios) == 3 and all(r is not None and r > 0 for r in ratios)


def test_section_replaces_the_old_kernel_section_and_then_itself(script, report):
    section = script.section([("float32", 1, report)], {"cold": 1.0}, 60.0, (1024, 4096))
    assert "| member | op | 2^10 | 2^12 |" in section
    assert "| relu | forward_out | " in section
    old = (ROOT / "benchmarks" / "RESULTS.md").read_text("utf-8")
    once = script.replace_section(old, section)
    assert once.count(script.BEGIN) == 1 and "### Accuracy against the true function" in once
    assert "## Dead-unit monitor" in once
    again = script.replace_section(once, section.replace("| cold | 1.00 |", "| cold | 2.00 |"))
    assert again.count(script.BEGIN) == 1 and "| cold | 2.00 |" in again
    assert "| cold | 1.00 |" not in again
