"""The compiled CPU kernels take a member only where they equal the PyTorch rules bit for bit:
the same forward, the same mask and the same gradient, NaN, ±0 and ±inf included."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from relukit.nn import backend
from relukit.nn.rules import rule

PARAMS = {
    "relu": [()],
    "leaky_relu": [(0.01,), (0.2,), (-0.5,)],
    "relu6": [()],
    "hardtanh": [(-1.0, 1.0), (-2.0, 0.5)],
    "general_relu": [
        (0.0, math.inf, 0.0),
        (0.1, 3.0, 0.5),
        (-0.2, math.inf, -1.0),
        (0.0, 6.0, 0.0),
        (1.0, 2.0, 0.0),
    ],
}
# Up to 2^19 elements the direct kernels run (one block); the largest is split in chunks
# and run on two threads by the general path.
SIZES = [29, 1000, (1 << 18) + 3, (1 << 19) + 5]

needs_kernels = pytest.mark.skipif(
    not backend.kernels_available(), reason="relukit's compiled CPU kernels are not available"
)


def special(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, generator=g, dtype=torch.float64) * 3
    values = [0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, -1.0, 6.0, 0.5, 3.0, -2.0]
    for start in (0, n // 2 - 3, n - len(values)):  # head, a chunk seam, tail
        t[start : start + len(values)] = torch.tensor(values)
    return t.to(dtype)


def cases(members):
    return [
        pytest.param(m, p, n, dt, id=f"{m}-{p}-{n}-{dt}")
        for m in sorted(members)
        for p in PARAMS[m]
        for n in SIZES
        for dt in backend.KERNEL_DTYPES
    ]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8)


@pytest.fixture(autouse=True)
def two_kernel_threads():
    """The kernels split a call in chunks, one per thread: make sure seams are crossed."""
    if not backend.kernels_available():
        yield
        return
    from relukit import threads

    with threads.limit(2):
        yield


@needs_kernels
@pytest.mark.parametrize(("member", "params", "n", "dtype"), cases(backend.KERNEL_FORWARD))
def test_kernel_forward_and_mask_equal_the_rules(member, params, n, dtype):
    x = special(n, dtype, 0)
    expected_y, expected_mask = rule(member, params).forward_with_mask(x)
    y, mask = backend.forward_with_mask(member, params, x)
    assert torch.equal(bits(y), bits(expected_y))
    assert mask.dtype == torch.uint8 and torch.equal(mask, expected_mask)


@needs_kernels
@pytest.mark.parametrize(("member", "params", "n", "dtype"), cases(backend.KERNEL_BACKWARD))
def test_kernel_backward_equals_the_rules(member, params, n, dtype):
    r = rule(member, params)
    _, mask = r.forward_with_mask(special(n, dtype, 0))
    g = special(n, dtype, 1)
    expected = r.backward_from_mask(g, mask)
    assert torch.equal(bits(backend.backward_from_mask(member, params, g, mask)), bits(expected))


@needs_kernels
def test_non_contiguous_small_tensors_take_the_general_path_with_the_same_result():
    x = special(1000, torch.float32, 0).reshape(40, 25).t()
    y, mask = backend.forward_with_mask("relu", [], x)
    expected_y, expected_mask = rule("relu", []).forward_with_mask(x)
    assert torch.equal(bits(y), bits(expected_y)) and torch.equal(mask, expected_mask)
    g = special(1000, torch.float32, 1).reshape(40, 25).t()
    expected = rule("relu", []).backward_from_mask(g, mask)
    assert torch.equal(bits(backend.backward_from_mask("relu", [], g, mask)), bits(expected))


def test_leaky_relu_with_slope_zero_keeps_pytorchs_nan_at_minus_infinity():
    x = torch.tensor([-math.inf, -1.0, 2.0])
    y, _ = backend.forward_with_mask("leaky_relu", (0.0,), x)
    assert torch.equal(y.isnan(), torch.tensor([True, False, False]))


def test_other_dtypes_take_the_rules():
    x = special(64, torch.bfloat16, 0)
    y, mask = backend.forward_with_mask("relu", (), x)
    assert torch.equal(bits(y), bits(torch.relu(x)))
    expected = np.packbits(~(x.float().numpy() <= 0), bitorder="little")
    assert mask.numpy().tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("member", "params"), [("relu", ()), ("hardtanh", (-1.0, 1.0)), ("general_relu", (0.1, 3, 0))]
)
def test_the_rules_run_on_other_devices(member, params):
    # The meta device stands for any device that is not the CPU: same operations, no data.
    x = torch.empty(5, 7, device="meta")
    y, mask = backend.forward_with_mask(member, params, x)
    assert y.device.type == mask.device.type == "meta"
    assert y.shape == x.shape and mask.shape == (math.ceil(35 * rule(member, params).bits / 8),)
    grad = backend.backward_from_mask(member, params, torch.empty_like(x), mask)
    assert grad.shape == x.shape and grad.device.type == "meta"


def test_a_negative_zero_parameter_is_not_served_the_positive_zero_rule():
    x = torch.tensor([-1.0, -0.0, 0.5])
    for low in (0.0, -0.0, 0.0):  # both orders through the caches
        y, _ = backend.forward_with_mask("hardtanh", [low, 1.0], x)
        expected = torch.nn.functional.hardtanh(x, low, 1.0)
        assert torch.equal(bits(y), bits(expected)), low
