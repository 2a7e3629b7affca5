"""Forward + backward of every relukit.nn module that has a torch.nn counterpart, against it.

For each module (from the registry: every member with both ``module`` and ``torch_module``;
PReLU with one weight and with one per channel, RReLU in training and in evaluation), each
size (elements, as a ``(n/64, 64)`` input: 64 channels for PReLU), each thread count (PyTorch's
intra-op threads and relukit's kernel threads alike) and each dtype, the time of one
``y = m(x); y.backward(g)`` of the torch.nn module and of the relukit.nn module is measured side
by side in one process: rounds of interleaved blocks (torch, relukit, torch, ...), each block
long enough to time, the best block of each. The ratio relukit / torch is the table's cell
(target: ≤ 1.05 in float32 and float64; bfloat16 and float16 are reported without a target).
The relukit modules run as shipped: below ``relukit.nn.native_below(dtype)`` elements (its
measured defaults: the mask members below half the last-level cache of input, PReLU and RReLU in
training below 2^18 elements) they run PyTorch's own operation, above it the one-bit path.

The table is written into ``benchmarks/RESULTS.md`` between the markers
``<!-- nn_speed -->`` and ``<!-- /nn_speed -->`` (replacing an earlier one), the raw times into
``benchmarks/nn_speed.json``; a run of 16-bit dtypes only (``--dtypes bfloat16 float16``) goes
to its own markers ``<!-- nn_speed_16 -->`` and file ``nn_speed_16.json``, so that both tables
stand. The machine's load average is recorded before and after: on a
shared machine the times are noisy (each cell is a best-of, and the two modules are timed in
alternation so that a burst of load hits both).

    python benchmarks/nn_speed.py [--sizes 10 14 18 20 22 24] [--threads 1 2]
        [--dtypes float32 float64] [--members ReLU PReLU ...] [--budget 0.2] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import relukit
import relukit.nn as rn
from relukit import threads
from relukit.family import MEMBERS

HERE = Path(__file__).parent
TARGETED = ("float32", "float64")
TARGET = 1.05
CHANNELS = 64


@dataclass(frozen=True)
class Case:
    name: str
    torch_module: Callable[[], nn.Module]
    relukit_module: Callable[[], nn.Module]
    same_op: bool = False  # relukit.nn runs torch.nn's own operation (a smooth member)


def cases() -> list[Case]:
    """Every module pair, from the registry (plus the PReLU and RReLU variants)."""
    found = []
    for spec in MEMBERS:
        if spec.module is None or spec.torch_module is None:
            continue
        theirs, ours = getattr(nn, spec.torch_module), rn.MODULES[spec.name]
        if spec.name == "prelu":
            found.append(Case("PReLU(1)", theirs, ours))
            found.append(
                Case(f"PReLU({CHANNELS})", lambda t=theirs: t(CHANNELS), lambda o=ours: o(CHANNELS))
            )
        elif spec.name == "rrelu":
            found.append(Case("RReLU train", theirs, ours))
            found.append(Case("RReLU eval", lambda t=theirs: t().eval(), lambda o=ours: o().eval()))
        else:
            same = issubclass(ours, rn.modules.Smooth)
            found.append(Case(spec.torch_module, theirs, ours, same))
    return found


def step(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> None:
    module(x).backward(g)
    x.grad = None
    for p in module.parameters():
        p.grad = None


def best_pair(
    a: Callable[[], None], b: Callable[[], None], budget: float, rounds: int = 5
) -> tuple[float, float]:
    """Best per-call wall time of a and b, timed in alternating blocks (3 rounds where one call
    takes more than 0.1 s: the largest sizes)."""
    b()
    start = time.perf_counter()
    a()
    once = max(time.perf_counter() - start, 1e-7)
    if once > 0.1:
        rounds = 3
    calls = max(1, int(budget / rounds / 2 / once))
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for i, fn in enumerate((a, b)):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls)
    return best[0], best[1]


def measure(case: Case, n: int, dtype: torch.dtype, budget: float) -> dict[str, float] | None:
    """The pair's times and ratio; None where torch.nn has no kernel for the dtype (RReLU in
    training in float16)."""
    generator = torch.Generator().manual_seed(n)
    shape = (n // CHANNELS, CHANNELS)
    x = torch.randn(shape, generator=generator).to(dtype).requires_grad_()
    g = torch.randn(shape, generator=generator).to(dtype)
    theirs = case.torch_module().to(dtype)
    ours = case.relukit_module().to(dtype)
    try:
        step(theirs, x, g)
    except NotImplementedError:
        return None
    t, r = best_pair(lambda: step(theirs, x, g), lambda: step(ours, x, g), budget)
    return {"torch_s": t, "relukit_s": r, "ratio": r / t}


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def table(rows: list[dict], sizes: list[int], columns: list[tuple[str, int]]) -> list[str]:
    head = "| module | n | " + " | ".join(f"{d} {t}t" for d, t in columns) + " |"
    lines = [head, "|" + "---|" * (2 + len(columns))]
    by_key = {(r["case"], r["n"], r["dtype"], r["threads"]): r for r in rows}
    for name in dict.fromkeys(r["case"] for r in rows):
        for n in sizes:
            cells = []
            for dtype, count in columns:
                row = by_key.get((name, n, dtype, count))
                if row is None:
                    cells.append("")
                    continue
                mark = "**" if row["ratio"] > TARGET and dtype in TARGETED else ""
                cells.append(f"{mark}{row['ratio']:.2f}{mark}")
            lines.append(f"| {name} | 2^{n.bit_length() - 1} | " + " | ".join(cells) + " |")
    return lines


def noise(rows: list[dict]) -> str:
    """The run's noise floor: the cells where relukit.nn runs torch.nn's own operation."""
    same = sorted(r["ratio"] for r in rows if r.get("same_op"))
    if not same:
        return ""
    over = sum(r > TARGET for r in same)
    return (
        f"Noise floor of this run: the {len(same)} cells of the smooth members, where relukit.nn "
        f"runs torch.nn's own operation, have median {statistics.median(same):.2f}, 10th-90th "
        f"percentile {same[len(same) // 10]:.2f}-{same[9 * len(same) // 10]:.2f}, {over} above "
        f"{TARGET}."
    )


def native() -> str:
    """What ``native_below`` is in this run."""
    if rn.native_setting() is not None:
        return f"native_below = {rn.native_setting()} elements (set)"
    below = {d: rn.native_below(getattr(torch, d)).bit_length() - 1 for d in ("float32", "float64")}
    sizes = ", ".join(f"2^{power} {d}" for d, power in below.items())
    slopes = rn.native_below(slopes=True).bit_length() - 1
    return (
        f"native_below: the mask members below {sizes} elements, PReLU and RReLU (train) "
        f"below 2^{slopes}"
    )


def write(rows: list[dict], args: argparse.Namespace, before: str, after: str, seconds: float):
    name = "nn_speed" if set(args.dtypes) & set(TARGETED) else "nn_speed_16"
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    sizes = [1 << s for s in args.sizes]
    columns = [(d, t) for d in args.dtypes for t in args.threads]
    over = [r for r in rows if r["ratio"] > TARGET and r["dtype"] in TARGETED]
    text = [
        begin,
        "### relukit.nn vs torch.nn, forward + backward (issue 11"
        + ("" if name == "nn_speed" else "; 16-bit, no target")
        + ")",
        "",
        f"`python benchmarks/nn_speed.py` on {platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other work), torch {torch.__version__}, relukit {relukit.__version__}, "
        f"{datetime.date.today().isoformat()}; load average (1, 5, 15 min) {before} before, "
        f"{after} after; {seconds / 60:.1f} min. Cell: relukit.nn time / torch.nn time for one "
        f"`m(x).backward(g)`, best of 5 interleaved blocks (3 above 0.1 s a call), "
        f"input `(n/64, 64)`; "
        f"{native()} (below it relukit.nn runs PyTorch's operation). "
        + (
            f"Bold: above {TARGET} in float32/float64 ({len(over)} of "
            f"{sum(r['dtype'] in TARGETED for r in rows)} cells). "
            if name == "nn_speed"
            else "No target for 16-bit dtypes. "
        )
        + noise(rows),
        "",
        *table(rows, sizes, columns),
        end,
    ]
    path = HERE / "RESULTS.md"
    results = path.read_text()
    block = "\n".join(text)
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(results):
        results = pattern.sub(lambda _: block, results)
    else:
        results = results.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(results)
    (HERE / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 14, 18, 20, 22, 24])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--members", nargs="+", default=None, help="case names, e.g. ReLU")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per cell and module")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    chosen = [
        c
        for c in cases()
        if args.members is None or c.name.split("(")[0].split()[0] in args.members
    ]
    before, start = load(), time.perf_counter()
    rows = []
    for count in args.threads:
        torch.set_num_threads(count)
        threads.set_num_threads(count)
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            for case in chosen:
                for s in args.sizes:
                    result = measure(case, 1 << s, dtype, args.budget)
                    if result is None:
                        print(f"{case.name:12s} {dtype_name}: torch.nn has no kernel", flush=True)
                        break
                    row = {"case": case.name, "n": 1 << s, "dtype": dtype_name, "threads": count}
                    row["same_op"] = case.same_op
                    rows.append(row | result)
                    print(
                        f"{case.name:12s} 2^{s:<2d} {dtype_name:8s} {count}t "
                        f"torch {result['torch_s'] * 1e6:10.1f} µs  relukit "
                        f"{result['relukit_s'] * 1e6:10.1f} µs  ratio {result['ratio']:.3f}",
                        flush=True,
                    )
    after = load()
    if not args.no_write:
        write(rows, args, before, after, time.perf_counter() - start)


if __name__ == "__main__":
    main()
