"""Every piecewise-linear member's mask path against a copy of the same bytes (issue 13).

Issue 13 asks that ``forward_with_mask`` and ``backward_from_mask`` run at 0.85 of a copy or
better from 2^16 elements up, for every piecewise-linear member (leaky_relu, prelu, rrelu and
general_relu included) and every float dtype. ``benchmarks/kernels.py`` covers relu, leaky_relu
and relu6; this covers the members as people bind them:

- relu, relu6 and hardtanh (their bounds), leaky_relu (slope 0.01);
- prelu with one weight (0.25, which runs as leaky_relu of it) and with one per channel (64
  channels along axis 1 of an ``(n/64, 64)`` array);
- rrelu in evaluation (the mean slope) and in training (slopes drawn per element, ``seed=0``);
- general_relu with a slope and a threshold (one bit per element), and with a slope, a
  threshold below 0 and a cap (two bits: three pieces).

Each call writes into a preallocated ``out=`` (the mask is new each forward call, as it is in
training). For each dtype, thread count and size, the calls and the copies of ``relukit
bench`` (the best of ``np.copyto``, ``torch copy_`` and relukit's streaming copy, on the same
thread count) are timed in interleaved rounds (best of ``--repeats``); a cell is the copy's
time over relukit's (at least 0.85 meets the target).

    python benchmarks/mask_paths.py [--sizes 2^16,2^20,2^24] [--repeats 3]
                                    [--members "prelu, 64" ...] [--write]

Prints a Markdown table; with ``--write`` puts it into ``benchmarks/RESULTS.md`` between its
markers. About 3 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import relukit
from relukit import threads
from relukit.bench import Arrays, _best, _parse_size, limits, machine_info
from relukit.family import MEMBERS as FAMILY

HERE = Path(__file__).parent
BEGIN = "<!-- benchmarks/mask_paths.py: begin (generated) -->"
END = "<!-- benchmarks/mask_paths.py: end -->"
DTYPES = ("float32", "float64", "bfloat16", "float16")
THREADS = (1, 2)
SIZES = (2**16, 2**20, 2**24)
CHANNELS = 64
TARGET = 0.85

# the bindings timed of the members that take more than their defaults as people use them
# (label: parameters); the others are timed as bound by default
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "prelu": {
        "one weight": {},
        "64 channels": {"weight": tuple(np.linspace(0.05, 0.5, CHANNELS))},
    },
    "rrelu": {"evaluation": {}, "training": {"training": True, "seed": 0}},
    "general_relu": {
        "1 bit": {"negative_slope": 0.1, "threshold": 0.5},
        "2 bits": {"negative_slope": 0.1, "threshold": -0.5, "max_value": 6.0},
    },
}

# name: (member, its parameters, whether the input is (n/64, 64) for one slope per channel),
# for every member the registry gives a mask path
MEMBERS: dict[str, tuple[str, dict[str, Any], bool]] = {
    (f"{spec.name}, {label}" if spec.name in VARIANTS else spec.name): (
        spec.name,
        params,
        label == "64 channels",
    )
    for spec in FAMILY
    if spec.mask_code is not None
    for label, params in VARIANTS.get(spec.name, {"": {}}).items()
}

Timer = Callable[[], Any]


def timers(a: Arrays, names: list[str] | None = None) -> dict[tuple[str, str], Timer]:
    """(member, op) -> the call, on ``a``'s arrays (shaped per channel where the member is),
    for the rows ``names`` of :data:`MEMBERS` (all of them by default)."""
    found: dict[tuple[str, str], Timer] = {}
    for name in MEMBERS if names is None else names:
        member, params, channels = MEMBERS[name]
        function = relukit.get(member, **params)
        shape = (a.n // CHANNELS, CHANNELS) if channels else (a.n,)
        x, g, y = a.x.reshape(shape), a.g.reshape(shape), a.y.reshape(shape)
        _, mask = function.forward_with_mask(x, out=y)

        def forward(f: Any = function, x: Any = x, y: Any = y) -> Any:
            return f.forward_with_mask(x, out=y)

        def backward(f: Any = function, g: Any = g, mask: Any = mask, y: Any = y) -> Any:
            return f.backward_from_mask(g, mask, out=y)

        found[name, "forward_with_mask"] = forward
        found[name, "backward_from_mask"] = backward
    return found


def measure(
    dtype: str, n: int, count: int, repeats: int, min_time: float, names: list[str] | None = None
) -> dict[tuple[str, str], float]:
    """(member, op) -> the copy's time over relukit's, all timed in the same rounds."""
    a = Arrays(dtype, n)
    ours = timers(a, names)
    copies = limits(a)["copy"]
    torch_threads = torch.get_num_threads()
    try:
        with threads.limit(count):
            torch.set_num_threads(count)
            named: dict[str, Timer] = {f"copy {k}": v for k, v in copies.items()}
            named.update({f"{member}|{op}": fn for (member, op), fn in ours.items()})
            best = _best(named, repeats, min_time)
    finally:
        torch.set_num_threads(torch_threads)
    copy = min(best[f"copy {k}"] for k in copies)
    return {key: copy / best[f"{key[0]}|{key[1]}"] for key in ours}


def table(
    cells: dict[tuple[str, int, int], dict[tuple[str, str], float]],
    sizes: Any,
    names: list[str] | None = None,
) -> str:
    names = list(MEMBERS) if names is None else names
    columns = [(t, n) for t in THREADS for n in sizes]
    head = " | ".join(f"{t} thr 2^{n.bit_length() - 1}" for t, n in columns)
    lines = [f"| member | op | dtype | {head} |", "|---" * (3 + len(columns)) + "|"]
    missed = 0
    for name in names:
        for op in ("forward_with_mask", "backward_from_mask"):
            for dtype in DTYPES:
                values = []
                for t, n in columns:
                    ratio = cells[dtype, t, n][name, op]
                    missed += ratio < TARGET
                    text = f"{math.floor(ratio * 100) / 100:.2f}"  # (0.849 shows as 0.84)
                    values.append(f"**{text}**" if ratio < TARGET else text)
                lines.append(f"| {name} | {op} | {dtype} | {' | '.join(values)} |")
    total = len(names) * 2 * len(DTYPES) * len(columns)
    lines.append("")
    lines.append(
        f"{total - missed} of {total} cells at {TARGET} of a copy or better (bold: below)."
    )
    return "\n".join(lines)


def section(body: str, seconds: float) -> str:
    info = machine_info()
    return "\n".join(
        [
            BEGIN,
            f"`python benchmarks/mask_paths.py --write` ({seconds / 60:.1f} min). Machine: "
            f"{info['cpu']}, {info['cores']} cores; Python {info['python']}, NumPy "
            f"{info['numpy']}, Numba {info['numba']}, PyTorch {info['torch']}; {info['date']}; "
            f"load average at the end {info['load_before']}.",
            "",
            "Each cell: the best copy of the same bytes (`np.copyto`, `torch copy_`, relukit's "
            "streaming copy, on the same threads) over relukit's call with `out=`, timed in "
            "the same interleaved rounds; 1 or more: as fast as a copy.",
            "",
            body,
            END,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=None, help="e.g. 2^16,2^20")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.02)
    parser.add_argument("--write", action="store_true", help="into benchmarks/RESULTS.md")
    parser.add_argument(
        "--members", nargs="+", default=None, help="rows whose name starts with one of these"
    )
    args = parser.parse_args()
    sizes = SIZES if args.sizes is None else tuple(_parse_size(s) for s in args.sizes.split(","))
    names = list(MEMBERS)
    if args.members is not None:
        names = [n for n in MEMBERS if n.startswith(tuple(args.members))]
        if not names or args.write:
            parser.error("--members names no row" if not names else "--write takes every row")
    start = time.perf_counter()
    cells = {}
    for dtype in DTYPES:
        for n in sizes:
            for count in THREADS:
                cells[dtype, count, n] = measure(
                    dtype, n, count, args.repeats, args.min_time, names
                )
                print(f"{dtype} 2^{n.bit_length() - 1} {count} thread(s) done", flush=True)
    text = section(table(cells, sizes, names), time.perf_counter() - start)
    print(text)
    if args.write:
        path = HERE / "RESULTS.md"
        results = path.read_text()
        if BEGIN in results:
            first, last = results.index(BEGIN), results.index(END) + len(END)
            results = results[:first] + text + results[last:]
        else:
            anchor = "### Accuracy against the true function (issue 13)"
            title = "### Every mask path against a copy (issue 13)"
            results = results.replace(anchor, f"{title}\n\n{text}\n\n{anchor}")
        path.write_text(results)


if __name__ == "__main__":
    main()
