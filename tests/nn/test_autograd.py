"""relukit's modules against torch.nn: forward and gradients bit for bit, what autograd saves,
gradcheck in float64, double backward, in-place semantics and autocast."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import relukit
import relukit.nn as rn
from relukit.nn import functional as rf
from relukit.nn.prelu import PRELU_DOUBLE_BACKWARD

DTYPES = [torch.float32, torch.float64, torch.bfloat16]
INT_VIEW = {
    torch.float32: torch.int32,
    torch.float64: torch.int64,
    torch.bfloat16: torch.int16,
    torch.float16: torch.int16,
}
SPECIAL = [0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, -1.0, 6.0, -2.5, 0.5, 1e-30, -1e-30]


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and bits (signed zeros and NaN included)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a, b = a.detach().contiguous(), b.detach().contiguous()
    return torch.equal(a.view(INT_VIEW[a.dtype]), b.view(INT_VIEW[b.dtype]))


def inputs(dtype: torch.dtype, shape=(64, 64), seed: int = 0) -> torch.Tensor:
    """Normal values, the kinks of every member, ±0, ±inf and NaN among the first entries.

    4096 elements and no thread split (PyTorch's grain is 32768): every element goes through
    PyTorch's vectorised CPU loop, as in real layers (its scalar tail differs at NaN for
    hardtanh, see relukit.nn.rules).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    flat = x.view(-1)
    special = torch.tensor(SPECIAL + [0.0, 6.0, -1.0, 1.0, 0.5, -2.5] * 6, dtype=torch.float64)
    flat[: min(flat.numel(), special.numel())] = special[: flat.numel()]
    return x.to(dtype)


def grads(dtype: torch.dtype, shape, seed: int = 1) -> torch.Tensor:
    g = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    flat = g.view(-1)
    special = torch.tensor([math.inf, math.nan, -0.0, 0.0, -0.0, -0.0], dtype=torch.float64)
    if flat.numel() > 2 * special.numel():
        flat[1 : 1 + special.numel()] = special
        flat[-3:] = -0.0
    return g.to(dtype)


def run(module_or_fn, x: torch.Tensor, g: torch.Tensor, *params: torch.Tensor):
    """(output, input gradient, parameter gradients) of one forward and backward pass."""
    x = x.clone().requires_grad_()
    y = module_or_fn(x * 1)  # a non-leaf input, so in-place variants are allowed
    y.backward(g)
    return y, x.grad, [p.grad for p in params]


PIECEWISE = [
    pytest.param(nn.ReLU, rn.ReLU, {}, id="relu"),
    pytest.param(nn.ReLU, rn.ReLU, {"inplace": True}, id="relu-inplace"),
    pytest.param(nn.LeakyReLU, rn.LeakyReLU, {}, id="leaky"),
    pytest.param(nn.LeakyReLU, rn.LeakyReLU, {"negative_slope": 0.2}, id="leaky-0.2"),
    pytest.param(nn.LeakyReLU, rn.LeakyReLU, {"negative_slope": -0.3}, id="leaky-neg"),
    pytest.param(nn.LeakyReLU, rn.LeakyReLU, {"negative_slope": 0.0}, id="leaky-0"),
    pytest.param(nn.LeakyReLU, rn.LeakyReLU, {"negative_slope": 1.7}, id="leaky-1.7"),
    pytest.param(
        nn.LeakyReLU, rn.LeakyReLU, {"negative_slope": 0.1, "inplace": True}, id="leaky-inplace"
    ),
    pytest.param(nn.ReLU6, rn.ReLU6, {}, id="relu6"),
    pytest.param(nn.ReLU6, rn.ReLU6, {"inplace": True}, id="relu6-inplace"),
    pytest.param(nn.Hardtanh, rn.Hardtanh, {}, id="hardtanh"),
    pytest.param(nn.Hardtanh, rn.Hardtanh, {"min_val": -2.5, "max_val": 0.5}, id="hardtanh-b"),
    pytest.param(nn.Hardtanh, rn.Hardtanh, {"inplace": True}, id="hardtanh-inplace"),
    pytest.param(nn.RReLU, rn.RReLU, {}, id="rrelu-eval"),
    pytest.param(nn.RReLU, rn.RReLU, {"lower": 0.1, "upper": 0.3}, id="rrelu-eval-b"),
]


@pytest.mark.parametrize("dtype", [*DTYPES, torch.float16], ids=str)
@pytest.mark.parametrize(("torch_cls", "relukit_cls", "kwargs"), PIECEWISE)
def test_piecewise_linear_matches_torch_bit_for_bit(torch_cls, relukit_cls, kwargs, dtype):
    x, g = inputs(dtype), grads(dtype, (64, 64))
    theirs, ours = torch_cls(**kwargs).eval(), relukit_cls(**kwargs).eval()
    y0, gx0, _ = run(theirs, x, g)
    y1, gx1, _ = run(ours, x, g)
    assert identical(y1, y0)
    assert identical(gx1, gx0)


@pytest.mark.parametrize("dtype", [*DTYPES, torch.float16], ids=str)
@pytest.mark.parametrize("lower_upper", [(1 / 8, 1 / 3), (0.1, 0.3), (0.0, 0.0), (0.3, 1.7)])
@pytest.mark.parametrize("inplace", [False, True])
def test_rrelu_eval_below_native_below_is_torchs_bit_for_bit(dtype, lower_upper, inplace):
    # below native_below the module and the function run leaky_relu with the mean slope,
    # which is what F.rrelu runs outside training (without its unused noise tensor)
    x, g = inputs(dtype), grads(dtype, (64, 64))
    rn.set_native_below(1 << 30)
    theirs = nn.RReLU(*lower_upper, inplace=inplace).eval()
    y0, gx0, _ = run(theirs, x, g)
    ours = rn.RReLU(*lower_upper, inplace=inplace).eval()
    functional = partial(rf.rrelu, lower=lower_upper[0], upper=lower_upper[1], inplace=inplace)
    for path in (ours, functional):
        y1, gx1, _ = run(path, x, g)
        assert identical(y1, y0)
        assert identical(gx1, gx0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("lower_upper", [(1 / 8, 1 / 3), (0.1, 0.3), (0.2, 0.2)])
def test_rrelu_training_draws_and_gradients_match_torch(dtype, lower_upper):
    x, g = inputs(dtype), grads(dtype, (64, 64))
    theirs, ours = nn.RReLU(*lower_upper).train(), rn.RReLU(*lower_upper).train()
    torch.manual_seed(7)
    y0, gx0, _ = run(theirs, x, g)
    after_theirs = torch.rand(3)
    torch.manual_seed(7)
    y1, gx1, _ = run(ours, x, g)
    assert identical(y1, y0)
    assert identical(gx1, gx0)
    assert torch.equal(torch.rand(3), after_theirs)  # the same number of draws


def test_rrelu_generator_argument_reproduces_the_global_stream():
    x = inputs(torch.float32)
    torch.manual_seed(3)
    expected = F.rrelu(x, training=True)
    ours = rf.rrelu(x, training=True, generator=torch.Generator().manual_seed(3))
    assert identical(ours, expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("channels", [1, 5])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_prelu_matches_torch_for_input_and_weight(dtype, channels, layout):
    x = inputs(dtype, (4, 5, 16, 13))
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    g = grads(dtype, x.shape)
    init = torch.tensor([0.25, -0.5, 0.0, 1.5, 0.01][:channels], dtype=dtype)
    theirs, ours = nn.PReLU(channels, dtype=dtype), rn.PReLU(channels, dtype=dtype)
    with torch.no_grad():
        theirs.weight.copy_(init)
        ours.weight.copy_(init)
    y0, gx0, (gw0,) = run(theirs, x, g, theirs.weight)
    y1, gx1, (gw1,) = run(ours, x, g, ours.weight)
    assert identical(y1, y0)
    assert identical(gx1, gx0)
    assert identical(gw1, gw0)


def test_prelu_with_frozen_weight_matches_torch():
    x, g = inputs(torch.float32, (8, 3, 10)), grads(torch.float32, (8, 3, 10))
    theirs, ours = nn.PReLU(3).requires_grad_(False), rn.PReLU(3).requires_grad_(False)
    y0, gx0, _ = run(theirs, x, g)
    y1, gx1, _ = run(ours, x, g)
    assert identical(y1, y0) and identical(gx1, gx0)


@pytest.mark.parametrize("shape", [(), (7,), (3, 4)])
def test_prelu_small_shapes_match_torch(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    g = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    theirs, ours = nn.PReLU(), rn.PReLU()
    y0, gx0, (gw0,) = run(theirs, x, g, theirs.weight)
    y1, gx1, (gw1,) = run(ours, x, g, ours.weight)
    assert identical(y1, y0) and identical(gx1, gx0) and identical(gw1, gw0)


SMOOTH = [
    pytest.param(nn.ELU, rn.ELU, {}, id="elu"),
    pytest.param(nn.ELU, rn.ELU, {"alpha": 0.5, "inplace": True}, id="elu-inplace"),
    pytest.param(nn.SELU, rn.SELU, {}, id="selu"),
    pytest.param(nn.CELU, rn.CELU, {"alpha": 2.0}, id="celu"),
    pytest.param(nn.GELU, rn.GELU, {}, id="gelu"),
    pytest.param(nn.GELU, rn.GELU, {"approximate": "tanh"}, id="gelu-tanh"),
    pytest.param(nn.SiLU, rn.SiLU, {}, id="silu"),
    pytest.param(nn.Mish, rn.Mish, {}, id="mish"),
    pytest.param(nn.Softplus, rn.Softplus, {"beta": 2.0, "threshold": 5.0}, id="softplus"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("torch_cls", "relukit_cls", "kwargs"), SMOOTH)
def test_smooth_members_are_torch_exactly(torch_cls, relukit_cls, kwargs, dtype):
    x, g = inputs(dtype), grads(dtype, (64, 64))
    y0, gx0, _ = run(torch_cls(**kwargs), x, g)
    y1, gx1, _ = run(relukit_cls(**kwargs), x, g)
    assert identical(y1, y0) and identical(gx1, gx0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_squared_relu_is_relu_squared(dtype):
    x, g = inputs(dtype), grads(dtype, (64, 64))
    y0, gx0, _ = run(lambda t: torch.relu(t) * torch.relu(t), x, g)
    y1, gx1, _ = run(rn.SquaredReLU(), x, g)
    assert identical(y1, y0) and identical(gx1, gx0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_crelu_matches_torch_composition(dtype, dim):
    x = inputs(dtype, (64, 32))
    shape = list(x.shape)
    shape[dim] *= 2
    g = grads(dtype, shape)
    y0, gx0, _ = run(lambda t: torch.cat([torch.relu(t), torch.relu(-t)], dim), x, g)
    y1, gx1, _ = run(rn.CReLU(dim), x, g)
    assert identical(y1, y0) and identical(gx1, gx0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("pieces", "dim"), [(2, -1), (3, 1), (4, 0), (5, -1), (300, 1)])
def test_maxout_matches_torch_max(dtype, pieces, dim):
    shape = [60, 60] if pieces != 300 else [8, 600]
    x = inputs(dtype, tuple(shape))
    x.view(-1)[20:30] = 1.0  # ties
    out_shape = list(shape)
    out_shape[dim] //= pieces
    g = grads(dtype, out_shape)

    def reference(t):
        d = dim % t.dim()
        return t.unflatten(d, (t.shape[d] // pieces, pieces)).max(d + 1).values

    y0, gx0, _ = run(reference, x, g)
    y1, gx1, _ = run(rn.Maxout(pieces, dim), x, g)
    assert identical(y1, y0) and identical(gx1, gx0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"negative_slope": 0.1},
        {"negative_slope": 0.1, "max_value": 3.0, "threshold": 0.7},
        {"max_value": 6.0},
        {"negative_slope": 1.0, "max_value": 2.0},
        {"negative_slope": -0.2, "threshold": -1.0},
    ],
    ids=str,
)
def test_general_relu_agrees_with_the_registry(dtype, params):
    x = inputs(dtype)
    xr = x.clone().requires_grad_()
    y = rn.GeneralReLU(**params)(xr * 1)
    y.backward(torch.ones_like(y))
    as_numpy = x.float().numpy() if dtype == torch.bfloat16 else x.numpy()
    expected = relukit.general_relu(as_numpy, **params)
    expected_grad = relukit.general_relu.derivative(as_numpy, **params)
    ours = y.detach().float().numpy() if dtype == torch.bfloat16 else y.detach().numpy()
    finite = ~np.isnan(as_numpy)
    if dtype == torch.bfloat16:
        expected = torch.from_numpy(np.asarray(expected, dtype=np.float32)).bfloat16().float()
        expected = expected.numpy()
    np.testing.assert_array_equal(ours[finite], expected[finite])
    grad = xr.grad.float().numpy()
    expected_grad = torch.from_numpy(np.asarray(expected_grad)).to(dtype).float().numpy()
    np.testing.assert_array_equal(grad[finite], expected_grad[finite])
    assert np.isnan(ours[~finite]).all() and (grad[~finite] == 1).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_general_relu_defaults_are_relu(dtype):
    x, g = inputs(dtype), grads(dtype, (64, 64))
    y0, gx0, _ = run(nn.ReLU(), x, g)
    y1, gx1, _ = run(rn.GeneralReLU(), x, g)
    assert identical(y1, y0) and identical(gx1, gx0)


# ---------------------------------------------------------------------------------------------
# what autograd keeps


def saved_by(module, x: torch.Tensor) -> list[torch.Tensor]:
    kept: list[torch.Tensor] = []

    def pack(t):
        kept.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module(x)
    return kept


@pytest.mark.parametrize(
    ("module", "bytes_per_element"),
    [
        (rn.ReLU(), 1 / 8),
        (rn.LeakyReLU(0.1), 1 / 8),
        (rn.ReLU6(), 1 / 8),
        (rn.Hardtanh(), 1 / 8),
        (rn.RReLU().eval(), 1 / 8),
        (rn.GeneralReLU(0.1, 6.0), 1 / 4),
        (rn.GeneralReLU(max_value=6.0), 1 / 8),
        (rn.CReLU(), 2 / 8),
    ],
    ids=lambda v: getattr(v, "relukit_member", str(v)),
)
def test_mask_members_save_only_the_packed_mask(module, bytes_per_element):
    x = torch.randn(64, 64, requires_grad=True)
    (kept,) = saved_by(module, x)
    assert kept.dtype == torch.uint8
    assert kept.numel() == math.ceil(x.numel() * bytes_per_element)


def test_prelu_saves_mask_weight_and_only_the_non_positive_inputs():
    x = torch.randn(64, 8, 8, requires_grad=True)
    m = rn.PReLU(8)
    mask, negatives, weight = saved_by(m, x)
    assert mask.numel() == x.numel() // 8 and weight is m.weight
    assert torch.equal(negatives, x.detach()[x <= 0])
    m.weight.requires_grad_(False)
    mask, empty, weight = saved_by(m, x)
    assert empty.numel() == 0


def test_rrelu_training_saves_mask_and_one_slope_per_non_positive_input():
    x = torch.randn(64, 64, requires_grad=True)
    mask, slopes = saved_by(rn.RReLU().train(), x)
    assert mask.numel() == x.numel() // 8
    assert slopes.numel() == int((x <= 0).sum()) and slopes.dtype == x.dtype


def test_maxout_saves_log2_pieces_bits_per_output():
    x = torch.randn(64, 64, requires_grad=True)
    (index,) = saved_by(rn.Maxout(4), x)
    assert index.dtype == torch.uint8 and index.numel() == 64 * 16 * 2 // 8


def test_no_grad_saves_nothing_and_calls_torch():
    x = torch.randn(10, requires_grad=True)
    with torch.no_grad():
        assert saved_by(rn.ReLU(), x) == []
        y = rn.ReLU(inplace=True)(x)
    assert y is x


# ---------------------------------------------------------------------------------------------
# gradcheck and double backward


def away_from_kinks(shape, kinks=(0.0,), seed=0) -> torch.Tensor:
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) * 3
    for kink in kinks:
        near = (x - kink).abs() < 1e-2
        x[near] += 0.05
    return x.requires_grad_()


def rrelu_fixed(t):
    return rf.rrelu(t, 0.1, 0.3, training=True, generator=torch.Generator().manual_seed(0))


GRADCHECK = [
    pytest.param(rn.ReLU(), (0.0,), id="relu"),
    pytest.param(rn.LeakyReLU(0.2), (0.0,), id="leaky"),
    pytest.param(rn.ReLU6(), (0.0, 6.0), id="relu6"),
    pytest.param(rn.Hardtanh(-2.0, 2.0), (-2.0, 2.0), id="hardtanh"),
    pytest.param(rn.RReLU(0.1, 0.3).eval(), (0.0,), id="rrelu-eval"),
    pytest.param(rrelu_fixed, (0.0,), id="rrelu-train"),
    pytest.param(rn.GeneralReLU(0.1, 3.0, 0.5), (0.5, 3.0), id="general-2bit"),
    pytest.param(rn.GeneralReLU(-0.5), (0.0,), id="general-1bit"),
    pytest.param(rn.SquaredReLU(), (0.0,), id="squared_relu"),
    pytest.param(rn.CReLU(0), (0.0,), id="crelu"),
    pytest.param(rn.Maxout(3, 1), (), id="maxout"),
    pytest.param(rn.ELU(0.7), (0.0,), id="elu"),
    pytest.param(rn.SELU(), (0.0,), id="selu"),
    pytest.param(rn.CELU(1.5), (0.0,), id="celu"),
    pytest.param(rn.GELU(), (), id="gelu"),
    pytest.param(rn.GELU("tanh"), (), id="gelu-tanh"),
    pytest.param(rn.SiLU(), (), id="silu"),
    pytest.param(rn.Mish(), (), id="mish"),
    pytest.param(rn.Softplus(2.0, 5.0), (2.5,), id="softplus"),
]


@pytest.mark.parametrize(("fn", "kinks"), GRADCHECK)
def test_gradcheck_and_gradgradcheck_float64(fn, kinks):
    x = away_from_kinks((4, 6), kinks)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_prelu_gradcheck_and_clear_double_backward_error():
    x = away_from_kinks((4, 3, 5))
    weight = torch.tensor([0.25, -0.5, 1.5], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rf.prelu, (x, weight))
    y = rf.prelu(x, weight)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"torch\.nn\.PReLU"):
        gx.sum().backward()
    assert "relukit.nn.revert" in PRELU_DOUBLE_BACKWARD


# ---------------------------------------------------------------------------------------------
# in place


@pytest.mark.parametrize("cls", [rn.ReLU, rn.LeakyReLU, rn.ReLU6, rn.Hardtanh, rn.RReLU])
def test_inplace_writes_into_the_input_and_returns_it(cls):
    x = torch.randn(5, 5, requires_grad=True)
    h = x * 2
    y = cls(inplace=True)(h)
    assert y is h and h._version > 0


@pytest.mark.parametrize(
    ("theirs", "ours"), [(nn.ReLU, rn.ReLU), (nn.LeakyReLU, rn.LeakyReLU), (nn.ReLU6, rn.ReLU6)]
)
def test_inplace_errors_as_torch(theirs, ours):
    for cls in (theirs, ours):
        leaf = torch.randn(4, requires_grad=True)
        with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
            cls(inplace=True)(leaf)
        # sigmoid keeps its output for the backward: overwriting it must fail there.
        s = torch.randn(4, requires_grad=True).sigmoid()
        cls(inplace=True)(s)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            s.sum().backward()


# ---------------------------------------------------------------------------------------------
# autocast


def test_autocast_bfloat16_on_cpu_matches_torch():
    def model(kind):
        return nn.Sequential(
            nn.Linear(16, 32), kind.ReLU(), nn.Linear(32, 32), kind.LeakyReLU(0.1), nn.Linear(32, 4)
        )

    torch.manual_seed(0)
    theirs = model(nn)
    ours = model(rn)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(8, 16)
    results = []
    for m in (theirs, ours):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(x)
        assert y.dtype == torch.bfloat16
        y.float().square().sum().backward()
        results.append((y, [p.grad for p in m.parameters()]))
    assert identical(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1], strict=True):
        assert identical(a, b)


LAYOUTS = {
    "empty": lambda: torch.empty(0, 3),
    "scalar": lambda: torch.tensor(-1.5),
    "transposed": lambda: inputs(torch.float32, (48, 40)).t(),
    "strided": lambda: inputs(torch.float32, (6, 40, 9))[:, ::3],
    "channels_last": lambda: inputs(torch.float32, (2, 3, 8, 9)).to(
        memory_format=torch.channels_last
    ),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        (nn.ReLU(), rn.ReLU()),
        (nn.LeakyReLU(0.1), rn.LeakyReLU(0.1)),
        (nn.Hardtanh(-0.5, 0.5), rn.Hardtanh(-0.5, 0.5)),
        (nn.ReLU6(), rn.ReLU6()),
    ],
    ids=lambda m: type(m).__name__,
)
def test_any_shape_and_layout(theirs, ours, layout):
    x = LAYOUTS[layout]()
    if isinstance(ours, nn.Hardtanh):  # ReLU6 too
        # At NaN PyTorch's hardtanh backward gives 0 in its vectorised loop but g in its scalar
        # loop, which is the one that runs on non-contiguous layouts (relukit: 0 everywhere).
        x = torch.nan_to_num(x, nan=0.25)
    g = grads(torch.float32, x.shape)
    results = []
    for module in (theirs, ours):
        leaf = x.detach().requires_grad_()
        y = module(leaf)
        y.backward(g)
        results.append((y, leaf.grad))
    (y0, gx0), (y1, gx1) = results
    assert identical(y1, y0) and identical(gx1, gx0)
    assert y1.stride() == y0.stride()
