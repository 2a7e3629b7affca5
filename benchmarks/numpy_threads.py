"""A NumPy program's split calls: on PyTorch's OpenMP team, or on relukit's own pool.

A process that has not imported PyTorch has no OpenMP runtime loaded. relukit then loads the one
PyTorch's wheel ships (``team._pytorch_runtime``), so that its split calls run on that team with
no Python and no GIL, as they do after ``import torch``. With ``RELUKIT_OPENMP=0`` they run on
relukit's own pool (``relukit.threads.run_all``), where each chunk's call takes the GIL: how
every such process ran them before. This starts child processes that never import PyTorch,
alternating the two (team, pool, pool, team, ...), and times in each, float32 N(0, 1), best of
:data:`ROUNDS` rounds: relu out=, relu allocating, relu forward_with_mask(out=) and gelu out=
on 1 and 2 threads, beside NumPy's ``np.maximum(x, 0, out=y)`` and ``np.copyto`` (one thread).
The table gives the median over the processes of each mode. Ratios above 1: relukit faster.
Prints a Markdown table and, with ``--write``, puts it into ``benchmarks/RESULTS.md`` between
its markers.

    python benchmarks/numpy_threads.py [--processes 3] [--sizes 14,16,18,20,22] [--write]

About a minute on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BEGIN = "<!-- benchmarks/numpy_threads.py: begin (generated) -->"
END = "<!-- benchmarks/numpy_threads.py: end -->"
ROUNDS = 15
MODES = ("team", "pool")
CALLS = ("relu out=", "relu", "relu forward_with_mask out=", "gelu out=")
PEERS = {
    "relu out=": "np.maximum out=",
    "relu": "np.maximum",
    "relu forward_with_mask out=": "np.copyto",
}


def child(sizes: list[int]) -> dict[str, float]:
    """µs per call, keyed ``"call|log2 n|threads"`` (NumPy's under ``threads`` 1), measured in
    this process, which must not import PyTorch."""
    import numpy as np

    import relukit
    from relukit.kernels.cpu import team

    timed: dict[str, float] = {}
    for e in sizes:
        n = 1 << e
        x = np.random.default_rng(e).standard_normal(n).astype(np.float32)
        y = np.empty_like(x)
        calls = _calls(relukit, np, x, y)
        reps = max(3, int(2e-3 / (n * 1.5e-9 + 3e-6)))
        for count in (1, 2):
            with relukit.threads.limit(count):
                chosen = {k: f for k, f in calls.items() if count == 1 or k in CALLS}
                for call in chosen.values():
                    call()
                    call()  # (a grain measured, a ufunc made)
                for _ in range(ROUNDS):
                    for name, call in chosen.items():
                        start = time.perf_counter()
                        for _ in range(reps):
                            call()
                        seconds = (time.perf_counter() - start) / reps * 1e6
                        key = f"{name}|{e}|{count}"
                        timed[key] = min(timed.get(key, float("inf")), seconds)
    if "torch" in sys.modules:
        raise SystemExit("the child imported PyTorch")
    timed["team"] = float(team.available())
    return timed


def _calls(relukit: Any, np: Any, x: Any, y: Any) -> dict[str, Callable[[], Any]]:
    """relukit's calls on ``x`` (into ``y``) and NumPy's peers, by name."""
    return {
        "relu out=": lambda: relukit.relu(x, out=y),
        "relu": lambda: relukit.relu(x),
        "relu forward_with_mask out=": lambda: relukit.relu.forward_with_mask(x, out=y),
        "gelu out=": lambda: relukit.gelu(x, out=y),
        "np.maximum out=": lambda: np.maximum(x, 0, out=y),
        "np.maximum": lambda: np.maximum(x, 0),
        "np.copyto": lambda: np.copyto(y, x),
    }


def _run_child(mode: str, sizes: list[int]) -> dict[str, float]:
    env = {**os.environ, "RELUKIT_OPENMP": "1" if mode == "team" else "0"}
    command = [sys.executable, __file__, "--child", ",".join(map(str, sizes))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found: dict[str, float] = json.loads(result.stdout)
    if found.pop("team") != (mode == "team"):
        raise SystemExit(f"the {mode} child found team.available() = {mode != 'team'}")
    return found


def table(sizes: list[int], processes: int) -> str:
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for j in range(processes):
        for mode in MODES if j % 2 == 0 else MODES[::-1]:
            runs[mode].append(_run_child(mode, sizes))

    def median(mode: str, key: str, per: str | None = None) -> float:
        """The median over ``mode``'s processes of ``key``'s time (over ``per``'s, each
        process's own: a ratio that the process's state, slow or fast, does not move)."""
        return statistics.median(run[key] / (run[per] if per else 1.0) for run in runs[mode])

    rows = [
        f"float32 N(0, 1), processes that never import PyTorch, µs per call: the median over "
        f"{processes} processes per mode (alternating) of each one's best of {ROUNDS} rounds. "
        "team: PyTorch's OpenMP runtime loaded from its wheel (the default); pool: "
        "`RELUKIT_OPENMP=0`, relukit's own threads, as before. Speed-up: each process's time "
        "on 1 thread over its time on 2 (this machine's processes run in one of two states, "
        "fast or slow, and each ratio is taken within one). NumPy's calls run on one thread, "
        "in the team's processes.",
        "",
        "| call | n | team: 1 thread | 2 threads | speed-up | pool: 1 thread | 2 threads | "
        "speed-up | NumPy's | NumPy's / team's 2 threads |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in sizes:
        for name in CALLS:
            one, two = f"{name}|{e}|1", f"{name}|{e}|2"
            cells = []
            for mode in MODES:
                cells += [f"{median(mode, one):.1f}", f"{median(mode, two):.1f}"]
                cells.append(f"**{1 / median(mode, two, one):.2f}**")
            peer = PEERS.get(name)
            if peer is None:
                cells += ["-", "-"]
            else:
                key = f"{peer}|{e}|1"
                cells += [f"{median('team', key):.1f} ({peer})", f"{median('team', key, two):.2f}"]
            rows.append(f"| {name} | 2^{e} | {' | '.join(cells)} |")
    return "\n".join(rows)


def _sizes(text: str) -> list[int]:
    """``--sizes``: comma-separated powers of two from 2^10 to 2^24."""
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated integers") from None
    if not all(10 <= e <= 24 for e in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: each log2 size must be from 10 to 24")
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default="14,16,18,20,22", help="log2 sizes")
    parser.add_argument("--processes", type=int, choices=range(1, 21), default=3)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", type=_sizes, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        print(json.dumps(child(options.child)))
        return
    start = time.perf_counter()
    load = os.getloadavg()
    text = table(options.sizes, options.processes)
    seconds = time.perf_counter() - start
    text += (
        f"\n\n`python benchmarks/numpy_threads.py` ({seconds:.0f} s; load average "
        f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after)."
    )
    print(text)
    if options.write:
        from split_calls import write

        write(text, BEGIN, END)


if __name__ == "__main__":
    main()
