"""The compiled CPU kernels against the reference path.

Piecewise-linear members (and squared_relu, which needs nothing but arithmetic) must be bit-exact
to the reference path in every dtype. The smooth members and the exponential units, which the
two paths evaluate differently, must be close to it (16 ulp in float64, where the reference
path's own bounds are ``FLOAT64_REFERENCE_ULPS`` in ``tests/family/truth.py``), with the same
special values; their accuracy against the true function is tested in
``tests/family/test_accuracy.py``. The float32
kernels' own float64 exp/expm1/log1p/Φ/tanh are checked here against the C library and SciPy.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import ml_dtypes
import mpmath as mp
import numpy as np
import pytest
import scipy.special

import relukit
from relukit import threads
from relukit.family import MEMBERS
from relukit.kernels import cpu, dispatch
from relukit.kernels.cpu import host

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


def ulps_apart(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many representable values of the dtype lie between ``a`` and ``b`` (NaN = NaN, and
    +0 = -0), as float64."""
    bits = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]

    def ordered(v: np.ndarray) -> np.ndarray:
        i = np.asarray(v).view(bits).astype(np.int64)
        return np.where(i < 0, np.int64(np.iinfo(bits).min) - i, i)

    nan_a = np.isnan(a.astype(np.float32)) if a.dtype.itemsize == 2 else np.isnan(a)
    nan_b = np.isnan(b.astype(np.float32)) if b.dtype.itemsize == 2 else np.isnan(b)
    oa, ob = ordered(a), ordered(b)
    same_sign = (oa >= 0) == (ob >= 0)
    distance = np.where(
        same_sign,
        np.abs(np.where(same_sign, oa - ob, 0)).astype(np.float64),
        np.abs(oa.astype(np.float64) - ob.astype(np.float64)),
    )
    return np.where(nan_a & nan_b, 0.0, np.where(nan_a | nan_b, np.inf, distance))


def agrees(function, got: object, want: object) -> bool:
    """Bit for bit, or for the smooth members as close as their accuracy allows: float32
    kernels are within 2 ulp of the true value and the reference path within 1, and a vjp
    rounds g·f′ once more (4 apart); 16-bit results are rounded once from either (1 apart);
    float64, where the two paths' float64 functions differ, within 16."""
    if function.name not in SMOOTH:
        return same_bits(got, want)
    got, want = np.asarray(got), np.asarray(want)
    if got.dtype != want.dtype or got.shape != want.shape:
        return False
    apart = ulps_apart(got, want)
    # subnormal results: the same sign, and close in absolute terms only
    info = ml_dtypes.finfo(got.dtype)
    with np.errstate(invalid="ignore"):
        tiny = np.abs(want.astype(np.float64)) < float(info.tiny)
        close = np.abs(got.astype(np.float64) - want.astype(np.float64)) <= 2**8 * float(
            info.smallest_subnormal
        )
    apart = np.where(tiny & close & (np.signbit(got) == np.signbit(want)), 0.0, apart)
    bound = {8: 16, 4: 4, 2: 1}[got.dtype.itemsize]
    return bool(np.all(apart <= bound))


def expected(function, op: str, x, g) -> object:
    """The reference path."""
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
    monkeypatch.setattr(host, "GRAIN_LINEAR", 256)
    monkeypatch.setattr(host, "GRAIN_SMOOTH", 256)
    monkeypatch.setattr(host, "PIECES_TEAM", host.PIECES)  # (many chunks on the team too)
    monkeypatch.setattr(host, "STREAM_BYTES", 0)


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
        want = expected(function, op, x, g)
        if op == "vjp" and function.name in SMOOTH:
            # g·f′ from a derivative that is subnormal in the dtype keeps only its absolute
            # precision (the kernels round f′ first): close in absolute terms there
            subnormal = np.abs(np.asarray(expected(function, "derivative", x, g), np.float64))
            subnormal = subnormal < float(ml_dtypes.finfo(x.dtype).tiny)
            scale = (
                np.abs(g.astype(np.float64))
                * 2**8
                * float(ml_dtypes.finfo(x.dtype).smallest_subnormal)
            )
            gap = np.abs(got.astype(np.float64) - want.astype(np.float64))
            assert np.all(~subnormal | (gap <= scale) | np.isnan(gap)), (name, params, dtype)
            got, want = got[~subnormal], want[~subnormal]
        assert agrees(function, got, want), (name, params, dtype, op)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("elu", {"alpha": 1e39}),
        ("elu", {"alpha": 1e-40}),
        ("celu", {"alpha": 1e39}),
        ("softplus", {"beta": 1e39}),
        ("softplus", {"beta": 2.0**-140}),
        ("softplus", {"beta": 2.0**-1030}),  # (1/beta overflows; the results that do: inf)
        ("softplus", {"beta": 1.7, "threshold": 15.0}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_parameters_float32_cannot_hold_keep_their_digits(name, params, dtype):
    # the smooth members take their parameters in float64 whatever the input's dtype
    function = relukit.get(name, **params)
    x = np.array([-1.0, -1e-3, 0.0, 0.5, 3.0] * 300, dtype=dtype)
    for op in ("forward", "derivative"):
        got = compiled(function, op, x, None)
        assert agrees(function, got, expected(function, op, x, None)), op
        assert not np.isnan(got).any(), op


@pytest.mark.parametrize("beta", [1.0, 3.0, 0.25])
def test_float32_softplus_below_a_high_threshold_is_x_where_beta_x_passes_104(beta):
    # log1p(e^{-z}) is below 2^-150 there: the result is x. (The float32 kernel gave 0 for
    # beta·x from 104 up to the threshold, which only a threshold above 104 shows.)
    softplus = relukit.get("softplus", beta=beta, threshold=1000.0)
    x = (np.array([90.0, 103.9, 104.0, 104.5, 150.0, 900.0]) / beta).astype(np.float32)
    for n in (1, 6, 3000):  # (every path)
        part = np.resize(x, n)
        want = softplus(part.astype(np.float64)).astype(np.float32)
        assert np.array_equal(softplus(part), want), n
        assert np.all(softplus.derivative(part) == 1.0), n


@pytest.mark.parametrize(
    ("name", "params", "op", "factor"),
    [
        ("elu", {"alpha": 1e30}, "derivative", 1e30),
        ("softplus", {"beta": 2.0**-140}, "forward", 2.0**140),
    ],
    ids=["elu", "softplus"],
)
def test_float64_far_left_where_a_parameter_makes_the_result_normal(name, params, op, factor):
    # factor·e^z with e^z subnormal (z below −708) and the product a normal number: the kernels
    # scale e^z by 2^64 there, which keeps its digits down to z = −752 (below, e^z·2^64 is
    # subnormal too: its absolute precision, 2^-1074, scaled back), and give 0 from −800
    function = relukit.get(name, **params)
    z = np.array([-700.5, -712.25, -730.0, -745.0, -751.5, -755.5, -768.0, -790.0, -805.0])
    x = z * 2.0**140 if name == "softplus" else z
    got = compiled(function, op, x, None)
    assert got[-1] == 0.0
    with mp.workdps(40):
        for v, g in zip(z[:-1], got[:-1], strict=True):
            want = factor * (mp.log1p(mp.exp(v)) if name == "softplus" else mp.exp(v))
            bound = 2 * 2.0**-52 * want + (0 if v > -752 else factor * mp.mpf(2) ** -1137)
            assert abs(mp.mpf(g) - want) <= bound, (v, g, float(want))


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
def test_layouts(name, layout):
    function = relukit.get(name)
    make = LAYOUTS[layout]
    x = make(sample((40, 60), np.dtype(np.float32)))
    g = make(sample((40, 60), np.dtype(np.float32), seed=3))
    for op in ("forward", "derivative", "vjp"):
        assert agrees(function, compiled(function, op, x, g), expected(function, op, x, g))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "function",
    [relukit.relu, relukit.get("hardtanh", min_val=-0.5, max_val=2.0), relukit.selu],
    ids=["relu", "hardtanh", "selu"],
)
def test_out_and_in_place(function, dtype):
    x = sample((30, 40), dtype)
    want = compiled(function, "forward", x, None)
    want_d = compiled(function, "derivative", x, None)
    assert agrees(function, want, expected(function, "forward", x, None))
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


@pytest.mark.parametrize("name", ["relu", "silu", "gelu", "elu"])
def test_only_piecewise_linear_members_stream(name, monkeypatch):
    # smooth members are bound by their arithmetic: streaming (through a block buffer) cost
    # them up to 25 % (silu 2^24 float32); the fixture streams every output of the others
    function = relukit.get(name)
    x = sample((1 << 12,), np.dtype(np.float32), seed=4)
    with threads.limit(1):  # (one chunk: the fixture's STREAM_BYTES streams split calls too)
        want = compiled(function, "forward", x, None)
        slope = compiled(function, "derivative", x, None)
    decisions: list[bool] = []
    for helper in ("_stream_to", "_streams"):
        decide = getattr(host, helper)

        def spy(*args, decide=decide):  # type: ignore[no-untyped-def]
            decisions.append(decide(*args))
            return decisions[-1]

        monkeypatch.setattr(host, helper, spy)
    y, wide = np.empty_like(x), np.empty(2 * x.size, dtype=x.dtype)
    assert same_bits(compiled(function, "forward", x, None, out=y), want)
    assert same_bits(compiled(function, "derivative", x, None, out=y), slope)
    assert same_bits(compiled(function, "forward", x, None, out=wide[::2]), want)  # (run's path)
    assert any(decisions) == (name == "relu")


@pytest.mark.parametrize("dtype", [np.dtype(np.float32), np.dtype(np.float64)], ids=str)
@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh", "leaky_relu"])
def test_select_forward_at_every_alignment(name, dtype, monkeypatch):
    # relu/relu6/hardtanh store whole 64-byte vectors, four an iteration, from the output's first
    # 64-byte boundary on, streamed or not, into another array or in place.
    function = relukit.get(name)
    lanes = 64 // dtype.itemsize
    for stream in (0, 1 << 40):
        monkeypatch.setattr(host, "STREAM_BYTES", stream)
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
@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh", "leaky_relu"])
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


def test_out_overlapping_input_through_the_fast_path_gives_numpy_s_answer():
    # Fast._out takes two arrays that each own their buffer as disjoint without asking NumPy;
    # views of one buffer must still be found overlapping, in either direction
    for shift in (1, -1):
        base = sample((1, 4001), np.dtype(np.float32)).reshape(-1)
        x, out = (base[:-1], base[1:]) if shift == 1 else (base[1:], base[:-1])
        want = relukit.relu(x.copy())
        assert relukit.relu(x, out=out) is out
        assert same_bits(out, want)


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
            else:  # torch's own float64 erfc/exp in the reference path
                low = dtype in ("float16", "bfloat16")
                assert np.allclose(a, b, rtol=1e-2 if low else 2e-7, atol=1e-30, equal_nan=True)
    out = torch.empty_like(t)
    assert compiled(relukit.relu, "forward", t, None, out=out) is out
    with dispatch.forced("reference"):
        assert same_bits(out.float().numpy(), relukit.relu(t).float().numpy())


# ---------------------------------------------------------------------------------------------
# Dispatch


def test_dispatch_takes_every_size_and_only_floats():
    as_input = relukit.kernels.arrays.as_input
    assert dispatch.MIN_ELEMENTS == dispatch.MIN_ELEMENTS_16 == 1
    assert dispatch.compiled_takes(as_input(np.ones(1), "t"))
    assert dispatch.compiled_takes(as_input(np.float32(2.0), "t"))
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
        "import sys, numpy, relukit; relukit.get('gelu'); "
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
    monkeypatch.setattr(threads, "_environment", threads._UNREAD)
    monkeypatch.setenv(threads.ENV, "3")
    assert threads.get_num_threads() == 3
    monkeypatch.setenv(threads.ENV, "5")  # read once: a change is seen at set_num_threads(None)
    assert threads.get_num_threads() == 3
    threads.set_num_threads(2)
    assert threads.get_num_threads() == 2
    with threads.limit(1):
        assert threads.get_num_threads() == 1
    threads.set_num_threads(None)
    assert threads.get_num_threads() == 5
    monkeypatch.setenv(threads.ENV, "many")
    threads.set_num_threads(None)
    with pytest.raises(ValueError, match="RELUKIT_NUM_THREADS"):
        threads.get_num_threads()
    with pytest.raises(ValueError, match="n=0"):
        threads.set_num_threads(0)
    with pytest.raises(TypeError, match="integer"):
        threads.set_num_threads(1.5)


# ---------------------------------------------------------------------------------------------
# The float32 kernels' own float64 functions


def _inputs(low: float, high: float) -> np.ndarray:
    """float32 values (so x² is exact in float64) spread over [low, high], both signs of zero
    where the range holds them, and the ends."""
    rng = np.random.default_rng(5)
    dense = rng.uniform(low, high, 200_000)
    spread = np.sign(rng.standard_normal(20_000)) * np.geomspace(1e-30, max(abs(low), high), 20_000)
    x = np.concatenate([dense, spread[(spread >= low) & (spread <= high)], [low, high, 0.0]])
    return x.astype(np.float32).astype(np.float64)


FUNCTIONS = {
    "exp": (np.exp, -708.0, 709.7),
    "expm1": (np.expm1, -40.0, 709.0),
    "log1p": (np.log1p, 0.0, 1.0),
    "tanh": (np.tanh, -30.0, 30.0),
    "phi": (scipy.special.ndtr, -16.9, 9.0),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_float64_helpers_within_2e_13_relative(name):
    truth, low, high = FUNCTIONS[name]
    x = _inputs(low, high)
    got = cpu.math_function(name, x)
    want = truth(x)
    nonzero = want != 0
    error = np.abs(got[nonzero] / want[nonzero] - 1)
    assert error.max() <= 2e-13, (name, x[nonzero][np.argmax(error)], error.max())
    assert np.all(got[~nonzero] == 0)


def test_float64_helpers_keep_signed_zeros_and_clamp():
    zero = np.array([0.0, -0.0])
    assert same_bits(cpu.math_function("expm1", zero), zero)
    assert same_bits(cpu.math_function("tanh", zero), zero)
    edges = np.array([-1e4, -746.0, 710.0, 1e4, np.nan])
    with np.errstate(over="ignore"):
        assert same_bits(cpu.math_function("exp", edges), np.exp(edges))
    subnormal = np.linspace(-745.0, -709.0, 1001)
    got, want = cpu.math_function("exp", subnormal), np.exp(subnormal)
    assert np.all(np.abs(got - want) <= 2e-16 * want + 2.0**-1074)
    assert cpu.math_function("expm1", np.array([-1e4]))[0] == -1.0
    assert np.all(cpu.math_function("tanh", np.array([-1e4, 1e4])) == [-1.0, 1.0])


def test_warm_up_reports_each_member():
    timings = cpu.warm_up((np.float32,))
    assert "import numba" in timings
    assert {"relu float32", "gelu float32", "tanh float32"} <= set(timings)
    assert all(t >= 0 for t in timings.values())


def test_concurrent_cache_writers_cannot_give_one_kernel_another_kernels_code(tmp_path):
    # Two processes that both read the cache index before either wrote it: each data file is
    # named by its key, so an index entry can only ever lead to the code saved for that key.
    from relukit.kernels.cpu import compile, kernels

    first = compile._KeyNamedCacheFile(str(tmp_path), "kernel-1.py311", "stamp")
    second = compile._KeyNamedCacheFile(str(tmp_path), "kernel-1.py311", "stamp")
    stale = second._load_index()
    first.save(("float32",), "code for float32")
    second._load_index = lambda: dict(stale)  # it read the index before first's write
    second.save(("float64",), "code for float64")
    assert first.load(("float64",)) == "code for float64"
    assert first.load(("float32",)) in (None, "code for float32")
    kernel = kernels.map_kernel(kernels.RELU, kernels.FORWARD)
    assert isinstance(kernel._cache._cache_file, compile._KeyNamedCacheFile)


STAMPED = """
import sys

import numpy as np
from relukit.kernels.cpu import compile
compile.STAMP += int(sys.argv[1])  # (as if a helper in another module had changed)
from relukit.kernels.cpu import slopes
slopes.count_off(np.zeros(5, np.float32), True)
stats = slopes.count_off.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_a_kernel_s_disk_cache_is_valid_only_for_the_sources_stamp(tmp_path):
    # Numba checks only the file that defines a kernel; its index carries compile.STAMP too,
    # so a kernel of slopes.py (which inlines intrinsics.py's helpers) compiles again when
    # another module changes, and loads from the cache while none has
    from relukit.kernels.cpu import compile, slopes

    assert slopes.count_off._cache._cache_file._source_stamp[1] == compile.STAMP
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def hits_and_misses(change: int) -> str:
        run = [sys.executable, "-c", STAMPED, str(change)]
        done = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert hits_and_misses(0) == ["0", "1"]  # (compiled, saved)
    assert hits_and_misses(0) == ["1", "0"]  # (loaded)
    assert hits_and_misses(1) == ["0", "1"]  # (another stamp: compiled again)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "name", [s.name for s in MEMBERS if s.elementwise and not s.piecewise_linear]
)
def test_underflowed_results_keep_the_sign_of_the_reference_path(name, dtype):
    # the thorough fuzz found silu'(float32 -3.4e38) = +0 where the limit from below is -0
    x = np.array([-105, -200, -1e30, -3.4e38, 105, 1e30], dtype)
    f = relukit.get(name)
    for op in ("__call__", "derivative"):
        got = getattr(f, op)(x)
        with dispatch.forced("reference"):
            expected = getattr(f, op)(x)
        zeros = (got == 0) | (expected == 0)
        np.testing.assert_array_equal(
            np.signbit(got)[zeros], np.signbit(expected)[zeros], err_msg=f"{name}.{op}"
        )


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["relu", "leaky_relu", "relu6", "hardtanh", "gelu", "elu"])
def test_16_bit_arrays_take_the_direct_calls_and_give_the_general_path_s_bits(
    name, dtype, monkeypatch
):
    if dtype == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    function = relukit.get(name)
    n = 5000
    x = sample((n,), np.dtype(np.float32)).astype(dtype)
    g = sample((n,), np.dtype(np.float32))[::-1].astype(dtype)
    apart = np.empty(2 * n, dtype)[::2]  # a strided view: the general path
    ga = np.empty(2 * n, dtype)[::2]
    apart[...], ga[...] = x, g
    taken = []
    for method in ("map", "forward", "backward"):
        original = getattr(host.Calls, method)

        def spy(self, *args, _original=original, _method=method, **kwargs):
            taken.append(_method)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(host.Calls, method, spy)
    with dispatch.forced("compiled"):
        assert same_bits(function(x), function(apart))
        assert same_bits(function.derivative(x), function.derivative(apart))
        assert same_bits(function.vjp(x, g), function.vjp(apart, ga))
        y = np.empty_like(x)
        assert function(x, out=y) is y and same_bits(y, function(apart))
        z = x.copy()
        assert function(z, out=z) is z and same_bits(z, function(apart))
        if function.spec.mask_code is not None:
            y, mask = function.forward_with_mask(x)
            ya, mask_a = function.forward_with_mask(apart)
            assert same_bits(y, ya) and np.array_equal(mask, mask_a)
            dx = function.backward_from_mask(g, mask)
            assert same_bits(dx, function.backward_from_mask(ga, mask_a))
    assert {"map"} <= set(taken)
    if function.spec.mask_code is not None:
        assert {"forward", "backward"} <= set(taken)


FEW_VALUES = [
    ("relu", {}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": -0.0}),
    ("leaky_relu", {"negative_slope": 1e30}),
    ("relu6", {}),
    ("hardtanh", {"min_val": -0.0, "max_val": 0.0}),
    ("hardtanh", {"min_val": -1 / 3, "max_val": 70000.0}),
    ("general_relu", {"negative_slope": 0.1, "threshold": -0.3, "max_value": 6.1}),
    ("general_relu", {"negative_slope": 0.2, "threshold": 0.5}),
    ("prelu", {"weight": 0.25}),  # (as leaky_relu, as rrelu in evaluation)
]


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=lambda d: d.name)
@pytest.mark.parametrize(("name", "params"), FEW_VALUES, ids=lambda v: str(v))
def test_16_bit_derivatives_of_a_few_values_on_every_input(name, params, dtype):
    # The piecewise-linear members' 16-bit derivatives choose one of their few values on the
    # elements' order keys, 32 at a time, and the last ones alone: against the float32
    # derivative of the widened inputs rounded back (a NaN quieted, as narrow rounds it), on
    # all 65,536 inputs at every offset from a vector, in place and into another array
    if dtype == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    f = relukit.get(name, **params)
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    x = bits.view(dtype)
    with dispatch.forced("reference"):
        wide = np.asarray(f.derivative(x.astype(np.float32)))
    want = wide.astype(dtype).view(np.uint16)
    nan = np.isnan(wide)
    quiet = (bits & 0x8000) | 0x7E00 if dtype == np.float16 else bits | 0x0040
    want = np.where(nan, quiet, want).astype(np.uint16)
    shuffled = np.random.default_rng(0).permutation(1 << 16)  # (every kind of value at the ends)
    for order in (slice(None), shuffled):
        for offset in (0, 5, 31):
            xs, ws = x[order][offset:], want[order][offset:]
            np.testing.assert_array_equal(f.derivative(xs).view(np.uint16), ws, str(offset))
            inplace = xs.copy()
            assert f.derivative(inplace, out=inplace) is inplace
            np.testing.assert_array_equal(inplace.view(np.uint16), ws)
    xs, ws = x[shuffled], want[shuffled]
    for start in range(0, 1 << 12, 31):  # (fewer than a vector: element by element)
        got = f.derivative(xs[start : start + 31]).view(np.uint16)
        np.testing.assert_array_equal(got, ws[start : start + 31], str(start))


WIDE_16 = ["gelu", "silu", "mish", "elu", "softplus", "tanh", "sigmoid"]


@pytest.mark.parametrize("dtype", [np.dtype(np.float16), BF16], ids=lambda d: d.name)
@pytest.mark.parametrize("name", WIDE_16)
def test_16_bit_smooth_members_look_up_their_kernel_s_bits_once_a_table_pays(
    name, dtype, monkeypatch
):
    # A smooth member's forward and derivative of 16-bit floats compute every 16-bit input
    # once (host.Calls.lookup_table) after TABLE_AFTER elements and then look results up: the
    # bits of all 65,536 inputs must be the kernel's, whole (by the lookup's entry point, from
    # TABLE_FROM elements), split over threads, out= and in place, as below TABLE_FROM elements
    # (the kernel itself); and the table must stay the kernel's (the derivative's made first)
    if dtype == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    for pinned in ("GRAIN_LINEAR", "GRAIN_SMOOTH", "STREAM_BYTES"):  # (small_chunks' pins)
        monkeypatch.setattr(host, pinned, None)
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(dtype)
    assert 2 * every.size == host.TABLE_AFTER
    function = relukit.get(name, **({"beta": 1.7} if name == "softplus" else {}))
    function._make_fast()  # (a fresh Calls: nothing counted, no table)
    for op in ("derivative", "forward"):
        call = function if op == "forward" else function.derivative
        kernel = call(every)  # (the kernel: 2^16 elements make no table)
        calls = function._fast.last[1]
        assert op not in calls.tables
        assert same_bits(call(every), kernel) and op in calls.tables  # (made, then looked up)
        zeros = np.zeros(host.TABLE_FROM, dtype)  # (below WHOLE_BELOW: the entry point's route)
        assert zeros.size < host.WHOLE_BELOW[calls.cost]
        for _ in range(2):
            assert same_bits(call(zeros), np.full_like(zeros, kernel[0]))
        assert calls.tables[op].view(dtype).tobytes() == kernel.tobytes()
        shuffled = np.random.default_rng(3).permutation(every)
        want = kernel[shuffled.view(np.uint16)]
        assert same_bits(call(shuffled[: 3 * host.TABLE_FROM]), want[: 3 * host.TABLE_FROM])
        split = []
        original = host.run_chunks

        def spy(kernel, args, chunks, *rest, _seen=split, _run=original, **options):
            _seen.append(len(chunks))
            return _run(kernel, args, chunks, *rest, **options)

        with threads.limit(2):
            monkeypatch.setattr(host, "GRAIN_SMOOTH", 4096)  # (split in chunks)
            monkeypatch.setattr(host, "run_chunks", spy)
            assert same_bits(call(shuffled), want)
            monkeypatch.setattr(host, "run_chunks", original)
            monkeypatch.setattr(host, "GRAIN_SMOOTH", None)
        assert split and split[0] > 1
        out = np.empty_like(shuffled)
        assert call(shuffled, out=out) is out and same_bits(out, want)
        inplace = shuffled.copy()
        assert call(inplace, out=inplace) is inplace and same_bits(inplace, want)
        small = shuffled[: host.TABLE_FROM - 1]
        assert same_bits(call(small), want[: small.size])
        assert calls.tables[op].view(dtype).tobytes() == kernel.tobytes()
