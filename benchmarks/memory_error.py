"""Gradient error of the memory-light backward modes against the exact derivative.

For each smooth member, mode and dtype: the derivative the backward uses, compared with the
exact derivative at the same input (the registry's float64 derivative; mpmath confirms the
worst cases of the float64 rows):

- ``output``: f' recovered from ``y`` (the float64 forward rounded once to the dtype, as a
  correctly rounded forward gives it) and, for gelu/silu/mish, the bit ``x < x*``
  (:mod:`relukit.memory.output`, PyTorch tensors, the path relukit.nn takes);
- ``bits=b``: the level of the input's interval (:mod:`relukit.memory.steps`; borders and
  levels rounded to the dtype, 16-bit inputs compared in float32), with the Gaussian-weighted
  mean squared error of what is implemented next to the dynamic program's optimum.

Each row is measured twice: on the PyTorch-tensor path above (what relukit.nn runs on every
device), and on what relukit.nn runs on the CPU, through its operators' own implementations
(``relukit.nn.from_output`` and ``relukit.nn.stepped``): the compiled kernels of
:mod:`relukit.kernels.cpu.memory` for float32 and float64 (the output mode's inverse in the
dtype's own arithmetic, the bits mode's codes and levels), the tensor path elsewhere. The
"CPU" columns give that path's errors and whether its derivatives equal the tensor path's bit
for bit.

Inputs: bfloat16 all finite values; float32 every 64th (``--stride``) finite value with
|x| ≤ 64 (by bit pattern) and every value within 0.25 of the member's minimum; float64 2^22 uniform
on [−40, 40], a 2^20 grid within 0.25 of the minimum and log-spaced tails.

Columns: max |error| and where; max relative error where |f'| ≥ 2^-10 and where; max |error|
away from the minimum (|x − x*| ≥ 0.5).

    python benchmarks/memory_error.py [--quick] [--json benchmarks/memory_error.json]
"""

from __future__ import annotations

import argparse
import json
import time

import mpmath
import numpy as np
import torch

import relukit
from relukit.memory import output, steps
from relukit.nn import from_output, stepped

MEMBERS = [
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("mish", {}),
    ("elu", {}),
    ("selu", {}),
    ("celu", {}),
    ("softplus", {}),
]
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def label(name: str, params: dict) -> str:
    return name + ("(tanh)" if params.get("approximate") == "tanh" else "")


STRIDE = [64]


def inputs(dtype: str, centre: float, quick: bool) -> np.ndarray:
    """The float64 values of the inputs to test (each exactly representable in ``dtype``)."""
    if dtype == "bfloat16":
        bits = torch.arange(0, 1 << 16, dtype=torch.int32).to(torch.int16)
        x = bits.view(torch.bfloat16).double().numpy()
    elif dtype == "float32":
        top = int(np.float32(64).view(np.uint32))
        stride = 1024 if quick else STRIDE[0]
        positive = np.arange(0, top, stride, dtype=np.uint32).view(np.float32)
        parts = [positive, -positive]
        if centre != 0:  # every float32 within 0.25 of the minimum (a negative number)
            a, b = np.float32(-centre - 0.25), np.float32(-centre + 0.25)
            every = np.arange(a.view(np.int32), b.view(np.int32) + 1, dtype=np.int32)
            parts.append(-every.view(np.float32))
        x = np.concatenate(parts).astype(np.float64)
    else:
        rng = np.random.default_rng(12)
        n = 1 << (16 if quick else 22)
        tails = np.geomspace(1e-300, 700, 4096)
        x = np.concatenate(
            [
                rng.uniform(-40, 40, n),
                centre + np.linspace(-0.25, 0.25, n // 4),
                tails,
                -tails,
            ]
        )
    return x[np.isfinite(x)]


def exact(f: relukit.Function, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    chunks = [slice(i, i + (1 << 22)) for i in range(0, x.size, 1 << 22)]
    y = np.concatenate([np.asarray(f(x[c])) for c in chunks])
    d = np.concatenate([np.asarray(f.derivative(x[c])) for c in chunks])
    return y, d


def summarise(x: np.ndarray, got: np.ndarray, d: np.ndarray, centre: float) -> dict:
    err = np.abs(got - d)
    err[np.isnan(got) & np.isnan(d)] = 0
    i = int(np.nanargmax(err))
    big = np.abs(d) >= 2.0**-10
    rel = np.where(big, err / np.where(big, np.abs(d), 1), 0)
    j = int(np.nanargmax(rel))
    away = np.abs(x - centre) >= 0.5
    return {
        "n": int(x.size),
        "max_abs": float(err[i]),
        "at": float(x[i]),
        "max_rel": float(rel[j]),
        "rel_at": float(x[j]),
        "max_abs_away": float(err[away].max()) if away.any() else 0.0,
    }


def with_cpu(
    row: dict, x: np.ndarray, got: np.ndarray, cpu: np.ndarray, d: np.ndarray, centre: float
) -> dict:
    """``row`` with the errors of relukit.nn's CPU path (``cpu``) and whether they equal the
    tensor path's (``got``) bit for bit."""
    found = summarise(x, cpu, d, centre)
    row["cpu"] = {k: found[k] for k in ("max_abs", "at", "max_rel", "rel_at", "max_abs_away")}
    row["cpu_identical"] = bool(np.array_equal(got, cpu, equal_nan=True))
    return row


def output_rows(f: relukit.Function, dtype: str, quick: bool) -> dict:
    spec, params = f.spec, f.params
    centre = output.minimum(spec, params).x if output.needs_bit(spec) else 0.0
    x = inputs(dtype, centre, quick)
    y, d = exact(f, x)
    tdtype = DTYPES[dtype]
    key = from_output.key(spec.name, params)
    got, cpu = np.empty_like(d), np.empty_like(d)
    for start in range(0, x.size, 1 << 22):
        c = slice(start, start + (1 << 22))
        yt = torch.from_numpy(y[c]).to(tdtype)
        xt = torch.from_numpy(x[c]).to(tdtype)
        below = output.branch_bit(spec, params, xt) if output.needs_bit(spec) else None
        got[c] = output.derivative_from_output(spec, params, yt, below).double().numpy()
        # relukit.nn's CPU path: its bits from x, its backward from the same y
        _, mask = from_output.from_output_impl(xt, spec.name, key)
        ones = torch.ones_like(yt)
        grad = from_output.from_output_backward_impl(ones, yt, mask, spec.name, key)
        cpu[c] = grad.double().numpy()
    row = with_cpu(summarise(x, got, d, centre), x, got, cpu, d, centre)
    if dtype == "float64":
        row["mpmath_checked"] = mpmath_check(f, x, got)
        row["cpu"]["mpmath_checked"] = mpmath_check(f, x, cpu)
    return row


def mpmath_check(f: relukit.Function, x: np.ndarray, got: np.ndarray) -> float:
    """The largest error at the 20 worst points against an mpmath derivative (50 digits)."""
    mpmath.mp.dps = 50
    name, params = f.spec.name, f.params
    s2 = mpmath.sqrt(2)

    def g(t):
        if name == "gelu" and params["approximate"] == "tanh":
            c = mpmath.sqrt(2 / mpmath.pi)
            return t * (1 + mpmath.tanh(c * (t + mpmath.mpf("0.044715") * t**3))) / 2
        if name == "gelu":
            return t * mpmath.erfc(-t / s2) / 2
        if name == "silu":
            return t / (1 + mpmath.exp(-t))
        if name == "mish":
            return t * mpmath.tanh(mpmath.log1p(mpmath.exp(t)))
        if name == "softplus":
            return mpmath.log1p(mpmath.exp(t))
        alpha = {"elu": 1, "selu": 1.6732632423543772848170429916717, "celu": 1}[name]
        scale = 1.0507009873554804934193349852946 if name == "selu" else 1
        return scale * (t if t > 0 else alpha * mpmath.expm1(t))

    d = np.asarray(f.derivative(x))
    worst = np.argsort(-np.abs(got - d))[:20]
    return max(float(abs(mpmath.mpf(got[i]) - mpmath.diff(g, mpmath.mpf(x[i])))) for i in worst)


def bits_rows(f: relukit.Function, bits: int, dtype: str, quick: bool) -> dict:
    spec, params = f.spec, f.params
    q = steps.steps_for(spec, bits, params)
    x = inputs(dtype, 0.0, quick)
    _, d = exact(f, x)
    tdtype = DTYPES[dtype]
    work = torch.float32 if tdtype == torch.bfloat16 else tdtype
    borders = torch.tensor(q.borders, dtype=work)
    levels = torch.tensor(q.levels, dtype=tdtype)
    xt = torch.from_numpy(x).to(tdtype).to(work)
    codes = torch.bucketize(xt, borders)
    got = levels[codes].double().numpy()
    # relukit.nn's CPU path: its codes of x in the dtype, its backward of a gradient of ones
    key = from_output.key(spec.name, params)
    native = torch.from_numpy(x).to(tdtype)
    _, packed = stepped.stepped_impl(native, spec.name, key, bits)
    ones = torch.ones_like(native)
    cpu = stepped.stepped_backward_impl(ones, packed, spec.name, key, bits).double().numpy()
    row = with_cpu(summarise(x, got, d, 0.0), x, got, cpu, d, 0.0)
    # weighted mean squared error of the implemented step (rounded borders and levels)
    grid = np.linspace(-8, 8, 400_001 if quick else 4_000_001)
    _, dg = exact(f, grid)
    gt = torch.from_numpy(grid).to(tdtype).to(work)
    qg = levels[torch.bucketize(gt, borders)].double().numpy()
    w = steps.gaussian(grid)
    row["wmse"] = float(np.trapezoid((dg - qg) ** 2 * w, grid) / np.trapezoid(w, grid))
    row["wmse_optimum"] = q.error
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sparser samples, for a smoke test")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--stride", type=int, default=64, help="float32 bit-pattern stride")
    args = parser.parse_args()
    STRIDE[0] = args.stride
    rows = []
    started = time.time()
    for name, params in MEMBERS:
        f = relukit.get(name, **params)
        for dtype in DTYPES:
            rows.append(
                {"member": label(name, params), "mode": "output", "dtype": dtype}
                | output_rows(f, dtype, args.quick)
            )
            print(json.dumps(rows[-1]), flush=True)
        for bits in steps.BITS:
            for dtype in DTYPES if bits == 3 else ("float32",):
                rows.append(
                    {"member": label(name, params), "mode": f"bits={bits}", "dtype": dtype}
                    | bits_rows(f, bits, dtype, args.quick)
                )
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{time.time() - started:.0f} s\n")
    print(
        "| member | mode | dtype | inputs | max abs error | at x | max rel error (\\|f′\\| ≥ "
        "2^-10) | at x | max abs error, \\|x − x*\\| ≥ 0.5 | weighted MSE (DP optimum) | CPU: "
        "max abs error | CPU: max rel error | CPU: max abs error, \\|x − x*\\| ≥ 0.5 | CPU = "
        "tensor path, bit for bit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        wmse = f"{r['wmse']:.3e} ({r['wmse_optimum']:.3e})" if "wmse" in r else ""
        cpu = r["cpu"]
        print(
            f"| {r['member']} | {r['mode']} | {r['dtype']} | {r['n']:,} | {r['max_abs']:.2e} | "
            f"{r['at']:.6g} | {r['max_rel']:.2e} | {r['rel_at']:.6g} | {r['max_abs_away']:.2e} "
            f"| {wmse} | {cpu['max_abs']:.2e} | {cpu['max_rel']:.2e} | "
            f"{cpu['max_abs_away']:.2e} | {'yes' if r['cpu_identical'] else 'no'} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
