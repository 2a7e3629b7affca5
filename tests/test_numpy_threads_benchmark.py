"""benchmarks/numpy_threads.py: a child's timings, the refusal of a child that imported PyTorch
unasked, and the table's rows and ratios. What is checked is the shape, not any number."""

from __future__ import annotations

import argparse

import pytest
import torch  # noqa: F401  (imported: the in-process child is a "torch" mode child)


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("numpy_threads")


def test_a_child_times_every_call_on_one_and_two_threads_and_numpy_s_on_one(script):
    found = script.child([10], torch_first=True)
    assert found.pop("team") in (0.0, 1.0)
    ours = {f"{name}|10|{count}" for name in script.CALLS for count in (1, 2)}
    numpy = {f"{peer}|10|1" for peer in script.PEERS.values()}
    assert set(found) == ours | numpy and all(seconds > 0 for seconds in found.values())


def test_a_child_that_finds_pytorch_imported_unasked_stops(script):
    with pytest.raises(SystemExit, match="imported PyTorch"):
        script.child([10], torch_first=False)


def test_the_table_gives_each_mode_s_times_and_the_ratios_within_each_process(script, monkeypatch):
    def child(mode: str, sizes: list[int]) -> dict[str, float]:
        two = {"own": 5.0, "pool": 10.0, "torch": 4.0}[mode]  # (1 thread: 10 µs in each)
        found = {f"{peer}|{e}|1": 20.0 for peer in script.PEERS.values() for e in sizes}
        for e in sizes:
            for name in script.CALLS:
                found[f"{name}|{e}|1"], found[f"{name}|{e}|2"] = 10.0, two
        return found

    monkeypatch.setattr(script, "_run_child", child)
    rows = [line for line in script.table([14, 16], 2).splitlines() if line.startswith("| relu")]
    assert len(rows) == 2 * 3  # (relu out=, relu, forward_with_mask; gelu's row has no "relu |")
    cells = rows[0].strip("|").split("|")
    assert [c.strip() for c in cells[2:]] == [
        "10.0", "5.0", "**2.00**", "10.0", "10.0", "**1.00**", "10.0", "4.0", "**2.50**",
        "20.0 (np.maximum out=)", "4.00",
    ]  # fmt: skip


def test_sizes_outside_2_10_to_2_24_are_refused(script):
    with pytest.raises(argparse.ArgumentTypeError, match="from 10 to 24"):
        script._sizes("9,12")
    assert script._sizes("10,24") == [10, 24]
