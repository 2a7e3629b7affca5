"""What relukit.nn saves for the backward pass, and what it costs, against torch.nn.

For each layer pattern, one training step (forward, backward, SGD step) of a torch.nn model and
of its ``relukit.nn.convert`` copy:

- saved bytes: every tensor autograd saves during the forward, seen through
  ``torch.autograd.graph.saved_tensors_hooks`` and counted once per storage; parameters (saved
  by the linear and convolution layers, alive anyway) are left out. "activation" counts the
  storages saved inside the activation modules, "only there" those no other layer also saves
  (what converting can free), "total" all of them;
- time per step: interleaved blocks of steps (torch, relukit, torch, ...), best block of each,
  as CPU time of the process (robust on a shared machine: time spent waiting for a core does
  not count) and as wall time; ``--threads`` intra-op threads (default 1, so that no thread
  waits for another that the machine's other work has descheduled);
- peak resident memory of one training step at a larger size, each model in a fresh process
  after a warm-up step (VmHWM, reset just before the step, and its rise above VmRSS before
  it).

Patterns: (a) transformer feed-forward ``Linear → ReLU → Dropout → Linear``, the same with
PReLU and with RReLU (training: its drawn slopes are saved), (b) CNN ``Conv → BatchNorm → ReLU
→ MaxPool`` (twice, then Linear), with ``ReLU(inplace=True)``, and in channels_last memory
format (model and input), (c) MLP ``Linear → ReLU → Linear``, (d) (a) with GELU and with SiLU.

The memory modes of the smooth members (``--memory-modes``, issue 12): GELU, SiLU and Mish with
``backward="output"`` and ``backward="bits"`` (3 bits; 1, 2 and 4 for the saved bytes) against
torch.nn, in (e) ``Linear(512→2048) → member → Linear(2048→512)``, batch 2048, where the next
Linear keeps the member's output anyway, and (f) ``Linear → member → Dropout → Linear``, where
it does not.

relukit.nn runs PyTorch's own operation below ``relukit.nn.native_below()`` elements; the
tables are measured with the setting given by ``--native-below`` (default 0: the one-bit path
everywhere, what converting saves; the header says which).

Bit-identical training: for each pattern, 100 SGD steps (momentum 0.9, seeds fixed) of the
torch.nn model and of its converted copy, and whether every parameter is equal bit for bit
afterwards (``--identical-steps``; 0 skips).

With ``--memory-modes --write`` the table, its header (command, machine, load) and the
step-time verdict replace the section of that thread count in RESULTS.md (between its
``<!-- nn_memory.py --memory-modes --threads N: … -->`` markers).

    python benchmarks/nn_memory.py [--repeats 5] [--steps 3] [--no-rss] [--memory-modes]
        [--write] [--native-below N] [--identical-steps 100]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import relukit.nn as rn
from relukit.memory import saved as memory_saved
from relukit.memory.saved import Saved

MIB = 1024 * 1024


@dataclass(frozen=True)
class Pattern:
    key: str
    title: str
    build: Callable[[], nn.Module]
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def ffn(d: int, hidden: int, act: Callable[[], nn.Module], dropout: float = 0.1) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), act(), nn.Dropout(dropout), nn.Linear(hidden, d))


def mlp(d: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))


def cnn(inplace: bool = False) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 10),
    )


def tokens(n: int, d: int) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    return lambda g: (torch.randn(n, d, generator=g), torch.randn(n, d, generator=g))


def images(n: int) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    return lambda g: (
        torch.randn(n, 3, 32, 32, generator=g),
        torch.randint(0, 10, (n,), generator=g),
    )


def channels_last(
    batch: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]],
) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    def make(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch(g)
        return x.contiguous(memory_format=torch.channels_last), y

    return make


def patterns(n: int, d: int, hidden: int, images_n: int) -> list[Pattern]:
    size = f"{n}×{d}, hidden {hidden}"
    return [
        Pattern(
            "a",
            f"(a) FFN Linear→ReLU→Dropout→Linear, {size}",
            lambda: ffn(d, hidden, nn.ReLU),
            tokens(n, d),
        ),
        Pattern(
            "a-prelu",
            f"(a) with PReLU({hidden}), {size}",
            lambda: ffn(d, hidden, lambda: nn.PReLU(hidden)),
            tokens(n, d),
        ),
        Pattern(
            "a-rrelu",
            f"(a) with RReLU (training), {size}",
            lambda: ffn(d, hidden, nn.RReLU),
            tokens(n, d),
        ),
        Pattern(
            "b", f"(b) CNN Conv→BN→ReLU→MaxPool ×2, batch {images_n}×3×32×32", cnn, images(images_n)
        ),
        Pattern("b-inplace", "(b) with ReLU(inplace=True)", lambda: cnn(True), images(images_n)),
        Pattern(
            "b-channels-last",
            "(b) in channels_last",
            lambda: cnn().to(memory_format=torch.channels_last),
            channels_last(images(images_n)),
        ),
        Pattern("c", f"(c) MLP Linear→ReLU→Linear, {size}", lambda: mlp(d, hidden), tokens(n, d)),
        Pattern("d-gelu", "(d) FFN with GELU", lambda: ffn(d, hidden, nn.GELU), tokens(n, d)),
        Pattern("d-silu", "(d) FFN with SiLU", lambda: ffn(d, hidden, nn.SiLU), tokens(n, d)),
    ]


MEMORY_MEMBERS = (("GELU", nn.GELU), ("SiLU", nn.SiLU), ("Mish", nn.Mish))
MEMORY_MODES = (("output", 3), ("bits", 3), ("bits", 1), ("bits", 2), ("bits", 4))


def memory_patterns(n: int, d: int, hidden: int) -> list[Pattern]:
    found = []
    for name, act in MEMORY_MEMBERS:
        found.append(
            Pattern(
                f"e-{name}",
                f"(e) Linear→{name}→Linear, {n}×{d}, hidden {hidden}",
                lambda act=act: nn.Sequential(nn.Linear(d, hidden), act(), nn.Linear(hidden, d)),
                tokens(n, d),
            )
        )
        found.append(
            Pattern(
                f"f-{name}",
                f"(f) Linear→{name}→Dropout→Linear",
                lambda act=act: ffn(d, hidden, act),
                tokens(n, d),
            )
        )
    return found


def memory_modes(args: argparse.Namespace) -> str:
    """The table of the smooth members' memory modes against torch.nn, side by side, with the
    step-time target's verdict under it (returned as Markdown, printed row by row)."""
    lines = [
        "| pattern | mode | activation saved, MiB (torch → relukit) | total saved, MiB "
        "(torch → relukit) | total drop, MiB | CPU ms/step (torch → relukit) | CPU ratio | "
        "wall ms/step (torch → relukit) | wall ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n" + "\n".join(lines), flush=True)
    ratios: list[tuple[str, float, float]] = []
    for pattern in memory_patterns(args.tokens, args.d, args.hidden):
        for backward, bits in MEMORY_MODES:
            torch.manual_seed(0)
            theirs = pattern.build()
            ours = rn.convert(copy.deepcopy(theirs), backward=backward, bits=bits).model
            x, y = pattern.batch(torch.Generator().manual_seed(0))
            torch.manual_seed(1)
            s0 = saved_bytes(theirs, x, y)
            torch.manual_seed(1)
            s1 = saved_bytes(ours, x, y)
            mode = backward if backward == "output" else f"bits={bits}"
            times = ""
            if bits == 3:  # time the default of each mode only
                (w0, c0), (w1, c1) = step_time([theirs, ours], x, y, args.repeats, args.steps)
                times = (
                    f"{c0 * 1e3:.1f} → {c1 * 1e3:.1f} | {c1 / c0:.3f} | "
                    f"{w0 * 1e3:.1f} → {w1 * 1e3:.1f} | {w1 / w0:.3f} |"
                )
                ratios.append((f"{pattern.key} {mode}", c1 / c0, w1 / w0))
            else:
                times = "| | | |"
            lines.append(
                f"| {pattern.title} | {mode} | {mib(s0.activation)} → "
                f"{mib(s1.activation)} | {mib(s0.total)} → {mib(s1.total)} | "
                f"{mib(s0.total - s1.total)} | {times}"
            )
            print(lines[-1], flush=True)
    if ratios:
        met = [name for name, cpu, _ in ratios if cpu <= 1.1]
        worst = max(ratios, key=lambda r: r[1])
        lines += [
            "",
            f"Step time ≤ 1.1× torch.nn (CPU time, {torch.get_num_threads()} thread(s)): met in "
            f"{len(met)} of {len(ratios)} timed cells; the highest CPU ratio {worst[1]:.3f} "
            f"({worst[0]}), the highest wall ratio {max(r[2] for r in ratios):.3f}.",
        ]
        print("\n".join(lines[-2:]), flush=True)
    return "\n".join(lines) + "\n"


def write_section(text: str, threads: int, header: str) -> None:
    """Put ``text`` into RESULTS.md between this thread count's markers (appended to the file
    the first time)."""
    path = Path(__file__).with_name("RESULTS.md")
    begin = f"<!-- nn_memory.py --memory-modes --threads {threads}: begin (generated) -->"
    end = f"<!-- nn_memory.py --memory-modes --threads {threads}: end -->"
    block = f"{begin}\n{header}\n\n{text}{end}"
    results = path.read_text(encoding="utf-8")
    if begin in results and end in results:
        head, rest = results.split(begin, 1)
        results = head + block + rest.split(end, 1)[1]
    else:
        results += f"\n{block}\n"
    path.write_text(results, encoding="utf-8")


def loss_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return F.cross_entropy(out, y) if y.dtype == torch.int64 else F.mse_loss(out, y)


def saved_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Saved:
    """Bytes saved for backward in one training step, by storage, split by who saved them."""
    return memory_saved.saved_bytes(model, lambda: loss_of(model, x, y).backward())


def identical_after(pattern: Pattern, steps: int) -> bool:
    """Do the torch.nn model and its converted copy end ``steps`` SGD steps bit-identical?"""
    torch.manual_seed(0)
    theirs = pattern.build()
    ours = rn.convert(copy.deepcopy(theirs)).model
    for model in (theirs, ours):
        data = torch.Generator().manual_seed(1)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        torch.manual_seed(2)  # dropout and rrelu draw from here
        for _ in range(steps):
            x, y = pattern.batch(data)
            optimizer.zero_grad()
            loss_of(model, x, y).backward()
            optimizer.step()
    pairs = zip(theirs.parameters(), ours.parameters(), strict=True)
    return all(torch.equal(a, b) for a, b in pairs)


def step_time(models: list[nn.Module], x, y, repeats: int, steps: int) -> list[tuple[float, float]]:
    """(best wall seconds, best CPU seconds) per step of each model, in interleaved blocks."""
    optimizers = [torch.optim.SGD(m.parameters(), lr=1e-3) for m in models]
    best = [(float("inf"), float("inf"))] * len(models)
    for _ in range(repeats):
        for i, (m, opt) in enumerate(zip(models, optimizers, strict=True)):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                loss_of(m, x, y).backward()
                opt.step()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[i] = (min(best[i][0], wall / steps), min(best[i][1], cpu / steps))
    return best


def vm(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_child(key: str, which: str, n: int, d: int, hidden: int, images_n: int) -> None:
    pattern = next(p for p in patterns(n, d, hidden, images_n) if p.key == key)
    torch.manual_seed(0)
    model = pattern.build()
    if which == "relukit":
        model = rn.convert(model).model
    x, y = pattern.batch(torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    loss_of(model, x, y).backward()  # warm-up: allocator pools, gradient buffers, kernel JIT
    optimizer.step()
    before = vm("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")  # reset VmHWM: the peak below is the measured step's alone
    optimizer.zero_grad(set_to_none=False)
    loss_of(model, x, y).backward()
    optimizer.step()
    print(json.dumps({"peak": vm("VmHWM"), "before": before}))


def rss(key: str, which: str, n: int, d: int, hidden: int, images_n: int) -> dict[str, int]:
    args = [sys.executable, __file__, "--rss-child", key, which, "--threads", "2"]
    args += ["--tokens", str(n), "--d", str(d), "--hidden", str(hidden)]
    args += ["--images", str(images_n)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{model}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}, load average {load}"
    )


def mib(b: float) -> str:
    return f"{b / MIB:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--d", type=int, default=512)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--rss-child", nargs=2, metavar=("PATTERN", "WHICH"))
    parser.add_argument(
        "--memory-modes", action="store_true", help="only the smooth members' memory modes"
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="with --memory-modes: put the table into RESULTS.md (between this thread count's "
        "markers)",
    )
    parser.add_argument("--native-below", type=int, default=0)
    parser.add_argument("--identical-steps", type=int, default=100)
    parser.add_argument("--identical-tokens", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rn.set_native_below(args.native_below)
    if args.rss_child:
        rss_child(*args.rss_child, args.tokens, args.d, args.hidden, args.images)
        return

    print(f"Machine: {machine()}; relukit.nn.native_below() = {rn.native_below()}\n")
    if args.memory_modes:
        started = time.time()
        header = machine()
        text = memory_modes(args)
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"\nload average at the end: {load}")
        if args.write:
            header = (
                f"`python benchmarks/nn_memory.py --memory-modes --repeats {args.repeats} "
                f"--steps {args.steps} --threads {args.threads}` ({time.time() - started:.0f} "
                f"s; {header}; at the end {load}; relukit.nn.native_below() = "
                f"{rn.native_below()}):"
            )
            write_section(text, args.threads, header)
            print(f"wrote the table into {Path(__file__).with_name('RESULTS.md')}")
        return
    print(
        "| pattern | activation saved, MiB (torch → relukit) | ratio | only there, MiB | "
        "total saved, MiB (torch → relukit) | total drop, MiB | CPU ms/step "
        "(torch → relukit) | CPU ratio | wall ms/step (torch → relukit) | wall ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pattern in patterns(args.tokens, args.d, args.hidden, args.images):
        torch.manual_seed(0)
        theirs = pattern.build()
        ours = rn.convert(copy.deepcopy(theirs)).model
        x, y = pattern.batch(torch.Generator().manual_seed(0))
        torch.manual_seed(1)
        s0 = saved_bytes(theirs, x, y)
        torch.manual_seed(1)
        s1 = saved_bytes(ours, x, y)
        (w0, c0), (w1, c1) = step_time([theirs, ours], x, y, args.repeats, args.steps)
        ratio = s1.activation / s0.activation if s0.activation else float("nan")
        print(
            f"| {pattern.title} | {mib(s0.activation)} → {mib(s1.activation)} | "
            f"{ratio:.4f} | {mib(s0.only_activation)} → {mib(s1.only_activation)} | "
            f"{mib(s0.total)} → {mib(s1.total)} | {mib(s0.total - s1.total)} | "
            f"{c0 * 1e3:.1f} → {c1 * 1e3:.1f} | {c1 / c0:.3f} | "
            f"{w0 * 1e3:.1f} → {w1 * 1e3:.1f} | {w1 / w0:.3f} |",
            flush=True,
        )
    if args.identical_steps:
        small = patterns(args.identical_tokens, 32, 64, 8)
        print(
            f"\nBit-identical parameters after {args.identical_steps} SGD steps (small sizes: "
            f"FFN {args.identical_tokens}×32, hidden 64; CNN batch 8):\n"
        )
        print("| pattern | bit-identical |")
        print("|---|---|")
        for pattern in small:
            same = identical_after(pattern, args.identical_steps)
            print(f"| {pattern.title.split(',')[0]} | {'yes' if same else 'NO'} |", flush=True)
    if args.no_rss:
        return
    big = {"n": 32768, "d": 256, "hidden": 1024, "images_n": 512}
    print(
        f"\nPeak resident memory of one training step (fresh process each; FFN "
        f"{big['n']}×{big['d']}, hidden {big['hidden']}; CNN batch {big['images_n']}):\n"
    )
    print("| pattern | peak RSS, MiB (torch → relukit) | step's rise, MiB (torch → relukit) |")
    print("|---|---|---|")
    for key, title in (("a", "(a) FFN ReLU"), ("c", "(c) MLP ReLU"), ("b", "(b) CNN ReLU")):
        r0, r1 = (rss(key, which, **big) for which in ("torch", "relukit"))
        print(
            f"| {title} | {mib(r0['peak'])} → {mib(r1['peak'])} | "
            f"{mib(r0['peak'] - r0['before'])} → {mib(r1['peak'] - r1['before'])} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
