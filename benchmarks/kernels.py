"""The kernels' speed table of issue 13, written into ``benchmarks/RESULTS.md``.

Every member of ``relukit bench`` (relu, leaky_relu, relu6, elu, gelu, silu) and its ops
(allocating forward, ``out=``, in place, derivative, forward_with_mask, backward_from_mask) ×
dtype (float32, float64, bfloat16, float16) × threads (1, 2) × size (2^10, 2^14, 2^16, 2^18, 2^20,
2^22, 2^24, 2^26), each cell three ratios measured side by side in one run: relukit against the
machine's copy of the same bytes (in-place ops: an in-place read-modify-write), against the
fastest NumPy peer and against the fastest PyTorch peer (PyTorch on the same thread count); a
ratio above 1 means relukit is faster. Then the first-call (compile) cost in fresh processes.

    python benchmarks/kernels.py [--repeats 3] [--sizes 2^10,2^16] [--no-write] [--no-compile]

replaces the section between the ``kernels.py`` markers of ``benchmarks/RESULTS.md`` and saves
every row in ``benchmarks/kernels.json`` (with ``--no-write`` it prints the section and writes
neither). The default run
takes about 20 minutes on a quiet 2-core machine (most of it at 2^24 and 2^26); close other
programs first: the numbers are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from relukit.bench import BenchConfig, Report, compile_cost, run

HERE = Path(__file__).parent
SIZES = tuple(2**k for k in (10, 14, 16, 18, 20, 22, 24, 26))
DTYPES = ("float32", "float64", "bfloat16", "float16")
THREADS = (1, 2)
BEGIN = "<!-- benchmarks/kernels.py: begin (generated, do not edit by hand) -->"
END = "<!-- benchmarks/kernels.py: end -->"
ROUND_1 = "round 1: 43–45 s cold, 0.24 s cached (all members, float32 and float64)"
NOT_NUMPY = ("numexpr", "jax (jit)")


def _family(impl: str) -> str | None:
    """Which peer library an implementation of ``relukit.bench`` belongs to."""
    if impl in NOT_NUMPY:
        return None
    return "numpy" if impl.startswith(("np.", "numpy")) else "torch"


def cells(report: Report) -> dict[tuple[str, str, int], tuple[float | None, ...]]:
    """``(member, op, size) -> (× copy, × NumPy, × PyTorch)`` of one run (one dtype and thread
    count): each peer ratio is the fastest peer of that library's time over relukit's."""
    peers: dict[tuple[str, str, int, str], float] = {}
    for row in report.rows:
        family = _family(row["impl"]) if row["kind"] == "peer" else None
        if family is not None:
            key = (row["member"], row["op"], row["size"], family)
            peers[key] = min(peers.get(key, float("inf")), row["seconds"])
    found: dict[tuple[str, str, int], tuple[float | None, ...]] = {}
    for row in report.rows:
        if row["kind"] != "relukit":
            continue
        ours = row["seconds"]
        ratios: list[float | None] = [row["ratio_limit"]]
        for family in ("numpy", "torch"):
            best = peers.get((row["member"], row["op"], row["size"], family))
            ratios.append(None if best is None else best / ours)
        found[row["member"], row["op"], row["size"]] = tuple(ratios)
    return found


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def table(report: Report, sizes: tuple[int, ...]) -> list[str]:
    """One Markdown table: a row per (member, op), a column per size."""
    found = cells(report)
    order: list[tuple[str, str]] = []
    for member, op, _ in found:
        if (member, op) not in order:
            order.append((member, op))
    head = " | ".join(f"2^{n.bit_length() - 1}" for n in sizes)
    lines = [f"| member | op | {head} |", "|---|---|" + "---|" * len(sizes)]
    for member, op in order:
        row = []
        for n in sizes:
            ratios = found.get((member, op, n))
            row.append("" if ratios is None else " / ".join(_ratio(r) for r in ratios))
        lines.append(f"| {member} | {op} | " + " | ".join(row) + " |")
    return lines


def section(runs: list[tuple[str, int, Report]], compile_seconds: dict[str, float],
            seconds: float, sizes: tuple[int, ...]) -> str:  # fmt: skip
    """The Markdown of the whole run: machine, how to read it, a table per (dtype, threads),
    the targets of the float32 runs and the first-call cost."""
    machine = runs[0][2].machine
    lines = [
        BEGIN,
        "## Kernels (issue 13): speed at every size",
        "",
        f"`python benchmarks/kernels.py` ({seconds / 60:.0f} min for this run). Machine: "
        f"{machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, NumPy "
        f"{machine['numpy']}, Numba {machine['numba']}, PyTorch {machine['torch']}; "
        f"{machine['date']}. Load average (1, 5, 15 min) at the start {machine['load_before']}, "
        f"at the end {runs[-1][2].machine.get('load_after')}.",
        "",
        "Each cell: relukit × copy / × NumPy / × PyTorch, all timed side by side in one run "
        "(interleaved, best of the repeats; a time is the mean of enough back-to-back calls to "
        "last 20 ms). × copy is relukit's bandwidth over the best copy of the same bytes "
        "(`np.copyto`, `torch copy_`, relukit's streaming copy) or, in place, over the best "
        "in-place read-modify-write (`np.negative(z, out=z)`, `z.neg_()`); × NumPy and × "
        "PyTorch are the fastest peer's time over relukit's (– where the library has none, "
        "e.g. NumPy has no bfloat16). Above 1: relukit is faster. Every row is in "
        "`benchmarks/kernels.json`.",
        "",
    ]
    for dtype, count, report in runs:
        lines += [f"### {dtype}, {count} thread{'s' if count > 1 else ''}", ""]
        lines += table(report, sizes)
        lines.append("")
    lines += ["### Targets (float32, largest size)", "", "| threads | target | measured | met |",
              "|---|---|---|---|"]  # fmt: skip
    for dtype, count, report in runs:
        if dtype != "float32":
            continue
        for target in report.targets:
            met = "yes" if target["met"] else "**no**"
            lines.append(f"| {count} | {target['target']} | {target['ratio']:.2f} "
                         f"(needs {target['needed']:.2f}) | {met} |")  # fmt: skip
    lines += ["", "### First call (compile cost), in fresh processes", "",
              "| | seconds |", "|---|---|"]  # fmt: skip
    lines += [f"| {key} | {value:.2f} |" for key, value in compile_seconds.items()]
    lines += ["", f"For comparison, {ROUND_1}.", END]
    return "\n".join(lines) + "\n"


def replace_section(text: str, new: str) -> str:
    """``text`` with the generated section replaced (or, the first time, the old hand-written
    kernel section up to the accuracy table)."""
    if BEGIN in text and END in text:
        start, end = text.index(BEGIN), text.index(END) + len(END) + 1
        return text[:start] + new + text[end:]
    start = text.index("## Kernels (issue 3)")
    end = text.index("### Accuracy against the true function")
    return text[:start] + new + "\n" + text[end:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.02)
    parser.add_argument("--sizes", default=None, help="e.g. 2^10,2^16 (default: all eight)")
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--threads", default=",".join(map(str, THREADS)))
    parser.add_argument("--no-write", action="store_true", help="print, do not touch RESULTS.md")
    parser.add_argument("--no-compile", action="store_true", help="skip the first-call cost")
    args = parser.parse_args()
    sizes = SIZES
    if args.sizes:
        sizes = BenchConfig.from_options(sizes=args.sizes).sizes
    start = time.perf_counter()
    runs: list[tuple[str, int, Report]] = []
    rows: list[dict[str, Any]] = []
    for count in (int(t) for t in args.threads.split(",")):
        for dtype in args.dtypes.split(","):
            report = run(
                BenchConfig(
                    sizes=sizes,
                    dtypes=(dtype,),
                    repeats=args.repeats,
                    min_time=args.min_time,
                    threads=count,
                    compile_cost=False,
                )
            )
            runs.append((dtype, count, report))
            rows += [{**row, "threads": count} for row in report.rows]
            print(f"{dtype}, {count} thread(s): {time.perf_counter() - start:.0f} s", flush=True)
    compile_seconds = {} if args.no_compile else compile_cost()
    text = section(runs, compile_seconds, time.perf_counter() - start, sizes)
    if args.no_write:  # (kernels.json is the rows of the table in RESULTS.md: left as it is)
        print(text)
        return
    (HERE / "kernels.json").write_text(json.dumps(rows, indent=0), "utf-8")
    results = HERE / "RESULTS.md"
    results.write_text(replace_section(results.read_text("utf-8"), text), "utf-8")
    print(f"wrote {results} ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
