"""One answer: an element's value does not depend on the array around it.

Every elementwise member (with default and a few other parameters) and every float dtype: each
probe value is evaluated alone (an array of one element), then placed inside arrays of 7,
1,023, 1,024 and 100,000 elements of other values, contiguous, unaligned, strided, reversed,
two-dimensional in Fortran order and as a torch tensor (and one that requires grad), on one
thread and split over several; forward, derivative and vjp must give the same bits at its
place. (rrelu in training and prelu with a slope per channel depend on the position by design,
and are left out.)
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch

import relukit
from relukit import threads
from relukit.family.numerics import ZEROS
from relukit.kernels.cpu import host as cpu_host

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
TORCH = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
         "bfloat16": torch.bfloat16}  # fmt: skip
LENGTHS = (7, 1023, 1024, 100_000)
CASES = [(s.name, {}) for s in relukit.family() if s.elementwise] + [
    ("gelu", {"approximate": "tanh"}),
    ("softplus", {"beta": 1.7, "threshold": 15.0}),
    ("elu", {"alpha": 1.3}),
    ("leaky_relu", {"negative_slope": 0.07}),
    ("hardtanh", {"min_val": -0.1, "max_val": 2.5}),
    ("general_relu", {"negative_slope": 0.1, "max_value": 3.0, "threshold": 1.0}),
]
GRAD = 0.75


def probes(dtype: np.dtype) -> np.ndarray:
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 6.0, 2.5, -0.1, 3e-6, -6e-8,
              1e-40, -1e-40, 88.5, -88.5, -103.9, -20.5, 20.5, 40.0, -40.0, -13.1, 9.0,
              65504.0, -7e4, 3e38, -3e38]  # fmt: skip
    values += [z[0] for z in ZEROS.values()]
    values += list(np.random.default_rng(0).standard_normal(20) * 4)
    with np.errstate(over="ignore"):
        return np.array(values).astype(dtype)


def host(a: np.ndarray) -> torch.Tensor:
    if a.dtype == BF16:
        return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
    return torch.from_numpy(a)


def back(t: object) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach()
        return t.float().numpy().astype(BF16) if t.dtype == torch.bfloat16 else t.numpy()
    return np.asarray(t)


def layouts(a: np.ndarray) -> dict[str, object]:
    """``a`` laid out in several ways (each holds a's values in C order once reshaped)."""
    n = a.size
    unaligned = np.empty(n + 1, dtype=a.dtype)[1:]
    unaligned[...] = a
    strided = np.empty(3 * n, dtype=a.dtype)[::3]
    strided[...] = a
    views: dict[str, object] = {
        "contiguous": a,
        "unaligned": unaligned,
        "strided": strided,
        "reversed": a[::-1].copy()[::-1],
        "torch": host(a),
        "torch, requires grad": host(a).requires_grad_(),  # (kernels.tracked)
    }
    rows = next((r for r in (100, 31, 32, 7) if n % r == 0 and n > r), None)
    if rows is not None:
        views["fortran"] = np.asfortranarray(a.reshape(rows, -1))
    return views


def bits(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    out = a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]).copy()
    nan = np.isnan(a.astype(np.float32)) if a.dtype.itemsize == 2 else np.isnan(a)
    return np.where(nan, 0, out)  # NaN payloads are not compared


def evaluate(function, op: str, x):
    if op == "forward":
        return function(x)
    if op == "derivative":
        return function.derivative(x)
    grad = torch.full_like(x, GRAD) if isinstance(x, torch.Tensor) else np.full_like(x, GRAD)
    return function.vjp(x, grad)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_an_element_has_one_value_whatever_the_array(name, params, dtype, monkeypatch):
    function = relukit.get(name, **params)
    values = probes(dtype)
    alone = {}
    for op in ("forward", "derivative", "vjp"):
        each = [back(evaluate(function, op, values[i : i + 1])) for i in range(values.size)]
        alone[op] = bits(np.concatenate(each))
    rng = np.random.default_rng(1)
    monkeypatch.setattr(cpu_host, "GRAIN_LINEAR", 4096)  # several chunks from 8,192 elements up
    monkeypatch.setattr(cpu_host, "GRAIN_SMOOTH", 4096)
    monkeypatch.setattr(cpu_host, "PIECES_TEAM", cpu_host.PIECES)
    for n in LENGTHS:
        groups = [np.arange(i, min(i + n, values.size)) for i in range(0, values.size, n)]
        for group in groups:
            a = (rng.standard_normal(n) * 3).astype(dtype)
            at = np.linspace(0, n - 1, group.size).round().astype(int)
            a[at] = values[group]
            for layout, x in layouts(a).items():
                for count in (1, 4) if n == LENGTHS[-1] else (1,):
                    with threads.limit(count):
                        for op in ("forward", "derivative", "vjp"):
                            got = bits(back(evaluate(function, op, x)).reshape(-1))
                            want = alone[op][group]
                            assert np.array_equal(got[at], want), (n, layout, count, op)
