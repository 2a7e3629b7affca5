"""benchmarks/split_calls.py: a tiny real run's rows and table, and the routes left as they were.

What is checked is the shape and that the script leaves ``Calls._plan`` as it found it, not
any number.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from relukit.kernels.cpu import host

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("split_calls")


def test_a_tiny_run_gives_every_call_its_four_times_and_keeps_the_routes(script, monkeypatch):
    monkeypatch.setattr(script, "ROUNDS", 2)
    kept, split = host.Calls._plan, host.Calls.split_ufunc
    rows = script.measure(1 << 12)
    assert host.Calls._plan is kept and host.Calls.split_ufunc is split
    assert [row[0] for row in rows] == list(script.cases(1 << 12))
    for _, without, with_, default, peer, peer_name in rows:
        assert min(without, with_, default, peer) > 0 and peer_name


def test_the_table_has_a_row_per_call_and_size(script, monkeypatch):
    monkeypatch.setattr(script, "ROUNDS", 1)
    before = torch.get_num_threads()
    text = script.table([10, 11], 1)
    assert torch.get_num_threads() == before
    assert text.count("| relu out= | 2^") == 2
    assert text.count("\n| ") == 1 + 2 * len(script.cases(1 << 10))  # (the header, the rows)


@pytest.mark.parametrize(
    "argv", [["--sizes", "17,x"], ["--sizes", "40"], ["--threads", "0"], ["--threads", "two"]]
)
def test_bad_options_are_refused_in_one_line_before_anything_runs(script, argv, capsys):
    before = (ROOT / "benchmarks" / "RESULTS.md").read_bytes()
    with pytest.raises(SystemExit) as exit_:
        script.main([*argv, "--write"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "error: argument" in error and argv[1] in error
    assert (ROOT / "benchmarks" / "RESULTS.md").read_bytes() == before
