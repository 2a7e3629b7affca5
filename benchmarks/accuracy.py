"""Accuracy of the smooth members against the true function, next to PyTorch's on the same inputs.

For each smooth member and its derivative: the largest error in ulps (plain: relative to the
true result alone, wherever it is a normal number of the dtype, tails included) and the input
where it occurs, for relukit (the compiled kernels, what NumPy arrays and CPU tensors get) and
for PyTorch (``torch.nn.functional``, and ``torch.autograd`` for the derivative):

- float32: every ``--stride``-th of the 2^32 bit patterns (1 = all of them);
- float16 and bfloat16: every bit pattern;
- float64: a dense sample of about 3.5·``--float64`` inputs (uniform on [−12, 12], log-spaced
  magnitudes up to 750, the left tails, around the zeros of the derivatives), against mpmath.

The oracle is ``tests/family/truth.py``. Prints the Markdown table and, with ``--write``,
puts it into ``benchmarks/RESULTS.md`` between the accuracy markers.

    python benchmarks/accuracy.py [--stride 257] [--float64 2000] [--dtypes float64] [--write]

``--dtypes`` picks some of the dtypes (for a quick check; ``--write`` needs all four).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np
import torch
import torch.nn.functional as F

import relukit

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))

from family.test_accuracy import float64_sample, ulp_error  # noqa: E402
from family.truth import SMOOTH_CASES, exact, member_id, truth  # noqa: E402

BEGIN, END = "<!-- accuracy:begin -->", "<!-- accuracy:end -->"
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
                "bfloat16": torch.bfloat16}  # fmt: skip


def torch_function(name: str, params: dict) -> object:
    if name == "gelu":
        return lambda t: F.gelu(t, approximate=params.get("approximate", "none"))
    if name == "softplus":
        return lambda t: F.softplus(t, params.get("beta", 1.0), params.get("threshold", 20.0))
    if name in ("elu", "celu"):
        return lambda t: getattr(F, name)(t, params.get("alpha", 1.0))
    if name in ("sigmoid", "tanh"):
        return getattr(torch, name)
    return getattr(F, name)


def torch_values(name: str, params: dict, x: np.ndarray, op: str, dtype: str) -> np.ndarray:
    f = torch_function(name, params)
    out = []
    for part in np.array_split(x, max(1, x.size // (1 << 22))):
        host = part.astype(np.float32) if dtype == "bfloat16" else part
        t = torch.from_numpy(np.ascontiguousarray(host)).to(TORCH_DTYPES[dtype])
        t.requires_grad_(op == "derivative")
        y = f(t)
        if op == "derivative":
            (y,) = torch.autograd.grad(y, t, torch.ones_like(y))
        out.append(y.detach().to(torch.float64).numpy())
    return np.concatenate(out)


def relukit_values(function, x: np.ndarray, op: str) -> np.ndarray:
    y = function(x) if op == "forward" else function.derivative(x)
    return np.asarray(y).astype(np.float64)


def inputs(dtype: str, stride: int, n64: int) -> np.ndarray:
    if dtype == "float32":
        bits = np.arange(0, 2**32, stride, dtype=np.uint64).astype(np.uint32)
        x = bits.view(np.float32)
    elif dtype == "float64":
        return float64_sample(n64)
    else:
        kind = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
        x = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(kind)
    return x[np.isfinite(x.astype(np.float32))]


def worst(error: np.ndarray, x: np.ndarray) -> str:
    i = int(np.argmax(error))
    return f"{error[i]:.2f} at {float(x[i]):.7g}" if error[i] > 0 else "0"


DTYPES = ("float32", "float16", "bfloat16", "float64")


def measure(stride: int, n64: int, dtypes: tuple[str, ...] = DTYPES) -> list[str]:
    rows = []
    for dtype in dtypes:
        x = inputs(dtype, stride, n64)
        x64 = x.astype(np.float64)
        for name, params in SMOOTH_CASES:
            function, mid = relukit.get(name, **params), member_id(name, params)
            label = mid + (f" {params}" if params and name != "gelu" else "")
            for op in ("forward", "derivative"):
                if dtype == "float64":
                    true = np.array([exact(mid, op, float(v), params) for v in x64])
                else:
                    true = truth(mid, op, x64, params)
                ours = ulp_error(relukit_values(function, x, op), true, x.dtype)
                theirs = ulp_error(torch_values(name, params, x, op, dtype), true, x.dtype)
                above = int(np.sum(theirs > (1 if dtype in ("float16", "bfloat16") else 2)))
                rows.append(
                    f"| {label} | {op} | {dtype} | {worst(ours, x)} | {worst(theirs, x)} "
                    f"| {above:,} |"
                )
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stride", type=int, default=257)
    parser.add_argument("--float64", type=int, default=2000)
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    dtypes = tuple(args.dtypes.split(","))
    if not set(dtypes) <= set(DTYPES) or (args.write and set(dtypes) != set(DTYPES)):
        parser.error(f"--dtypes {args.dtypes!r}: some of {','.join(DTYPES)} (all four to --write)")
    start = time.time()
    rows = measure(args.stride, args.float64, dtypes)
    count = len(inputs("float32", args.stride, 0))
    table = "\n".join(
        [
            f"float32: every {args.stride}th bit pattern ({count:,} finite inputs); float16 and "
            "bfloat16: every bit pattern; float64: "
            f"{len(float64_sample(args.float64)):,} inputs against mpmath "
            f"(`python benchmarks/accuracy.py --stride {args.stride} --float64 {args.float64}`, "
            f"{time.time() - start:.0f} s).",
            "",
            "| member | op | dtype | relukit: largest error (ulp) at x | PyTorch 2.13: largest "
            "error at x | PyTorch: inputs above the bar |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    print(table)
    if args.write:
        path = HERE / "RESULTS.md"
        text = path.read_text()
        head, rest = text.split(BEGIN)
        _, tail = rest.split(END)
        path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")


if __name__ == "__main__":
    main()
