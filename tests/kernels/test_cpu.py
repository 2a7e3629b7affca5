"""The compiled CPU kernels against the reference path.

Piecewise-linear members (and squared_relu, which needs nothing but arithmetic) must be bit-exact
to the reference path in every dtype. The smooth members:

- in float64, bit-exact to the reference path (the registry's formula, operation by operation,
  with the same C library functions);
- in float32, within 2 ulp of the registry's formula evaluated in float64 over the whole float32
  range (the reference path in float32 is not that accurate: its own rounding of ``x·beta`` or
  ``x/alpha`` before ``exp`` costs it up to about 100 ulp); ulps are counted at the size of the
  terms the formula adds where it cancels (``family/scales.py``), and a difference smaller than
  the smallest normal float32 counts as none;
- in float16 and bfloat16 (computed in float32 and rounded once), within 1 ulp of the dtype;
- and the kernels' own exp/expm1/log1p/erf/tanh within 2 ulp of float64 over the whole range.
"""

from __future__ import annotations

import math
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
import scipy.special

import relukit
from relukit import threads
from relukit.kernels import cpu, dispatch, reference

from family.scales import scale_for  # isort: skip  (the tests' own helpers)

BF16 = np.dtype(ml_dtypes.bfloat16)
DTYPES = [np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16), BF16]
SMOOTH = {"elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "sigmoid", "tanh"}

CASES = [
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.07}),
    ("leaky_relu", {"negative_slope": 0.0}),
    ("prelu", {}),
    ("prelu", {"weight": np.array([0.1, 0.0, -0.3])}),
    ("rrelu", {"lower": 0.1, "upper": 0.3}),
    ("rrelu", {"training": True, "seed": 7}),
    ("relu6", {}),
    ("hardtanh", {"min_val": -0.1, "max_val": 2.5}),
    ("general_relu", {}),
    ("general_relu", {"negative_slope": 0.1, "max_value": 3.0, "threshold": 1.0}),
    ("general_relu", {"negative_slope": 0.0, "max_value": 6.0}),
    ("squared_relu", {}),
    ("elu", {"alpha": 1.3}),
    ("selu", {}),
    ("celu", {"alpha": 0.7}),
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("mish", {}),
    ("softplus", {"beta": 2.0, "threshold": 15.0}),
    ("sigmoid", {}),
    ("tanh", {}),
]

SPECIAL = [
    np.nan,
    np.inf,
    -np.inf,
    0.0,
    -0.0,
    6.0,
    -0.1,
    2.5,
    1.0,
    3.0,
    -1.0,
    1e-40,
    -1e-40,
    1e30,
    -1e30,
    88.5,
    -88.5,
    -100.0,
    100.0,
    7.5,
    -9.0,
    3e-6,  # float16 subnormals, and values that round to ±inf in float16
    -6e-8,
    1e-5,
    65504.0,
    65520.0,
    -7e4,
]


def sample(shape: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> np.ndarray:
    """Normal values at several scales with every special value and kink mixed in."""
    rng = np.random.default_rng(seed)
    n = math.prod(shape)
    values = rng.standard_normal(n) * rng.choice([0.1, 1.0, 4.0, 30.0], n)
    values[: len(SPECIAL)] = SPECIAL
    rng.shuffle(values)
    with np.errstate(over="ignore"):
        return values.astype(dtype).reshape(shape)


def same_bits(a: object, b: object) -> bool:
    """Equal bit for bit, NaN equal to NaN (payloads are not compared)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_a = np.isnan(a.astype(np.float32)) if a.dtype.itemsize == 2 else np.isnan(a)
    nan_b = np.isnan(b.astype(np.float32)) if b.dtype.itemsize == 2 else np.isnan(b)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize]
    equal = a.view(bits) == b.view(bits)
    return bool(np.array_equal(nan_a, nan_b) and np.all(equal | nan_a))


class CompiledMath(reference.Math):
    """The reference namespace with the kernels' own transcendental functions."""

    def _apply(self, name: str, x: np.ndarray) -> np.ndarray:
        return cpu.math_function(name, np.asarray(x))

    def exp(self, x):
        return self._apply("exp", x)

    def expm1(self, x):
        return self._apply("expm1", x)

    def log1p(self, x):
        return self._apply("log1p", x)

    def erf(self, x):
        return self._apply("erf", x)

    def tanh(self, x):
        return self._apply("tanh", x)


def expected(function, op: str, x, g, monkeypatch) -> object:
    """The reference path; for smooth members with the kernels' own transcendentals.

    Smooth members outside float64 take steps of their own in float32 (their accuracy is
    tested against float64 below): for them, the kernel on C-contiguous copies.
    """
    if function.name in SMOOTH and np.asarray(x).dtype != np.float64:
        g = None if g is None else np.ascontiguousarray(g)
        return compiled(function, op, np.ascontiguousarray(x), g)
    with monkeypatch.context() as patch:
        if function.name in SMOOTH:
            patch.setattr(reference, "Math", CompiledMath)
        with dispatch.forced("reference"):
            return call(function, op, x, g)


def call(function, op: str, x, g, **kwargs) -> object:
    if op == "forward":
        return function(x, **kwargs)
    if op == "derivative":
        return function.derivative(x, **kwargs)
    return function.vjp(x, g)


def compiled(function, op: str, x, g, **kwargs) -> object:
    with dispatch.forced("compiled"):
        return call(function, op, x, g, **kwargs)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Several threads and streaming stores even on the small arrays of the tests."""
    monkeypatch.setattr(cpu, "GRAIN_LINEAR", 256)
    monkeypatch.setattr(cpu, "GRAIN_SMOOTH", 256)
    monkeypatch.setattr(cpu, "STREAM_BYTES", 0)


# ---------------------------------------------------------------------------------------------
# Every member, op and dtype


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_kernel_matches_reference(name, params, dtype, monkeypatch):
    function = relukit.get(name, **params)
    x = sample((6, 3, 71), dtype)
    g = sample((6, 3, 71), dtype, seed=1)
    for op in ("forward", "derivative", "vjp"):
        got = compiled(function, op, x, g)
        if name in SMOOTH and dtype != np.float64:
            if op != "vjp":
                error = smooth_error(function, op, x, got)
                assert error.max() <= (2.0 if dtype == np.float32 else 1.0), (op, error.max())
            elif dtype == np.float32:  # g times the derivative, rounded once
                assert same_bits(got, g * compiled(function, "derivative", x, None))
            continue
        want = expected(function, op, x, g, monkeypatch)
        assert same_bits(got, want), (name, params, dtype, op)


def ulps_of(dtype: np.dtype, magnitude: np.ndarray) -> np.ndarray:
    """The spacing of ``dtype`` at ``magnitude`` (its subnormal spacing at the bottom)."""
    info = ml_dtypes.finfo(dtype)
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log2(np.where(magnitude > 0, magnitude, 1.0)))
    return np.exp2(np.maximum(exponent, info.minexp) - info.nmant)


def smooth_error(function, op: str, x: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Per element, how far ``got`` is from ``op`` of the registry's formula in float64, in
    ulps of ``got``'s dtype at ``|exact| + scale(x)`` (see ``family/scales.py``)."""
    with dispatch.forced("reference"), np.errstate(all="ignore"):
        x64 = x.astype(np.float64)
        truth = call(function, op, x64, None)
    member = "gelu-tanh" if function.params.get("approximate") == "tanh" else function.name
    scale = scale_for(member, op)(np.nan_to_num(x64, posinf=1e300, neginf=-1e300))
    finfo = ml_dtypes.finfo(got.dtype)
    with np.errstate(all="ignore"):
        mine = got.astype(np.float64)
        # beyond the dtype's range the answer is the rounded (infinite) value itself
        truth = np.where(np.abs(truth) > float(finfo.max), np.sign(truth) * np.inf, truth)
        difference = np.abs(mine - truth)
        difference = np.where(difference <= float(finfo.smallest_normal), 0.0, difference)
        error = difference / ulps_of(got.dtype, np.abs(truth) + scale)
    same = (mine == truth) | (np.isnan(mine) & np.isnan(truth))
    return np.where(same, 0.0, np.where(np.isfinite(error), error, np.inf))


SMOOTH_CASES = [case for case in CASES if case[0] in SMOOTH] + [
    ("elu", {"alpha": 0.1}),
    ("celu", {"alpha": 3.3}),
    ("softplus", {}),
    ("softplus", {"beta": 1.7, "threshold": 15.0}),
    ("softplus", {"beta": 0.3, "threshold": 5.0}),
    ("softplus", {"beta": 11.3, "threshold": 1e30}),
]


TAILS = [
    ("silu", {}),
    ("mish", {}),
    ("sigmoid", {}),
    ("softplus", {}),
    ("softplus", {"beta": 0.25}),
    ("softplus", {"beta": 0.25, "threshold": -100.0}),
]


@pytest.mark.parametrize(("name", "params"), TAILS, ids=lambda v: v if isinstance(v, str) else "")
def test_float32_far_tails_within_2_ulp_of_the_value_itself(name, params):
    # Where e^x is subnormal or nearly, the results are tiny but mostly normal: measured in
    # ulps of the value alone (no scale), every normal result within 2 ulp.
    x = -np.geomspace(15.0, 440.0, 20001).astype(np.float32)
    function = relukit.get(name, **params)
    for op in ("forward", "derivative"):
        got = compiled(function, op, x, None).astype(np.float64)
        with dispatch.forced("reference"):
            truth = call(function, op, x.astype(np.float64), None)
        normal = np.abs(truth) >= float(np.finfo(np.float32).tiny)
        assert normal.sum() > 100, op
        error = np.abs(got - truth)[normal] / ulps_of(np.dtype(np.float32), np.abs(truth[normal]))
        assert error.max() <= 2.0, (op, x[normal][np.argmax(error)], error.max())
        # and the subnormal ones within a few subnormal steps, never of the wrong sign
        tiny = ~normal & (truth != 0)
        assert np.all(np.abs(got - truth)[tiny] <= 4 * 2.0**-149), op
        assert not np.any(got[tiny] * truth[tiny] < 0), op


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("elu", {"alpha": 1e39}),
        ("elu", {"alpha": 1e-40}),
        ("celu", {"alpha": 1e39}),
        ("softplus", {"beta": 1e39}),
        ("softplus", {"beta": 2.0**-140}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_parameters_float32_cannot_hold_take_the_reference_path(name, params, dtype):
    function = relukit.get(name, **params)
    x = np.array([-1.0, -1e-3, 0.0, 0.5, 3.0] * 300, dtype=dtype)
    for op in ("forward", "derivative"):
        got = compiled(function, op, x, None)
        with dispatch.forced("reference"):
            want = call(function, op, x, None)
        if dtype == np.float32:
            assert same_bits(got, want), op
        else:
            assert not np.isnan(got).any(), op


@pytest.mark.parametrize(
    ("name", "params"), SMOOTH_CASES, ids=lambda v: v if isinstance(v, str) else ""
)
def test_float32_smooth_members_within_2_ulp_over_the_whole_range(name, params):
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([bits.view(np.float32), np.float32(SPECIAL), -np.float32(SPECIAL)])
    function = relukit.get(name, **params)
    for op in ("forward", "derivative"):
        got = compiled(function, op, x, None)
        error = smooth_error(function, op, x, got)
        assert error.max() <= 2.0, (op, x[np.argmax(error)], error.max())


def test_kernel_is_used_and_leaves_input_untouched():
    x = sample((3, 700), np.dtype(np.float32))
    before = x.copy()
    with dispatch.forced("compiled"):
        y = relukit.gelu(x)
    assert same_bits(x, before)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert dispatch.compiled_takes(relukit.kernels.arrays.as_input(x, "t"))


# ---------------------------------------------------------------------------------------------
# Layouts, out= and in place


LAYOUTS = {
    "c": lambda a: a,
    "f": np.asfortranarray,
    "transposed": lambda a: a.T,
    "strided": lambda a: a[::2, 1::3],
    "reversed": lambda a: a[::-1],
    "1d-strided": lambda a: a.reshape(-1)[::5],
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ["leaky_relu", "relu", "silu"])
def test_layouts(name, layout, monkeypatch):
    function = relukit.get(name)
    make = LAYOUTS[layout]
    x = make(sample((40, 60), np.dtype(np.float32)))
    g = make(sample((40, 60), np.dtype(np.float32), seed=3))
    for op in ("forward", "derivative", "vjp"):
        assert same_bits(compiled(function, op, x, g), expected(function, op, x, g, monkeypatch))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "function",
    [relukit.relu, relukit.get("hardtanh", min_val=-0.5, max_val=2.0), relukit.selu],
    ids=["relu", "hardtanh", "selu"],
)
def test_out_and_in_place(function, dtype, monkeypatch):
    x = sample((30, 40), dtype)
    want = expected(function, "forward", x, None, monkeypatch)
    want_d = expected(function, "derivative", x, None, monkeypatch)
    out = np.empty_like(x)
    assert compiled(function, "forward", x, None, out=out) is out
    assert same_bits(out, want)
    fortran = np.empty(x.shape, dtype=dtype, order="F")
    assert compiled(function, "derivative", x, None, out=fortran) is fortran
    assert same_bits(fortran, want_d)
    strided = np.empty((60, 40), dtype=dtype)[::2]
    assert compiled(function, "forward", x, None, out=strided) is strided
    assert same_bits(strided, want)
    inplace = x.copy()
    assert compiled(function, "forward", inplace, None, out=inplace) is inplace
    assert same_bits(inplace, want)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh"])
def test_select_forward_at_every_alignment(name, dtype, monkeypatch):
    # relu/relu6/hardtanh store whole 64-byte vectors, four an iteration, from the output's first
    # 64-byte boundary on, streamed or not, into another array or in place.
    function = relukit.get(name)
    lanes = 64 // dtype.itemsize
    for stream in (0, 1 << 40):
        monkeypatch.setattr(cpu, "STREAM_BYTES", stream)
        for n in (1, lanes - 1, 4 * lanes - 1, 4 * lanes + 1, 5 * lanes + 3, 1000):
            x = sample((n + len(SPECIAL),), dtype, seed=n)[:n]
            with dispatch.forced("reference"):
                want = function(x)
            for offset in range(lanes):
                base = np.zeros(n + lanes, dtype=dtype)
                y_out = base[offset : offset + n]
                assert compiled(function, "forward", x, None, out=y_out) is y_out
                assert same_bits(y_out, want), (n, offset, stream)
                assert not base[offset + n :].any() and not base[:offset].any()
                base[offset : offset + n] = x
                assert compiled(function, "forward", y_out, None, out=y_out) is y_out
                assert same_bits(y_out, want), ("in place", n, offset)


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh"])
def test_select_forward_into_an_output_not_aligned_on_its_element_size(name, dtype):
    # no element of such an output starts on a 64-byte boundary: no whole vectors to store
    function = relukit.get(name)
    n = 5000
    x = sample((n,), dtype, seed=2)
    with dispatch.forced("reference"):
        want = function(x)
    for offset in (1, 3):
        buffer = np.zeros(n * dtype.itemsize + 64, dtype=np.uint8)
        start = (-buffer.ctypes.data) % 64 + offset
        y = buffer[start : start + n * dtype.itemsize].view(dtype)
        assert not y.flags.aligned
        assert compiled(function, "forward", x, None, out=y) is y
        assert same_bits(y, want)
        y[...] = x
        assert compiled(function, "forward", y, None, out=y) is y
        assert same_bits(y, want), "in place"


def test_out_overlapping_input_goes_through_a_temporary():
    base = sample((1, 4001), np.dtype(np.float64)).reshape(-1)
    x = base[:-1]
    want = compiled(relukit.elu, "forward", x.copy(), None)
    compiled(relukit.elu, "forward", x, None, out=base[1:])
    assert same_bits(base[1:], want)


def test_out_of_wrong_kind_is_refused_as_before():
    x = sample((100,), np.dtype(np.float32))
    with dispatch.forced("compiled"), pytest.raises(TypeError, match="dtype"):
        relukit.relu(x, out=np.empty(100, dtype=np.float64))
    with dispatch.forced("compiled"), pytest.raises(ValueError, match="shape"):
        relukit.relu(x, out=np.empty(99, dtype=np.float32))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_torch_tensors(dtype):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(sample((20, 50), np.dtype(np.float64))).to(getattr(torch, dtype))
    g = torch.ones_like(t) * 0.5
    for name in ("relu", "gelu"):
        function = relukit.get(name)
        for op in ("forward", "derivative", "vjp"):
            got = compiled(function, op, t, g)
            with dispatch.forced("reference"):
                want = call(function, op, t, g)
            assert isinstance(got, torch.Tensor) and got.dtype == t.dtype
            a, b = got.float().numpy(), want.float().numpy()
            if name == "relu":
                assert same_bits(a, b)
            else:  # torch's own erf/exp in the reference path
                assert np.allclose(
                    a,
                    b,
                    rtol=2e-2 if dtype in ("float16", "bfloat16") else 1e-5,
                    atol=1e-6,
                    equal_nan=True,
                )
    out = torch.empty_like(t)
    assert compiled(relukit.relu, "forward", t, None, out=out) is out
    with dispatch.forced("reference"):
        assert same_bits(out.float().numpy(), relukit.relu(t).float().numpy())


def test_torch_tensor_requiring_grad_stays_on_the_reference_path(monkeypatch):
    torch = pytest.importorskip("torch")
    t = torch.linspace(-3, 3, 2000, requires_grad=True)

    def refuse(*args, **kwargs):
        raise AssertionError("compiled kernel used")

    monkeypatch.setattr(cpu, "_kernel", refuse)
    y = relukit.relu(t)
    y.sum().backward()
    assert torch.equal(t.grad, (t > 0).float())


# ---------------------------------------------------------------------------------------------
# Dispatch


def test_dispatch_threshold_and_kinds():
    as_input = relukit.kernels.arrays.as_input
    assert not dispatch.compiled_takes(as_input(np.ones(dispatch.MIN_ELEMENTS - 1), "t"))
    assert dispatch.compiled_takes(as_input(np.ones(dispatch.MIN_ELEMENTS), "t"))
    assert not dispatch.compiled_takes(as_input(np.ones(10**5, dtype=np.int32), "t"))
    with dispatch.forced("reference"):
        assert not dispatch.compiled_takes(as_input(np.ones(10**5), "t"))
    with dispatch.forced("compiled"):
        assert dispatch.compiled_takes(as_input(np.ones(3), "t"))
    with pytest.raises(ValueError, match="backend"):
        dispatch.forced("gpu").__enter__()


def test_parameter_gradient_and_structural_members_use_the_reference_path():
    x = sample((4, 3, 100), np.dtype(np.float32))
    w = np.array([0.2, 0.3, 0.4])
    with dispatch.forced("compiled"):
        got = relukit.prelu.vjp(x, np.ones_like(x), weight=w, wrt="weight")
        crelu = relukit.crelu(x)
    with dispatch.forced("reference"):
        assert same_bits(got, relukit.prelu.vjp(x, np.ones_like(x), weight=w, wrt="weight"))
        assert same_bits(crelu, relukit.crelu(x))


def test_prelu_channel_mismatch_still_raises():
    x = sample((4, 5, 100), np.dtype(np.float32))
    with dispatch.forced("compiled"), pytest.raises(ValueError, match="3 slopes"):
        relukit.prelu(x, weight=np.array([0.1, 0.2, 0.3]))


def test_importing_relukit_loads_no_numba():
    code = (
        "import sys, numpy, relukit; relukit.relu(numpy.ones(10)); "
        "assert 'numba' not in sys.modules, 'numba imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------
# Threads


def test_result_does_not_depend_on_thread_count():
    x = sample((64, 300), np.dtype(np.float32))
    with threads.limit(1):
        one = compiled(relukit.mish, "forward", x, None)
    with threads.limit(4):
        many = compiled(relukit.mish, "forward", x, None)
    assert same_bits(one, many)


def test_thread_settings(monkeypatch):
    monkeypatch.setattr(threads, "_setting", None)
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.get_num_threads() == 3
    threads.set_num_threads(2)
    assert threads.get_num_threads() == 2
    with threads.limit(1):
        assert threads.get_num_threads() == 1
    threads.set_num_threads(None)
    assert threads.get_num_threads() == 3
    monkeypatch.setenv(threads.ENV, "many")
    with pytest.raises(ValueError, match="RELUKIT_NUM_THREADS"):
        threads.get_num_threads()
    with pytest.raises(ValueError, match="n=0"):
        threads.set_num_threads(0)
    with pytest.raises(TypeError, match="integer"):
        threads.set_num_threads(1.5)


# ---------------------------------------------------------------------------------------------
# The kernels' own transcendental functions


TRUTH = {
    "exp": np.exp,
    "expm1": np.expm1,
    "log1p": np.log1p,
    "erf": scipy.special.erf,
    "tanh": np.tanh,
}
EDGES = [
    1.0,
    4.0,
    0.625,
    0.41421353816986084,
    -0.2928932309150696,
    88.72283935546875,
    88.72284,
    -87.33654,
    -103.97208,
    -104.0,
    -18.0,
    17.0,
    3.92,
    9.0,
    10.0,
    3.4028235e38,
    1.4e-45,
    1.1754944e-38,
    5.9604645e-08,
    -0.99999994,
    -1.0,
    -2.0,
]


def ulp_error(y: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|y - truth| in units of the float32 ulp at truth (subnormal spacing at the bottom)."""
    with np.errstate(all="ignore"):
        magnitude = np.abs(truth)
        exponent = np.floor(np.log2(np.where(magnitude > 0, magnitude, 1.0)))
        ulp = np.exp2(np.maximum(exponent, -126) - 23)
        error = np.abs(y.astype(np.float64) - truth) / ulp
        same = (y.astype(np.float64) == truth) | (np.isnan(y) & np.isnan(truth))
    return np.where(same, 0.0, error)


@pytest.mark.parametrize("name", list(TRUTH))
def test_float32_math_within_2_ulp_over_the_whole_range(name):
    bits = np.arange(0, 2**32, 4099, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([bits.view(np.float32), np.float32(EDGES), -np.float32(EDGES)])
    with np.errstate(all="ignore"):
        x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)), np.nextafter(x, -np.inf)])
    x = x.astype(np.float32)
    y = cpu.math_function(name, x)
    with np.errstate(all="ignore"):
        truth = TRUTH[name](x.astype(np.float64))
        rounded = truth.astype(np.float32)
    # beyond float32's range the answer is the rounded (infinite) value itself
    overflow = np.isinf(rounded) & np.isfinite(truth)
    assert np.array_equal(y[overflow], rounded[overflow])
    error = ulp_error(y[~overflow], truth[~overflow])
    assert error.max() <= 2.0, (name, x[~overflow][np.argmax(error)], error.max())


SPECIALS = {
    "exp": [(-np.inf, 0.0), (np.inf, np.inf), (0.0, 1.0), (-0.0, 1.0), (-200.0, 0.0)],
    "expm1": [(-np.inf, -1.0), (np.inf, np.inf), (0.0, 0.0), (-0.0, -0.0), (-200.0, -1.0)],
    "log1p": [
        (-1.0, -np.inf),
        (-2.0, np.nan),
        (-np.inf, np.nan),
        (np.inf, np.inf),
        (0.0, 0.0),
        (-0.0, -0.0),
    ],
    "erf": [(-np.inf, -1.0), (np.inf, 1.0), (0.0, 0.0), (-0.0, -0.0), (5.0, 1.0)],
    "tanh": [(-np.inf, -1.0), (np.inf, 1.0), (0.0, 0.0), (-0.0, -0.0), (50.0, 1.0)],
}


@pytest.mark.parametrize("name", list(SPECIALS))
def test_float32_math_special_values_exact(name):
    x = np.float32([v for v, _ in SPECIALS[name]] + [np.nan])
    want = np.float32([w for _, w in SPECIALS[name]] + [np.nan])
    assert same_bits(cpu.math_function(name, x), want)


@pytest.mark.parametrize("name", list(TRUTH))
def test_float64_math_is_the_c_library(name):
    x = np.random.default_rng(0).standard_normal(2000) * 20
    x = np.abs(x) if name == "log1p" else x
    want = np.array([getattr(math, name)(v) for v in x])
    assert same_bits(cpu.math_function(name, x), want)


def test_warm_up_reports_each_member():
    timings = cpu.warm_up((np.float32,))
    assert "import numba" in timings
    assert {"relu float32", "gelu float32", "tanh float32"} <= set(timings)
    assert all(t >= 0 for t in timings.values())


def test_concurrent_cache_writers_cannot_give_one_kernel_another_kernels_code(tmp_path):
    # Two processes that both read the cache index before either wrote it: each data file is
    # named by its key, so an index entry can only ever lead to the code saved for that key.
    from relukit.kernels import cpu_kernels, cpu_math

    first = cpu_math._KeyNamedCacheFile(str(tmp_path), "kernel-1.py311", "stamp")
    second = cpu_math._KeyNamedCacheFile(str(tmp_path), "kernel-1.py311", "stamp")
    stale = second._load_index()
    first.save(("float32",), "code for float32")
    second._load_index = lambda: dict(stale)  # it read the index before first's write
    second.save(("float64",), "code for float64")
    assert first.load(("float64",)) == "code for float64"
    assert first.load(("float32",)) in (None, "code for float32")
    kernel = cpu_kernels.map_kernel(cpu_kernels.RELU, cpu_kernels.FORWARD)
    assert isinstance(kernel._cache._cache_file, cpu_math._KeyNamedCacheFile)
