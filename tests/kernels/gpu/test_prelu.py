"""PReLU and RReLU's Triton kernels against PyTorch, bit for bit, in Triton's interpreter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import DTYPES, assert_same, inputs, needs_interpreter

needs_interpreter()
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")

from relukit.kernels.gpu import prelu  # noqa: E402

SHAPES = [
    ((5, 3, 7, 9), 3),
    ((4, 3, 5, 5), 1),
    ((300, 17), 17),
    ((2049,), 1),
    ((2, 4, 3), 4),
]


def _packed(flags: torch.Tensor) -> np.ndarray:
    return np.packbits(flags.reshape(-1).numpy(), bitorder="little")


def _torch_prelu(x, w, g):
    x = x.clone().requires_grad_(True)
    w = w.clone().requires_grad_(True)
    y = torch.prelu(x, w)
    y.backward(g)
    return y.detach(), x.grad, w.grad


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("shape", "channels"), SHAPES, ids=str)
def test_prelu_is_torch(shape, channels, dtype):
    n = int(np.prod(shape))
    x = inputs(n, dtype, seed=n).reshape(shape)
    g = inputs(n, dtype, seed=n + 1).reshape(shape)
    w = (torch.rand(channels, generator=torch.Generator().manual_seed(7)) - 0.3).to(dtype)
    y_torch, dx_torch, dw_torch = _torch_prelu(x, w, g)
    y, mask, negatives = prelu.forward(x, w, True)
    assert_same(y, y_torch)
    np.testing.assert_array_equal(mask.numpy(), _packed(x > 0))
    assert_same(negatives, torch.masked_select(x, ~(x > 0)))
    dx, dw = prelu.backward(g, mask, negatives, w, True, list(x.stride()))
    assert_same(dx, dx_torch)
    assert_same(dw, dw_torch)
    y, mask, none = prelu.forward(x, w, False)
    assert none.numel() == 0
    dx, dw = prelu.backward(g, mask, none, w, False, list(x.stride()))
    assert_same(dx, dx_torch)
    assert torch.equal(dw, torch.zeros_like(w))


def test_prelu_channels_last_sums_in_torch_order():
    x = inputs(4 * 3 * 33 * 33, torch.float32).reshape(4, 3, 33, 33)
    x = x.contiguous(memory_format=torch.channels_last)
    g = inputs(x.numel(), torch.float32, seed=2).reshape(x.shape)
    w = torch.tensor([0.25, -0.1, 0.3])
    _, dx_torch, dw_torch = _torch_prelu(x, w, g)
    _, mask, negatives = prelu.forward(x, w, True)
    dx, dw = prelu.backward(g, mask, negatives, w, True, list(x.stride()))
    assert_same(dx, dx_torch.contiguous())
    assert_same(dw, dw_torch)


def test_prelu_refuses_a_weight_that_does_not_fit():
    with pytest.raises(ValueError, match=r"weight of shape \(4,\) is not one slope or one per"):
        prelu.forward(torch.ones(2, 3), torch.ones(4), True)
    assert prelu.channel_layout(torch.ones(2, 3, 5), torch.ones(1, 3, 1)) == (5, 3)
    assert prelu.channel_layout(torch.ones(2, 3, 5), torch.ones(3, 1, 1)) is None
    assert prelu.channel_layout(torch.ones(9), torch.ones(9)) is None


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [1, 9, 2048, 5000])
def test_rrelu_backward(n, dtype):
    x = inputs(n, dtype, seed=n)
    g = inputs(n, dtype, seed=n + 1)
    took = x <= 0
    slopes = (0.1 + 0.2 * torch.rand(int(took.sum()), dtype=torch.float64)).to(dtype)
    expected = g.clone()
    expected[took] = g[took] * slopes
    mask = torch.from_numpy(_packed(~took))
    assert_same(prelu.rrelu_backward(g, mask, slopes), expected)
