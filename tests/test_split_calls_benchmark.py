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


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every grain as if measured (nothing measured here, nothing left behind)."""
    monkeypatch.setattr(host, "_measured", {(c, a): 50_048 for c in range(3) for a in (0, 1)})
    monkeypatch.setattr(host, "_ufunc_measured", {(c, i): 9_984 for c in range(3) for i in (0, 1)})
    monkeypatch.setattr(host, "_ufunc_found", {False: (1e-6, 1e-10), True: (1e-6, 5e-11)})
    monkeypatch.setattr(host, "WHOLE_BELOW", [100_096] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [19_968] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [39_936] * 3)


def test_a_tiny_run_gives_every_call_its_five_times_and_keeps_the_routes(
    script, monkeypatch, measured
):
    monkeypatch.setattr(script, "ROUNDS", 2)
    kept, split, grain = host.Calls._plan, host.Calls.split_ufunc, host.ufunc_grain
    rows = script.measure(1 << 12)
    assert host.Calls._plan is kept and host.Calls.split_ufunc is split
    assert host.ufunc_grain is grain
    assert host.SPLIT_BELOW == [19_968] * 3 and host.WHOLE_BELOW == [100_096] * 3
    assert host.INPLACE_SPLIT_BELOW == [39_936] * 3
    assert [row[0] for row in rows] == list(script.cases(1 << 12))
    for _, without, with_, planned, default, peer, peer_name in rows:
        assert min(without, with_, planned, default, peer) > 0 and peer_name


BELOW = ([19_968] * 3, [39_936] * 3)


@pytest.mark.parametrize("mode", ["without", "with", "planned grain"])
def test_outside_the_default_calls_split_where_the_planned_route_does(script, mode, measured):
    # (session 25: the split ufuncs, where on, made for the planned route's grain, and calls
    # below WHOLE_BELOW whole)
    kept, split, grain = host.Calls._plan, host.Calls.split_ufunc, host.ufunc_grain
    try:
        script._routes(mode, kept, split, BELOW)
        assert host.SPLIT_BELOW == host.INPLACE_SPLIT_BELOW == host.WHOLE_BELOW == [100_096] * 3
        if mode == "planned grain":
            assert host.ufunc_grain(host.LINEAR, True) == host.grain(host.LINEAR) == 50_048
        else:
            assert host.Calls.split_ufunc(None, "forward", False, 2) is False
        script._routes("default", kept, split, BELOW)
        assert (host.SPLIT_BELOW, host.INPLACE_SPLIT_BELOW) == BELOW
        assert host.ufunc_grain is grain
        assert host.Calls.split_ufunc is split
    finally:
        script._routes("default", kept, split, BELOW)


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
