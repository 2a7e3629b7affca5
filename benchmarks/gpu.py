"""relukit on a CUDA device: Triton kernels against a copy, relukit.nn against torch.nn, memory.

Three tables, each measured side by side in one run (interleaved rounds, the best round of
each, timed with CUDA events), written into benchmarks/RESULTS.md with the GPU named:

1. Bandwidth (bytes moved / time) of relukit's Triton kernels, forward with mask and
   backward from the mask, against a device-to-device copy of the same tensor (``dst.copy_``),
   at 2^20 … 2^28 elements in float32 and bfloat16; PyTorch's own relu and relu backward, and
   relukit's PyTorch-op rules (what relukit.nn runs on a GPU without Triton) beside them.
   Bytes moved: copy and ``torch.relu`` 2·n·s, PyTorch's relu backward 3·n·s (it reads the
   output as well), the mask kernels 2·n·s + n·bits/8.
2. relukit.nn against torch.nn, forward + backward of one module (ReLU, LeakyReLU, GELU in
   each form, SiLU) at 2^24 and 2^26 elements, float32 and bfloat16.
3. Peak memory (``torch.cuda.max_memory_allocated``) of one training step (forward,
   backward, SGD step) of the FFN and CNN patterns of benchmarks/nn_memory.py at their large
   size, torch.nn against its ``relukit.nn.convert`` copy: the step's rise above what was
   allocated before it, and the drop the saved-bytes count (nn_memory.py's method) predicts.

With no CUDA device (or no Triton, or ``TRITON_INTERPRET=1``) it says so in one line and exits
with status 2, measuring nothing. On a machine with a GPU, the whole check is::

    TRITON_INTERPRET=0 python -m pytest -q -p no:cacheprovider tests/kernels/gpu
    python benchmarks/gpu.py            # --quick for a short run, --no-write to leave RESULTS.md
"""

from __future__ import annotations

import argparse
import copy
import datetime
import inspect
import math
import os
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
TITLE = "## GPU: Triton kernels and relukit.nn on CUDA (issue 15)"
GB = 1e9
MIB = 1024 * 1024
DEVICE = "cuda"
"""Where tensors go (the tests run the tables' code on "cpu", in Triton's interpreter)."""
BIG = {"n": 32768, "d": 256, "hidden": 1024, "images_n": 512}
"""The large size of benchmarks/nn_memory.py (its peak-memory table)."""


def fail(message: str) -> None:
    print(f"benchmarks/gpu.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def timed(calls: dict[str, Callable[[], object]], reps: int, rounds: int) -> dict[str, float]:
    """Seconds per call of each: interleaved rounds of ``reps`` calls, the best round."""
    for call in calls.values():  # warm-up: Triton compiles, the allocator settles
        call()
    torch.cuda.synchronize()
    best = dict.fromkeys(calls, math.inf)
    for _ in range(rounds):
        for name, call in calls.items():
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(reps):
                call()
            end.record()
            end.synchronize()
            best[name] = min(best[name], start.elapsed_time(end) / 1e3 / reps)
    return best


def gbps(nbytes: float, seconds: float) -> str:
    return f"{nbytes / seconds / GB:,.0f}"


def _bandwidth_row(dtype: torch.dtype, log2: int, reps: int, rounds: int) -> str:
    from relukit.kernels.gpu import piecewise
    from relukit.nn.rules import for_member

    relu = for_member("relu")
    n = 1 << log2
    x = torch.randn(n, device=DEVICE, dtype=dtype)
    g = torch.randn(n, device=DEVICE, dtype=dtype)
    dst = torch.empty_like(x)
    y_torch = torch.relu(x)
    _, mask = piecewise.forward_with_mask("relu", (), x)
    calls = {
        "copy": lambda: dst.copy_(x),
        "relu": lambda: torch.relu(x),
        "fwd": lambda: piecewise.forward_with_mask("relu", (), x),
        "relu_bwd": lambda: torch.ops.aten.threshold_backward(g, y_torch, 0),
        "bwd": lambda: piecewise.backward_from_mask("relu", (), g, mask),
        "rule_fwd": lambda: relu.forward_with_mask(x),
        "rule_bwd": lambda: relu.backward_from_mask(g, mask),
    }
    t = timed(calls, reps, rounds)
    s = x.element_size()
    plain, masked = 2 * n * s, 2 * n * s + n / 8
    copy_bw = plain / t["copy"]
    return (
        f"| {str(dtype).removeprefix('torch.')} | 2^{log2} | {gbps(plain, t['copy'])} | "
        f"{gbps(plain, t['relu'])} | {gbps(masked, t['fwd'])} | "
        f"{masked / t['fwd'] / copy_bw:.3f} | {gbps(3 * n * s, t['relu_bwd'])} | "
        f"{gbps(masked, t['bwd'])} | {masked / t['bwd'] / copy_bw:.3f} | "
        f"{t['rule_fwd'] / t['fwd']:.2f}, {t['rule_bwd'] / t['bwd']:.2f} |"
    )


def bandwidth(sizes: list[int], reps: int, rounds: int) -> list[str]:
    lines = [
        "| dtype | n | copy GB/s | torch.relu GB/s | relukit fwd+mask GB/s | ÷ copy | "
        "torch relu backward GB/s | relukit bwd-from-mask GB/s | ÷ copy | "
        "PyTorch-op rules fwd, bwd (× Triton time) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dtype in (torch.float32, torch.bfloat16):
        for log2 in sizes:
            try:
                lines.append(_bandwidth_row(dtype, log2, reps, rounds))
            except torch.cuda.OutOfMemoryError:
                lines.append(f"| {dtype} | 2^{log2} | out of memory | | | | | | | |")
            torch.cuda.empty_cache()
            print(lines[-1], flush=True)
    return lines


def module_pairs() -> list[tuple[str, nn.Module, nn.Module]]:
    import relukit.nn as rn

    pairs = [
        ("ReLU", nn.ReLU(), rn.ReLU()),
        ("LeakyReLU(0.01)", nn.LeakyReLU(0.01), rn.LeakyReLU(0.01)),
    ]
    modes: list[dict[str, object]] = [{}]
    if "backward" in inspect.signature(rn.GELU).parameters:  # the memory modes (issue 12)
        modes += [{"backward": "output"}, {"backward": "bits", "bits": 3}]
    for mode in modes:
        label = ", ".join(f"{k}={v!r}" for k, v in mode.items())
        pairs += [
            (f"GELU({label})", nn.GELU(), rn.GELU(**mode)),
            (
                f"GELU('tanh'{', ' + label if label else ''})",
                nn.GELU("tanh"),
                rn.GELU("tanh", **mode),
            ),
            (f"SiLU({label})", nn.SiLU(), rn.SiLU(**mode)),
        ]
    return pairs


def _module_row(
    name: str,
    theirs: nn.Module,
    ours: nn.Module,
    dtype: torch.dtype,
    log2: int,
    reps: int,
    rounds: int,
) -> str:
    x = torch.randn(1 << log2, device=DEVICE, dtype=dtype, requires_grad=True)
    g = torch.randn(1 << log2, device=DEVICE, dtype=dtype)

    def step(module: nn.Module) -> None:
        module(x).backward(g)
        x.grad = None

    t = timed({"torch": lambda: step(theirs), "ours": lambda: step(ours)}, reps, rounds)
    return (
        f"| {name} | {str(dtype).removeprefix('torch.')} | 2^{log2} | "
        f"{t['torch'] * 1e3:.3f} | {t['ours'] * 1e3:.3f} | {t['ours'] / t['torch']:.3f} |"
    )


def modules(sizes: list[int], reps: int, rounds: int) -> list[str]:
    lines = [
        "| module | dtype | n | torch.nn ms | relukit.nn ms | relukit ÷ torch |",
        "|---|---|---|---|---|---|",
    ]
    for name, theirs, ours in module_pairs():
        for dtype in (torch.float32, torch.bfloat16):
            for log2 in sizes:
                try:
                    lines.append(_module_row(name, theirs, ours, dtype, log2, reps, rounds))
                except torch.cuda.OutOfMemoryError:
                    lines.append(f"| {name} | {dtype} | 2^{log2} | out of memory | | |")
                torch.cuda.empty_cache()
                print(lines[-1], flush=True)
    return lines


def peak_memory(big: dict[str, int] = BIG) -> list[str]:
    sys.path.insert(0, str(HERE))
    import nn_memory

    import relukit.nn as rn

    keys = {"a": "(a) FFN ReLU", "a-prelu": "(a) FFN PReLU", "b": "(b) CNN ReLU"}
    keys |= {"d-gelu": "(d) FFN GELU", "d-silu": "(d) FFN SiLU"}
    lines = [
        f"FFN {big['n']}×{big['d']}, hidden {big['hidden']}; CNN batch {big['images_n']}×3×32×32; "
        "float32. Rise = peak during the step − allocated before it.",
        "",
        "| pattern | step's rise, MiB (torch → relukit) | drop, MiB | saved-bytes drop "
        "(nn_memory.py's count), MiB | drop ≥ count |",
        "|---|---|---|---|---|",
    ]
    for pattern in nn_memory.patterns(**big):
        if pattern.key not in keys:
            continue
        rises, saved = [], []
        for which in ("torch", "relukit"):
            torch.manual_seed(0)
            model = pattern.build()
            if which == "relukit":
                model = rn.convert(copy.deepcopy(model)).model
            model = model.to(DEVICE)
            x, y = (t.to(DEVICE) for t in pattern.batch(torch.Generator().manual_seed(0)))
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
            saved.append(nn_memory.saved_bytes(model, x, y).total)
            optimizer.zero_grad(set_to_none=False)
            nn_memory.loss_of(model, x, y).backward()  # warm-up: kernels, gradient buffers
            optimizer.step()
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            optimizer.zero_grad(set_to_none=False)
            nn_memory.loss_of(model, x, y).backward()
            optimizer.step()
            torch.cuda.synchronize()
            rises.append(torch.cuda.max_memory_allocated() - before)
            del model, x, y, optimizer
            torch.cuda.empty_cache()
        drop, count = rises[0] - rises[1], saved[0] - saved[1]
        lines.append(
            f"| {keys[pattern.key]} | {rises[0] / MIB:.2f} → {rises[1] / MIB:.2f} | "
            f"{drop / MIB:.2f} | {count / MIB:.2f} | {'yes' if drop >= count else 'no'} |"
        )
        print(lines[-1], flush=True)
    return lines


def machine() -> str:
    import triton

    p = torch.cuda.get_device_properties(0)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"GPU: {torch.cuda.get_device_name(0)} ({p.total_memory / 2**30:.0f} GiB, "
        f"{p.multi_processor_count} SMs), torch {torch.__version__} (CUDA {torch.version.cuda}), "
        f"Triton {triton.__version__}, Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}, host load average {load}"
    )


def write(section: list[str]) -> None:
    text = RESULTS.read_text(encoding="utf-8")
    block = "\n".join([TITLE, "", *section]).rstrip() + "\n"
    pattern = re.compile(re.escape(TITLE) + r"\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n\n" + block
    RESULTS.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md unchanged")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        fail("no CUDA device here (torch.cuda.is_available() is False); nothing was measured")
    from relukit.kernels import gpu

    if not gpu.available():
        fail("Triton does not import; install relukit[gpu]; nothing was measured")
    from relukit.kernels.gpu import launch

    if launch.interpreted():
        fail("TRITON_INTERPRET=1 is set, so Triton would interpret, not compile; unset it")
    sizes = [20, 24, 26] if args.quick else [20, 22, 24, 26, 28]
    reps, rounds = (5, 3) if args.quick else (20, 5)
    command = "python benchmarks/gpu.py" + (" --quick" if args.quick else "")
    section = [f"`{command}`", "", machine(), ""]
    print("\n".join(section), flush=True)
    section += ["### Bandwidth, relu (bytes moved / time)", ""]
    section += bandwidth(sizes, reps, rounds)
    section += ["", "### relukit.nn against torch.nn, forward + backward of one module", ""]
    section += modules([24] if args.quick else [24, 26], reps, rounds)
    section += ["", "### Peak memory of one training step", ""]
    try:
        section += peak_memory()
    except torch.cuda.OutOfMemoryError:
        section += ["Out of GPU memory at nn_memory.py's large size: not measured."]
    if not args.no_write:
        write(section)
        print(f"\nwritten into {RESULTS}")


if __name__ == "__main__":
    main()
