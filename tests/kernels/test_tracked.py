"""CPU tensors that autograd tracks get the kernels' values and gradients
(:mod:`relukit.kernels.tracked`), and the reference path's graph where they need more."""

from __future__ import annotations

import contextlib

import ml_dtypes
import numpy as np
import pytest
import torch

import relukit
from relukit.kernels import dispatch, tracked
from relukit.kernels.arrays import as_input

BF16 = np.dtype(ml_dtypes.bfloat16)
CASES = [(s.name, {}) for s in relukit.family() if s.elementwise] + [
    ("gelu", {"approximate": "tanh"}),
    ("softplus", {"beta": 1.7, "threshold": 5.0}),
    ("prelu", {"weight": 0.3}),
    ("rrelu", {"training": True, "seed": 3}),
    ("general_relu", {"negative_slope": 0.1, "max_value": 3.0, "threshold": 1.0}),
]
DTYPES = [torch.float32, torch.float64]
SIXTEEN = [torch.bfloat16, torch.float16]


def inputs(dtype: torch.dtype, n: int = 300) -> torch.Tensor:
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 6.0, -1.2784645, 3e-6, -20.5]
    rng = np.random.default_rng(5)
    values = np.concatenate([special, 4 * rng.standard_normal(n - len(special))])
    return torch.from_numpy(values).to(dtype)


def bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bits (NaN payloads not compared)."""
    t = t.detach()
    word = {2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return torch.where(torch.isnan(t), 0, t.view(word).long())


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and torch.equal(bits(a), bits(b))


# every case in float32 and float64, a few in the 16-bit floats (the kernels' compile time)
PARAMS = [
    pytest.param(name, params, dtype, id=f"{name}-{i}-{str(dtype)[6:]}")
    for i, (name, params) in enumerate(CASES)
    for dtype in DTYPES + SIXTEEN
    if dtype in DTYPES or (not params and name in ("relu", "leaky_relu", "gelu", "silu", "elu"))
]


@pytest.mark.parametrize(("name", "params", "dtype"), PARAMS)
def test_a_tracked_tensor_gets_the_kernels_values_and_their_vjp(name, params, dtype):
    f = relukit.get(name, **params)
    plain = inputs(dtype)
    g = torch.linspace(-2.0, 3.0, plain.numel()).to(dtype)
    x = plain.clone().requires_grad_()
    y = f(x)
    assert y.grad_fn is not None and same(y, f(plain))
    y.backward(g)
    assert same(x.grad, f.vjp(plain, g))
    assert same(f.derivative(x), f.derivative(plain))
    assert same(f.vjp(x, g), f.vjp(plain, g))
    assert same(f.vjp(plain, g.clone().requires_grad_()), f.vjp(plain, g))


@pytest.mark.parametrize("name", ["selu", "elu", "gelu", "silu", "softplus", "tanh", "mish"])
def test_create_graph_keeps_the_kernels_gradient_and_differentiates_it(name):
    f = relukit.get(name)
    x0 = inputs(torch.float64)
    x0 = x0[torch.isfinite(x0)]
    x = x0.clone().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    assert first.grad_fn is not None and same(first, f.vjp(x0, torch.ones_like(x0)))
    (second,) = torch.autograd.grad(first.sum(), x)
    with dispatch.forced("reference"):  # (the second derivative it gave before)
        x = x0.clone().requires_grad_()
        (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        (want,) = torch.autograd.grad(first.sum(), x)
    assert same(second, want)


@pytest.mark.parametrize("name", [s.name for s in relukit.family() if s.piecewise_linear])
def test_a_piecewise_linear_member_s_gradient_has_a_zero_gradient_as_torch_relu_s_has(name):
    # (the incoming gradient requires no grad, so only x connects the first gradient: the
    # reference path's graph of it is constant in x, and autograd.grad refused it)
    f = relukit.get(name)
    x = inputs(torch.float32).nan_to_num().requires_grad_()
    (first,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
    assert first.requires_grad and same(first, f.vjp(x.detach(), torch.ones_like(x)))
    (second,) = torch.autograd.grad(first.sum(), x, create_graph=True)
    assert same(second, torch.zeros_like(x))
    (third,) = torch.autograd.grad(second.sum(), x)  # (torch.relu's is zero too)
    assert same(third, torch.zeros_like(x))
    (first,) = torch.autograd.grad(torch.relu(x).sum(), x, create_graph=True)
    assert first.requires_grad and same(torch.autograd.grad(first.sum(), x)[0], second)
    empty = torch.zeros(3, 0, requires_grad=True)  # (the kernels decline it: the reference's)
    (first,) = torch.autograd.grad(f(empty).sum(), empty, create_graph=True)
    assert first.requires_grad and torch.autograd.grad(first.sum(), empty)[0].shape == (3, 0)


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "gelu", "silu", "softplus", "sigmoid"])
def test_gradcheck_and_gradgradcheck(name):
    f = relukit.get(name)
    x = torch.tensor([-2.3, -0.7, 0.4, 1.9], dtype=torch.float64, requires_grad=True)
    g = torch.tensor([0.5, -1.5, 2.0, 1.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(f, (x,))
    assert torch.autograd.gradcheck(f.derivative, (x,))
    assert torch.autograd.gradcheck(lambda a, b: f.vjp(a, b), (x, g))


def test_a_non_leaf_view_and_no_grad_get_the_same_values():
    base = inputs(torch.float32, 600).nan_to_num(posinf=3.0, neginf=-3.0).reshape(20, 30)
    w = torch.tensor(2.0, requires_grad=True)
    x = (base * w).t()  # (a non-leaf, non-contiguous view)
    y = relukit.gelu(x)
    assert same(y, relukit.gelu(x.detach()))
    y.sum().backward()
    want = (relukit.gelu.vjp(x.detach(), torch.ones_like(y)) * base.t()).sum()
    assert torch.isclose(w.grad, want.to(w.grad.dtype), rtol=1e-5)
    with torch.no_grad():
        z = relukit.gelu(x)
    assert z.grad_fn is None and same(z, y)


@pytest.mark.parametrize("name", ["relu", "gelu", "silu", "leaky_relu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_a_tracked_call_of_a_bound_member_takes_the_numpy_route_both_ways(name, dtype, monkeypatch):
    # (the general path, which plans each call in Python: 57-62 µs for relu's forward on
    # 1,024 float32 elements against 18-25 this way)
    f = relukit.get(name)
    plain = inputs(dtype, 1000).reshape(40, 25)
    g = torch.linspace(-2.0, 3.0, plain.numel()).to(dtype).reshape(40, 25)
    want_y, want_grad = f(plain), f.vjp(plain, g)
    from relukit.kernels import cpu

    def general(*args, **kwargs):
        raise AssertionError("the general path took the call")

    monkeypatch.setattr(cpu, "run", general)
    x = plain.clone().requires_grad_()
    y = f(x)
    assert y.grad_fn is not None and same(y, want_y)
    y.backward(g)
    assert same(x.grad, want_grad)
    d = f.derivative(x)
    assert d.grad_fn is not None and same(d, f.derivative(plain))


def test_a_bound_weight_that_requires_grad_gets_its_gradient():
    # (the NumPy route on x alone would read the weight through NumPy, and lose its gradient)
    # (x requiring grad or not: the same; the second failed before the route for tracked x)
    for x_grad_too in (True, False):
        found = []
        for forced in (False, True):  # (forced: no route of the public call's own is taken)
            w = torch.full((30,), 0.3, dtype=torch.float64, requires_grad=True)
            x = torch.linspace(-2.0, 2.0, 300, dtype=torch.float64).reshape(10, 30)
            x.requires_grad_(x_grad_too)
            with dispatch.forced("reference") if forced else contextlib.nullcontext():
                relukit.prelu.bind(weight=w, axis=1)(x).sum().backward()
            found.append((x.grad, w.grad))
        (x_grad, w_grad), (x_want, w_want) = found
        assert torch.equal(w_grad, torch.where(x < 0, x, 0).detach().sum(0))
        assert torch.equal(w_grad, w_want) and (not x_grad_too or torch.equal(x_grad, x_want))


def test_a_bound_rrelu_drawing_from_a_generator_takes_the_reference_path():
    x = -torch.ones(50, dtype=torch.float64, requires_grad=True)
    y = relukit.rrelu.bind(training=True, seed=np.random.default_rng(7))(x)
    (d,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(d, -y.detach())  # (the slopes the forward drew)


def test_what_the_reference_path_keeps():
    # rrelu's seed as a Generator: each draw moves it on, so the graph is the reference path's
    x = -torch.ones(50, dtype=torch.float64, requires_grad=True)
    y = relukit.rrelu(x, training=True, seed=np.random.default_rng(7))
    (d,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(d, -y.detach())
    # torch.compile traces the reference path's torch operations (whose graph gives NaN at
    # ±inf; Dynamo alone: inductor would compile C++ for 20 s)
    x = inputs(torch.float32).nan_to_num(posinf=30.0, neginf=-30.0).requires_grad_()
    compiled = torch.compile(lambda t: relukit.silu(t).sum(), backend="eager")
    compiled(x).backward()
    assert torch.allclose(x.grad, relukit.silu.derivative(x.detach()), equal_nan=True)


def test_vmap_and_func_grad_take_the_reference_path():
    # (tensors without storage: the kernels decline them; vmap raised before)
    x = inputs(torch.float32, 60).nan_to_num(posinf=30.0, neginf=-30.0).reshape(6, 10)
    with dispatch.forced("reference"):
        want = relukit.silu(x)
    assert same(torch.func.vmap(relukit.silu)(x), want)
    grad = torch.func.grad(lambda t: relukit.elu(t).sum())(x[0])
    assert torch.allclose(grad, relukit.elu.derivative(x[0]), equal_nan=True)


def test_run_declines_what_nothing_tracks():
    spec = relukit.get("silu").spec
    assert tracked.run(spec, "forward", as_input(torch.ones(3), "t"), {}) is None
    assert tracked.run(spec, "forward", as_input(np.ones(3), "t"), {}) is None
    tracked_x = as_input(torch.ones(3, requires_grad=True), "t")
    assert tracked.run(spec, "forward", tracked_x, {}).grad_fn is not None
    assert tracked.run(relukit.get("crelu").spec, "forward", tracked_x, {}) is None


def test_a_node_does_not_hold_its_own_output():
    # (the node's context holding the output it made is a cycle through C++ that the collector
    # cannot free: with it, silu on 2^20 float32 elements leaked 4 MB a call)
    x = torch.ones(8, requires_grad=True)
    for y in (relukit.silu(x), relukit.silu.vjp(x, torch.ones(8))):
        held = [v for v in vars(y.grad_fn.call).values() if isinstance(v, torch.Tensor)]
        assert not any(t.data_ptr() == y.data_ptr() for t in held)


def test_a_hook_on_x_runs_as_often_as_on_pytorch_s_own_function():
    x0 = torch.linspace(-3.0, 3.0, 8, dtype=torch.float64)
    ours, theirs = relukit.silu, torch.nn.functional.silu

    def derivative(f):
        def first(x):
            (found,) = torch.autograd.grad(f(x).sum(), x, create_graph=True)
            return found

        return first

    def reference(op):
        def evaluate(x):
            with dispatch.forced("reference"):  # (torch operations: their hooks run once)
                return getattr(ours, op)(x, *([torch.ones_like(x)] if op == "vjp" else []))

        return evaluate

    cases = {
        "forward": (lambda x: ours(x), theirs),
        "derivative": (lambda x: ours.derivative(x), reference("derivative")),
        "vjp": (lambda x: ours.vjp(x, torch.ones_like(x)), reference("vjp")),
        "second": (derivative(ours), derivative(theirs)),
    }
    for op, pair in cases.items():
        factors = []
        for f in pair:
            grads = []
            for hooked in (False, True):
                x = x0.clone().requires_grad_()
                if hooked:
                    x.register_hook(lambda g: 2 * g)
                f(x).sum().backward()
                grads.append(x.grad)
            factors.append(grads[1] / grads[0])
        assert torch.allclose(factors[0], factors[1]), op


def test_batched_gradients_forward_mode_and_jit_trace_keep_working():
    import torch.autograd.forward_ad as fw

    x = torch.linspace(-3.0, 3.0, 16, requires_grad=True)
    (rows,) = torch.autograd.grad(relukit.silu(x), x, torch.eye(16), is_grads_batched=True)
    assert torch.allclose(rows.diagonal(), relukit.silu.derivative(x.detach()))
    for requires in (True, False):
        with fw.dual_level():
            dual = fw.make_dual(x.detach().clone().requires_grad_(requires), torch.ones(16))
            tangent = fw.unpack_dual(relukit.silu(dual)).tangent
        assert tangent is not None and torch.allclose(tangent, relukit.silu.derivative(x.detach()))
    traced = torch.jit.trace(lambda t: relukit.gelu(t), (x,))
    other = torch.linspace(-1.0, 5.0, 16, requires_grad=True)
    assert torch.allclose(traced(other), relukit.gelu(other.detach()))
