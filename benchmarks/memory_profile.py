"""Where the step time of the memory modes goes, piece by piece, against torch.nn's.

The pattern of ``benchmarks/nn_memory.py --memory-modes`` (e): ``Linear(512→2048) → member →
Linear(2048→512)``, batch 2048, float32, one SGD-free training step (forward, backward). Each
piece is timed on its own, best of interleaved repeats, at the given thread counts
(``torch.set_num_threads``, which relukit's kernels follow):

- ``torch fwd``/``torch bwd``: PyTorch's member forward and its backward (``torch.ops.aten``);
- ``bits``: the output mode's bit (``x < x*``) from the input (relukit's kernel);
- ``inverse``: the output mode's backward from the output and the bit (relukit's kernel);
- ``codes``/``levels``: the bits mode's 3-bit codes and its backward (relukit's kernels);
- ``step``: the whole step of the torch.nn model and of each converted model.

    python benchmarks/memory_profile.py [--threads 1 2] [--repeats 20] [--member gelu]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import relukit.nn as rn
from relukit.family import lookup
from relukit.kernels.cpu import memory as kernels
from relukit.memory import output, steps
from relukit.nn import from_output

TORCH = {"gelu": nn.GELU, "silu": nn.SiLU, "mish": nn.Mish}


def best(fn: Callable[[], object], repeats: int) -> float:
    fn()
    found = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        found = min(found, time.perf_counter() - start)
    return found


def pieces(member: str, repeats: int) -> dict[str, float]:
    spec = lookup(member)
    x = torch.randn(2048, 2048)
    g = torch.randn(2048, 2048)
    y = getattr(F, spec.torch_name)(x)
    flat_x, flat_y, flat_g = (t.numpy().reshape(-1) for t in (x, y, g))
    x_min = output.minimum(spec, {}).x
    packed = kernels.below_bits(flat_x, x_min)
    table = output.inverse_table(spec, spec.bind({}), wide=False)
    q = steps.steps_for(spec, 3, spec.bind({}))
    borders = torch.tensor(q.borders, dtype=torch.float32).numpy()
    levels = torch.tensor(q.levels, dtype=torch.float32).numpy()
    codes = kernels.step_codes(flat_x, borders, 3)
    backward = {
        "gelu": lambda: torch.ops.aten.gelu_backward(g, x),
        "silu": lambda: torch.ops.aten.silu_backward(g, x),
        "mish": lambda: torch.ops.aten.mish_backward(g, x),
    }[member]
    times = {
        "torch fwd": lambda: getattr(F, spec.torch_name)(x),
        "torch bwd": backward,
        "bits": lambda: kernels.below_bits(flat_x, x_min),
        "inverse": lambda: kernels.inverse_backward(table, flat_y, packed, flat_g),
        "codes": lambda: kernels.step_codes(flat_x, borders, 3),
        "levels": lambda: kernels.step_backward(flat_g, codes, levels, 3),
    }
    found = {name: float("inf") for name in times}
    for _ in range(repeats):
        for name, fn in times.items():
            found[name] = min(found[name], best(fn, 1))
    return found


def steps_of(member: str, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(512, 2048), TORCH[member](), nn.Linear(2048, 512))
    models = {
        "torch.nn": base,
        "output": rn.convert(copy.deepcopy(base), backward="output").model,
        "bits=3": rn.convert(copy.deepcopy(base), backward="bits", bits=3).model,
    }
    x = torch.randn(2048, 512)
    y = torch.randn(2048, 512)

    def step(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            for p in model.parameters():
                p.grad = None
            F.mse_loss(model(x), y).backward()

        return run

    found = {name: float("inf") for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            found[name] = min(found[name], best(step(model), 1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--member", choices=tuple(TORCH), nargs="+", default=["gelu", "silu"])
    args = parser.parse_args()
    assert from_output.compiled(torch.ones(1))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    for member in args.member:
        for n in args.threads:
            torch.set_num_threads(n)
            parts = pieces(member, args.repeats)
            whole = steps_of(member, max(3, args.repeats // 4))
            text = ", ".join(f"{k} {v * 1e3:.2f}" for k, v in parts.items())
            ratios = ", ".join(
                f"{k} {v * 1e3:.1f} ms ({v / whole['torch.nn']:.3f}×)" for k, v in whole.items()
            )
            print(f"{member}, {n} thread(s): pieces ms: {text}; step: {ratios}", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
