"""benchmarks/mask_paths.py: a tiny real run's cells and table (the shape, not any number)."""

from __future__ import annotations

import numpy as np
import pytest

import relukit


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("mask_paths")


def test_every_member_is_bound_as_named_and_its_calls_run(script):
    a = script.Arrays("float32", 1 << 12)
    calls = script.timers(a)
    assert set(calls) == {
        (name, op) for name in script.MEMBERS for op in ("forward_with_mask", "backward_from_mask")
    }
    for name, (member, params, channels) in script.MEMBERS.items():
        y, mask = calls[name, "forward_with_mask"]()
        function = relukit.get(member, **params)
        bits = function.spec.derivative_bits(function.params)
        assert bits == (2 if name == "general_relu, 2 bits" else 1), name
        assert mask.size == -(-a.n * bits // 8), name
        assert y.shape == ((a.n // script.CHANNELS, script.CHANNELS) if channels else (a.n,))
        dx = calls[name, "backward_from_mask"]()
        assert dx.shape == y.shape and np.isfinite(dx).all()


def test_a_tiny_run_fills_every_cell_and_marks_the_misses(script):
    cells = {}
    for dtype in ("float32", "bfloat16"):
        for count in script.THREADS:
            cells[dtype, count, 1 << 10] = script.measure(dtype, 1 << 10, count, 1, 1e-4)
    for dtype in ("float64", "float16"):
        for count in script.THREADS:
            cells[dtype, count, 1 << 10] = dict.fromkeys(cells["float32", count, 1 << 10], 2.0)
    some = next(iter(cells["float64", 1, 1 << 10]))
    cells["float64", 1, 1 << 10][some] = 0.8499  # (a miss, shown rounded down)
    for key in cells["float32", 1, 1 << 10]:
        cells["float32", 1, 1 << 10][key] = 1.0
    text = script.table(cells, (1 << 10,))
    rows = [line for line in text.splitlines() if line.startswith("| ") and "member" not in line]
    assert len(rows) == len(script.MEMBERS) * 2 * len(script.DTYPES)
    assert all(row.count("|") == 3 + len(script.THREADS) + 1 for row in rows)
    assert "**0.84**" in text
    some_rows = script.table(cells, (1 << 10,), ["prelu, 64 channels"])
    assert sum(line.startswith("| prelu, 64 channels |") for line in some_rows.splitlines()) == 8
    assert f"of {2 * len(script.DTYPES) * len(script.THREADS)} cells" in some_rows
    bold = [row for row in rows if "**" in row]
    misses = sum(row.count("**") // 2 for row in bold)
    assert f"{160 - misses} of 160 cells" in text and misses >= 1
    assert all(value > 0 for run in cells.values() for value in run.values())
