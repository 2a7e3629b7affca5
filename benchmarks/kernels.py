"""The full kernels benchmark of issue 3, whose numbers go to ``benchmarks/RESULTS.md``.

float32 at every size 2^10 … 2^26 (every second power of two) for relu, leaky_relu, relu6,
elu, gelu and silu, all six ops; then float64 and bfloat16 at 2^20 and 2^24; and the first-call
compile cost in fresh processes. Writes ``kernels.json`` and ``kernels.png`` next to this file
and prints the Markdown of the run (machine, load average before and after, targets, rows).

    python benchmarks/kernels.py [--repeats 5] [--out-dir benchmarks]

The same measurements, a few at a time, come from ``relukit bench`` (see ``relukit bench
--help``). Close other programs first: the numbers are only as quiet as the machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from relukit.bench import FULL_SIZES, BenchConfig, markdown, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out-dir", default=str(Path(__file__).parent))
    args = parser.parse_args()
    out = Path(args.out_dir)
    main_run = run(
        BenchConfig(
            sizes=FULL_SIZES,
            dtypes=("float32",),
            repeats=args.repeats,
            json_path=str(out / "kernels.json"),
            png_path=str(out / "kernels.png"),
        )
    )
    other = run(
        BenchConfig(
            sizes=(2**20, 2**24),
            dtypes=("float64", "bfloat16"),
            repeats=args.repeats,
            json_path=str(out / "kernels-other-dtypes.json"),
            compile_cost=False,
        )
    )
    print("## float32\n")
    print(markdown(main_run))
    print("## float64 and bfloat16\n")
    print(markdown(other))


if __name__ == "__main__":
    main()
