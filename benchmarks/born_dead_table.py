"""Born-dead probability of fresh fully connected ReLU networks, He normal vs RAI.

Prints the table for widths 2, 3, 4, 5 at depths 10 and 30 (probability and 95 % Wilson
interval over ``--trials`` initialisations), and with ``--figure PATH`` draws the estimate for
widths 2–10 × depths 1–50.

Input points: ``--points`` points drawn uniformly (seeded) from [-sqrt(3), sqrt(3)]^d_in,
``d_in = --dim``; a network counts as dead when some hidden layer is zero on all of them.
He normal uses zero biases; RAI draws each neuron's bias with its weights, as the paper does.

    python benchmarks/born_dead_table.py [--trials 1000] [--figure born_dead.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from relukit.diagnostics import born_dead_curve, born_dead_grid, plot_born_dead

INITS = ("he_normal", "rai")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--dim", type=int, default=1)
    parser.add_argument("--figure", default=None, help="write the widths 2-10 x depths 1-50 figure")
    args = parser.parse_args()

    x = np.random.default_rng(args.seed).uniform(
        -np.sqrt(3), np.sqrt(3), size=(args.points, args.dim)
    )
    print(
        f"{args.trials} trials per cell, {args.points} input points in "
        f"[-sqrt 3, sqrt 3]^{args.dim}, seed {args.seed}; probability [95 % Wilson CI]"
    )
    print()
    start = time.perf_counter()
    rows = []
    for width in (2, 3, 4, 5):
        curves = {
            init: born_dead_curve(width, 30, x, init=init, trials=args.trials, seed=args.seed)
            for init in INITS
        }
        for depth in (10, 30):
            rows.append((width, depth, *(curves[init][depth - 1] for init in INITS)))
    header = f"{'width':>5} {'depth':>5}  {'He normal':<24}RAI"
    print(header)
    print("-" * (len(header) + 21))
    for width, depth, he, rai in rows:
        cells = [f"{e.probability:.3f} [{e.ci_low:.3f}, {e.ci_high:.3f}]" for e in (he, rai)]
        print(f"{width:>5} {depth:>5}  {cells[0]:<24}{cells[1]}")
    print(f"\n(table computed in {time.perf_counter() - start:.1f} s)")

    if args.figure:
        start = time.perf_counter()
        grid = born_dead_grid(
            range(2, 11), range(1, 51), x, inits=INITS, trials=args.trials, seed=args.seed
        )
        elapsed = time.perf_counter() - start
        plot_born_dead(grid, path=args.figure)
        print(
            f"figure grid (widths 2-10 x depths 1-50, 2 inits) in {elapsed:.1f} s -> {args.figure}"
        )
        deep = [e for e in grid if e.depth == 50 and e.width <= 5]
        for init in INITS:
            probs = ", ".join(f"w{e.width}: {e.probability:.3f}" for e in deep if e.init == init)
            print(f"  depth 50, {init}: {probs}")


if __name__ == "__main__":
    main()
