"""The torch.library operators pass torch.library.opcheck: schema, fake implementations, autograd
registration and AOT dispatch agree with the real kernels."""

from __future__ import annotations

import pytest
import torch

import relukit.nn  # noqa: F401  (registers the operators)
from relukit.kernels.mask import pack_bits
from relukit.nn.library import IMPLEMENTATIONS

relukit_ops = torch.ops.relukit


def x_and_grad(shape=(4, 6)):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g, requires_grad=True)
    return x, torch.randn(shape, generator=g)


CASES = [
    pytest.param(relukit_ops.masked, lambda: (x_and_grad()[0], "relu", []), id="masked-relu"),
    pytest.param(
        relukit_ops.masked,
        lambda: (x_and_grad()[0], "general_relu", [0.1, 1.0, -0.5]),
        id="masked-general",
    ),
    pytest.param(
        relukit_ops.masked_backward,
        lambda: (x_and_grad()[1], pack_bits(x_and_grad()[0] > 0), "leaky_relu", [0.2], [0, 1]),
        id="masked_backward",
    ),
    pytest.param(
        relukit_ops.prelu,
        lambda: (x_and_grad()[0], torch.rand(6, requires_grad=True), True),
        id="prelu",
    ),
    pytest.param(relukit_ops.crelu, lambda: (x_and_grad()[0], 1), id="crelu"),
    pytest.param(relukit_ops.maxout, lambda: (x_and_grad()[0], 3, 1), id="maxout"),
]


@pytest.mark.parametrize(("op", "make_args"), CASES)
def test_opcheck(op, make_args):
    torch.library.opcheck(op, make_args())


def test_rrelu_opcheck_with_a_generator():
    # The operator draws random numbers: each check gets a generator in the same state.
    x = x_and_grad()[0]
    first = relukit_ops.rrelu(x, 0.1, 0.3, torch.Generator().manual_seed(0))
    second = relukit_ops.rrelu(x, 0.1, 0.3, torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    torch.library.opcheck(
        relukit_ops.rrelu,
        (x, 0.1, 0.3, torch.Generator().manual_seed(0)),
        test_utils=("test_schema", "test_faketensor"),
    )


def test_every_operator_has_an_implementation_and_an_autograd_formula():
    assert set(IMPLEMENTATIONS) >= {
        "masked",
        "masked_backward",
        "masked_inplace",
        "prelu",
        "prelu_backward",
        "rrelu",
        "rrelu_inplace",
        "rrelu_backward",
        "crelu",
        "crelu_backward",
        "crelu_jvp",
        "maxout",
        "maxout_backward",
        "maxout_jvp",
    }
    for name in IMPLEMENTATIONS:
        assert hasattr(relukit_ops, name)
