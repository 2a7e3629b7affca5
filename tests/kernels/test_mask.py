"""The mask path: forward_with_mask / backward_from_mask, reference and compiled.

The output equals the forward and the gradient from the mask equals ``vjp`` bit for bit wherever
the input is not NaN; at NaN inputs the gradient is PyTorch's; the bytes follow the documented
layout; the compiled kernel writes the same bytes as the reference path.
"""

from __future__ import annotations

import contextlib
import math

import ml_dtypes
import numpy as np
import pytest

import relukit
from relukit.kernels import dispatch, mask, reference
from relukit.kernels.cpu import host

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
BACKENDS = ["reference", "compiled"]

# (name, params, the derivative PyTorch's backward takes at a NaN input)
CASES = [
    ("relu", {}, 1.0),
    ("leaky_relu", {"negative_slope": 0.07}, 0.07),
    ("leaky_relu", {"negative_slope": 0.0}, 0.0),
    ("prelu", {"weight": 0.25}, 0.25),
    ("prelu", {"weight": np.array([0.1, -0.2, 0.3])}, None),  # the channel's slope
    ("rrelu", {"lower": 0.1, "upper": 0.3}, 0.2),
    ("rrelu", {"training": True, "seed": 11}, 1.0),
    ("relu6", {}, 0.0),
    ("hardtanh", {"min_val": -0.5, "max_val": 2.0}, 0.0),
    ("general_relu", {}, 0.0),
    ("general_relu", {"negative_slope": 0.1, "max_value": 3.0, "threshold": 1.0}, 0.1),
    ("general_relu", {"negative_slope": 0.0, "max_value": 6.0}, 0.0),
    ("general_relu", {"negative_slope": 1.0, "max_value": 2.0}, 1.0),
    ("general_relu", {"negative_slope": 0.3, "threshold": -0.5, "max_value": 2.0}, 0.3),
]
SPECIAL = [np.nan, np.inf, -np.inf, 0.0, -0.0, 6.0, -0.5, 2.0, 1.0, 3.0, 1e-40, -7.0, np.nan]


def sample(shape: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    values = rng.standard_normal(n) * 4
    k = min(n, len(SPECIAL))
    values[:k] = SPECIAL[:k]
    rng.shuffle(values)
    return values.astype(dtype).reshape(shape)


def bits_equal(a: object, b: object) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a.astype(np.float64)), np.isnan(b.astype(np.float64))
    view = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    return bool(np.array_equal(nan_a, nan_b) and np.all((a.view(view) == b.view(view)) | nan_a))


def padded_outputs(shape: tuple[int, ...], dtype: np.dtype):
    """``(offset, out, outside)``: an output of ``shape`` at every third element offset into a
    fresh array of zeros (relative to wherever NumPy placed it, as in
    :func:`outputs_at_every_offset`); ``outside()`` is True if anything beyond ``out`` was
    written."""
    n, lanes = math.prod(shape), 64 // dtype.itemsize
    for offset in range(0, lanes, 3):
        base = np.zeros(n + lanes, dtype=dtype)

        def outside(base: np.ndarray = base, offset: int = offset) -> bool:
            return bool(base[offset + n :].any() or base[:offset].any())

        yield offset, base[offset : offset + n].reshape(shape), outside


def outputs_at_every_offset(n: int, dtype: np.dtype):
    """``(offset, out)``: an output of ``n`` elements at each element offset from a 64-byte
    line (of a fresh array, so the offsets are relative to wherever NumPy placed it)."""
    for offset in range(64 // dtype.itemsize):
        yield offset, np.zeros(n + 32, dtype=dtype)[offset : offset + n]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setattr(host, "GRAIN_LINEAR", 128)
    monkeypatch.setattr(host, "PIECES_TEAM", host.PIECES)  # (many chunks on the team too)
    monkeypatch.setattr(host, "STREAM_BYTES", 0)


def nan_derivative(name: str, params: dict, at_nan: float | None, shape, dtype) -> np.ndarray:
    if at_nan is not None:
        return np.full(shape, at_nan)
    return np.broadcast_to(params["weight"].reshape(1, -1, 1), shape)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    ("name", "params", "at_nan"), CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_mask_path_equals_forward_and_vjp(name, params, at_nan, dtype, backend):
    function = relukit.get(name, **params)
    shape = (5, 3, 67)
    x = sample(shape, dtype)
    g = sample(shape, dtype, seed=1)
    with dispatch.forced("reference"):
        forward = function(x)
        vjp = function.vjp(x, g)
    with dispatch.forced(backend):
        y, m = function.forward_with_mask(x)
        dx = function.backward_from_mask(g, m)
    bits = function.spec.derivative_bits(function.params)
    assert m.dtype == np.uint8 and m.shape == (mask.nbytes(x.size, bits),)
    assert bits_equal(y, forward)
    assert dx.dtype == dtype and dx.shape == shape
    nan = np.isnan(x.astype(np.float64))
    assert bits_equal(dx[~nan], vjp[~nan])
    d = nan_derivative(name, params, at_nan, shape, dtype)
    work = np.float64 if dtype == np.float64 else np.float32
    with np.errstate(all="ignore"):
        gw, dw = g.astype(work), d.astype(work)
        want = np.where(dw == 0, work(0), gw * dw).astype(dtype)
    assert bits_equal(dx[nan], want[nan])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    ("name", "params", "at_nan"), CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_compiled_mask_bytes_equal_reference(name, params, at_nan, dtype):
    function = relukit.get(name, **params)
    x = sample((4, 3, 37), dtype, seed=5)
    with dispatch.forced("reference"):
        _, want = function.forward_with_mask(x)
    with dispatch.forced("compiled"):
        _, got = function.forward_with_mask(x)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 63, 64, 65, 1000])
def test_one_bit_layout_is_packbits_little_endian(n):
    x = sample((n,), np.dtype(np.float32), seed=n)
    codes = ~(x <= 0)  # relu: PyTorch's threshold_backward, NaN passes
    for backend in BACKENDS:
        with dispatch.forced(backend):
            _, m = relukit.relu.forward_with_mask(x)
        assert np.array_equal(m, np.packbits(codes, bitorder="little")), backend


@pytest.mark.parametrize("n", [1, 3, 4, 5, 31, 32, 33, 129])
def test_two_bit_layout(n):
    function = relukit.get("general_relu", negative_slope=0.1, max_value=3.0, threshold=1.0)
    assert function.spec.derivative_bits(function.params) == 2
    x = sample((n,), np.dtype(np.float64), seed=n)
    codes = np.where(x >= 3.0, 2, np.where(x > 1.0, 1, 0))
    want = np.zeros(-(-n // 4), dtype=np.uint8)
    for i, code in enumerate(codes):
        want[i // 4] |= code << (2 * (i % 4))
    for backend in BACKENDS:
        with dispatch.forced(backend):
            _, m = function.forward_with_mask(x)
        assert np.array_equal(m, want), backend


@pytest.mark.parametrize("layout", ["f", "strided", "transposed"])
def test_mask_follows_c_order_whatever_the_layout(layout):
    base = sample((40, 90), np.dtype(np.float32), seed=2)
    x = {"f": np.asfortranarray, "strided": lambda a: a[::2, ::3], "transposed": np.transpose}[
        layout
    ](base)
    want = np.packbits(~(np.ascontiguousarray(x) <= 0), bitorder="little")
    g = sample(x.shape, np.dtype(np.float32), seed=3)
    for backend in BACKENDS:
        with dispatch.forced(backend):
            y, m = relukit.relu.forward_with_mask(x)
            dx = relukit.relu.backward_from_mask(g, m)
        assert np.array_equal(m, want)
        with dispatch.forced("reference"):
            assert bits_equal(y, relukit.relu(x))
            nan = np.isnan(x)
            assert bits_equal(dx[~nan], relukit.relu.vjp(x, g)[~nan])


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_arguments(backend):
    x = sample((30, 50), np.dtype(np.float32), seed=4)
    g = sample((30, 50), np.dtype(np.float32), seed=6)
    function = relukit.get("leaky_relu", negative_slope=0.2)
    y_out, dx_out = np.empty_like(x), np.empty((50, 30), dtype=np.float32).T
    with dispatch.forced(backend):
        y, m = function.forward_with_mask(x, out=y_out)
        dx = function.backward_from_mask(g, m, out=dx_out)
    assert y is y_out and dx is dx_out
    nan = np.isnan(x)
    with dispatch.forced("reference"):
        assert bits_equal(y_out, function(x))
        assert bits_equal(dx_out[~nan], function.vjp(x, g)[~nan])


@pytest.mark.parametrize("backend", BACKENDS)
def test_in_place_forward(backend):
    x = sample((1000,), np.dtype(np.float32), seed=8)
    with dispatch.forced("reference"):
        want = relukit.relu6(x)
    with dispatch.forced(backend):
        y, _ = relukit.relu6.forward_with_mask(x, out=x)
    assert y is x and bits_equal(x, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("relu", {}),
        ("relu6", {}),
        ("hardtanh", {}),
        ("leaky_relu", {"negative_slope": 0.07}),
        ("leaky_relu", {"negative_slope": 0.0}),  # (its limit at -inf is not -inf·0)
        ("prelu", {"weight": np.array([0.25])}),
        ("general_relu", {"negative_slope": 0.1, "threshold": 0.5}),  # one bit, no cap
        ("general_relu", {"max_value": 6.0}),  # a zero slope, capped: one bit
        ("general_relu", {"threshold": -0.25, "max_value": 0.5}),  # (t, 0] held at 0
        ("general_relu", {"negative_slope": 0.1, "threshold": -0.5, "max_value": 6.0}),  # 2 bits
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_output_at_every_alignment(name, params, dtype):
    # The one-pass kernels store whole 64-byte lines from the output's first 64-byte boundary
    # on, streamed or not: forward carries the codes of the elements before it across each
    # mask word, backward takes each group's 64 codes from two mask words.
    function = relukit.get(name, **params)
    lanes = 64 // dtype.itemsize
    for n in (1, lanes - 1, 64, 65, 127, 129, 300, 1000):
        x = sample((n,), dtype, seed=n)
        g = sample((n,), dtype, seed=n + 1)
        with dispatch.forced("reference"):
            want_y, want_m = function.forward_with_mask(x)
            want_dx = function.backward_from_mask(g, want_m)
        for offset in range(lanes):
            base = np.zeros(n + lanes, dtype=dtype)
            y_out = base[offset : offset + n]
            with dispatch.forced("compiled"):
                y, m = function.forward_with_mask(x, out=y_out)
            assert y is y_out and bits_equal(y, want_y), (n, offset)
            assert np.array_equal(m, want_m), (n, offset)
            assert not base[offset + n :].any() and not base[:offset].any()
            base[:] = 0
            with dispatch.forced("compiled"):
                dx = function.backward_from_mask(g, m, out=y_out)
            assert dx is y_out and bits_equal(dx, want_dx), (n, offset)
            assert not base[offset + n :].any() and not base[:offset].any()
        z = x.copy()
        with dispatch.forced("compiled"):
            _, m = function.forward_with_mask(z, out=z)
        assert bits_equal(z, want_y) and np.array_equal(m, want_m)
        h = g.copy()
        with dispatch.forced("compiled"):
            function.backward_from_mask(h, m, out=h)
        assert bits_equal(h, want_dx)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("name", "params", "shape"),
    [
        ("prelu", {"weight": np.array([0.1, -0.2, 0.3])}, (2, 3, 1700)),
        ("rrelu", {"training": True, "seed": 5}, (10_000,)),
    ],
    ids=["prelu", "rrelu"],
)
def test_slopes_backward_over_many_blocks_at_every_alignment(name, params, shape, dtype):
    # Per-element slopes (a channel period, random slopes) over several blocks and chunks, into
    # outputs at every offset from a 64-byte boundary: each 64-element vector must take its own
    # slopes and codes whatever block and word boundary it starts on.
    function = relukit.get(name, **params)
    x = sample(shape, dtype, seed=3)
    g = sample(shape, dtype, seed=4)
    with dispatch.forced("reference"):
        _, m = function.forward_with_mask(x)
        want = function.backward_from_mask(g, m)
    for offset, out, outside in padded_outputs(shape, dtype):
        with dispatch.forced("compiled"):
            dx = function.backward_from_mask(g, m, out=out)
        assert dx is out and bits_equal(dx, want) and not outside(), offset
    h = g.copy()  # in place: not streamed
    with dispatch.forced("compiled"):
        function.backward_from_mask(h, m, out=h)
    assert bits_equal(h, want)


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=str)
@pytest.mark.parametrize("slope", [0.07, 0.0])
def test_16_bit_leaky_relu_mask_forward_in_place(dtype, slope):
    function = relukit.get("leaky_relu", negative_slope=slope)
    x = sample((1000,), dtype, seed=8)
    with dispatch.forced("reference"):
        want_y, want_m = function.forward_with_mask(x)
    z = x.copy()
    with dispatch.forced("compiled"):
        y, m = function.forward_with_mask(z, out=z)
    assert y is z and bits_equal(z, want_y) and np.array_equal(m, want_m)


def test_last_level_cache_reads_sysfs(tmp_path):
    for index, (level, size) in enumerate([("1", "32K"), ("2", "1024K"), ("3", "32768K")]):
        folder = tmp_path / f"index{index}"
        folder.mkdir()
        (folder / "level").write_text(level + "\n")
        (folder / "size").write_text(size + "\n")
    assert host.last_level_cache(str(tmp_path)) == 32 << 20
    assert host.last_level_cache(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("name", "params", "torch_call"),
    [
        ("relu", {}, lambda torch, x: torch.relu(x)),
        (
            "leaky_relu",
            {"negative_slope": 0.07},
            lambda torch, x: torch.nn.functional.leaky_relu(x, 0.07),
        ),
        (
            "hardtanh",
            {"min_val": -0.5, "max_val": 2.0},
            lambda torch, x: torch.nn.functional.hardtanh(x, -0.5, 2.0),
        ),
        ("relu6", {}, lambda torch, x: torch.nn.functional.relu6(x)),
        (
            "rrelu",
            {"lower": 0.1, "upper": 0.3},
            lambda torch, x: torch.nn.functional.rrelu(x, 0.1, 0.3),
        ),
        (
            "prelu",
            {"weight": np.array([0.1, -0.2, 0.3])},
            lambda torch, x: torch.nn.functional.prelu(x, torch.tensor([0.1, -0.2, 0.3])),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_gradient_from_mask_is_pytorchs(name, params, torch_call, backend):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(sample((6, 3, 45), np.dtype(np.float32), seed=9))
    g = torch.from_numpy(sample((6, 3, 45), np.dtype(np.float32), seed=10))
    leaf = x.clone().requires_grad_(True)
    y_torch = torch_call(torch, leaf)
    y_torch.backward(g)
    function = relukit.get(name, **params)
    with dispatch.forced(backend):
        y, m = function.forward_with_mask(x)
        dx = function.backward_from_mask(g, m)
    assert isinstance(m, torch.Tensor) and m.dtype == torch.uint8
    assert isinstance(dx, torch.Tensor) and dx.dtype == torch.float32
    finite = torch.isfinite(x).numpy()
    assert bits_equal(y.numpy()[finite], y_torch.detach().numpy()[finite])
    assert bits_equal(dx.numpy(), leaf.grad.numpy())


def test_torch_bfloat16_round_trip():
    torch = pytest.importorskip("torch")
    x = torch.linspace(-3, 3, 3001).to(torch.bfloat16)
    g = torch.ones_like(x)
    for backend in BACKENDS:
        with dispatch.forced(backend):
            y, m = relukit.relu.forward_with_mask(x)
            dx = relukit.relu.backward_from_mask(g, m)
        assert y.dtype == torch.bfloat16 and dx.dtype == torch.bfloat16
        assert torch.equal(dx, (x > 0).to(torch.bfloat16))


def test_pack_unpack_round_trip_in_torch():
    torch = pytest.importorskip("torch")
    m = reference.Math(__import__("array_api_compat").array_namespace(torch.ones(1)))
    for bits in (1, 2):
        codes = torch.randint(
            0, 2**bits, (101,), dtype=torch.uint8, generator=torch.Generator().manual_seed(bits)
        )
        packed = mask.pack(m, codes, bits)
        assert packed.shape == (mask.nbytes(101, bits),)
        assert torch.equal(mask.unpack(m, packed, 101, bits), codes)


def test_errors():
    x = np.linspace(-1, 1, 10)
    with pytest.raises(TypeError, match="not piecewise linear"):
        relukit.gelu.forward_with_mask(x)
    with pytest.raises(TypeError, match="not piecewise linear"):
        relukit.squared_relu.backward_from_mask(x, np.zeros(2, dtype=np.uint8))
    _, m = relukit.relu.forward_with_mask(x)
    with pytest.raises(TypeError, match="uint8"):
        relukit.relu.backward_from_mask(x, m.astype(np.int8))
    with pytest.raises(ValueError, match=r"need shape \(2,\)"):
        relukit.relu.backward_from_mask(x, np.zeros(3, dtype=np.uint8))
    with pytest.raises(TypeError, match="floating point"):
        relukit.relu.backward_from_mask(np.arange(10), m)
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="mask is ndarray"):
        relukit.relu.backward_from_mask(torch.ones(10), m)


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16])
@pytest.mark.parametrize("member", ["relu", "relu6", "hardtanh", "leaky_relu"])
def test_16_bit_backward_from_mask_is_the_product_rounded_once(dtype, member):
    # g·f' formed in float32 and rounded back once, NaN as the rounding gives it (float16: the
    # quiet NaN with g's sign; bfloat16: the payload with the quiet bit); the relu-like members
    # take a select of bits, the others the product: both must give these bits
    n = 100_003
    rng = np.random.default_rng(7)
    x = rng.standard_normal(n).astype(np.float32).astype(dtype)
    g = (rng.standard_normal(n) * 1e3).astype(np.float32).astype(dtype)
    bits = g.view(np.uint16)
    nan, quiet = (0x7C01, 0x7E00) if dtype == np.float16 else (0x7F81, 0x0040)
    bits[::97], bits[::89], bits[::103] = nan, nan | 0x8000, 0x8000
    f = relukit.get(member)
    _, codes = f.forward_with_mask(x)
    got = f.backward_from_mask(g, codes).view(np.uint16)
    with dispatch.forced("reference"):
        d = np.asarray(f.derivative(x.astype(np.float32)), dtype=np.float32)
    g32 = g.astype(np.float32)
    product = np.where(d == 0, np.float32(0), g32 * d).astype(dtype).view(np.uint16)
    is_nan = (bits & 0x7FFF) > (0x7C00 if dtype == np.float16 else 0x7F80)
    nan_out = ((bits & 0x8000) if dtype == np.float16 else bits) | quiet
    expected = np.where(is_nan & (d != 0), nan_out, product).astype(np.uint16)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("member", ["relu", "relu6", "hardtanh", "leaky_relu"])
@pytest.mark.parametrize("in_place", [False, True], ids=["streamed", "in-place"])
def test_backward_from_mask_is_the_product_bit_for_bit_signalling_nans_too(dtype, member, in_place):
    # the relu-like members multiply g by 1 under the mask alone (pass_word), the others
    # select the derivative and multiply: both must give g·f' as NumPy forms it, a signalling
    # NaN quieted with its payload and sign, -0 kept, +0 where f' is 0, at every offset
    n = 100_003
    rng = np.random.default_rng(8)
    x = rng.standard_normal(n).astype(dtype) * 3
    g = (rng.standard_normal(n) * 1e3).astype(dtype)
    word = {4: np.uint32, 8: np.uint64}[dtype.itemsize]
    bits = g.view(word)
    shift = 8 * dtype.itemsize - 1
    exponent = (0x7F8 << 20) if dtype.itemsize == 4 else (0x7FF << 52)
    signalling = word(exponent | 5)
    bits[::97], bits[::89] = signalling, signalling | word(1 << shift)
    g[::103] = -0.0
    f = relukit.get(member)
    _, codes = f.forward_with_mask(x)
    with dispatch.forced("reference"):
        d = np.asarray(f.derivative(x), dtype=dtype)
    expected = np.where(d == 0, dtype.type(0), g * d).view(word)
    for offset in (0, 1, 5):
        grad = np.zeros(n + offset, dtype)[offset:]
        grad[...] = g
        got = f.backward_from_mask(grad, codes, out=grad if in_place else None)
        np.testing.assert_array_equal(got.view(word), expected)


BOUNDS_16 = [
    {},
    {"min_val": -0.3, "max_val": 0.7},  # neither a bfloat16 nor a float16
    {"min_val": -0.0, "max_val": 0.0},
    {"min_val": 0.0, "max_val": -0.0},
    {"min_val": -3.39e38, "max_val": 3.39e38},  # bfloat16: between its largest and inf
    {"min_val": 1e-40, "max_val": 3.3e38},  # a float32 subnormal; above float16's largest
    {"min_val": -70000.0, "max_val": 65520.0},  # float16: beyond -max, its rounding to inf
    {"min_val": 0.5, "max_val": 0.5},  # one point: every element is clipped
]


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=str)
@pytest.mark.parametrize(
    ("name", "params"),
    [("relu", {}), ("relu6", {}), ("leaky_relu", {})]
    # (float16: a finite slope that is not 0 takes the words' NaN-free route where no
    # element of a word is NaN; 1e-30 rounds every product but -inf's to ∓0)
    + [("leaky_relu", {"negative_slope": a}) for a in (-0.5, 3.0, 1e-30, 0.0, 3.5e38)]
    + [("prelu", {"weight": 0.25}), ("rrelu", {})]
    + [("hardtanh", bounds) for bounds in BOUNDS_16]
    + [
        ("general_relu", {"negative_slope": 0.1, "threshold": -0.5, "max_value": 6.0}),
        ("general_relu", {"threshold": 0.5}),
        ("general_relu", {"negative_slope": 0.1, "threshold": 0.5}),
        ("general_relu", {"negative_slope": -2.0, "threshold": -1e5}),
    ],
    ids=lambda v: v if isinstance(v, str) else str(v).replace(" ", ""),
)
def test_16_bit_one_pass_on_every_bit_pattern(name, params, dtype):
    # The one-pass kernels decide 16-bit elements on their bits (relu, and the clip on order
    # keys of the bounds) or widened (leaky_relu, general_relu): all 65,536 patterns as inputs
    # (NaNs of every payload and sign among them; a NaN result is compared as NaN), against
    # the reference path, forward too (the clip's map kernel).
    function = relukit.get(name, **params)
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)
    g = x[::-1].copy()
    with dispatch.forced("reference"):
        want = function(x)
        want_y, want_m = function.forward_with_mask(x)
        want_dx = function.backward_from_mask(g, want_m)
    with dispatch.forced("compiled"):
        got = function(x)
        y, m = function.forward_with_mask(x)
        dx = function.backward_from_mask(g, m)
    assert bits_equal(got, want)
    assert bits_equal(y, want_y)
    assert np.array_equal(m, want_m)
    assert bits_equal(dx, want_dx)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_in_place_mask_calls_are_not_streamed(dtype, monkeypatch):
    # Streaming stores in place cost more than plain ones (float16 relu 2^24: 1.5 against
    # 1.1 ms); 16-bit calls see the array through two raw views, so the test cannot be y is x.
    monkeypatch.setattr(host, "GRAIN_LINEAR", 4096)
    streamed = []
    decide = host._stream_to

    def spy(y, x, fresh, cached=True):  # type: ignore[no-untyped-def]
        streamed.append((decide(y, x, fresh, cached), y.ctypes.data == x.ctypes.data))
        return streamed[-1][0]

    monkeypatch.setattr(host, "_stream_to", spy)
    function = relukit.get("relu")
    x = sample((1 << 15,), dtype, seed=9)
    g = sample((1 << 15,), dtype, seed=10)
    with dispatch.forced("reference"):
        want_y, want_m = function.forward_with_mask(x)
        want_dx = function.backward_from_mask(g, want_m)
    with dispatch.forced("compiled"):
        z = x.copy()
        _, m = function.forward_with_mask(z, out=z)
        h = g.copy()
        function.backward_from_mask(h, m, out=h)
        _, _ = function.forward_with_mask(x, out=np.empty_like(x))  # apart: streamed
    assert bits_equal(z, want_y) and np.array_equal(m, want_m) and bits_equal(h, want_dx)
    assert not any(stream for stream, same in streamed if same)
    assert any(stream for stream, same in streamed if not same)


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=str)
@pytest.mark.parametrize("bounds", [(1e-40, 1.0), (-6e-8, 6e-8), (0.0, 6.0)], ids=str)
def test_16_bit_clip_is_the_same_in_a_vector_and_alone_with_denormals_flushed(dtype, bounds):
    # The vectors decide 16-bit elements on their bits, so the element-by-element ends must
    # too, and the bounds' keys must not depend on the FPU mode of the thread that computes
    # them: with flush-to-zero on (the calling thread's only; the whole array is split on two
    # threads here), a float compare would see a subnormal as 0.
    from relukit import threads

    torch = pytest.importorskip("torch")
    function = relukit.get("hardtanh", min_val=bounds[0], max_val=bounds[1])
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)
    with dispatch.forced("compiled"), threads.limit(2):
        function(x)  # (the team's threads start before the mode is set: they do not inherit it)
    if not torch.set_flush_denormal(True):
        pytest.skip("no flush-to-zero on this CPU")
    try:
        with dispatch.forced("compiled"), threads.limit(2):
            whole = function(x).view(np.uint16)
            y, m = function.forward_with_mask(x)
            codes = np.unpackbits(m, bitorder="little")[: x.size]
            for start in range(0, x.size, 4099):  # 67 elements: one vector and three alone
                part = x[start : start + 67]
                assert np.array_equal(function(part).view(np.uint16), whole[start : start + 67])
                py, pm = function.forward_with_mask(part)
                assert np.array_equal(py.view(np.uint16), whole[start : start + 67])
                part_codes = np.unpackbits(pm, bitorder="little")[: part.size]
                assert np.array_equal(part_codes, codes[start : start + 67])
        assert np.array_equal(y.view(np.uint16), whole)
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("fast", [True, False], ids=["pdep", "shifts"])
def test_two_bit_planes_interleave_and_come_apart(fast, monkeypatch):
    # general_relu's two-bit codes are formed as two bit planes per 64 elements and laid out
    # as element i at bits 2i, 2i + 1 of the little-endian stream (BMI2's pdep / pext where
    # they are fast, shifts and masks elsewhere); the backward takes the planes apart again.
    from relukit.kernels.cpu import masks

    rng = np.random.default_rng(3)
    words = rng.integers(0, 2**63, size=(20, 2), dtype=np.uint64) * np.uint64(2)
    words[0] = (0, 0)
    words[1] = (np.uint64(2**64 - 1), np.uint64(2**64 - 1))
    words[2] = (np.uint64(1), np.uint64(2**63))
    if not fast:
        monkeypatch.setattr(masks, "FAST_DEPOSITS", False)
    interleaved = masks._interleaved if fast else masks._interleaved.py_func
    planes = masks.planes if fast else masks.planes.py_func
    for p0, p1 in words:
        low, high = interleaved(np.uint64(p0), np.uint64(p1))
        stream = np.frombuffer(np.array([low, high], dtype="<u8").tobytes(), dtype=np.uint8)
        bits = np.unpackbits(stream, bitorder="little")
        codes = bits[0::2] | (bits[1::2] << 1)
        want = [((int(p0) >> i) & 1) | (((int(p1) >> i) & 1) << 1) for i in range(64)]
        assert codes.tolist() == want
        got = planes(np.uint64(low), np.uint64(high))
        assert tuple(int(v) for v in got) == (int(p0), int(p1))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_prelu_of_one_plain_slope_runs_as_leaky_relu(dtype):
    # One slope given as a number or 1-tuple: prelu is leaky_relu of it, on the direct
    # kernels (a bound member keeps them); a slope that is 0 in the working dtype, and arrays
    # (which may change in place), keep the per-element slopes. Every route gives the
    # reference's bits, -inf included (a zero slope's limit there is prelu's own 0).
    x = sample((3000,), dtype, seed=2)
    g = sample((3000,), dtype, seed=3)
    wide = dtype == np.float64  # (1e-50 is 0 in float32, the 16-bit floats' working dtype)
    for weight, direct in ((0.25, True), ((-0.5,), True), (1e-50, wide), (0.0, False)):
        function = relukit.get("prelu", weight=weight)
        with dispatch.forced("reference"):
            want_y = function(x)
            want_d = function.derivative(x)
            _, want_m = function.forward_with_mask(x)
            want_dx = function.backward_from_mask(g, want_m)
        y, m = function.forward_with_mask(x)
        assert bits_equal(function(x), want_y) and bits_equal(y, want_y), weight
        assert bits_equal(function.derivative(x), want_d), weight
        assert np.array_equal(m, want_m) and bits_equal(function.backward_from_mask(g, m), want_dx)
        assert (function._fast.calls_checked(x) is not None) is direct, weight
    weight = np.array([0.25])
    function = relukit.get("prelu", weight=weight)
    assert function._fast is None or function._fast.calls_checked(x) is None
    before = function(np.array([-4.0]))
    weight[0] = 0.5  # (the array bound, changed in place: the next call sees it)
    assert before[0] == -1.0 and function(np.array([-4.0]))[0] == -2.0


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    "params",
    [
        {"negative_slope": 0.1, "threshold": 1e39},
        {"negative_slope": 0.1, "threshold": -1e39},
        {"negative_slope": 0.1, "threshold": -1e39, "max_value": 1e39},
        {"threshold": -0.5, "max_value": 1e39},
    ],
    ids=["t=+big", "t=-big", "t=-big,cap=big", "cap=big"],
)
def test_general_relu_parameters_beyond_float32_in_every_lane(params, dtype):
    # A threshold or cap beyond float32's range is ±inf in the working float, where the formula
    # gives NaN at ±inf: the words that set the registry's limits there take over
    # (masks.general_values). ±inf and NaN inputs throughout, so that vector lanes meet them,
    # into outputs at every offset.
    function = relukit.get("general_relu", **params)
    n = 700
    x = sample((n,), dtype, seed=9)
    x[::37], x[5::37], x[11::53] = np.inf, -np.inf, np.nan
    g = sample((n,), dtype, seed=10)
    with dispatch.forced("reference"):
        want = function(x)
        want_y, want_m = function.forward_with_mask(x)
        want_dx = function.backward_from_mask(g, want_m)
    for offset, out in outputs_at_every_offset(n, dtype):
        with dispatch.forced("compiled"):
            assert bits_equal(function(x, out=out), want), offset
            y, m = function.forward_with_mask(x, out=out)
            assert bits_equal(y, want_y) and np.array_equal(m, want_m), offset
            assert bits_equal(function.backward_from_mask(g, m, out=out), want_dx), offset


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_two_bit_backward_over_several_blocks_at_every_offset(dtype):
    # The two-bit backward's blocks start where dx is 64-byte aligned, then every 2,048
    # elements: each vector combines the planes of two consecutive 64-element words.
    function = relukit.get("general_relu", negative_slope=0.1, threshold=-0.5, max_value=6.0)
    n = 4226
    x = sample((n,), dtype, seed=12)
    g = sample((n,), dtype, seed=13)
    with dispatch.forced("reference"):
        _, m = function.forward_with_mask(x)
        want = function.backward_from_mask(g, m)
    for offset, out in outputs_at_every_offset(n, dtype):
        with dispatch.forced("compiled"):
            assert bits_equal(function.backward_from_mask(g, m, out=out), want), offset
    h = g.copy()
    with dispatch.forced("compiled"):
        function.backward_from_mask(h, m, out=h)
    assert bits_equal(h, want)


def test_bit_deposit_and_extract_without_bmi2():
    # The loops that stand in for pdep and pext on hosts without BMI2, against the bits.
    from relukit.kernels.cpu import intrinsics

    rng = np.random.default_rng(5)
    for value, bits in rng.integers(0, 2**63, size=(200, 2), dtype=np.uint64):
        value, bits = (int(value) * 2 + 1) % 2**64, int(bits) * 2
        where = [i for i in range(64) if bits >> i & 1]
        deposited = sum(((value >> k) & 1) << i for k, i in enumerate(where))
        extracted = sum(((value >> i) & 1) << k for k, i in enumerate(where))
        assert int(intrinsics._deposit_loop(np.uint64(value), np.uint64(bits))) == deposited
        assert int(intrinsics._extract_loop(np.uint64(value), np.uint64(bits))) == extracted


# prelu with one slope per channel, forward and mask path in one pass (host.channel_slopes), by
# the bound member's direct route and by the general path: channels along axis 1,
# the last and the first; periods of 5 to 32,800 elements (a pattern of slopes), and longer
# (relukit.nn's fused kernels: runs of 4,099 and of 40, several to a word; float32 and float64
# only, 16-bit floats then take the per-element kernels)
CHANNEL_LAYOUTS = [
    ((1024, 64), 1, True),
    ((3, 5), 1, True),
    ((2, 7, 33), 1, True),
    ((4, 3, 5, 7), -1, True),
    ((3, 1000), 0, True),
    ((2, 8, 4099), 1, False),
    ((2, 1001, 40), 1, False),
]


@pytest.mark.parametrize(
    ("shape", "axis", "pattern", "dtype"),
    [(*layout, dtype) for layout in CHANNEL_LAYOUTS for dtype in DTYPES[:2]]
    # (16-bit floats: a pattern with a tail along axis 1, one along axis 0 whose period is not
    # a multiple of 64, and a period beyond PATTERN, which they leave to per-element kernels)
    + [(*CHANNEL_LAYOUTS[i], dtype) for i in (2, 4, 5) for dtype in DTYPES[2:]],
    ids=str,
)
def test_prelu_channels_one_pass_equals_reference(shape, axis, pattern, dtype):
    channels = shape[axis]
    # none 0, of both signs, the last channel's negative (a negative slope turns a negative
    # input positive: the mask must come from the input, in place too, the last partial word
    # included)
    sign = np.where((channels - 1 - np.arange(channels)) % 2 == 0, -1.0, 1.0)
    weight = tuple(sign * (np.linspace(0.1, 0.75, channels) + 0.0123))
    function = relukit.get("prelu", weight=weight, axis=axis)
    found = host.channel_slopes(function.spec, function.params, shape, dtype)
    if dtype.itemsize == 2 and not pattern:
        assert found is None
    else:
        assert found is not None and (found.aux is not None) is pattern
    x = sample(shape, dtype, seed=12)
    g = sample(shape, dtype, seed=13)
    with dispatch.forced("reference"):
        want_y, want_m = function.forward_with_mask(x)
        want_dx = function.backward_from_mask(g, want_m)
    # unforced: the bound member's direct route (dispatch.Fast); forced: the general path
    function(x)
    assert function._fast._channels_for(x) is found
    for forced in (False, True):
        for offset, out, outside in padded_outputs(shape, dtype):
            with dispatch.forced("compiled") if forced else contextlib.nullcontext():
                assert function(x, out=out) is out and bits_equal(out, want_y), (forced, offset)
                out[...] = 0
                y, m = function.forward_with_mask(x, out=out)
                assert y is out and bits_equal(y, want_y) and np.array_equal(m, want_m)
                dx = function.backward_from_mask(g, m, out=out)
            assert dx is out and bits_equal(dx, want_dx) and not outside(), (forced, offset)
        z, h = x.copy(), g.copy()  # in place
        with dispatch.forced("compiled") if forced else contextlib.nullcontext():
            assert bits_equal(function(x), want_y)
            y, m = function.forward_with_mask(z, out=z)
            assert y is z and bits_equal(z, want_y) and np.array_equal(m, want_m)
            assert function.backward_from_mask(h, m, out=h) is h
            z = x.copy()
            assert function(z, out=z) is z and bits_equal(z, want_y)
        assert bits_equal(h, want_dx)


@pytest.mark.parametrize(
    "weight",
    [(0.1, 0.0, -0.3), (0.1, 1e39, 0.2), (1e-50, 0.2, 0.3), np.array([0.1, -0.2, 0.3])],
    ids=["zero", "infinite in float32", "zero in float32", "array"],
)
def test_prelu_channels_route_and_its_exceptions(weight):
    # A slope that is 0 or not finite in the working dtype takes the per-element kernels
    # (prelu's limit at -inf, and a blocked gradient, are not x·w); an array is read at each
    # call (changed in place, the next call sees it); the results are the reference's
    torch = pytest.importorskip("torch")
    function = relukit.get("prelu", weight=weight)
    shape = (40, 3, 50)
    for dtype in DTYPES:
        found = host.channel_slopes(function.spec, function.params, shape, dtype)
        with np.errstate(over="ignore"):  # (16-bit floats: slopes in float32)
            plain = np.asarray(weight).astype(np.float32 if dtype.itemsize == 2 else dtype)
        assert (found is not None) is bool(np.isfinite(plain).all() and plain.all()), dtype
        x = sample(shape, dtype, seed=14)
        g = sample(shape, dtype, seed=15)
        with dispatch.forced("reference"):
            want_y, want_m = function.forward_with_mask(x)
            want_dx = function.backward_from_mask(g, want_m)
        y, m = function.forward_with_mask(x)
        assert bits_equal(y, want_y) and np.array_equal(m, want_m)
        assert bits_equal(function.backward_from_mask(g, m), want_dx)
        assert bits_equal(function(x), want_y)
        if dtype == BF16:  # (no NumPy bfloat16 in torch.from_numpy)
            continue
        assert bits_equal(function(torch.from_numpy(x)).numpy(), want_y)
        ty, tm = function.forward_with_mask(torch.from_numpy(x))  # (the general path)
        assert bits_equal(ty.numpy(), want_y) and np.array_equal(tm.numpy(), want_m)
        tdx = function.backward_from_mask(torch.from_numpy(g), tm)
        assert bits_equal(tdx.numpy(), want_dx)
    if isinstance(weight, tuple):  # (kept by value: another channel period, the same slopes)
        other = sample((8, 3, 7), np.dtype(np.float64), seed=16)
        with dispatch.forced("reference"):
            want_y = function(other)
        assert bits_equal(function(other), want_y)
    if isinstance(weight, np.ndarray):
        before = function.forward_with_mask(x)[0]
        weight[1] = 0.5
        after = function.forward_with_mask(x)[0]
        changed = (x[:, 1] <= 0) & ~np.isnan(x[:, 1])
        assert bits_equal(after[:, 0], before[:, 0]) and not np.array_equal(
            after[:, 1][changed], before[:, 1][changed]
        )
        halved = (x[:, 1] * np.float64(0.5)).astype(x.dtype)  # (exact)
        assert bits_equal(after[:, 1][changed], halved[changed])


def test_prelu_channels_forward_keeps_the_layout_of_its_input():
    # The slopes per channel follow C order: an F-ordered input takes the per-element kernels,
    # which give its order back, as the reference does; a strided one is gathered first
    function = relukit.get("prelu", weight=tuple(np.linspace(0.1, 0.7, 5)))
    fortran = np.asfortranarray(sample((7, 5, 90), np.dtype(np.float32), seed=16))
    strided = sample((7, 10, 90), np.dtype(np.float32), seed=17)[:, ::2]
    for x in (fortran, strided):
        with dispatch.forced("reference"):
            want = function(x)
        got = function(x)
        assert bits_equal(got, want)
        assert got.flags.f_contiguous == x.flags.f_contiguous
        assert got.flags.c_contiguous == (not x.flags.f_contiguous)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_prelu_channels_of_read_only_inputs_and_of_a_replaced_weight(dtype):
    # A read-only input, for every channel period (beyond PATTERN, relukit.nn's fused kernels,
    # which raised Numba's TypingError before); a weight replaced in the bound params is the
    # one the next call uses (the slopes are kept per shape for the weight they came from)
    weight = tuple(np.linspace(-0.9, 0.7, 64) + 0.01)
    function = relukit.get("prelu", weight=weight)
    for shape in [(3, 64, 5), (2, 64, 1000)]:  # (periods 320 and 64,000)
        x = sample(shape, dtype, seed=30)
        g = sample(shape, dtype, seed=31)
        x.flags.writeable = False
        g.flags.writeable = False
        with dispatch.forced("reference"):
            want_y, want_m = function.forward_with_mask(x)
            want_dx = function.backward_from_mask(g, want_m)
        for forced in ("auto", "compiled"):
            with dispatch.forced(forced):
                assert bits_equal(function(x), want_y), (shape, forced)
                y, m = function.forward_with_mask(x)
                assert bits_equal(y, want_y) and np.array_equal(m, want_m), (shape, forced)
                m.flags.writeable = False
                assert bits_equal(function.backward_from_mask(g, m), want_dx), (shape, forced)
    x = sample((3, 64, 5), dtype, seed=32)
    before = function(x)
    function.params["weight"] = tuple(2 * np.asarray(weight))
    with dispatch.forced("reference"):
        want = function(x)
    after = function(x)
    assert bits_equal(after, want) and not bits_equal(after, before)


def test_prelu_channels_leave_float16_to_the_host_without_f16c(monkeypatch):
    # Without F16C the host widens float16 before the kernels (as Calls does): no one pass
    monkeypatch.setattr(host, "_f16c", lambda: False)
    function = relukit.get("prelu", weight=(0.1, -0.2, 0.3))
    shape = (4, 3, 70)
    assert host.channel_slopes(function.spec, function.params, shape, np.dtype(np.float16)) is None
    assert host.channel_slopes(function.spec, function.params, shape, BF16) is not None
    x = sample(shape, np.dtype(np.float16), seed=33)
    with dispatch.forced("reference"):
        want_y, want_m = function.forward_with_mask(x)
    y, m = function.forward_with_mask(x)
    assert bits_equal(y, want_y) and np.array_equal(m, want_m)
    assert bits_equal(function(x), want_y)


def _small_call_outputs(shape: tuple[int, ...], dtype: np.dtype, x: np.ndarray):
    """(label, out, taken): the outputs a small mask-path call is given, and whether the route
    that runs it whole (``dispatch.Fast``'s inline one) takes it."""
    n = math.prod(shape)
    yield "new", None, True
    yield "fresh out", np.empty(shape, dtype), True
    yield "in place", x, True
    yield "view apart", np.zeros(2 * n + 3, dtype)[n + 3 :].reshape(shape), True
    # (x and out views of one buffer, out one element on: the loop below makes them; they
    # overlap from two elements, and then the general path takes the call)
    yield "overlapping out", None, n == 1
    yield "x a view of out", None, False  # (the loop below makes them: one buffer, out's)
    f_ordered = np.empty(shape[::-1], dtype).T
    yield "F-ordered out", f_ordered, f_ordered.flags.c_contiguous


# The cases that differ in what that route decides on: one bit or two, a Calls or none (prelu's
# slopes per channel, rrelu's drawn slopes), a one-pass kernel or not (relu6's clip, leaky_relu)
SMALL_CALL_CASES = [CASES[i] for i in (0, 1, 3, 4, 6, 7, 10)]


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    ("name", "params", "at_nan"), SMALL_CALL_CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_small_mask_calls_run_whole_inline_as_the_general_path_runs_them(
    name, params, at_nan, dtype, monkeypatch
):
    # Below host.WHOLE_BELOW a bound member's mask-path calls on C-ordered NumPy arrays skip
    # Calls.forward / Calls.backward (dispatch.Fast writes their first route out): the same
    # bits and the same mask as the general path, into every kind of output, and the general
    # path wherever the route does not take the call
    monkeypatch.setattr(host, "GRAIN_LINEAR", None)  # (the file's small chunks: whole() is off)
    function = relukit.get(name, **params)
    seen = {"forward": 0, "backward": 0, "run": 0}  # (Calls' two routes, the general path)
    owners = {"forward": host.Calls, "backward": host.Calls, "run": dispatch}

    def counted(op: str, kept):
        def call(*args, **kwargs):
            seen[op] += 1
            return kept(*args, **kwargs)

        return call

    for op, owner in owners.items():
        monkeypatch.setattr(owner, op, counted(op, getattr(owner, op)))
    channels = isinstance(params.get("weight"), np.ndarray)
    shapes = [(1, 3), (3, 3, 7), (4, 3, 50)] if channels else [(1,), (7,), (3, 41), (1000,)]
    for shape in shapes:
        n = math.prod(shape)
        x0 = sample(shape, dtype, seed=20)
        g = sample(shape, dtype, seed=21)
        with dispatch.forced("compiled"):
            want_y, want_m = function.forward_with_mask(x0)
            want_dx = function.backward_from_mask(g, want_m)
        function.forward_with_mask(x0)  # (Fast.last: this dtype's Calls, where there are any)
        fast = function._fast.calls_checked(x0)
        inline = fast is not None and fast.masked
        # (prelu's slopes per channel: their own route, Fast's too)
        inline = inline or channels
        for label, out, taken in _small_call_outputs(shape, dtype, x0):
            x = x0.copy()
            if label == "in place":
                out = x
            elif label == "overlapping out":
                buffer = np.empty(n + 1, dtype)
                x = buffer[:n].reshape(shape)
                x[...] = x0
                out = buffer[1:].reshape(shape)
            elif label == "x a view of out":
                out = np.empty(shape, dtype)
                x = out.view()
                x[...] = x0
            before = dict(seen)
            y, m = function.forward_with_mask(x, out=out)
            assert y is out or out is None, label
            assert bits_equal(y, want_y) and np.array_equal(m, want_m), (shape, label)
            out_g = g.copy() if label == "in place" else (None if out is None else out * 0)
            dx = function.backward_from_mask(g if label != "in place" else out_g, m, out=out_g)
            assert bits_equal(dx, want_dx), (shape, label)
            skipped = seen == before
            assert skipped is (inline and taken), (shape, label, seen, before)
    x = sample(shapes[1], dtype, seed=22)
    x.flags.writeable = False  # (read-only: the general path, which writes a new array)
    with dispatch.forced("compiled"):
        want_y, want_m = function.forward_with_mask(x)
    y, m = function.forward_with_mask(x)
    assert bits_equal(y, want_y) and np.array_equal(m, want_m)
    with pytest.raises(ValueError, match="need shape"):
        function.backward_from_mask(x, np.zeros(m.size + 1, np.uint8))


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
def test_on_one_thread_mask_calls_below_the_streaming_size_run_whole_inline(dtype, monkeypatch):
    # a process that never split has WHOLE_BELOW at host.SMALL: on one thread its calls from
    # there up to the streaming size run whole all the same (host.whole), and take Fast's
    # route, not Calls'; on two they go to Calls, which plans the split
    from relukit import threads

    monkeypatch.setattr(host, "GRAIN_LINEAR", None)
    monkeypatch.setattr(host, "STREAM_BYTES", 1 << 30)
    monkeypatch.setattr(host, "WHOLE_BELOW", [host.SMALL] * 3)
    monkeypatch.setattr(host, "_measured", {(host.LINEAR, False): host.SMALL // 2})
    seen = []
    for op in ("forward", "backward"):
        kept = getattr(host.Calls, op)
        monkeypatch.setattr(
            host.Calls, op, lambda *a, kept=kept, op=op, **k: seen.append(op) or kept(*a, **k)
        )
    f = relukit.relu
    x, g = sample((4 * host.SMALL,), dtype, seed=30), sample((4 * host.SMALL,), dtype, seed=31)
    with dispatch.forced("compiled"):
        want_y, want_m = f.forward_with_mask(x)
        want_dx = f.backward_from_mask(g, want_m)
    f.forward_with_mask(x[:8])  # (Fast.last: this dtype's Calls)
    for count, route in ((1, []), (2, ["forward", "backward"])):
        seen.clear()
        with threads.limit(count):
            y, m = f.forward_with_mask(x, out=np.empty_like(x))
            dx = f.backward_from_mask(g, m)
        assert bits_equal(y, want_y) and np.array_equal(m, want_m) and bits_equal(dx, want_dx)
        assert seen == route, count


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize("bits", [1, 2])
@pytest.mark.parametrize("raw", ["float32", "float64", "int16", "uint16"])
def test_mask_backward_takes_no_masked_operand_from_memory(bits, raw):
    # A select of loaded gradients became a masked multiply with a memory operand, which Zen 5
    # ran at half a copy's rate from DRAM (relu at 2^24 float32, 5.2-6.0 ms against 2.4-2.5):
    # the words load apart (intrinsics._load_apart), so no masked instruction reads memory
    import re

    import numba
    from numba import types

    from relukit.kernels.cpu import compile as kernel_compile
    from relukit.kernels.cpu import intrinsics, kernels

    if not intrinsics.AVX512_F:
        pytest.skip("no masked operations without AVX-512")
    half = raw.endswith("int16")
    grads = types.Array(getattr(types, raw), 1, "C")
    work = types.Array(types.float32 if half else getattr(types, raw), 1, "C")
    signature = (
        grads,
        types.Array(types.uint8, 1, "C"),
        work,
        grads,
        work,
        types.int64,
        types.boolean,
    )
    kernel = kernels.mask_backward_kernel(bits, 0, half)
    fresh = numba.njit(**{**kernel_compile.JIT_OPTIONS, "cache": False})(kernel.py_func)
    fresh.compile(signature)
    masked_from_memory = re.compile(r"^\s*v\w+\s+[^#\n]*\(%[^)]*\)[^\n]*\{%k[1-7]\}", re.M)
    assert not masked_from_memory.findall(fresh.inspect_asm(signature))


@pytest.mark.skipif(not host.available(), reason="needs Numba")
def test_a_target_without_avx512_on_an_avx512_host_compiles_and_runs_the_words(tmp_path):
    # NUMBA_CPU_FEATURES=-avx512f: Numba compiles for the host less AVX-512, so the words must
    # not hand 512-bit vectors to inline assembly (LLVM then exited the process)
    import os
    import subprocess
    import sys

    code = (
        "import numba, numpy as np\n"
        "from relukit.kernels.cpu import compile as kc, intrinsics, kernels\n"
        "assert not intrinsics.AVX512_F and not intrinsics.AVX512_BF16\n"
        "k = kernels.mask_backward_kernel(1, 0, False)\n"
        "f = numba.njit(**{**kc.JIT_OPTIONS, 'cache': False})(k.py_func)\n"
        "g = np.arange(256, dtype=np.float32) - 100\n"
        "mask = np.full(32, 0x55, np.uint8)\n"
        "dx = np.empty_like(g)\n"
        "table = np.array([0, 1, 0, 0], np.float32)\n"
        "f(g, mask, np.zeros(1, np.float32), dx, table, 0, False)\n"
        "on = np.unpackbits(mask, bitorder='little').astype(bool)\n"
        "assert np.array_equal(dx, np.where(on, g, np.float32(0)))\n"
        "print('ok')\n"
    )
    env = {**os.environ, "NUMBA_CPU_FEATURES": "-avx512f", "NUMBA_CACHE_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize("table", [(0.25, 1.0), (0.5, 2.0), (-3.0, 1.0), (1.0, 0.5)], ids=str)
def test_float16_backward_words_with_and_without_nans_are_the_rounded_product(table):
    # A float16 word with derivative 1 above and no NaN among its gradients takes g or g·d
    # (intrinsics._kept_or_scaled_16); the others multiply every lane and apply the NaN rule
    # (the quiet NaN 0x7E00 with its sign): both are narrow(widen(g)·d)
    from relukit.kernels.cpu import kernels

    n = 64 * 8 + 5
    rng = np.random.default_rng(11)
    g = (rng.standard_normal(n) * 1e3).astype(np.float16)
    g[[3, 70, 140]] = [np.inf, -np.inf, -0.0]
    bits = g.view(np.uint16)
    bits[[65, 320, 516]] = [0x7C01, 0xFD55, 0x7E01]  # NaNs in words 1 and 5, and the tail
    codes = rng.integers(0, 2, n).astype(bool)
    mask = np.packbits(codes, bitorder="little")
    dx = np.empty(n, np.float16)
    table32 = np.array([*table, 0, 0], np.float32)
    kernel = kernels.mask_backward_kernel(1, 0, True)
    kernel(g.view(np.int16), mask, np.zeros(1, np.float32), dx.view(np.int16), table32, 0, False)
    d = np.where(codes, table32[1], table32[0])
    with np.errstate(invalid="ignore", over="ignore"):
        want = (g.astype(np.float32) * d).astype(np.float16).view(np.uint16)
    nan = (bits & 0x7FFF) > 0x7C00
    want = np.where(nan, (bits & 0x8000) | 0x7E00, want).astype(np.uint16)
    np.testing.assert_array_equal(dx.view(np.uint16), want)


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("leaky_relu", {}),
        ("prelu", {"weight": -0.5}),
        ("rrelu", {}),
        ("general_relu", {"negative_slope": 0.1, "threshold": 0.5}),
        ("general_relu", {"negative_slope": 3.0, "threshold": -2.0}),
        ("general_relu", {"threshold": 0.5}),
    ],
    ids=str,
)
def test_float16_forward_words_give_every_element_the_bits_of_the_forward(name, params):
    # A float16 word with no NaN takes x or its product (intrinsics._kept_or_narrowed_16), one
    # with a NaN the NaN rule (the quiet NaN 0x7E00 with its sign): every element, NaNs of every
    # payload included, has the bits that the forward gives it alone and in the whole array
    function = relukit.get(name, **params)
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with dispatch.forced("compiled"):
        y, _ = function.forward_with_mask(x)
        whole = function(x)
    bits = x.view(np.uint16)
    nan = (bits & 0x7FFF) > 0x7C00
    np.testing.assert_array_equal(y.view(np.uint16)[nan], (bits[nan] & 0x8000) | 0x7E00)
    np.testing.assert_array_equal(y.view(np.uint16), whole.view(np.uint16))
    for i in (0x7C01, 0x7D55, 0xFE01, 0xFFFF, 0x3C00, 0xBC00, 0x8000):
        np.testing.assert_array_equal(function(x[i : i + 1]).view(np.uint16), y.view(np.uint16)[i])


@pytest.mark.skipif(not host.available(), reason="needs Numba")
def test_float16_prelu_channel_words_give_every_element_the_bits_of_the_forward():
    # prelu's slopes per channel in one pass (intrinsics.slopes_word): every element, NaNs of
    # every payload included, has the bits of the forward (a NaN: the quiet NaN 0x7E00 with
    # its sign), and the reference's value
    weight = tuple(np.linspace(-0.5, 2.0, 64))
    function = relukit.get("prelu", weight=weight)
    x = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(1024, 64)
    with dispatch.forced("compiled"):
        y, _ = function.forward_with_mask(x)
        whole = function(x)
    with dispatch.forced("reference"):
        want = function(x)
    bits = x.view(np.uint16)
    nan = (bits & 0x7FFF) > 0x7C00
    np.testing.assert_array_equal(y.view(np.uint16)[nan], (bits[nan] & 0x8000) | 0x7E00)
    np.testing.assert_array_equal(y.view(np.uint16), whole.view(np.uint16))
    assert bits_equal(y, want)


@pytest.mark.skipif(not host.available(), reason="needs Numba")
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("leaky_relu", {"negative_slope": 0.01}),
        ("leaky_relu", {"negative_slope": -3.0}),
        ("leaky_relu", {"negative_slope": 1e39}),  # (inf in float32: ±0·inf is NaN)
        ("leaky_relu", {"negative_slope": 1e-45}),
        ("general_relu", {"negative_slope": 0.1, "threshold": 0.5}),
        ("general_relu", {"negative_slope": 2.0, "threshold": -1e39}),  # (x − t = inf)
    ],
    ids=str,
)
def test_float16_words_with_and_without_a_nan_give_the_same_bits(name, params):
    # Every non-NaN float16 pattern, once where no word holds a NaN (the words' quick route,
    # intrinsics._kept_or_narrowed_16) and once with a NaN in every 64 elements, so that every
    # word takes the general route with its NaN rule: each element has the same bits both
    # ways, forward and backward (the NaNs of inf·0 and inf − inf among them)
    function = relukit.get(name, **params)
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    bits = bits[(bits & 0x7FFF) <= 0x7C00]
    bits = np.resize(bits, -(-bits.size // 63) * 63).reshape(-1, 63)
    plain = np.concatenate([bits, np.zeros((bits.shape[0], 1), np.uint16)], axis=1)
    with_nan = plain.copy()
    with_nan[:, 63] = 0x7E00
    kept = np.ones(plain.shape, dtype=bool)
    kept[:, 63] = False
    results = []
    for raw in (plain, with_nan):
        x = raw.reshape(-1).view(np.float16)
        with dispatch.forced("compiled"):
            y, m = function.forward_with_mask(x)
            dx = function.backward_from_mask(x.copy(), m)  # (gradients: the same patterns)
        results.append((y.view(np.uint16), dx.view(np.uint16)))
    (y0, dx0), (y1, dx1) = results
    np.testing.assert_array_equal(y0[kept.reshape(-1)], y1[kept.reshape(-1)])
    np.testing.assert_array_equal(dx0[kept.reshape(-1)], dx1[kept.reshape(-1)])
