"""Overhead of DeadUnitMonitor on one training step of a small CNN.

Model: (Conv2d 3→32, 3x3 → BatchNorm2d → ReLU → MaxPool2d 2) → (Conv2d 32→64 → BatchNorm2d →
ReLU → MaxPool2d 2) → Linear(64·8·8 → 10); batch 64 of 3x32x32; cross-entropy, SGD step.

Plain and monitored steps are timed in interleaved blocks (plain, monitored, plain, …) so both
see the same machine state; each block runs ``--steps`` steps and the best block of each kind
is reported, in wall-clock time and in process CPU time (the latter is the steadier one on a
shared machine, most so with ``--threads 1``). Target: monitored / plain <= 1.10.

    python benchmarks/monitor_overhead.py [--repeats 7] [--steps 10]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from relukit.diagnostics import DeadUnitMonitor


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10),
    )


def block(model, optimizer, x, y, steps: int) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per training step, averaged over ``steps`` steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = small_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(args.batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    block(model, optimizer, x, y, 3)  # warm-up

    monitor = DeadUnitMonitor(model)
    monitor.close()
    plain, monitored = [], []
    for _ in range(args.repeats):
        plain.append(block(model, optimizer, x, y, args.steps))
        monitor.start()
        monitored.append(block(model, optimizer, x, y, args.steps))
        monitor.close()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"batch {args.batch} x 3x32x32, {args.repeats} interleaved blocks of "
        f"{args.steps} steps; best and median block per kind"
    )
    print()
    print(f"{'ms/step':<22}{'wall best':>11}{'wall median':>13}{'CPU best':>11}{'CPU median':>12}")
    for name, times in (("plain", plain), ("with DeadUnitMonitor", monitored)):
        wall = sorted(t[0] for t in times)
        cpu = sorted(t[1] for t in times)
        mid = len(times) // 2
        print(
            f"{name:<22}{1e3 * wall[0]:>11.2f}{1e3 * wall[mid]:>13.2f}"
            f"{1e3 * cpu[0]:>11.2f}{1e3 * cpu[mid]:>12.2f}"
        )
    print()
    for i, kind in ((0, "wall"), (1, "CPU")):
        ratio = min(t[i] for t in monitored) / min(t[i] for t in plain)
        print(f"overhead ratio, {kind} time (best/best): {ratio:.3f}x  (target <= 1.10x)")
    report = monitor.report()
    print(
        f"monitored {' + '.join(str(r.calls) for r in report)} calls; "
        f"dead units: {sum(r.dead for r in report)}"
    )


if __name__ == "__main__":
    main()
