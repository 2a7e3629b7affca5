"""The memory modes of the smooth members: backward="output" and backward="bits"."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import relukit
import relukit.nn as rn
from relukit.memory.saved import saved_bytes
from relukit.memory.steps import steps_for
from relukit.nn import functional as rf

SMOOTH = {
    "gelu": (rn.GELU, {}),
    "gelu_tanh": (rn.GELU, {"approximate": "tanh"}),
    "silu": (rn.SiLU, {}),
    "mish": (rn.Mish, {}),
    "elu": (rn.ELU, {"alpha": 0.7}),
    "selu": (rn.SELU, {}),
    "celu": (rn.CELU, {"alpha": 1.5}),
    "softplus": (rn.Softplus, {"beta": 2.0}),
    "squared_relu": (rn.SquaredReLU, {}),
}


def _grad(module: nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    y = module(x)
    y.backward(g)
    return y.detach(), x.grad


@pytest.mark.parametrize("name", list(SMOOTH))
def test_output_mode_gradients_are_the_exact_derivative(name):
    cls, params = SMOOTH[name]
    x = torch.linspace(-6, 6, 4001, dtype=torch.float64).reshape(1, -1, 1)
    g = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y0, expected = _grad(cls(**params), x, g)
    y1, got = _grad(cls(**params, backward="output"), x, g)
    assert torch.equal(y0, y1)  # the forward is PyTorch's
    # exact up to the rounding of y: √(2 f''·ulp) at a minimum, ~1e-8 in float64
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", list(SMOOTH))
def test_output_mode_passes_gradcheck_in_float64(name):
    cls, params = SMOOTH[name]
    module = cls(**params, backward="output")
    x = torch.randn(40, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 3
    assert torch.autograd.gradcheck(module, (x.requires_grad_(True),))


@pytest.mark.parametrize("name", list(SMOOTH))
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_bits_mode_gradient_is_the_step_derivative(name, bits):
    cls, params = SMOOTH[name]
    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(bits)) * 2
    g = torch.randn(3, 1000, generator=torch.Generator().manual_seed(7))
    y0, _ = _grad(cls(**params), x, g)
    y1, got = _grad(cls(**params, backward="bits", bits=bits), x, g)
    assert torch.equal(y0, y1)
    module = cls(**params)
    member = module.relukit_member
    q = steps_for(member, bits, {k: v for k, v in params.items()})
    levels = np.asarray(q.levels, dtype=np.float32)[q.codes(x.numpy())]
    np.testing.assert_array_equal(got.numpy(), g.numpy() * levels)


def _saved(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps (unique storages, parameters left out) over a forward."""
    return saved_bytes(model, lambda: model(x).sum().backward()).total


def test_output_mode_shares_the_next_layers_tensor_and_bits_keep_three_bits():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64))
    x = torch.randn(128, 64)
    torch_bytes = _saved(base, x)
    hidden = 128 * 256 * 4
    out_model = rn.convert(copy.deepcopy(base), backward="output").model
    out_bytes = _saved(out_model, x)
    assert out_bytes == torch_bytes - hidden + 128 * 256 // 8
    bits_model = rn.convert(copy.deepcopy(base), backward="bits", bits=3).model
    bits_bytes = _saved(bits_model, x)
    # GELU's input (kept by torch for GELU) is gone; 3 bits per element are kept instead
    assert bits_bytes == torch_bytes - hidden + 128 * 256 * 3 // 8


def test_state_dicts_load_across_modes_and_from_torch():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 2), nn.Softplus())
    for backward in ("output", "bits"):
        ours = rn.convert(copy.deepcopy(base), backward=backward).model
        assert ours.state_dict().keys() == base.state_dict().keys()
        ours.load_state_dict(base.state_dict())
        again, _ = rn.revert(copy.deepcopy(ours))
        assert type(again[1]) is nn.SiLU


def test_convert_keeps_piecewise_members_and_reports_bad_choices_before_swapping():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Mish(), nn.Softplus(threshold=5.0))
    with pytest.raises(rn.Error, match=r"convert: 3 \(Softplus\): backward='output' for softplus"):
        rn.convert(model, backward="output")
    assert type(model[2]) is nn.Mish  # nothing swapped
    converted, _ = rn.convert(model, backward="bits", bits=2)
    assert converted[1].relukit_member == "relu" and converted[2].backward == "bits"
    with pytest.raises(rn.Error, match="bits=7"):
        rn.convert(nn.Sequential(nn.GELU()), backward="bits", bits=7)
    with pytest.raises(rn.Error, match="backward='half'"):
        rn.convert(nn.Sequential(nn.GELU()), backward="half")


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (
            lambda: rn.GELU(backward="bits", bits=0),
            r"relukit.nn.GELU: backward='bits' with bits=0 for gelu: bits must be",
        ),
        (lambda: rn.GELU(backward="bits", bits=2.5), r"backward='bits' with bits=2.5 for gelu"),
        (lambda: rn.SiLU(backward="outputs"), r"relukit.nn.SiLU: backward='outputs'"),
        (
            lambda: rn.ELU(alpha=-0.5, backward="output"),
            r"relukit.nn.ELU: backward='output' for elu: alpha=-0.5",
        ),
        (
            lambda: rn.Mish(inplace=True, backward="bits"),
            r"relukit.nn.Mish: backward='bits' with bits=3 for mish: inplace=True",
        ),
        (
            lambda: rf.check_backward("relukit.nn.ReLU", "relu", {}, "bits", 3, False),
            r"relukit.nn.ReLU: backward='bits' with bits=3 for relu: relu is piecewise linear",
        ),
        (
            lambda: rf.gelu(torch.ones(2, requires_grad=True), backward="bits", bits=9),
            r"relukit.nn.functional.gelu: backward='bits' with bits=9 for gelu",
        ),
    ],
)
def test_bad_choices_name_module_mode_and_member(make, match):
    with pytest.raises(rn.Error, match=match):
        make()


def test_double_backward_is_refused():
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    for backward in ("output", "bits"):
        (g,) = torch.autograd.grad(rf.gelu(x, backward=backward).sum(), x, create_graph=True)
        with pytest.raises(RuntimeError, match=r"once_differentiable|does not require grad"):
            g.sum().backward()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sixteen_bit_tensors(dtype):
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0)).to(dtype)
    for backward in ("output", "bits"):
        _, got = _grad(rn.GELU(backward=backward), x, torch.ones_like(x))
        assert got.dtype == dtype
        exact = torch.from_numpy(np.asarray(relukit.gelu.derivative(x.double().numpy())))
        tolerance = 0.05 if backward == "output" else 0.15
        assert (got.double() - exact).abs().max() < tolerance


def test_no_grad_and_small_tensors_run_the_mode_or_pytorch():
    x = torch.randn(4)
    with torch.no_grad():
        assert torch.equal(rf.silu(x, backward="output"), torch.nn.functional.silu(x))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compile_fullgraph_gives_the_eager_gradients(backend):
    torch._dynamo.reset()
    torch.manual_seed(0)
    base = nn.Sequential(
        nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 4)
    )
    model = rn.convert(copy.deepcopy(base), backward="output").model
    model[3].backward, model[3].bits = "bits", 3
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    model(x).square().sum().backward()
    eager = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    compiled(x).square().sum().backward()
    for a, b in zip(eager, [p.grad for p in model.parameters()], strict=True):
        if backend == "aot_eager":
            assert torch.equal(a, b)
        else:  # inductor fuses the Linear layers' own arithmetic differently
            torch.testing.assert_close(a, b)


PIECEWISE = [
    (lambda **kw: rn.ReLU(**kw), "ReLU", "relu"),
    (lambda **kw: rn.LeakyReLU(0.1, **kw), "LeakyReLU", "leaky_relu"),
    (lambda **kw: rn.ReLU6(**kw), "ReLU6", "relu6"),
    (lambda **kw: rn.Hardtanh(**kw), "Hardtanh", "hardtanh"),
    (lambda **kw: rn.RReLU(**kw), "RReLU", "rrelu"),
    (lambda **kw: rn.PReLU(**kw), "PReLU", "prelu"),
    (lambda **kw: rn.GeneralReLU(**kw), "GeneralReLU", "general_relu"),
]


@pytest.mark.parametrize(("make", "module", "member"), PIECEWISE)
@pytest.mark.parametrize("backward", ["output", "bits"])
def test_a_piecewise_module_refuses_a_memory_mode_by_name(make, module, member, backward):
    mode = f"backward='{backward}'" + (" with bits=3" if backward == "bits" else "")
    match = rf"relukit.nn.{module}: {mode} for {member}: {member} is piecewise linear"
    with pytest.raises(rn.Error, match=match):
        make(backward=backward)
    assert make(backward="input").relukit_member == member  # the same call, the default mode


@pytest.mark.parametrize(
    ("call", "member"),
    [
        (lambda x, **kw: rf.relu(x, **kw), "relu"),
        (lambda x, **kw: rf.leaky_relu(x, 0.1, **kw), "leaky_relu"),
        (lambda x, **kw: rf.relu6(x, **kw), "relu6"),
        (lambda x, **kw: rf.hardtanh(x, **kw), "hardtanh"),
        (lambda x, **kw: rf.general_relu(x, **kw), "general_relu"),
        (lambda x, **kw: rf.rrelu(x, **kw), "rrelu"),
        (lambda x, **kw: rf.prelu(x, torch.tensor([0.25]), **kw), "prelu"),
    ],
)
def test_a_piecewise_function_refuses_a_memory_mode_by_name(call, member):
    x = torch.randn(4, 3, requires_grad=True)
    match = rf"relukit.nn.functional.{member}: backward='bits' with bits=2 for {member}"
    with pytest.raises(rn.Error, match=match):
        call(x, backward="bits", bits=2)
    with pytest.raises(rn.Error, match=rf"functional.{member}: backward='input' with bits=5 for "):
        call(x, bits=5)
    assert torch.equal(call(x, backward="input"), call(x))


def test_convert_refuses_a_memory_mode_for_a_piecewise_member_it_is_asked_to_swap():
    model = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.GELU())
    with pytest.raises(rn.Error, match=r"convert: backward='output' for relu: relu is piecewise"):
        rn.convert(model, members=["relu", "gelu"], backward="output")
    assert type(model[1]) is nn.ReLU and type(model[2]) is nn.GELU  # nothing swapped
    with pytest.raises(rn.Error, match=r"relukit.nn.convert: backward='bits' with bits=0: bits"):
        rn.convert(nn.Sequential(nn.SiLU()), backward="bits", bits=0)
