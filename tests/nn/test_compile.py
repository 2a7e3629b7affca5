"""A converted model compiles with torch.compile(fullgraph=True) and gives PyTorch's gradients."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import relukit.nn as rn


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(8, 16),
        nn.ReLU(),
        nn.Linear(16, 16),
        nn.PReLU(16),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(16, 4),
    )


def step(m: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    y = m(x)
    y.square().sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    return y.detach(), grads


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_converted_model_compiles_fullgraph_with_pytorchs_gradients(backend):
    torch._dynamo.reset()
    theirs = model()
    ours = rn.convert(copy.deepcopy(theirs)).model
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    expected, expected_grads = step(theirs, x)
    compiled = torch.compile(ours, fullgraph=True, backend=backend)
    y, grads = step(compiled, x)
    if backend == "aot_eager":  # the traced graph runs relukit's operators as eager does
        assert torch.equal(y, expected)
        assert all(torch.equal(a, b) for a, b in zip(grads, expected_grads, strict=True))
    else:  # inductor fuses and reorders the linear layers' sums: float32 rounding
        torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
        for a, b in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_compiling_relukit_modules_raises_no_warning_of_relukit_s_caches():
    # Dynamo warns where it traces through a functools.lru_cache (it ignores the cache): the
    # calls that run under torch.compile go to the functions themselves
    import warnings

    torch._dynamo.reset()
    torch.manual_seed(0)
    layers = [nn.Linear(8, 16)]
    for module in (rn.ReLU(), rn.LeakyReLU(0.2), rn.SiLU(backward="output")):
        layers += [module, nn.Linear(16, 16)]
    compiled = torch.compile(nn.Sequential(*layers), fullgraph=True, backend="aot_eager")
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled(x).square().sum().backward()
    assert not [str(w.message) for w in caught if "lru_cache" in str(w.message)]
