"""A NumPy program's split calls: on relukit's own team, on relukit's pool, on PyTorch's team.

A process that has not imported PyTorch has no OpenMP runtime loaded. Its split calls run on
relukit's own team of compiled threads (``relukit.kernels.cpu.pool``: no Python and no GIL, the
entry point of OpenMP's ``GOMP_parallel``), as they run on PyTorch's team after ``import
torch``. With ``RELUKIT_OPENMP=0`` they run on relukit's pool (``relukit.threads.run_all``),
where each chunk's call takes the GIL: how every such process ran them before session 36. This
starts child processes, the three modes in turn ("own": never imports PyTorch; "pool": the
same with ``RELUKIT_OPENMP=0``; "torch": imports PyTorch first, so its team takes the calls),
and times in each, float32 N(0, 1), best of :data:`ROUNDS` rounds: relu out=, relu
allocating, relu forward_with_mask(out=) and gelu out=, on 1 and on 2 threads alternating
within each round, and NumPy's ``np.maximum(x, 0, out=y)``, ``np.maximum(x, 0)`` and
``np.copyto`` (one thread) in the same rounds. The table gives the median over the processes
of each mode. Ratios above 1: relukit faster. Prints a Markdown table and, with ``--write``,
puts it into ``benchmarks/RESULTS.md`` between its markers.

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

from split_calls import log2_sizes, timed, write  # (a sibling script; imports no PyTorch)

HERE = Path(__file__).parent
BEGIN = "<!-- benchmarks/numpy_threads.py: begin (generated) -->"
END = "<!-- benchmarks/numpy_threads.py: end -->"
ROUNDS = 15
MODES = ("own", "pool", "torch")
CALLS = ("relu out=", "relu", "relu forward_with_mask out=", "gelu out=")
PEERS = {
    "relu out=": "np.maximum out=",
    "relu": "np.maximum",
    "relu forward_with_mask out=": "np.copyto",
}


def child(sizes: list[int], torch_first: bool) -> dict[str, float]:
    """µs per call, keyed ``"call|log2 n|threads"`` (NumPy's under ``threads`` 1), measured in
    this process, which imports PyTorch only with ``torch_first`` (and then first)."""
    if torch_first:
        import torch  # noqa: F401

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
                for name in CALLS:
                    calls[name]()
                    calls[name]()  # (a grain measured, a ufunc made)
        for round_ in range(ROUNDS):
            for count in (1, 2) if round_ % 2 == 0 else (2, 1):
                with relukit.threads.limit(count):
                    for name, call in calls.items():
                        if count == 2 and name not in CALLS:
                            continue  # (NumPy's calls: one thread)
                        start = time.perf_counter()
                        for _ in range(reps):
                            call()
                        seconds = (time.perf_counter() - start) / reps * 1e6
                        key = f"{name}|{e}|{count}"
                        timed[key] = min(timed.get(key, float("inf")), seconds)
    if ("torch" in sys.modules) != torch_first:
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
    env = {**os.environ, "RELUKIT_OPENMP": "0" if mode == "pool" else "1"}
    command = [sys.executable, __file__, "--child", ",".join(map(str, sizes))]
    if mode == "torch":
        command.append("--torch-first")
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found: dict[str, float] = json.loads(result.stdout)
    if found.pop("team") != (mode != "pool"):
        raise SystemExit(f"the {mode} child found team.available() = {mode == 'pool'}")
    return found


def table(sizes: list[int], processes: int) -> str:
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for j in range(processes):
        for mode in MODES[j % 3 :] + MODES[: j % 3]:
            runs[mode].append(_run_child(mode, sizes))

    def median(mode: str, key: str, per: str | None = None) -> float:
        """The median over ``mode``'s processes of ``key``'s time (over ``per``'s, each
        process's own: a ratio that the process's state, slow or fast, does not move)."""
        return statistics.median(run[key] / (run[per] if per else 1.0) for run in runs[mode])

    rows = [
        f"float32 N(0, 1), µs per call: the median over {processes} processes per mode (in "
        f"turn) of each one's best of {ROUNDS} rounds. own: a process that never imports "
        "PyTorch, on relukit's own team (the default); pool: the same with `RELUKIT_OPENMP=0`, "
        "on relukit's pool, as such a process ran before; torch: a process that imported "
        "PyTorch first, on its team. Speed-up: each process's time on 1 thread over its time "
        "on 2, alternating within each round (this machine's processes run in one of two "
        "states, fast or slow, and each ratio is taken within one). NumPy's calls run on one "
        "thread, in the same rounds of the own processes.",
        "",
        "| call | n | own: 1 thread | 2 threads | speed-up | pool: 1 thread | 2 threads | "
        "speed-up | torch: 1 thread | 2 threads | speed-up | NumPy's | NumPy's / own's 2 "
        "threads |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
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
                cells += [f"{median('own', key):.1f} ({peer})", f"{median('own', key, two):.2f}"]
            rows.append(f"| {name} | 2^{e} | {' | '.join(cells)} |")
    return "\n".join(rows)


_sizes = log2_sizes(10, 24)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default="14,16,18,20,22", help="log2 sizes")
    parser.add_argument("--processes", type=int, choices=range(1, 21), default=3)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--child", type=_sizes, help=argparse.SUPPRESS)
    parser.add_argument("--torch-first", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        print(json.dumps(child(options.child, options.torch_first)))
        return
    text = timed("numpy_threads.py", lambda: table(options.sizes, options.processes))
    print(text)
    if options.write:
        write(text, BEGIN, END)


if __name__ == "__main__":
    main()
