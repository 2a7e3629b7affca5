"""Speed of the smooth members against PyTorch, side by side (issue 13's smooth targets).

For gelu (both forms), silu, mish, elu, selu, celu, softplus, sigmoid and tanh, float32 by
default: ``f(x, out=y)`` against PyTorch's ``out=`` forward (``torch.selu``/``torch.celu`` have
no out overload: allocating), and ``f.derivative(x, out=y)`` against ``torch.autograd``'s
backward kernel at the same size (``aten.*_backward`` with a gradient of ones; sigmoid's and
tanh's take the forward's output, as autograd's do), on 1 and 2 threads (PyTorch on the same
count). Each pair is timed interleaved, best of several calls, twice; a ratio above 1 means
relukit is faster. Prints a Markdown table and, with ``--write``, puts it into
``benchmarks/RESULTS.md`` between its markers.

    python benchmarks/smooth_speed.py [--sizes 16,24] [--dtype float32] [--scale 3] [--write]

``--scale`` sets the inputs' spread, ``scale·N(0, 1)``: 3 by default (18 % of the elements
beyond ±4, where the float32 centre tables end); 30 reaches the far tails (|x| up to 150),
where the float32 formulas once went through subnormal numbers (a microcode assist each on
Intel cores). ``--write`` records only the default spread.

About 2 minutes for the default sizes 2^16 and 2^24 on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import relukit
from relukit import threads

HERE = Path(__file__).parent
BEGIN = "<!-- benchmarks/smooth_speed.py: begin (generated) -->"
END = "<!-- benchmarks/smooth_speed.py: end -->"
aten = torch.ops.aten
SELU = (1.6732632423543772, 1.0507009873554805)

Forward = Callable[[torch.Tensor, torch.Tensor], Any]
Backward = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]

# member: (relukit name, parameters, PyTorch forward(x, out), PyTorch backward(ones, x, y))
CASES: dict[str, tuple[str, dict[str, Any], Forward, Backward]] = {
    "gelu": ("gelu", {}, lambda t, o: aten.gelu.out(t, out=o),
             lambda g, t, y: aten.gelu_backward(g, t)),
    "gelu-tanh": ("gelu", {"approximate": "tanh"},
                  lambda t, o: aten.gelu.out(t, approximate="tanh", out=o),
                  lambda g, t, y: aten.gelu_backward(g, t, approximate="tanh")),
    "silu": ("silu", {}, lambda t, o: aten.silu.out(t, out=o),
             lambda g, t, y: aten.silu_backward(g, t)),
    "mish": ("mish", {}, lambda t, o: aten.mish.out(t, out=o),
             lambda g, t, y: aten.mish_backward(g, t)),
    "elu": ("elu", {}, lambda t, o: aten.elu.out(t, out=o),
            lambda g, t, y: aten.elu_backward(g, 1.0, 1.0, 1.0, False, t)),
    "selu": ("selu", {}, lambda t, o: torch.selu(t),
             lambda g, t, y: aten.elu_backward(g, SELU[0], SELU[1], 1.0, False, t)),
    "celu": ("celu", {}, lambda t, o: torch.celu(t),
             lambda g, t, y: aten.elu_backward(g, 1.0, 1.0, 1.0, False, t)),
    "softplus": ("softplus", {}, lambda t, o: aten.softplus.out(t, 1.0, 20.0, out=o),
                 lambda g, t, y: aten.softplus_backward(g, t, 1.0, 20.0)),
    "sigmoid": ("sigmoid", {}, lambda t, o: torch.sigmoid(t, out=o),
                lambda g, t, y: aten.sigmoid_backward(g, y)),
    "tanh": ("tanh", {}, lambda t, o: torch.tanh(t, out=o),
             lambda g, t, y: aten.tanh_backward(g, y)),
}  # fmt: skip


def best(function: Callable[[], Any], n: int) -> float:
    repeats = max(3, min(200, (1 << 22) // n))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _timers(member: str, x: Any, y: Any, tx: Any, ty: Any, ones: Any, out: Any) -> Any:
    name, params, forward, backward = CASES[member]
    f = relukit.get(name, **params)
    return (
        lambda: f(x, out=y),
        lambda: forward(tx, ty),
        lambda: f.derivative(x, out=y),
        lambda: backward(ones, tx, out),
    )


def warm_pytorch() -> None:
    """Put PyTorch in the state a real workload finds it: its float64 gelu and gelu backward
    (the erf form) take 17.7 / 18.6 ns per element on 2^16 N(0, 1) elements, 1 thread, until
    the process has run ``torch.relu``, then 3.1 / 4.5 (AMD EPYC, torch 2.13.0+cpu; the other
    members' operators do not change it, and their own speed, float32 and float64, is the same
    either way). Without this, PyTorch's float64 gelu looked 4-6x slower than it is."""
    torch.relu(torch.ones(1 << 10))


def measure(
    sizes: list[int], dtype: np.dtype, members: list[str], scale: float = 3.0
) -> list[dict[str, Any]]:
    warm_pytorch()
    rows = []
    for log2 in sizes:
        n = 1 << log2
        x = (np.random.default_rng(0).standard_normal(n) * scale).astype(dtype)
        y = np.empty_like(x)
        tx = torch.from_numpy(x)
        ty, ones = torch.empty_like(tx), torch.ones_like(tx)
        tout = torch.sigmoid(tx)
        for count in (1, 2):
            torch.set_num_threads(count)
            with threads.limit(count):
                for member in members:
                    out = torch.tanh(tx) if member == "tanh" else tout
                    timers = _timers(member, x, y, tx, ty, ones, out)
                    for timer in timers:
                        timer()
                    rounds = [[best(t, n) for t in timers] for _ in range(2)]
                    ours, theirs, ours_d, theirs_d = (min(v) for v in zip(*rounds, strict=True))
                    rows.append({
                        "member": member, "n": log2, "threads": count,
                        "forward_ns": ours / n * 1e9, "torch_ns": theirs / n * 1e9,
                        "derivative_ns": ours_d / n * 1e9, "backward_ns": theirs_d / n * 1e9,
                    })  # fmt: skip
                    print(_row(rows[-1]), flush=True)
    return rows


def _row(r: dict[str, Any]) -> str:
    return (
        f"| {r['member']} | 2^{r['n']} | {r['threads']} | {r['forward_ns']:.2f} | "
        f"{r['torch_ns']:.2f} | **{r['torch_ns'] / r['forward_ns']:.2f}** | "
        f"{r['derivative_ns']:.2f} | {r['backward_ns']:.2f} | "
        f"**{r['backward_ns'] / r['derivative_ns']:.2f}** |"
    )


def markdown(
    rows: list[dict[str, Any]], dtype: np.dtype, seconds: float, load: str, scale: float = 3.0
) -> str:
    spread = "" if scale == 3.0 else f" --scale {scale:g}"
    head = (
        f"{dtype.name}, inputs {scale:g}·N(0, 1), `python benchmarks/smooth_speed.py{spread}` "
        f"({seconds:.0f} s; load average "
        f"{load}). ns per element; ratio = PyTorch's time / relukit's (above 1: relukit "
        "faster).\n\n"
        "| member | n | threads | out= | PyTorch | ratio | derivative(out=) | "
        "autograd backward | ratio |\n|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "\n".join(_row(r) for r in rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,24", help="log2 of the sizes, comma-separated")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--members", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=3.0, help="inputs: scale·N(0, 1)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    start = time.time()
    before = "/".join(f"{v:.2f}" for v in os.getloadavg())
    if args.write and args.scale != 3.0:
        parser.error("--write records the default spread only (--scale 3)")
    rows = measure(
        [int(s) for s in args.sizes.split(",")],
        np.dtype(args.dtype),
        args.members.split(","),
        args.scale,
    )
    load = f"{before} before, {'/'.join(f'{v:.2f}' for v in os.getloadavg())} after"
    text = markdown(rows, np.dtype(args.dtype), time.time() - start, load, args.scale)
    print(text)
    if args.write:
        path = HERE / "RESULTS.md"
        results = path.read_text()
        if BEGIN in results:
            head, rest = results.split(BEGIN, 1)
            results = head + BEGIN + "\n" + text + END + rest.split(END, 1)[1]
        else:
            results += f"\n### Smooth members against PyTorch\n\n{BEGIN}\n{text}{END}\n"
        path.write_text(results)


if __name__ == "__main__":
    main()
