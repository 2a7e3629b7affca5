"""``relukit bench``: it runs, and what it reports is sane (never its timings)."""

from __future__ import annotations

import json
import math
import time

import pytest

from relukit import bench
from relukit.cli import main


def test_quick_bench_from_the_command_line(tmp_path, capsys):
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    status = main(["bench", "--quick", "--json", str(out_json), "--png", str(out_png)])
    printed = capsys.readouterr().out
    assert status == 0
    assert "relukit bench" in printed and "targets" in printed
    data = json.loads(out_json.read_text())
    assert out_png.stat().st_size > 1000
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    rows = data["rows"]
    assert {r["size"] for r in rows} == set(bench.QUICK_SIZES)
    ours = [r for r in rows if r["kind"] == "relukit"]
    # relu has all six ops; gelu has no mask path
    assert {(r["member"], r["op"]) for r in ours} == {
        *(("relu", op) for op in bench.OPS),
        *(("gelu", op) for op in bench.OPS[:4]),
    }
    for row in rows:
        assert row["seconds"] > 0 and math.isfinite(row["seconds"])
        assert row["gbps"] == pytest.approx(row["bytes"] / row["seconds"] / 1e9)
        assert row["elements_per_s"] == pytest.approx(row["size"] / row["seconds"])
    for row in ours:
        assert row["ratio_limit"] > 0
        if row["best_peer"] is not None:
            assert row["ratio_peer"] > 0
    limits = {(r["op"], r["size"]) for r in rows if r["kind"] == "limit"}
    assert limits == {(kind, n) for kind in ("copy", "rmw") for n in bench.QUICK_SIZES}
    mask_row = next(r for r in ours if r["op"] == "forward_with_mask" and r["size"] == 2**16)
    assert mask_row["bytes"] == 2 * 4 * 2**16 + 2**16 // 8
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["numba"] and machine["date"]
    assert {t["target"].split(" (")[0] for t in data["targets"]} >= {"relu out= vs copy"}


def test_options_are_parsed_and_checked():
    config = bench.BenchConfig.from_options(sizes="2^10, 3000", dtypes="float64", repeats=2)
    assert config.sizes == (1024, 3000) and config.dtypes == ("float64",)
    assert config.repeats == 2 and config.members == bench.MEMBERS
    quick = bench.BenchConfig.from_options(quick=True)
    assert quick.sizes == bench.QUICK_SIZES and not quick.compile_cost
    with pytest.raises(ValueError, match="2\\^20"):
        bench.BenchConfig.from_options(sizes="big")
    with pytest.raises(ValueError, match="int8"):
        bench.BenchConfig.from_options(dtypes="int8")
    with pytest.raises(ValueError, match="repeats"):
        bench.BenchConfig.from_options(repeats=0)


def test_command_line_error_is_one_line(capsys):
    assert main(["bench", "--sizes", "2^x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("relukit bench: error:") and err.count("\n") == 1


def test_16_bit_and_float64_rows():
    report = bench.run(
        bench.BenchConfig(
            sizes=(2048,),
            dtypes=("bfloat16", "float16", "float64"),
            members=("relu", "silu"),
            ops=("forward_out", "backward_from_mask"),
            repeats=1,
            min_time=1e-4,
            compile_cost=False,
        )
    )
    ours = {(r["member"], r["op"], r["dtype"]) for r in report.rows if r["kind"] == "relukit"}
    assert ours == {
        (member, op, dtype)
        for member, op in [
            ("relu", "forward_out"),
            ("relu", "backward_from_mask"),
            ("silu", "forward_out"),
        ]
        for dtype in ("bfloat16", "float16", "float64")
    }
    for dtype in ("bfloat16", "float16"):
        row = next(r for r in report.rows if r["dtype"] == dtype and r["kind"] == "relukit")
        assert row["bytes"] == 2 * 2 * 2048
        assert f"| relu | forward_out | {dtype} | 2^11 |" in bench.markdown(report)
    # NumPy has float16 (a peer), not bfloat16
    numpy_peers = {
        r["dtype"] for r in report.rows if r["kind"] == "peer" and r["impl"].startswith("np.")
    }
    assert "float16" in numpy_peers and "bfloat16" not in numpy_peers


def test_each_op_is_timed_side_by_side_with_its_limit(monkeypatch):
    """The copy (or, in place, the read-modify-write) is timed in the same interleaved rounds as
    relukit and the peers of each op, and the op's ratio to the limit comes from those times."""
    rounds: list[dict[str, float]] = []
    real = bench._best

    def recording(timers, repeats, min_time):
        best = real(timers, repeats, min_time)
        rounds.append(best)
        return best

    monkeypatch.setattr(bench, "_best", recording)
    config = bench.BenchConfig(
        sizes=(4096,), members=("relu",), ops=("forward_out", "forward_inplace"), repeats=1,
        min_time=1e-4, compile_cost=False,
    )  # fmt: skip
    report = bench.run(config)
    ops = [best for best in rounds if "relukit" in best]
    assert len(ops) == 2
    for best, op, kind in zip(ops, config.ops, ("copy", "rmw"), strict=True):
        side = {k[len("limit:") :]: v for k, v in best.items() if k.startswith("limit:")}
        assert side and set(side) == set(bench.limits(bench.Arrays("float32", 8))[kind])
        row = next(r for r in report.rows if r["kind"] == "relukit" and r["op"] == op)
        assert row["ratio_limit"] == pytest.approx(min(side.values()) / best["relukit"])


def test_in_place_timers_of_a_member_that_changes_its_output_start_from_fresh_values():
    # gelu of gelu of ... shrinks into subnormals (an assist per element on Intel cores): each
    # in-place call of such a member is timed on x's values, and relu's is left as it is
    arrays = bench.Arrays("float32", 1024)
    assert bench._idempotent("relu", arrays)
    assert not bench._idempotent("gelu", arrays)
    assert not bench._idempotent("leaky_relu", arrays)
    seen = []

    def timer():
        seen.append(arrays.z.copy())
        arrays.z *= 0.5  # as an in-place op would change it

    refreshing = bench._refreshing(arrays, timer)
    for _ in range(3):
        refreshing()
    assert all((values == arrays.x).all() for values in seen)


def test_the_calls_count_is_taken_after_the_first_calls_which_may_do_work_once():
    # a route's second call may make its split ufunc and measure its grain (ms, once): timed
    # alone it left the count at 1 and the op was timed one cold call at a time
    calls = []

    def fn() -> None:
        calls.append(1)
        if len(calls) == 2:
            time.sleep(0.01)

    assert bench._calibrate(fn, 0.002) > 1
