"""The compiled CPU kernels take a formula only where they equal the PyTorch rules bit for bit:
the same forward, the same mask and the same gradient, NaN, ±0 and ±inf included; the layout
of the input is kept."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from relukit.family import lookup
from relukit.nn import kernel
from relukit.nn.rules import rule

PARAMS = {
    "relu": [{}],
    "leaky_relu": [{"negative_slope": s} for s in (0.01, 0.2, -0.5)],
    "rrelu": [{"lower": 0.1, "upper": 0.3}],
    "relu6": [{}],
    "hardtanh": [{"min_val": -1.0, "max_val": 1.0}, {"min_val": -2.0, "max_val": 0.5}],
}
# Up to 2^19 elements one call runs one chunk; the largest is split in chunks on two threads.
SIZES = [29, 1000, (1 << 18) + 3, (1 << 19) + 5]

needs_kernels = pytest.mark.skipif(
    not kernel.kernels_available(), reason="relukit's compiled CPU kernels are not available"
)


def encoded(member: str, params: dict) -> list[float]:
    spec = lookup(member)
    return spec.encode(spec.bind(params))


def rule_of(member: str, params: dict):
    spec = lookup(member)
    return rule(*spec.kernel(spec.bind(params)))


def special(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(n, generator=g, dtype=torch.float64) * 3
    values = [0.0, -0.0, math.nan, math.inf, -math.inf, 1.0, -1.0, 6.0, 0.5, 3.0, -2.0]
    for start in (0, n // 2 - 3, n - len(values)):  # head, a chunk seam, tail
        t[start : start + len(values)] = torch.tensor(values)
    return t.to(dtype)


def cases():
    return [
        pytest.param(m, p, n, dt, id=f"{m}-{p}-{n}-{dt}")
        for m in sorted(PARAMS)
        for p in PARAMS[m]
        for n in SIZES
        for dt in kernel.KERNEL_DTYPES
    ]


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8)


@pytest.fixture(autouse=True)
def two_kernel_threads():
    """The kernels split a call in chunks, one per thread: make sure seams are crossed."""
    if not kernel.kernels_available():
        yield
        return
    from relukit import threads

    with threads.limit(2):
        yield


def test_the_compiled_formulas_are_the_exact_ones():
    for member, params in [("relu", {}), ("hardtanh", {}), ("leaky_relu", {})]:
        masks = kernel.entry(member, encoded(member, params), torch.float32)
        assert masks.compiled(torch.empty(1)) == kernel.kernels_available()
    for member, params in [("general_relu", {}), ("leaky_relu", {"negative_slope": 0.0})]:
        masks = kernel.entry(member, encoded(member, params), torch.float32)
        assert not masks.compiled(torch.empty(1))
    assert not kernel.entry("relu", [], torch.bfloat16).compiled(torch.empty(1))


@needs_kernels
@pytest.mark.parametrize(("member", "params", "n", "dtype"), cases())
def test_kernel_forward_mask_and_backward_equal_the_rules(member, params, n, dtype):
    r = rule_of(member, params)
    masks = kernel.entry(member, encoded(member, params), dtype)
    assert masks.compiled(torch.empty(1, dtype=dtype))
    x = special(n, dtype, 0)
    expected_y, expected_mask = r.forward_with_mask(x)
    y, mask = masks.forward(x)
    assert torch.equal(bits(y), bits(expected_y))
    assert mask.dtype == torch.uint8 and torch.equal(mask, expected_mask)
    g = special(n, dtype, 1)
    expected = r.backward_from_mask(g, mask)
    assert torch.equal(bits(masks.backward(g, mask)), bits(expected))


@needs_kernels
def test_in_place_forward_writes_the_input_and_returns_the_mask():
    x = special(1000, torch.float32, 0)
    expected_y, expected_mask = rule_of("relu", {}).forward_with_mask(x)
    mask = kernel.entry("relu", [], torch.float32).forward_(x)
    assert torch.equal(bits(x), bits(expected_y)) and torch.equal(mask, expected_mask)


@pytest.mark.parametrize("member", ["relu", "hardtanh", "general_relu"])
def test_channels_last_in_gives_channels_last_out_and_gradient(member):
    x = special(2 * 3 * 4 * 5, torch.float64, 0).reshape(2, 3, 4, 5)
    x = x.contiguous(memory_format=torch.channels_last)
    masks = kernel.entry(member, encoded(member, {}), x.dtype)
    y, mask = masks.forward(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    r = rule_of(member, {})
    flat = x.permute(0, 2, 3, 1).reshape(-1)
    assert torch.equal(mask, r.forward_with_mask(flat)[1])
    assert torch.equal(bits(y.contiguous()), bits(r.forward(x).contiguous()))
    g = special(x.numel(), torch.float64, 1).reshape(x.shape)  # another layout: copied
    dx = masks.backward(g, mask, kernel.memory_order(x))
    assert dx.is_contiguous(memory_format=torch.channels_last)
    expected = r.backward(g, r.codes(x).to(g.dtype) if r.bits == 1 else r.codes(x))
    assert torch.equal(bits(dx.contiguous()), bits(expected.contiguous()))


def test_non_contiguous_inputs_give_the_rules_values():
    x = special(1000, torch.float32, 0).reshape(40, 25).t()
    masks = kernel.entry("relu", [], torch.float32)
    y, mask = masks.forward(x)
    assert torch.equal(bits(y.contiguous()), bits(torch.relu(x).contiguous()))
    g = special(1000, torch.float32, 1).reshape(40, 25).t()
    dx = masks.backward(g, mask, kernel.memory_order(x))
    expected = torch.ops.aten.threshold_backward(g, x, 0)
    assert torch.equal(bits(dx.contiguous()), bits(expected.contiguous()))


def test_leaky_relu_with_slope_zero_keeps_pytorchs_nan_at_minus_infinity():
    x = torch.tensor([-math.inf, -1.0, 2.0])
    y, _ = kernel.entry("leaky_relu", [0.0], torch.float32).forward(x)
    assert torch.equal(y.isnan(), torch.tensor([True, False, False]))


def test_other_dtypes_take_the_rules():
    x = special(64, torch.bfloat16, 0)
    y, mask = kernel.entry("relu", [], torch.bfloat16).forward(x)
    assert torch.equal(bits(y), bits(torch.relu(x)))
    expected = np.packbits(~(x.float().numpy() <= 0), bitorder="little")
    assert mask.numpy().tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("member", "params"),
    [("relu", {}), ("hardtanh", {}), ("general_relu", {"negative_slope": 0.1, "max_value": 3})],
)
def test_the_rules_run_on_other_devices(member, params):
    # The meta device stands for any device that is not the CPU: same operations, no data.
    x = torch.empty(5, 7, device="meta")
    masks = kernel.entry(member, encoded(member, params), x.dtype)
    y, mask = masks.forward(x)
    assert y.device.type == mask.device.type == "meta"
    assert y.shape == x.shape and mask.shape == (math.ceil(35 * masks.bits / 8),)
    grad = masks.backward(torch.empty_like(x), mask)
    assert grad.shape == x.shape and grad.device.type == "meta"


def test_a_negative_zero_parameter_is_not_served_the_positive_zero_rule():
    x = torch.tensor([-1.0, -0.0, 0.5])
    for low in (0.0, -0.0, 0.0):  # both orders through the caches
        y, _ = kernel.entry("hardtanh", [low, 1.0], torch.float32).forward(x)
        expected = torch.nn.functional.hardtanh(x, low, 1.0)
        assert torch.equal(bits(y), bits(expected)), low


@pytest.mark.parametrize("n", [0, 5, 64, 1001])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("nan_passes", [False, True])
def test_split_expand_and_scale_are_the_pytorch_operations(n, dtype, nan_passes):
    x = special(max(n, 32), dtype, 2)[:n].contiguous()
    passes = torch.le(x, 0).logical_not() if nan_passes else x > 0
    mask, rest, count = kernel.split(x, nan_passes, keep=True)
    assert torch.equal(mask, np_packbits(passes))
    assert torch.equal(bits(rest), bits(torch.masked_select(x, ~passes))) and count == rest.numel()
    expected = torch.ones_like(x).masked_scatter_(~passes, rest)
    assert torch.equal(bits(kernel.expand(mask, rest, 1.0, n)), bits(expected))
    slopes = special(count + 32, dtype, 3)[:count].contiguous()
    expected = x.clone()
    expected[~passes] = x[~passes] * slopes
    assert torch.equal(bits(kernel.scale(x, mask, slopes)), bits(expected))
    assert kernel.split(x, nan_passes, keep=False)[2] == count


def np_packbits(flags: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(flags.numpy(), bitorder="little"))


# prelu's and rrelu's fused kernels: one period of slopes as a pattern, or written word by word
# (a period longer than host.PATTERN: runs of 4099 and 70001 elements, of 40, several to a
# word, and of 64, one word each); chunk seams (two threads), partial last words
SLOPE_SHAPES = [
    (5,), (3, 7), (100, 64), (2, 64, 3, 5), (2049, 64), (2, 8, 4099), (3, 2, 70001),
    (2, 1001, 40), (3, 520, 64),
]  # fmt: skip


def slope_cases():
    return [
        pytest.param(shape, channels, dt, id=f"{shape}-{channels}-{dt}")
        for shape in SLOPE_SHAPES
        for channels in (1, shape[1] if len(shape) > 1 else 1)
        for dt in kernel.KERNEL_DTYPES
    ]


@needs_kernels
@pytest.mark.parametrize("shape, channels, dtype", slope_cases())
def test_prelu_fused_kernels_are_pytorchs_operations(shape, channels, dtype):
    n = math.prod(shape)
    x = special(max(n, 32), dtype, 4)[:n].view(shape)
    g = special(max(n, 32), dtype, 5)[:n].view(shape)
    w = torch.linspace(-0.5, 0.75, channels, dtype=dtype)
    assert kernel.fused_slopes(x, w)
    positive = (x > 0).reshape(-1)
    for keep in (True, False):
        y, mask, rest = kernel.prelu_forward(x, w, keep)
        assert torch.equal(bits(y), bits(torch.prelu(x, w)))
        assert torch.equal(mask, np_packbits(positive))
        expected = torch.masked_select(x.reshape(-1), ~positive) if keep else x.new_empty(0)
        assert torch.equal(bits(rest), bits(expected))
        gx, gw = kernel.prelu_backward(g, mask, rest, w, keep)
        shaped = w.reshape([1, channels] + [1] * (len(shape) - 2)) if len(shape) > 1 else w
        ex, ew = torch.ops.aten._prelu_kernel_backward(g, x, shaped)
        assert torch.equal(bits(gx), bits(ex))
        assert torch.equal(bits(gw), bits(ew)) if keep else gw.numel() == 0


@needs_kernels
@pytest.mark.parametrize("shape", SLOPE_SHAPES)
@pytest.mark.parametrize("dtype", kernel.KERNEL_DTYPES)
def test_rrelu_fused_kernels_are_pytorchs_operation(shape, dtype):
    n = math.prod(shape)
    x = special(max(n, 32), dtype, 6)[:n].view(shape)
    g = special(max(n, 32), dtype, 7)[:n].view(shape)
    lower, upper = 0.1, 0.3
    low, high = (torch.tensor(v, dtype=dtype).item() for v in (lower, upper))
    y, mask, slopes = kernel.rrelu_forward(x, low, high, torch.Generator().manual_seed(8))
    noise = torch.empty_like(x)
    expected = torch.ops.aten.rrelu_with_noise(
        x, noise, lower, upper, True, torch.Generator().manual_seed(8)
    )
    takes = torch.le(x, 0).reshape(-1)
    assert torch.equal(bits(y), bits(expected))
    assert torch.equal(mask, np_packbits(~takes))
    assert torch.equal(bits(slopes), bits(noise.reshape(-1)[takes]))
    assert torch.equal(bits(kernel.rrelu_backward(g, mask, slopes)), bits(g * noise))
