"""PReLU and RReLU's Triton kernels against PyTorch on the CPU, bit for bit (in Triton's
interpreter, or compiled on a GPU with ``TRITON_INTERPRET=0``: ``helpers.kernel_device``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import DTYPES, assert_same, inputs, kernel_device

DEVICE = kernel_device()
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
    x, w, g = x.to(DEVICE), w.to(DEVICE), g.to(DEVICE)
    y, mask, negatives = prelu.forward(x, w, True)
    assert_same(y.cpu(), y_torch)
    np.testing.assert_array_equal(mask.cpu().numpy(), _packed(x.cpu() > 0))
    assert_same(negatives.cpu(), torch.masked_select(x.cpu(), ~(x.cpu() > 0)))
    dx, dw = prelu.backward(g, mask, negatives, w, True, list(x.stride()))
    assert_same(dx.cpu(), dx_torch)
    if DEVICE == "cpu":  # the weight's sum is PyTorch's own, in the device's order
        assert_same(dw.cpu(), dw_torch)
    else:
        torch.testing.assert_close(dw.cpu(), dw_torch, equal_nan=True)
    y, mask, none = prelu.forward(x, w, False)
    assert none.numel() == 0
    dx, dw = prelu.backward(g, mask, none, w, False, list(x.stride()))
    assert_same(dx.cpu(), dx_torch)
    assert torch.equal(dw.cpu(), torch.zeros_like(w.cpu()))


def test_prelu_channels_last_sums_in_torch_order():
    x = inputs(4 * 3 * 33 * 33, torch.float32).reshape(4, 3, 33, 33)
    x = x.contiguous(memory_format=torch.channels_last)
    g = inputs(x.numel(), torch.float32, seed=2).reshape(x.shape)
    w = torch.tensor([0.25, -0.1, 0.3])
    _, dx_torch, dw_torch = _torch_prelu(x, w, g)
    if DEVICE != "cpu":  # PyTorch's own CUDA sum is the oracle there
        _, dx_torch, dw_torch = _torch_prelu(x.to(DEVICE), w.to(DEVICE), g.to(DEVICE))
    x, w, g = x.to(DEVICE), w.to(DEVICE), g.to(DEVICE)
    _, mask, negatives = prelu.forward(x, w, True)
    dx, dw = prelu.backward(g, mask, negatives, w, True, list(x.stride()))
    assert_same(dx.cpu(), dx_torch.contiguous().cpu())
    assert_same(dw.cpu(), dw_torch.cpu())


def test_prelu_refuses_a_weight_that_does_not_fit():
    with pytest.raises(ValueError, match=r"weight of shape \(4,\) is not one slope or one per"):
        prelu.forward(torch.ones(2, 3, device=DEVICE), torch.ones(4, device=DEVICE), True)
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
    mask = torch.from_numpy(_packed(~took)).to(DEVICE)
    assert_same(prelu.rrelu_backward(g.to(DEVICE), mask, slopes.to(DEVICE)).cpu(), expected)


def test_a_mask_of_the_wrong_size_is_refused():
    g = torch.ones(4, 3, device=DEVICE)
    short = torch.zeros(1, dtype=torch.uint8, device=DEVICE)
    with pytest.raises(ValueError, match=r"rrelu_backward: mask is torch\.uint8 of 1 elements"):
        prelu.rrelu_backward(g, short, torch.ones(3, device=DEVICE))
    with pytest.raises(ValueError, match=r"prelu.backward: mask .* need 2 uint8"):
        prelu.backward(g, short, g.new_empty(0), torch.ones(3, device=DEVICE), False, [3, 1])
