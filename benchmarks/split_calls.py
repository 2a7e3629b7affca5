"""What a split call's Python costs, side by side in one process (issue 13's mid sizes).

A call that splits over threads takes one of two routes. Where its output does not stream, the
map kernels' calls (forward and derivative: out=, allocating, in place) go to the ufunc whose
loop splits them on the OpenMP team (``host.Calls.split_ufunc``): from NumPy's C to the team's
with no Python between, from ``host.SPLIT_BELOW`` elements up (in place
``host.INPLACE_SPLIT_BELOW``; twice the grain measured on that
ufunc's own hand-off, ``host.ufunc_grain``). The others (the mask paths, streamed outputs) are
planned in Python, from ``host.WHOLE_BELOW`` up (twice the grain measured on that route's
hand-off): whether the call runs whole, whether its output streams, its chunks and the team's
launch; a call repeated with the same size, thread count and output launches the plan the last
one kept (``host.Calls._plan``).

This times each public call four ways: through Python without kept plans (``Calls._plan`` a
no-op and the plans dropped) and with them (the split ufuncs off: ``Calls.split_ufunc``
declining, each call still asking it, some 0.15 µs), through split ufuncs made for the planned
route's grain and threshold (as session 25 made them), and as it runs by default, interleaved
round by round in one process, beside PyTorch's peer (``out=``: ``torch.clamp_min(out=)``;
allocating: ``torch.relu``; in place: ``torch.relu_``; the mask paths: ``Tensor.copy_`` of the
same bytes; gelu: ``aten.gelu.out``), all on the same thread count, float32 N(0, 1) (in place:
its absolute values, which relu leaves as they are). The "without" column still looks for a
plan and finds none (a dictionary lookup, some 0.1 µs). A ratio is the peer's time over
relukit's (above 1: relukit faster). Prints a Markdown table and, with ``--write``, puts it
into ``benchmarks/RESULTS.md`` between its markers.

    python benchmarks/split_calls.py [--sizes 15,16,17,18,19,20] [--threads 2] [--write]

About 10 seconds on a 2-core machine. From 2^21 elements the calls' own time varies by more
than their Python (a few µs) from round to round, so the default sizes stop at 2^20.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import relukit
from relukit import threads
from relukit.kernels.cpu import host

HERE = Path(__file__).parent
BEGIN = "<!-- benchmarks/split_calls.py: begin (generated) -->"
END = "<!-- benchmarks/split_calls.py: end -->"
ROUNDS = 25

Timer = Callable[[], Any]


def cases(n: int) -> dict[str, tuple[Timer, Timer, str]]:
    """name: (relukit's call, the peer's, the peer's name) on ``n`` float32 elements."""
    import torch  # (here: benchmarks/numpy_threads.py imports this module without PyTorch)

    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    y, z = np.empty_like(x), np.abs(x)
    tx, ty, tz = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(z)
    relu, gelu = relukit.relu, relukit.gelu
    _, mask = relu.forward_with_mask(x)
    aten = torch.ops.aten
    return {
        "relu out=": (lambda: relu(x, out=y), lambda: torch.clamp_min(tx, 0, out=ty), "clamp_min"),
        "relu": (lambda: relu(x), lambda: torch.relu(tx), "torch.relu"),
        "relu in place": (lambda: relu(z, out=z), lambda: torch.relu_(tz), "relu_"),
        "relu forward_with_mask out=": (
            lambda: relu.forward_with_mask(x, out=y),
            lambda: ty.copy_(tx),
            "copy",
        ),
        "relu backward_from_mask out=": (
            lambda: relu.backward_from_mask(g, mask, out=y),
            lambda: ty.copy_(tx),
            "copy",
        ),
        "gelu out=": (lambda: gelu(x, out=y), lambda: aten.gelu.out(tx, out=ty), "gelu.out"),
    }


def _routes(
    mode: str,
    kept: Callable[..., None],
    split: Callable[..., Any],
    below: tuple[list[int], list[int]],
) -> None:
    """The routes of ``mode``: "without" (Python, ``Calls._plan`` a no-op), "with" (Python,
    plans kept), "planned grain" (the split ufuncs as session 25 made them: for the planned
    route's grain, from ``host.WHOLE_BELOW`` up) or "default" (as relukit runs, ``below`` the
    split ufuncs' own ``host.SPLIT_BELOW`` and ``host.INPLACE_SPLIT_BELOW``); "without" and
    "with" have the split ufuncs off
    (and calls below ``host.WHOLE_BELOW`` run whole, as in session 25).
    Every plan and split ufunc of the members timed here is dropped first."""
    plan = (lambda *args: None) if mode == "without" else kept
    host.Calls._plan = plan  # type: ignore[method-assign]
    ufuncs = mode in ("planned grain", "default")
    host.Calls.split_ufunc = split if ufuncs else lambda *args: False  # type: ignore
    planned = mode == "planned grain"
    host.ufunc_grain = _planned_grain if planned else _UFUNC_GRAIN
    # (outside "default", calls below WHOLE_BELOW run whole by the small calls' route, as
    # before the split ufuncs had a threshold of their own)
    default = mode == "default"
    host.SPLIT_BELOW[:] = below[0] if default else host.WHOLE_BELOW
    host.INPLACE_SPLIT_BELOW[:] = below[1] if default else host.WHOLE_BELOW
    for function in (relukit.relu, relukit.gelu):
        for calls in (function._fast._calls if function._fast else {}).values():
            if calls:
                calls._plans.clear()
                calls.split_ufuncs.clear()


MODES = ("without", "with", "planned grain", "default", "peer")
_CLASSES = (("piecewise", host.LINEAR), ("smooth float32", host.SMOOTH))
_UFUNC_GRAIN = host.ufunc_grain


def _planned_grain(cost: int, inplace: bool = False) -> int:
    return host.grain(cost)


def measure(n: int) -> list[tuple[str, float, float, float, float, float, str]]:
    """Per case: (name, µs without plans, µs with, µs with the planned grain, µs by default,
    the peer's µs, the peer's name), best of :data:`ROUNDS` rounds, the five interleaved in
    each (in turn forwards and backwards)."""
    timed = cases(n)
    kept, split = host.Calls._plan, host.Calls.split_ufunc
    for ours, _, _ in timed.values():  # (measures every grain: below is the split ufuncs')
        ours()
        ours()
    below = (list(host.SPLIT_BELOW), list(host.INPLACE_SPLIT_BELOW))
    reps = max(3, int(4e-3 / (n * 1.5e-9 + 3e-6)))
    best: dict[tuple[str, str], float] = {}
    try:
        for round_ in range(ROUNDS):
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:  # (no order favoured)
                if mode != "peer":
                    _routes(mode, kept, split, below)
                for name, (ours, peer, _) in timed.items():
                    call = peer if mode == "peer" else ours
                    call()
                    call()  # (a plan kept, or a ufunc made, where it is)
                    start = time.perf_counter()
                    for _ in range(reps):
                        call()
                    seconds = (time.perf_counter() - start) / reps * 1e6
                    best[mode, name] = min(best.get((mode, name), float("inf")), seconds)
    finally:
        _routes("default", kept, split, below)
    return [
        (name, *(best[mode, name] for mode in MODES), peer_name)  # type: ignore[misc]
        for name, (_, _, peer_name) in timed.items()
    ]


def table(sizes: list[int], count: int) -> str:
    rows = [
        f"float32 N(0, 1), {count} threads (PyTorch too), µs per call, best of {ROUNDS} rounds "
        "interleaved in one process; ratio = the peer's time / relukit's.",
        "",
        "| call | n | without plans | with | planned grain | by default | peer | peer's | "
        "ratio planned grain | ratio by default |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    import torch

    torch_count = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threads.limit(count):
            for e in sizes:
                for name, without, with_, grain, default, peer, peer_name in measure(1 << e):
                    rows.append(
                        f"| {name} | 2^{e} | {without:.2f} | {with_:.2f} | {grain:.2f} | "
                        f"{default:.2f} | {peer:.2f} | {peer_name} | {peer / grain:.2f} | "
                        f"**{peer / default:.2f}** |"
                    )
    finally:
        torch.set_num_threads(torch_count)
    text = "\n".join(rows)
    below = ", ".join(
        f"{name} {host.SPLIT_BELOW[cost]:,} ({host.INPLACE_SPLIT_BELOW[cost]:,} in place)"
        for name, cost in _CLASSES
    )
    whole = ", ".join(f"{name} {host.WHOLE_BELOW[cost]:,}" for name, cost in _CLASSES)
    return (
        f"{text}\n\nMeasured here: the split ufuncs split from (`host.SPLIT_BELOW`, "
        f"`host.INPLACE_SPLIT_BELOW`) {below} elements; the planned route from "
        f"(`host.WHOLE_BELOW`) {whole}."
    )


def write(text: str, begin: str = BEGIN, end: str = END) -> None:
    """``text`` into benchmarks/RESULTS.md between the markers ``begin`` and ``end``."""
    path = HERE / "RESULTS.md"
    document = path.read_text()
    if begin not in document:
        raise SystemExit(f"{path}: no {begin!r} marker")
    head, rest = document.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text}\n{end}{tail}")


def timed(script: str, make: Callable[[], str]) -> str:
    """``make()``'s text and a line saying how it was made: the command, its seconds and the
    load average before and after."""
    start = time.perf_counter()
    load = os.getloadavg()
    text = make()
    seconds = time.perf_counter() - start
    return text + (
        f"\n\n`python benchmarks/{script}` ({seconds:.0f} s; load average "
        f"{load[0]:.2f} before, {os.getloadavg()[0]:.2f} after)."
    )


def log2_sizes(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type for ``--sizes``: comma-separated powers of two from 2^low to 2^high."""

    def sizes(text: str) -> list[int]:
        try:
            found = [int(s) for s in text.split(",")]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated integers") from None
        if not all(low <= e <= high for e in found):
            message = f"{text!r}: each log2 size must be from {low} to {high}"
            raise argparse.ArgumentTypeError(message)
        return found

    return sizes


_sizes = log2_sizes(4, 26)


def _threads(text: str) -> int:
    """``--threads``: a whole number from 1 up."""
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of threads >= 1")
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default="15,16,17,18,19,20", help="log2 sizes")
    parser.add_argument("--threads", type=_threads, default=2)
    parser.add_argument("--write", action="store_true")
    options = parser.parse_args(argv)
    text = timed("split_calls.py", lambda: table(options.sizes, options.threads))
    print(text)
    if options.write:
        write(text)


if __name__ == "__main__":
    main()
