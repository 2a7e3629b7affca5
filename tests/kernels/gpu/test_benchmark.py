"""benchmarks/gpu.py: its one-line refusal without a GPU, and its tables' code run on the CPU.

The tables' code runs here on CPU tensors in Triton's interpreter, with a wall-clock timer and
no memory counters, at tiny sizes: what is checked is that the script runs end to end and
writes its section, not any number.
"""

from __future__ import annotations

import time

import pytest
import torch

from .helpers import kernel_device

DEVICE = kernel_device()


@pytest.fixture
def gpu_script(benchmark_script):
    return benchmark_script("gpu")


def test_no_cuda_device_is_one_line_and_status_2(gpu_script, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        gpu_script.main(["--no-write"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no CUDA device" in err


def _wall_clock(calls, reps, rounds):
    best = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        best[name] = time.perf_counter() - start + 1e-9
    return best


@pytest.mark.skipif(DEVICE != "cpu", reason="the CPU stand-in of the GPU tables")
def test_tables_run_end_to_end_on_the_cpu(gpu_script, monkeypatch, tmp_path):
    monkeypatch.setattr(gpu_script, "DEVICE", "cpu")
    monkeypatch.setattr(gpu_script, "timed", _wall_clock)
    for counter in ("synchronize", "reset_peak_memory_stats"):
        monkeypatch.setattr(torch.cuda, counter, lambda: None)
    for counter in ("memory_allocated", "max_memory_allocated"):
        monkeypatch.setattr(torch.cuda, counter, lambda: 0)
    bandwidth = gpu_script.bandwidth([4], 1, 1)
    assert len(bandwidth) == 4 and bandwidth[2].startswith("| float32 | 2^4 |")
    modules = gpu_script.modules([4], 1, 1)
    assert len(modules) == 2 + 2 * len(gpu_script.module_pairs())
    small = {"n": 16, "d": 8, "hidden": 16, "images_n": 2}
    memory = gpu_script.peak_memory(small)
    assert sum(line.startswith("| (") for line in memory) == 5

    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## Other\n\ntext\n", encoding="utf-8")
    monkeypatch.setattr(gpu_script, "RESULTS", results)
    gpu_script.write(["first"])
    gpu_script.write(["second"])
    text = results.read_text(encoding="utf-8")
    assert text.count(gpu_script.TITLE) == 1 and "second" in text and "first" not in text
    assert text.startswith("# Results\n\n## Other\n\ntext\n")
