"""The Triton mask kernels against the PyTorch rules on the CPU, bit for bit.

The kernels run in Triton's interpreter on the CPU (the test suite's default), or compiled on a
GPU with ``TRITON_INTERPRET=0``; see ``helpers.kernel_device``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import relukit
from relukit.family import lookup
from relukit.nn.rules import for_member

from .helpers import DTYPES, SIZES, assert_same, inputs, kernel_device

DEVICE = kernel_device()
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

from relukit.kernels.gpu import piecewise  # noqa: E402

INF = math.inf
CASES = [
    ("relu", ()),
    ("leaky_relu", (0.01,)),
    ("leaky_relu", (0.1,)),
    ("leaky_relu", (0.0,)),
    ("leaky_relu", (1.0,)),
    ("leaky_relu", (-0.5,)),
    ("relu6", ()),
    ("hardtanh", (-1.0, 1.0)),
    ("hardtanh", (-0.0, 6.0)),
    ("hardtanh", (0.0, 6.0)),
    ("hardtanh", (-0.3, 0.7)),
    ("general_relu", (0.0, INF, 0.0)),
    ("general_relu", (0.1, INF, 0.0)),
    ("general_relu", (1.0, INF, 0.5)),
    ("general_relu", (0.5, 3.0, 1.0)),
    ("general_relu", (1.0, 3.0, 0.0)),
    ("general_relu", (0.0, 6.0, 0.0)),
    ("general_relu", (0.2, 6.0, -1.0)),
    ("general_relu", (0.0, 5.0, 5.0)),  # Keras: max_value == threshold
    ("general_relu", (0.1, 0.0, -2.0)),  # a cap of 0 with a negative threshold
    ("general_relu", (-0.5, 2.0, -1.5)),
]


def _id(case: tuple[str, tuple[float, ...]]) -> str:
    return f"{case[0]}{list(case[1])}"


def _formula(member: str, values: tuple[float, ...]) -> tuple[str, tuple[float, ...]]:
    """The registry's compiled formula and its parameters for ``member`` (encoded values)."""
    spec = lookup(member)
    return spec.kernel(spec.bind(spec.decode(list(values))))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_forward_and_backward_are_the_rules(case, dtype):
    member, params = case
    r = for_member(member, params)
    formula, args = _formula(member, params)
    for n in SIZES:
        x = inputs(n, dtype, seed=n)
        g = inputs(n, dtype, seed=n + 1)
        y, mask = piecewise.forward_with_mask(formula, args, x.to(DEVICE))
        y_rule, mask_rule = r.forward_with_mask(x)
        assert_same(y.cpu(), y_rule)
        assert torch.equal(mask.cpu(), mask_rule), f"mask differs at n={n}"
        # the other device's mask, each way
        assert_same(
            piecewise.backward_from_mask(formula, args, g.to(DEVICE), mask_rule.to(DEVICE)).cpu(),
            r.backward_from_mask(g, mask_rule),
        )
        assert_same(r.backward_from_mask(g, mask.cpu()), r.backward_from_mask(g, mask_rule))


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_mask_is_the_reference_layout(case):
    """The registry's reference path (relukit.kernels.mask, NumPy) packs the same bytes.

    NaN is left out: general_relu's rule (PyTorch path) gives it the identity's code, the
    registry the code below the threshold; the layout is what this test is about.
    """
    member, params = case
    names = [p.name for p in relukit.get(member).spec.parameters]
    bound = dict(zip(names, params, strict=True))
    if member == "general_relu" and bound["max_value"] == INF:
        bound["max_value"] = None
    x = inputs(4999, torch.float64, seed=3).nan_to_num(nan=0.25)
    _, mask = piecewise.forward_with_mask(*_formula(member, params), x.to(DEVICE))
    _, reference = relukit.get(member, **bound).forward_with_mask(x.numpy())
    np.testing.assert_array_equal(mask.cpu().numpy(), reference)


def test_shapes_strides_and_empty():
    x = inputs(60, torch.float32).reshape(3, 4, 5).transpose(0, 2)
    y, mask = piecewise.forward_with_mask("relu", (), x.to(DEVICE))
    y_rule, mask_rule = for_member("relu").forward_with_mask(x)
    assert y.shape == x.shape and torch.equal(mask.cpu(), mask_rule)
    assert_same(y.cpu(), y_rule.contiguous())
    g = inputs(60, torch.float32, seed=5).reshape(5, 4, 3)
    assert_same(
        piecewise.backward_from_mask("relu", (), g.to(DEVICE), mask).cpu(),
        for_member("relu").backward_from_mask(g, mask_rule),
    )
    empty = torch.empty(0, 3, device=DEVICE)
    y, mask = piecewise.forward_with_mask("relu", (), empty)
    assert y.shape == (0, 3) and mask.shape == (0,)
    assert piecewise.backward_from_mask("relu", (), empty, mask).shape == (0, 3)


def test_in_place():
    x = inputs(3000, torch.float32)
    expected, mask_rule = for_member("leaky_relu", (0.1,)).forward_with_mask(x)
    x = x.to(DEVICE)
    y, mask = piecewise.forward_with_mask("leaky_relu", (0.1,), x, out=x)
    assert y.data_ptr() == x.data_ptr() and torch.equal(mask.cpu(), mask_rule)
    assert_same(x.cpu(), expected)


def test_unknown_member():
    with pytest.raises(ValueError, match="no kernel for formula 'gelu'"):
        piecewise.forward_with_mask("gelu", (), torch.ones(3, device=DEVICE))


def test_a_mask_of_the_wrong_size_is_refused():
    g = torch.ones(20, device=DEVICE)
    with pytest.raises(ValueError, match=r"backward_from_mask: mask is torch.uint8 of 2 elements"):
        piecewise.backward_from_mask(
            "relu", (), g, torch.zeros(2, dtype=torch.uint8, device=DEVICE)
        )
    with pytest.raises(ValueError, match=r"at 2 bit\(s\) .* need 5 uint8"):
        piecewise.backward_from_mask(
            "general_relu",
            (0.1, 0.0, 6.0, 1.0),
            g,
            torch.zeros(3, dtype=torch.uint8, device=DEVICE),
        )


def test_every_kernel_compiles_for_a_gpu():
    """The interpreter is lenient: compile each kernel for sm_90 too (no GPU needed)."""
    script = Path(__file__).with_name("compile_sm90.py")
    env = dict(os.environ, TRITON_INTERPRET="0")
    env["PYTHONPATH"] = os.pathsep.join([*sys.path])
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert "kernels compiled for sm_90" in last and "ld.global.v4.b32" in last, last


TORCH_CUDA = [
    ("relu", (), lambda x: torch.relu(x)),
    ("leaky_relu", (0.01,), lambda x: torch.nn.functional.leaky_relu(x, 0.01)),
    ("hardtanh", (0.0, 6.0), lambda x: torch.nn.functional.relu6(x)),
    ("hardtanh", (-0.3, 0.7), lambda x: torch.nn.functional.hardtanh(x, -0.3, 0.7)),
]


@pytest.mark.skipif(DEVICE != "cuda", reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("formula", "args", "torch_fn"), TORCH_CUDA, ids=lambda v: "torch" if callable(v) else str(v)
)
def test_cuda_matches_torch_on_cuda(formula, args, torch_fn, dtype):
    """On a GPU: the kernels against PyTorch's own CUDA forward and autograd (NaN inputs left
    out: PyTorch's CPU and CUDA kernels differ there, and the rules follow the CPU's)."""
    x = inputs(100_003, dtype, seed=11).nan_to_num(nan=0.5).to(DEVICE).requires_grad_(True)
    g = inputs(100_003, dtype, seed=12).to(DEVICE)
    y_torch = torch_fn(x)
    (dx_torch,) = torch.autograd.grad(y_torch, x, g)
    y, mask = piecewise.forward_with_mask(formula, args, x.detach())
    assert_same(y.cpu(), y_torch.detach().cpu())
    assert_same(piecewise.backward_from_mask(formula, args, g, mask).cpu(), dx_torch.cpu())
