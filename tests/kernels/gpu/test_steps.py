"""The few-bit Triton kernels against torch.bucketize, a gather and the documented layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .helpers import DTYPES, assert_same, inputs, kernel_device

DEVICE = kernel_device()

from relukit.kernels.gpu import steps  # noqa: E402

BORDERS = {
    1: [0.1],
    2: [-1.3, 0.0, 0.7],
    3: [-2.5, -1.0, -0.3333333333333333, 0.0, 0.2, 1.1, 3.0],
    4: [float(v) for v in np.linspace(-3, 3, 15) + 0.01],
}


def _packed(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """The layout as documented: code i's bits at bit i·bits onward, little-endian."""
    stream = (codes.numpy()[:, None].astype(np.uint8) >> np.arange(bits)) & 1
    return torch.from_numpy(np.packbits(stream.reshape(-1), bitorder="little"))


def _oracle(x: torch.Tensor, borders, levels, g: torch.Tensor):
    """What relukit.nn's PyTorch path computes: bucketize among the borders in the working
    dtype, then ``grad * levels.take(codes)`` with the levels in grad's dtype."""
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    codes = torch.bucketize(x.to(work).reshape(-1), torch.tensor(borders, dtype=work))
    level = torch.tensor(levels, dtype=torch.float64).to(g.dtype).take(codes)
    return codes, (g.reshape(-1) * level).view(g.shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_codes_and_backward(bits, dtype):
    borders = BORDERS[bits]
    levels = [0.1 * i - 0.05 * bits + 1 / 3 for i in range(1 << bits)]
    edges = torch.tensor(borders, dtype=torch.float64)
    at_borders = torch.cat([edges, edges.to(dtype).to(torch.float64)])
    for n in (1, 9, 1000, 4097):
        x = inputs(n, dtype, seed=n)
        k = min(n, at_borders.numel())
        x[:k] = at_borders[:k].to(dtype)
        g = inputs(n, dtype, seed=n + 1)
        codes, expected = _oracle(x, borders, levels, g)
        assert codes[torch.isnan(x.reshape(-1))].eq((1 << bits) - 1).all()
        packed = steps.encode(x.to(DEVICE), borders, bits)
        assert torch.equal(packed.cpu(), _packed(codes, bits)), f"n={n}"
        assert_same(steps.backward(g.to(DEVICE), packed, levels, bits).cpu(), expected)


def test_bad_arguments():
    x = torch.ones(5, device=DEVICE)
    with pytest.raises(ValueError, match=r"2 bits need 3 increasing borders; got \[1.0, 0.0\]"):
        steps.encode(x, [1.0, 0.0], 2)
    with pytest.raises(ValueError, match=r"bits=5 is not in 1\.\.4"):
        steps.encode(x, [0.0] * 31, 5)
    with pytest.raises(ValueError, match="2 bits need 4 levels; got 3"):
        steps.backward(x, torch.zeros(2, dtype=torch.uint8, device=DEVICE), [0.0, 1.0, 2.0], 2)
    with pytest.raises(ValueError, match=r"at 3 bit\(s\) .* need 2 uint8"):
        steps.backward(x, torch.zeros(3, dtype=torch.uint8, device=DEVICE), [0.0] * 8, 3)
