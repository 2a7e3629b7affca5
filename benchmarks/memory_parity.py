"""Training parity of the memory modes: torch.nn against backward="output" and backward="bits".

Two tasks, each trained from the same initial weights and batches in every mode, three seeds:

- digits: scikit-learn's bundled 8×8 digits, an MLP ``64 → 128 → act → 128 → act → 10``
  (GELU, SiLU, Mish), Adam 1e-3, batch 64, 30 epochs, 75/25 split by seed;
- reversal: a two-layer transformer (d = 64, 4 heads, GELU feed-forward 256, learned
  positions) that reverses sequences of 10 tokens over a vocabulary of 16, generated at run
  time (8,192 training and 2,048 test sequences by seed), AdamW 1e-3, batch 128, 12 epochs
  (``--reversal-epochs``).

Prints final test accuracy and loss per mode (mean ± std over the seeds), and the per-epoch
test accuracy (the learning curves) as JSON with ``--json``.

    python benchmarks/memory_parity.py [--seeds 0 1 2] [--tasks digits reversal]
        [--reversal-epochs 12] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import relukit.nn as rn

MODES = (("torch", None, 3), ("output", "output", 3), ("bits=3", "bits", 3))


def digits(seed: int) -> tuple[torch.Tensor, ...]:
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.75 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def mlp(act: type[nn.Module]) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 128), act(), nn.Linear(128, 128), act(), nn.Linear(128, 10))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.norm2(x))


class Reverser(nn.Module):
    def __init__(self, vocab: int = 16, length: int = 10, d: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.position = nn.Parameter(torch.randn(length, d) * 0.02)
        self.blocks = nn.Sequential(Block(d, 4, 256), Block(d, 4, 256))
        self.out = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.embed(tokens) + self.position))


def reversal(seed: int, vocab: int = 16, length: int = 10) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1000 + seed)
    train = torch.randint(0, vocab, (8192, length), generator=g)
    test = torch.randint(0, vocab, (2048, length), generator=g)
    return train, train.flip(1), test, test.flip(1)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item()
        accuracy = (logits.argmax(-1) == y).float().mean().item()
    model.train()
    return accuracy, loss


def train(
    model: nn.Module,
    data: tuple[torch.Tensor, ...],
    epochs: int,
    batch: int,
    optimizer: torch.optim.Optimizer,
    seed: int,
) -> dict:
    xt, yt, xs, ys = data
    g = torch.Generator().manual_seed(seed)
    curve = []
    started = time.process_time()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=g)
        for start in range(0, len(xt), batch):
            idx = order[start : start + batch]
            logits = model(xt[idx])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yt[idx].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        curve.append(evaluate(model, xs, ys)[0])
    accuracy, loss = evaluate(model, xs, ys)
    cpu = time.process_time() - started
    return {"accuracy": accuracy, "loss": loss, "curve": curve, "cpu_s": cpu}


def run_task(task: str, act_name: str, seed: int, reversal_epochs: int = 12) -> dict[str, dict]:
    torch.manual_seed(seed)
    if task == "digits":
        act = {"GELU": nn.GELU, "SiLU": nn.SiLU, "Mish": nn.Mish}[act_name]
        base, data, epochs, batch = mlp(act), digits(seed), 30, 64
    else:
        base, data, epochs, batch = Reverser(), reversal(seed), reversal_epochs, 128
    results = {}
    for label, backward, bits in MODES:
        model = copy.deepcopy(base)
        if backward is not None:
            model = rn.convert(model, backward=backward, bits=bits).model
        optimizer = (
            torch.optim.Adam(model.parameters(), lr=1e-3)
            if task == "digits"
            else torch.optim.AdamW(model.parameters(), lr=1e-3)
        )
        results[label] = train(model, data, epochs, batch, optimizer, seed)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--tasks", nargs="+", choices=["digits", "reversal"], default=["digits", "reversal"]
    )
    parser.add_argument("--reversal-epochs", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [("digits", "GELU"), ("digits", "SiLU"), ("digits", "Mish"), ("reversal", "GELU")]
    runs = [(task, act) for task, act in runs if task in args.tasks]
    everything = {}
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(
        "| task | member | mode | test accuracy (mean ± std) | test loss (mean ± std) | CPU s/run |"
    )
    print("|---|---|---|---|---|---|")
    for task, act in runs:
        per_seed = [run_task(task, act, seed, args.reversal_epochs) for seed in args.seeds]
        everything[f"{task}-{act}"] = per_seed
        for label, _, _ in MODES:
            acc = [r[label]["accuracy"] for r in per_seed]
            loss = [r[label]["loss"] for r in per_seed]
            cpu = np.mean([r[label]["cpu_s"] for r in per_seed])
            print(
                f"| {task} | {act} | {label} | {statistics.mean(acc):.4f} ± "
                f"{statistics.stdev(acc):.4f} | {statistics.mean(loss):.4f} ± "
                f"{statistics.stdev(loss):.4f} | {cpu:.1f} |",
                flush=True,
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(everything, handle)


if __name__ == "__main__":
    main()
