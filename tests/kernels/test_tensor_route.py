"""CPU tensors take the NumPy arrays' route through NumPy views
(``dispatch._through_numpy``): the same bits as the general path, a torch result, ``out``
and in place as torch users expect, and the general path for everything it does not take."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import relukit
from relukit.kernels import dispatch

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def bits(t: torch.Tensor) -> torch.Tensor:
    word = {2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    return torch.where(torch.isnan(t), 0, t.view(word).long())


def general(f, op, x, out=None):
    """The general path's result (the NumPy route declined, as for a tensor it does not take)."""
    original = dispatch._through_numpy
    try:
        dispatch._through_numpy = lambda *args: None
        return getattr(f, op)(x, out=out)
    finally:
        dispatch._through_numpy = original


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "gelu", "silu", "elu"])
def test_a_tensor_gets_the_general_path_s_bits_as_a_tensor(name, dtype, monkeypatch):
    taken = []
    original = dispatch._through_numpy

    def spy(*args):
        found = original(*args)
        taken.append(found is not None)
        return found

    monkeypatch.setattr(dispatch, "_through_numpy", spy)
    f = relukit.get(name)
    values = np.concatenate([[0.0, -0.0, np.inf, -np.inf, np.nan], np.linspace(-9, 9, 995)])
    x = torch.from_numpy(values).to(dtype).reshape(10, 100)
    for op in ("__call__", "derivative"):
        want = general(f, op, x)
        got = getattr(f, op)(x)
        assert type(got) is torch.Tensor and got.dtype == dtype and got.shape == x.shape
        assert torch.equal(bits(got), bits(want)), op
        out = torch.empty_like(x)
        assert getattr(f, op)(x, out=out) is out and torch.equal(bits(out), bits(want))
        inplace = x.clone()
        assert getattr(f, op)(inplace, out=inplace) is inplace
        assert torch.equal(bits(inplace), bits(want))
    assert taken == [True] * 6
    monkeypatch.undo()


def test_an_out_that_overlaps_x_in_one_storage_gets_the_general_path_s_bits():
    base = torch.linspace(-4.0, 4.0, 200)
    for shift in (2, -5):
        want, got = base.clone(), base.clone()
        general(relukit.gelu, "__call__", want[10:110], out=want[10 + shift : 110 + shift])
        relukit.gelu(got[10:110], out=got[10 + shift : 110 + shift])
        assert torch.equal(bits(got), bits(want)), shift


def test_a_tensor_written_through_its_view_has_its_version_bumped():
    # (autograd then refuses a backward that saved the old values, as after torch.relu_)
    w = torch.ones(4, requires_grad=True)
    x = torch.tensor([-1.0, -2.0, 3.0, 4.0])
    y = (w * x).sum()
    relukit.relu(x, out=x)  # (in place)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    for n in (4, 300_000):  # (the route, and the general path from ALIAS_BYTES)
        w = torch.ones(n, requires_grad=True)
        out = torch.zeros(n)
        y = (w * out).sum()
        relukit.silu(torch.ones(n), out=out)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()


def test_what_the_route_leaves_to_the_general_path():
    f = relukit.silu
    x = torch.linspace(-3.0, 3.0, 64)
    # a view that is not contiguous, a 0-d tensor, a subclass, an out of another dtype
    for y, want in (
        (f(x[::2]), f(x.numpy()[::2].copy())),
        (f(x[3]), f(x.numpy()[3])),
        (f(torch.nn.Parameter(x, requires_grad=False)), f(x.numpy())),
    ):
        assert type(y) is torch.Tensor and np.array_equal(y.numpy(), np.asarray(want))
    with pytest.raises(TypeError, match=r"out has dtype torch\.float64"):
        f(x, out=torch.empty(64, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"out has shape \(32,\)"):
        f(x, out=torch.empty(32))
    with dispatch.forced("reference"):
        reference = f(x)
    assert torch.allclose(reference, f(x))


@pytest.mark.parametrize("n", [100, 5_000])
def test_torch_compile_traces_the_reference_path_on_a_plain_tensor(n):
    # (a tensor that requires no grad reached the kernels under Dynamo, which then failed
    # inside Numba's dispatcher; on Dynamo's eager backend: inductor's C++ would take 20 s)
    x = torch.linspace(-6.0, 6.0, n)

    def f(t):  # type: ignore[no-untyped-def]
        y, mask = relukit.leaky_relu.forward_with_mask(t)  # (Dynamo stopped in its NumPy)
        g = relukit.leaky_relu.backward_from_mask(t, mask)
        return relukit.gelu(t) + relukit.silu.derivative(t) + y + g

    got = torch.compile(f, backend="eager")(x)
    with dispatch.forced("reference"):
        want = f(x)
    assert torch.equal(bits(got), bits(want))
