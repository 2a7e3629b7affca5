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
|x| ≤ 64 (by bit pattern) and every value within 0.25 of the member's minimum, or with
``--all-float32`` every finite float32 (2^32 − 2^24 values, 2^22 bit patterns at a time; the
``bits`` rows from the inputs where their maxima over every float32 lie, see
:func:`bits_candidates`);
float64 2^22 uniform on [−40, 40], a 2^20 grid within 0.25 of the minimum and log-spaced tails.

Columns: max |error| and where; max relative error where |f'| ≥ 2^-10 and where; max |error|
away from the minimum (|x − x*| ≥ 0.5).

    python benchmarks/memory_error.py [--quick] [--stride 64 | --all-float32] [--members gelu ...]
        [--modes output bits] [--dtypes float32 ...] [--json benchmarks/memory_error.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from typing import Any

import mpmath
import numba
import numpy as np
import torch
from scipy.optimize import brentq

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
    ("squared_relu", {}),
]
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}


def label(name: str, params: dict) -> str:
    return name + ("(tanh)" if params.get("approximate") == "tanh" else "")


STRIDE = [64]
ALL_FLOAT32 = [False]
CHUNK = 1 << 22


def inputs(dtype: str, centre: float, quick: bool) -> Iterator[np.ndarray]:
    """The float64 values of the inputs to test (each exactly representable in ``dtype``), in
    chunks: with ``--all-float32``, float32 is every finite float32, 2^22 bit patterns a
    chunk."""
    if dtype == "float32" and ALL_FLOAT32[0] and not quick:
        for first in range(0, 1 << 32, CHUNK):
            x = np.arange(first, first + CHUNK, dtype=np.uint64).astype(np.uint32)
            x = x.view(np.float32).astype(np.float64)
            x = x[np.isfinite(x)]
            if x.size:  # (the patterns of NaN and ±inf fill whole chunks)
                yield x
        return
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
    x = x[np.isfinite(x)]
    for start in range(0, x.size, CHUNK):
        yield x[start : start + CHUNK]


def merged(rows: list[dict]) -> dict:
    """One summary of several chunks' summaries (the largest of each error, with its input)."""
    out = dict(rows[0])
    out["n"] = sum(r["n"] for r in rows)
    for value, where in (("max_abs", "at"), ("max_rel", "rel_at")):
        worst = max(rows, key=lambda r: r[value])
        out[value], out[where] = worst[value], worst[where]
    out["max_abs_away"] = max(r["max_abs_away"] for r in rows)
    return out


def exact(f: relukit.Function, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(f(x)), np.asarray(f.derivative(x))


@numba.njit(nogil=True, cache=False)
def _errors(x, got, d, centre):  # type: ignore[no-untyped-def]
    """One pass of :func:`summarise`: the first largest |error| (NaN against NaN: 0; NaN
    against a number: skipped, as ``np.nanargmax`` skips it) and its index, the same of the
    relative error where |f'| >= 2^-10, and the largest |error| at |x - centre| >= 0.5 (NaN if
    one there is NaN; -1 if no input is there)."""
    best_abs, i, best_rel, j = -1.0, 0, -1.0, 0
    away, away_nan = -1.0, False
    floor = 2.0**-10
    for k in range(x.size):
        g, e = got[k], d[k]
        err = 0.0 if (g != g and e != e) else abs(g - e)
        if err > best_abs:
            best_abs, i = err, k
        magnitude = abs(e)
        rel = err / magnitude if magnitude >= floor else 0.0
        if rel > best_rel:
            best_rel, j = rel, k
        if abs(x[k] - centre) >= 0.5:
            if err != err:
                away_nan = True
            elif err > away:
                away = err
    return best_abs, i, best_rel, j, (np.nan if away_nan else away)


def summarise(x: np.ndarray, got: np.ndarray, d: np.ndarray, centre: float) -> dict:
    best_abs, i, best_rel, j, away = _errors(x, got, d, float(centre))
    return {
        "n": int(x.size),
        "max_abs": float(best_abs),
        "at": float(x[i]),
        "max_rel": float(best_rel),
        "rel_at": float(x[j]),
        "max_abs_away": float(away) if away >= 0 or away != away else 0.0,
    }


def both(
    x: np.ndarray, got: np.ndarray, cpu: np.ndarray, d: np.ndarray, centre: float
) -> tuple[dict, dict, bool]:
    """The summaries of the tensor path (``got``) and of relukit.nn's CPU path (``cpu``), and
    whether the two are equal bit for bit."""
    identical = bool(np.array_equal(got, cpu, equal_nan=True))
    return summarise(x, got, d, centre), summarise(x, cpu, d, centre), identical


def row_of(parts: list[tuple[dict, dict, bool]]) -> dict:
    """The row of all chunks: the tensor path's errors, the CPU path's under "cpu", and whether
    they were equal bit for bit in every chunk."""
    row = merged([p[0] for p in parts])
    cpu = merged([p[1] for p in parts])
    row["cpu"] = {k: cpu[k] for k in ("max_abs", "at", "max_rel", "rel_at", "max_abs_away")}
    row["cpu_identical"] = all(p[2] for p in parts)
    return row


def output_rows(f: relukit.Function, dtype: str, quick: bool) -> dict:
    spec, params = f.spec, f.params
    centre = output.minimum(spec, params).x if output.needs_bit(spec) else 0.0
    tdtype = DTYPES[dtype]
    key = from_output.key(spec.name, params)
    parts, checked = [], []
    for x in inputs(dtype, centre, quick):
        y, d = exact(f, x)
        yt = torch.from_numpy(y).to(tdtype)
        xt = torch.from_numpy(x).to(tdtype)
        below = output.branch_bit(spec, params, xt) if output.needs_bit(spec) else None
        got = output.derivative_from_output(spec, params, yt, below).double().numpy()
        # relukit.nn's CPU path: its bits from x, its backward from the same y
        _, mask = from_output.from_output_impl(xt, spec.name, key)
        ones = torch.ones_like(yt)
        grad = from_output.from_output_backward_impl(ones, yt, mask, spec.name, key)
        cpu = grad.double().numpy()
        parts.append(both(x, got, cpu, d, centre))
        if dtype == "float64":
            checked.append((mpmath_check(f, x, got), mpmath_check(f, x, cpu)))
    row = row_of(parts)
    if checked:
        row["mpmath_checked"] = max(c[0] for c in checked)
        row["cpu"]["mpmath_checked"] = max(c[1] for c in checked)
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
        if name == "squared_relu":
            return t * t if t > 0 else mpmath.mpf(0)
        alpha = {"elu": 1, "selu": 1.6732632423543772848170429916717, "celu": 1}[name]
        scale = 1.0507009873554804934193349852946 if name == "selu" else 1
        return scale * (t if t > 0 else alpha * mpmath.expm1(t))

    d = np.asarray(f.derivative(x))
    worst = np.argsort(-np.abs(got - d))[:20]
    return max(float(abs(mpmath.mpf(got[i]) - mpmath.diff(g, mpmath.mpf(x[i])))) for i in worst)


def bits_rows(f: relukit.Function, bits: int, dtype: str, quick: bool) -> dict:
    spec, params = f.spec, f.params
    q = steps.steps_for(spec, bits, params)
    tdtype = DTYPES[dtype]
    work = torch.float32 if tdtype == torch.bfloat16 else tdtype
    borders = torch.tensor(q.borders, dtype=work)
    levels = torch.tensor(q.levels, dtype=tdtype)
    key = from_output.key(spec.name, params)
    parts = []
    for x in inputs(dtype, 0.0, quick):
        _, d = exact(f, x)
        xt = torch.from_numpy(x).to(tdtype).to(work)
        codes = torch.bucketize(xt, borders)
        got = levels[codes].double().numpy()
        # relukit.nn's CPU path: its codes of x in the dtype, its backward of a gradient of ones
        native = torch.from_numpy(x).to(tdtype)
        _, packed = stepped.stepped_impl(native, spec.name, key, bits)
        ones = torch.ones_like(native)
        cpu = stepped.stepped_backward_impl(ones, packed, spec.name, key, bits).double().numpy()
        parts.append(both(x, got, cpu, d, 0.0))
    row = row_of(parts)
    # weighted mean squared error of the implemented step (rounded borders and levels)
    grid = np.linspace(-8, 8, 400_001 if quick else 4_000_001)
    _, dg = exact(f, grid)
    gt = torch.from_numpy(grid).to(tdtype).to(work)
    qg = levels[torch.bucketize(gt, borders)].double().numpy()
    w = steps.gaussian(grid)
    row["wmse"] = float(np.trapezoid((dg - qg) ** 2 * w, grid) / np.trapezoid(w, grid))
    row["wmse_optimum"] = q.error
    return row


def _float32_around(points: np.ndarray, reach: int) -> np.ndarray:
    """Every float32 within ``reach`` ulps of each of ``points`` (as float64, finite)."""
    centre = np.asarray(points, dtype=np.float64).astype(np.float32).view(np.int32)
    steps = np.arange(-reach, reach + 1, dtype=np.int64)
    # step through the float32 line: bit patterns of negatives run backwards
    ordered = np.where(centre < 0, np.int64(-(2**31)) - centre, centre).astype(np.int64)
    moved = (ordered[:, None] + steps[None, :]).ravel()
    moved = moved[(moved >= -(2**31)) & (moved < 2**31)]
    bits = np.where(moved < 0, np.int64(-(2**31)) - moved, moved).astype(np.int32)
    x = bits.view(np.float32).astype(np.float64)
    return x[np.isfinite(x)]


def _roots(g: Any, grid: np.ndarray, values: np.ndarray) -> list[float]:
    """The roots of ``g`` (a scalar function; ``values`` its values on ``grid``) in each grid
    cell where it changes sign, by Brent's method, and the ends of every run of exact zeros
    (where ``g`` starts or stops being 0)."""
    s = np.sign(values)
    found = []
    for k in np.flatnonzero(s[:-1] * s[1:] < 0):
        try:
            found.append(brentq(g, grid[k], grid[k + 1], xtol=1e-300, rtol=8.9e-16))
        except ValueError:  # no sign change for the scalar evaluation: keep the cell's ends
            found += [float(grid[k]), float(grid[k + 1])]
    edges = np.flatnonzero((s[:-1] == 0) != (s[1:] == 0))
    return found + [float(grid[k]) for k in edges] + [float(grid[k + 1]) for k in edges]


def bits_candidates(f: relukit.Function, borders: np.ndarray) -> np.ndarray:
    """The float32 inputs where the error of a step derivative over all float32 can peak.

    Within one code's interval the level ``L`` is constant, so ``|L − f'|`` and, where
    ``|f'| >= 2^-10``, ``|L/f' − 1|`` are monotone wherever ``f'`` is: their maxima over the
    float32 values of an interval lie at its ends, at the turns of ``f'`` (roots of ``f''``,
    here a central difference of the registry's ``f'``), at its kinks and jumps (every
    member's is at 0), at the crossings of ``|f'| = 2^-10`` and at ``|x| = 0.5`` (the "away"
    column). Those places are found on a grid of 2^20 cells over [−128, 128] (beyond it every
    member's ``f'`` is monotone) and refined by Brent's method; the candidates are every
    float32 within 256 ulps of each, both ends of every interval, ±0, ±the smallest subnormal
    and ±the largest float32.
    """

    def derivative(t: float) -> float:
        return float(np.asarray(f.derivative(np.array([t])))[0])

    def second(t: float) -> float:
        step = 1e-6 * max(1.0, abs(t))
        return (derivative(t + step) - derivative(t - step)) / (2 * step)

    grid = np.linspace(-128.0, 128.0, (1 << 20) + 1)
    d = np.asarray(f.derivative(grid))
    step = 1e-6 * np.maximum(1.0, np.abs(grid))
    curvature = (np.asarray(f.derivative(grid + step)) - np.asarray(f.derivative(grid - step))) / (
        2 * step
    )
    floor = 2.0**-10
    places = [
        *_roots(second, grid, curvature),
        *_roots(lambda t: abs(derivative(t)) - floor, grid, np.abs(d) - floor),
        0.0,
        0.5,
        -0.5,
    ]
    near = _float32_around(np.array(places), 256)
    ends = np.concatenate([borders, np.nextafter(borders.astype(np.float32), np.float32(np.inf))])
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    extremes = [0.0, -0.0, tiny, -tiny, np.finfo(np.float32).max, -np.finfo(np.float32).max]
    x = np.concatenate([near, _float32_around(ends, 8), np.array(extremes)])
    return np.unique(x.astype(np.float32).astype(np.float64))


def bits_rows_every_float32(f: relukit.Function, bits: int) -> dict:
    """:func:`bits_rows` for float32 over every finite float32, from :func:`bits_candidates`
    (the maxima over all float32 are attained there); ``n`` counts all finite float32 and
    ``candidates`` the inputs evaluated."""
    spec, params = f.spec, f.params
    q = steps.steps_for(spec, bits, params)
    borders = torch.tensor(q.borders, dtype=torch.float32)
    levels = torch.tensor(q.levels, dtype=torch.float32)
    x = bits_candidates(f, borders.double().numpy())
    d = np.asarray(f.derivative(x))
    xt = torch.from_numpy(x).to(torch.float32)
    got = levels[torch.bucketize(xt, borders)].double().numpy()
    key = from_output.key(spec.name, params)
    _, packed = stepped.stepped_impl(xt, spec.name, key, bits)
    ones = torch.ones_like(xt)
    cpu = stepped.stepped_backward_impl(ones, packed, spec.name, key, bits).double().numpy()
    row = row_of([both(x, got, cpu, d, 0.0)])
    row["n"] = (1 << 32) - (1 << 24)
    row["candidates"] = int(x.size)
    grid = np.linspace(-8, 8, 4_000_001)
    _, dg = exact(f, grid)
    qg = levels[torch.bucketize(torch.from_numpy(grid).to(torch.float32), borders)]
    w = steps.gaussian(grid)
    row["wmse"] = float(
        np.trapezoid((dg - qg.double().numpy()) ** 2 * w, grid) / np.trapezoid(w, grid)
    )
    row["wmse_optimum"] = q.error
    return row


def table(rows: list[dict]) -> list[str]:
    """The Markdown table of ``rows`` (the bits rows over every float32 say so in "inputs")."""
    lines = [
        "| member | mode | dtype | inputs | max abs error | at x | max rel error (\\|f′\\| ≥ "
        "2^-10) | at x | max abs error, \\|x − x*\\| ≥ 0.5 | weighted MSE (DP optimum) | CPU: "
        "max abs error | CPU: max rel error | CPU: max abs error, \\|x − x*\\| ≥ 0.5 | CPU = "
        "tensor path, bit for bit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        wmse = f"{r['wmse']:.3e} ({r['wmse_optimum']:.3e})" if "wmse" in r else ""
        cpu = r["cpu"]
        inputs = f"{r['n']:,}" + (f" ({r['candidates']:,} evaluated)" if "candidates" in r else "")
        lines.append(
            f"| {r['member']} | {r['mode']} | {r['dtype']} | {inputs} | {r['max_abs']:.2e} | "
            f"{r['at']:.6g} | {r['max_rel']:.2e} | {r['rel_at']:.6g} | {r['max_abs_away']:.2e} "
            f"| {wmse} | {cpu['max_abs']:.2e} | {cpu['max_rel']:.2e} | "
            f"{cpu['max_abs_away']:.2e} | {'yes' if r['cpu_identical'] else 'no'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sparser samples, for a smoke test")
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument("--stride", type=int, default=64, help="float32 bit-pattern stride")
    parser.add_argument(
        "--all-float32", action="store_true", help="float32: every finite value (2^32 patterns)"
    )
    parser.add_argument("--members", nargs="*", default=None, help="e.g. gelu silu (default: all)")
    parser.add_argument("--modes", nargs="*", default=None, help="output, bits (default: both)")
    parser.add_argument("--dtypes", nargs="*", default=None, help="e.g. float32 (default: all)")
    parser.add_argument(
        "--table-from", nargs="*", default=None, help="only print the table of these JSON files"
    )
    args = parser.parse_args()
    if args.table_from:
        rows = []
        for path in args.table_from:
            with open(path) as handle:
                rows += json.load(handle)
        print("\n".join(table(rows)))
        return
    STRIDE[0] = args.stride
    ALL_FLOAT32[0] = args.all_float32
    rows = []
    started = time.time()
    for name, params in MEMBERS:
        if args.members and name not in args.members:
            continue
        f = relukit.get(name, **params)
        dtypes = [t for t in DTYPES if not args.dtypes or t in args.dtypes]
        if not args.modes or "output" in args.modes:
            for dtype in dtypes:
                rows.append(
                    {"member": label(name, params), "mode": "output", "dtype": dtype}
                    | output_rows(f, dtype, args.quick)
                )
                print(json.dumps(rows[-1]), flush=True)
        if not args.modes or "bits" in args.modes:
            for bits in steps.BITS:
                for dtype in dtypes if bits == 3 else [t for t in dtypes if t == "float32"]:
                    every = dtype == "float32" and args.all_float32 and not args.quick
                    found = (
                        bits_rows_every_float32(f, bits)
                        if every
                        else bits_rows(f, bits, dtype, args.quick)
                    )
                    rows.append(
                        {"member": label(name, params), "mode": f"bits={bits}", "dtype": dtype}
                        | found
                    )
                    print(json.dumps(rows[-1]), flush=True)
    print(f"\n{time.time() - started:.0f} s\n")
    print("\n".join(table(rows)))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
