"""relukit.nn.functional has torch.nn.functional's activation surface, its errors are catchable
as torch's, the native path below ``native_below`` gives PyTorch's gradients, and
torch.jit.script names relukit and torch.compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import relukit.nn as rn
from relukit.family import ParameterError
from relukit.kernels.cpu import host
from relukit.nn import functional as rf

IN_PLACE = [
    ("relu_", ()),
    ("elu_", (0.5,)),
    ("leaky_relu_", (0.2,)),
    ("hardtanh_", (-0.5, 2.0)),
    ("celu_", (1.5,)),
    ("selu_", ()),
    ("rrelu_", (0.1, 0.3)),
]


@pytest.mark.parametrize(("name", "args"), IN_PLACE, ids=[n for n, _ in IN_PLACE])
def test_in_place_functions_write_the_input_as_torchs_do(name, args):
    x = torch.linspace(-3, 3, 25)
    ours, theirs = x.clone(), x.clone()
    result = getattr(rf, name)(ours, *args)
    getattr(F, name)(theirs, *args)
    assert result is ours and torch.equal(ours, theirs)


@pytest.mark.parametrize(("name", "args"), IN_PLACE, ids=[n for n, _ in IN_PLACE])
def test_in_place_functions_give_torchs_gradients(name, args):
    base = torch.linspace(-3, 3, 25, dtype=torch.float64, requires_grad=True)
    grads = []
    for module in (rf, F):
        x = base * 1.0  # not a leaf: in place is allowed
        y = getattr(module, name)(x, *args)
        (grad,) = torch.autograd.grad(y.square().sum(), base)
        grads.append(grad)
    assert torch.equal(*grads)


@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_baselines(name):
    x = torch.linspace(-3, 3, 7)
    assert torch.equal(getattr(rf, name)(x), getattr(torch, name)(x))


def test_hardtanh_with_equal_bounds_gives_torchs_constant_and_zero_gradient():
    x = torch.tensor([-1.0, 0.0, -0.0, 2.0], requires_grad=True)
    y = rf.hardtanh(x, 0.0, 0.0)
    expected = F.hardtanh(x.detach(), 0.0, 0.0)
    assert torch.equal(y, expected) and torch.equal(y.signbit(), expected.signbit())
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "call",
    [
        lambda: rf.hardtanh(torch.ones(2), 1.0, 0.0),
        lambda: rf.leaky_relu(torch.ones(2), float("nan")),
        lambda: rf.maxout(torch.ones(3), 2),
        lambda: rn.CELU(alpha=0.0),
        lambda: rn.PReLU(0),
    ],
)
def test_errors_are_value_errors_and_runtime_errors_naming_relukit(call):
    with pytest.raises(RuntimeError) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, ParameterError)
    assert isinstance(info.value, rn.Error) and "relukit.nn" in str(info.value)


@pytest.mark.parametrize("n", [10, 1000])
@pytest.mark.parametrize(
    "make",
    [
        lambda nn: nn.ReLU(),
        lambda nn: nn.LeakyReLU(0.3),
        lambda nn: nn.ReLU6(),
        lambda nn: nn.PReLU(),
    ],
)
def test_either_side_of_native_below_the_gradients_are_torchs(n, make):
    rn.set_native_below(100)
    module, torch_module = make(rn), make(torch.nn)
    x = torch.randn(2, n // 2, requires_grad=True)
    grads = []
    for m in (module, torch_module):
        y = m(x)
        grads.append(torch.autograd.grad(y.square().sum(), [x, *m.parameters()]))
    for ours, theirs in zip(*grads, strict=True):
        assert torch.equal(ours, theirs)


def test_native_path_keeps_pytorchs_saved_tensor_and_the_mask_path_a_mask():
    def saved(n):
        kept = []
        x = torch.randn(n, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            rf.relu(x)
        return kept

    rn.set_native_below(100)
    assert [t.dtype for t in saved(50)] == [torch.float32]
    assert [t.dtype for t in saved(500)] == [torch.uint8]


def test_native_below_defaults_are_per_kind_of_member_and_dtype():
    def saved(n, dtype, f):
        kept = []
        x = torch.randn(n, dtype=dtype, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
            f(x)
        return {t.dtype for t in kept}

    rn.set_native_below(None)
    assert rn.native_setting() is None
    # the mask members: below half the last-level cache of input (16 MiB where it is
    # unknown), at most 16 MiB (a VM may read the host's whole cache)
    assert (host.last_level_cache() or 1 << 25) // 2 == host.CACHE_HALF
    assert min(host.CACHE_HALF, 1 << 24) == rf.NATIVE_BYTES
    n64 = rf.NATIVE_BYTES // 8
    assert rn.native_below(torch.float32) == 2 * n64 == 2 * rn.native_below(torch.float64)
    assert rn.native_below(torch.float64, slopes=True) == 1 << 18
    assert saved(n64 - 8, torch.float64, rf.relu) == {torch.float64}
    assert saved(n64, torch.float64, rf.relu) == {torch.uint8}
    assert saved(n64, torch.float32, rf.relu) == {torch.float32}
    training = lambda x: rf.rrelu(x, training=True)  # noqa: E731
    assert torch.uint8 not in saved((1 << 18) - 8, torch.float32, training)
    assert torch.uint8 in saved(1 << 18, torch.float32, training)
    rn.set_native_below(7)
    assert rn.native_below(torch.float64, slopes=True) == 7 == rn.native_setting()


def test_native_below_is_checked():
    with pytest.raises(TypeError, match="set_native_below"):
        rn.set_native_below(1.5)
    with pytest.raises(ValueError, match="set_native_below"):
        rn.set_native_below(-1)


def test_jit_script_names_relukit_and_points_at_torch_compile():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), rn.ReLU())
    with pytest.raises(RuntimeError, match=r"relukit\.nn\.ReLU.*torch\.compile"):
        torch.jit.script(model)
    torch.jit.script(rn.revert(model).model)  # torch.nn's modules script
