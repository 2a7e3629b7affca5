"""Tensors that require grad against the same tensors detached (relukit.kernels.tracked).

``diff``: on 2^20 elements of 3·N(0, 1) in float32, float64 and bfloat16, how many elements
of ``f(x)`` and of x's gradient (``f(x).backward(ones)``) differ from ``f(x.detach())`` and
``f.vjp(x.detach(), ones)``, for relu, leaky_relu, elu, gelu, silu, mish, softplus, sigmoid
and tanh. ``time``: forward plus backward on a float32 tensor that requires grad, 1,000 and
2^20 elements, 2 threads, best of 5 rounds. Prints Markdown rows; run it on two trees (the
old one on PYTHONPATH) to compare.

    python benchmarks/tracked.py diff
    python benchmarks/tracked.py time
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch

import relukit

MEMBERS = ("relu", "leaky_relu", "elu", "gelu", "silu", "mish", "softplus", "sigmoid", "tanh")


def differences(n: int = 1 << 20) -> list[str]:
    """Markdown rows: per dtype, per member, differing values / differing gradients."""
    rng = np.random.default_rng(0)
    rows = []
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        plain = torch.from_numpy(3 * rng.standard_normal(n)).to(dtype)
        ones = torch.ones_like(plain)
        cells = []
        for name in MEMBERS:
            f = relukit.get(name)
            x = plain.clone().requires_grad_()
            y = f(x)
            y.backward(ones)
            values = int((y.detach() != f(plain)).sum())
            grads = int((x.grad != f.vjp(plain, ones)).sum())
            cells.append(f"{values:,} / {grads:,}")
        rows.append(f"| {str(dtype).removeprefix('torch.')} | " + " | ".join(cells) + " |")
    return rows


def _best(step: Callable[[], None], calls: int, rounds: int = 5) -> float:
    step()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            step()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def times(sizes: tuple[int, ...] = (1000, 1 << 20)) -> list[str]:
    """Markdown rows: per size, per member, forward plus backward."""
    torch.set_num_threads(2)
    rows = []
    for n in sizes:
        cells = []
        for name in MEMBERS:
            f = relukit.get(name)
            x = torch.randn(n, requires_grad=True)
            ones = torch.ones(n)
            seconds = _best(lambda f=f, x=x, ones=ones: f(x).backward(ones), 200 if n < 1e5 else 5)
            cells.append(f"{seconds * 1e6:.0f} µs" if n < 1e5 else f"{seconds * 1e3:.2f} ms")
        rows.append(f"| {n:,} | " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "diff"
    if what not in ("diff", "time"):
        raise SystemExit(f"tracked.py: expected diff or time, got {what!r}")
    header = "| dtype |" if what == "diff" else "| elements |"
    print(header + " | ".join(MEMBERS).join((" ", " |")))
    print("|---" * (len(MEMBERS) + 1) + "|")
    print("\n".join(differences() if what == "diff" else times()))


if __name__ == "__main__":
    main(sys.argv[1:])
