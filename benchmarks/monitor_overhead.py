"""Overhead of relukit's activation monitoring on training steps of a small CNN and transformer.

Each model trains (forward, cross-entropy, backward, SGD step) three ways, side by side in
interleaved blocks (plain, default sampling, every batch, plain, …) so all see the same machine
state:

- plain: no monitor;
- ``every=10``: :class:`relukit.integrations.loop.ActivationMonitor` with its default sampling
  (one batch in ten counted), windows of 50 batches — what the Lightning and Hugging Face
  callbacks run inside the framework's hooks;
- ``every=1``: the same, every batch counted.

A counted batch computes per-unit firing counts and the mean, std, max |x| and kurtosis of
every activation's output. Models:

- CNN: (Conv2d 3→32 → BatchNorm2d → ReLU → MaxPool2d 2) → (Conv2d 32→64 → BatchNorm2d → ReLU →
  MaxPool2d 2) → Linear(64·8·8 → 10); batch 64 of 3×32×32.
- transformer: token embedding (vocab 256) + 4 ``nn.TransformerEncoderLayer`` (d_model 128,
  4 heads, feed-forward 512 with an ``nn.GELU`` module, dropout 0) → Linear to 256 classes per
  token; batch 32 × 64 tokens.

Each block runs ``--steps`` steps; the best and the median block of each kind are reported,
in wall-clock and process CPU time, and the overhead as best/best and median/median ratios.
Targets: ``every=10`` ≤ 1.05, ``every=1`` ≤ 1.10.

    python benchmarks/monitor_overhead.py [--repeats 7] [--steps 20] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from relukit.integrations.loop import ActivationMonitor


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


class SmallTransformer(nn.Module):
    def __init__(self, vocab: int = 256, width: int = 128, layers: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.blocks = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(
                width, 4, 4 * width, dropout=0.0, activation=nn.GELU(), batch_first=True
            ),
            layers,
            enable_nested_tensor=False,
        )
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(tokens)))


def workload(name: str, gen: torch.Generator) -> tuple[nn.Module, Callable[[nn.Module], None]]:
    if name == "cnn":
        model: nn.Module = small_cnn()
        x = torch.randn(64, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (64,), generator=gen)

        def loss(m: nn.Module) -> torch.Tensor:
            return nn.functional.cross_entropy(m(x), y)

    else:
        model = SmallTransformer()
        tokens = torch.randint(0, 256, (32, 64), generator=gen)
        target = torch.randint(0, 256, (32, 64), generator=gen)

        def loss(m: nn.Module) -> torch.Tensor:
            return nn.functional.cross_entropy(m(tokens).flatten(0, 1), target.flatten())

    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(m: nn.Module) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss(m).backward()
        optimizer.step()

    step.forward = loss  # type: ignore[attr-defined]  (the forward alone, for counting_cost)
    return model, step


def block(model, step, steps: int, monitor: ActivationMonitor | None) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per training step, averaged over ``steps`` steps."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        if monitor is None:
            step(model)
        else:
            with monitor.batch(i):
                step(model)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def run(name: str, repeats: int, steps: int) -> None:
    model, step = workload(name, torch.Generator().manual_seed(0))
    monitors = {
        "every=10": ActivationMonitor(model, every=10, log_every=50),
        "every=1": ActivationMonitor(model, every=1, log_every=50),
    }
    for m in monitors.values():
        m.engine.close()  # attached only during their own blocks
    block(model, step, 3, None)  # warm-up (and the first compile of the counting loop)
    for m in monitors.values():
        m.engine.monitor.start()
        block(model, step, 2, m)
        m.engine.close()
    times: dict[str, list[tuple[float, float]]] = {"plain": [], **{k: [] for k in monitors}}
    for _ in range(repeats):
        times["plain"].append(block(model, step, steps, None))
        for kind, m in monitors.items():
            m.engine.monitor.start()
            times[kind].append(block(model, step, steps, m))
            m.engine.close()
    counting = counting_cost(model, monitors["every=1"], step)
    layers = len(monitors["every=1"].engine.monitor.report())
    print(f"\n{name}: {layers} monitored activation layers, {repeats} blocks of {steps} steps")
    print(
        f"{'kind':<10}{'wall best':>11}{'wall med':>10}{'CPU best':>10}{'CPU med':>9}  "
        f"{'ratio wall best':>16}{'wall med':>10}{'CPU best':>10}{'CPU med':>9}"
    )
    base = times["plain"]
    for kind, t in times.items():
        wall = sorted(x[0] for x in t)
        cpu = sorted(x[1] for x in t)
        bw = sorted(x[0] for x in base)
        bc = sorted(x[1] for x in base)
        ratios = (
            wall[0] / bw[0],
            statistics.median(wall) / statistics.median(bw),
            cpu[0] / bc[0],
            statistics.median(cpu) / statistics.median(bc),
        )
        print(
            f"{kind:<10}{1e3 * wall[0]:>9.1f}ms{1e3 * statistics.median(wall):>8.1f}ms"
            f"{1e3 * cpu[0]:>8.1f}ms{1e3 * statistics.median(cpu):>7.1f}ms  "
            + "".join(f"{r:>{w}.3f}" for r, w in zip(ratios, (16, 10, 10, 9), strict=True))
        )
    plain_cpu = min(x[1] for x in base)
    print(
        f"counting one batch: {1e3 * counting:.2f} ms CPU = {counting / plain_cpu:.1%} of the best "
        f"plain step; so every=1 costs {1 + counting / plain_cpu:.3f}x and every=10 "
        f"{1 + counting / plain_cpu / 10:.3f}x (isolated, best of 15)"
    )


def counting_cost(model: nn.Module, monitor: ActivationMonitor, step) -> float:
    """Process CPU seconds the hooks spend on one counted batch: forward passes (no grad) with
    the monitor counting minus the same with it attached but not counting, best of 15 each."""
    engine = monitor.engine
    engine.monitor.start()
    forward = step.forward
    best = {True: float("inf"), False: float("inf")}
    with torch.no_grad():
        for _ in range(15):
            for counting in (True, False):
                engine.monitor.next_batch() if counting else engine.monitor.pause()
                cpu = time.process_time()
                forward(model)
                best[counting] = min(best[counting], time.process_time() - cpu)
    engine.monitor.pause()
    engine.close()
    return best[True] - best[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--models", nargs="+", default=["cnn", "transformer"])
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} at start"
    )
    for name in args.models:
        run(name, args.repeats, args.steps)
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
