"""The output-mode Triton backward against relukit.memory.output's PyTorch-op path."""

from __future__ import annotations

import array_api_compat
import pytest
import torch
import torch.nn.functional as F

import relukit
from relukit.kernels import mask as packer
from relukit.kernels import reference

from .helpers import DTYPES, kernel_device

DEVICE = kernel_device()
memory = pytest.importorskip("relukit.memory.output")
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

from relukit.kernels.gpu import output  # noqa: E402

MEMBERS = [
    ("gelu", {"approximate": "none"}, lambda t: F.gelu(t)),
    ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    ("silu", {}, F.silu),
    ("mish", {}, F.mish),
]
TOLERANCE = {torch.float32: 2.5e-7, torch.float64: 5e-16}
"""|Triton − PyTorch path| allowed on f' (about 2 ulp of 1): log, sqrt and the multiply-adds
of the polynomial may round differently; the mode's own error is far larger."""


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("member", "params", "forward"), MEMBERS, ids=lambda v: "torch" if callable(v) else str(v)
)
def test_derivative_from_output(member, params, forward, dtype):
    spec = relukit.get(member).spec
    bound = spec.bind(params)
    special = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0])
    x = torch.cat([torch.linspace(-12, 12, 6001, dtype=torch.float64), special.double()])
    x = x.to(dtype)
    y = forward(x)
    below = memory.branch_bit(spec, bound, x.to(torch.float64))
    expected = memory.derivative_from_output(spec, bound, y, below)
    m = reference.Math(array_api_compat.array_namespace(below))
    bits = packer.pack(m, below, 1)
    d = output.backward(
        memory.inverse_table(spec, bound, wide=dtype == torch.float64),
        y.to(DEVICE),
        bits.to(DEVICE),
        torch.ones_like(y, device=DEVICE),
    ).cpu()
    assert d.dtype == dtype
    assert torch.equal(d.isnan(), expected.isnan())
    difference = (d.double() - expected.double()).nan_to_num(0).abs()
    if dtype in TOLERANCE:
        assert difference.max() <= TOLERANCE[dtype]
    else:  # the float32 results, rounded once to 16 bits: at most one 16-bit ulp apart
        ulp = torch.finfo(dtype).eps * expected.double().abs().nan_to_num(0).clamp(min=1e-30)
        assert (difference <= ulp).all()
    g = torch.randn(y.shape, dtype=torch.float64).to(dtype)
    dx = output.backward(
        memory.inverse_table(spec, bound, wide=dtype == torch.float64),
        y.to(DEVICE),
        bits.to(DEVICE),
        g.to(DEVICE),
    ).cpu()
    work = torch.float64 if dtype == torch.float64 else torch.float32
    derivative = output.backward(
        memory.inverse_table(spec, bound, wide=dtype == torch.float64),
        y.to(work).to(DEVICE),
        bits.to(DEVICE),
        torch.ones_like(y, dtype=work, device=DEVICE),
    ).cpu()
    expected_dx = (g.to(work) * derivative.to(dtype).to(work)).to(dtype)
    assert torch.equal(dx.nan_to_num(7), expected_dx.nan_to_num(7))


def test_shape_mismatch_is_refused():
    table = memory.inverse_table(relukit.silu.spec, {}, wide=False)
    g = torch.ones(9, device=DEVICE)
    bits = torch.zeros(2, dtype=torch.uint8, device=DEVICE)
    with pytest.raises(ValueError, match=r"output of shape \(3, 3\) and gradient of shape"):
        output.backward(table, g.view(3, 3), bits, g)
