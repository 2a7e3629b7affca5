"""The map kernels as NumPy ufuncs (``Calls.ufunc``), which small NumPy calls take.

Their inner loop runs the same kernel as ``Calls.map``, so every member must give the same bits
through it, on any layout NumPy hands the loop (unit strides, other strides, overlapping
operands NumPy copies first), without NumPy's floating-point warnings; and the public call must
keep relukit's own results and errors around it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import relukit
from relukit.errors import UserTypeError, UserValueError
from relukit.kernels.cpu import host

DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
CASES = [(s.name, {}) for s in relukit.family() if s.elementwise and s.name != "prelu"] + [
    ("gelu", {"approximate": "tanh"}),
    ("softplus", {"beta": 3.0, "threshold": 0.2}),
    ("elu", {"alpha": 0.5}),
    ("leaky_relu", {"negative_slope": 0.07}),
    ("hardtanh", {"min_val": -0.1, "max_val": 2.5}),
    ("general_relu", {"negative_slope": 0.1, "max_value": 3.0, "threshold": 1.0}),
]


def sample(n: int, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal(n) * 6
    values[:7] = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-310]
    with np.errstate(over="ignore"):
        return values.astype(dtype)


def calls_of(function: relukit.Activation, dtype: np.dtype) -> host.Calls:
    function(np.ones(4, dtype))  # (makes the Fast path's Calls for this dtype)
    calls = function._fast._calls[dtype]
    assert calls is not None
    return calls


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("name", "params"), CASES, ids=lambda v: v if isinstance(v, str) else "")
def test_the_ufunc_gives_the_kernels_bits_on_every_layout(name, params, dtype):
    function = relukit.get(name, **params)
    if name == "rrelu":
        function = relukit.get(name, training=False, **params)
    calls = calls_of(function, dtype)
    x = sample(3000, dtype)
    for op in ("forward", "derivative"):
        want = np.empty_like(x)
        calls.map(op, x, x, want, False)
        ufunc = calls.ufunc(op)
        assert isinstance(ufunc, np.ufunc)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (NumPy's "invalid value encountered")
            assert np.array_equal(bits(ufunc(x)), bits(want))
            strided = np.repeat(x, 2)[::2]
            assert np.array_equal(bits(ufunc(strided)), bits(want))
            assert np.array_equal(bits(ufunc(x[::-1])[::-1]), bits(want))
            into = np.zeros(2 * x.size, dtype)
            assert ufunc(x, out=into[1::2]) is not None
            assert np.array_equal(bits(into[1::2]), bits(want)) and not into[::2].any()
            two = ufunc(x.reshape(60, 50))
            assert two.flags.c_contiguous and np.array_equal(bits(two), bits(want))
            shifted = np.concatenate([x, x[:1]])  # out one element past x, in one buffer
            ufunc(shifted[:-1], out=shifted[1:])
            assert np.array_equal(bits(shifted[1:]), bits(want))
            # the ufunc for calls in place: the buffered kernel over x itself, or the copies
            inplace = calls.ufunc(op, inplace=True)
            assert isinstance(inplace, np.ufunc) and inplace is not ufunc
            z = x.copy()
            assert inplace(z, z) is z and np.array_equal(bits(z), bits(want))
            spread = np.repeat(x, 2)
            inplace(spread[::2], spread[::2])
            assert np.array_equal(bits(spread[::2]), bits(want))
            assert np.array_equal(bits(spread[1::2]), bits(x))  # (untouched)
            backward = x.copy()[::-1]
            inplace(backward, backward)
            assert np.array_equal(bits(backward[::-1]), bits(want))
            grid = np.asfortranarray(x.copy().reshape(60, 50))
            inplace(grid, grid)
            assert np.array_equal(bits(grid), bits(want.reshape(60, 50)))
            shifted = np.concatenate([x, x[:1]])  # and apart, as the other one is
            inplace(shifted[:-1], out=shifted[1:])
            assert np.array_equal(bits(shifted[1:]), bits(want))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_one_compiled_loop_serves_every_member_each_with_its_own_kernel(dtype, monkeypatch):
    # (the loop calls the kernel at the address in its data: compiled once, not per member)
    x = sample(3000, dtype, seed=2)
    from numba.np.ufunc import _internal

    made: list[tuple[int, int]] = []  # (the loop's address, the kernel's)
    make = _internal.fromfunc

    def spy(*args):  # type: ignore[no-untyped-def]
        functions, kept = args[2], args[7]
        data = next(a for a in kept if isinstance(a, np.ndarray) and a.dtype == np.int64)
        made.append((functions[0], int(data[host._module().UFUNC_KERNEL])))
        return make(*args)

    monkeypatch.setattr(_internal, "fromfunc", spy)
    for name in ("relu", "leaky_relu", "hardtanh"):
        calls = calls_of(relukit.get(name).bind(), dtype)
        want = np.empty_like(x)
        calls.map("forward", x, x, want, False)
        assert np.array_equal(bits(calls.ufunc("forward")(x)), bits(want))
    assert len(made) == 3
    assert len({loop for loop, _ in made}) == 1  # one loop
    assert len({at for _, at in made}) == 3 and all(at != 0 for _, at in made)  # 3 kernels


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_small_calls_take_the_ufunc_and_keep_relukits_results(dtype, monkeypatch):
    function = relukit.get("leaky_relu", negative_slope=0.2)
    calls = calls_of(function, dtype)
    x = sample(1000, dtype, seed=1)
    want = np.empty_like(x)
    calls.map("forward", x, x, want, False)
    taken = []
    make = host.Calls.ufunc

    def spy(self, op, inplace=False):  # type: ignore[no-untyped-def]
        taken.append(op + (" in place" if inplace else ""))
        return make(self, op, inplace)

    monkeypatch.setattr(host.Calls, "ufunc", spy)
    calls.ufuncs.clear()
    calls.inplace_ufuncs.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = function(x)
        assert type(y) is np.ndarray and y.dtype == dtype and np.array_equal(bits(y), bits(want))
        out = np.empty_like(x)
        assert function(x, out=out) is out and np.array_equal(bits(out), bits(want))
        slope = function.derivative(x.reshape(20, 50))
        assert slope.shape == (20, 50)
    assert taken == ["forward", "derivative"]  # (made once each, then kept)
    # out's checks stay relukit's
    with pytest.raises(UserTypeError, match="out has dtype"):
        function(x, out=np.empty(x.size, np.float16))
    with pytest.raises(UserValueError, match="out has shape"):
        function(x, out=np.empty((2, x.size), dtype))
    read_only = np.full_like(x, 7.0)
    read_only.flags.writeable = False
    with pytest.raises(UserValueError, match="out is a read-only array"):
        function(x, out=read_only)  # (NumPy's ufunc refuses it, then relukit's check says so)
    assert np.all(read_only == 7.0)
    strided = np.empty(2 * x.size, dtype)[::2]  # (the ufunc's loop goes through copies)
    assert function(x, out=strided) is strided and np.array_equal(bits(strided), bits(want))
    scalar = function(np.asarray(x[10]))  # 0-d: not the ufunc (it would return a scalar)
    assert type(scalar) is np.ndarray and scalar.shape == ()
    assert np.array_equal(bits(scalar), bits(want[10:11]))
    assert taken == ["forward", "derivative"]
    # in place: the ufunc made for that, once; one element stays the kernel's (NumPy copies
    # it first, which costs more), and a read-only x gets relukit's error and keeps its values
    z = x.copy()
    assert function(z, out=z) is z and np.array_equal(bits(z), bits(want))
    z = x.copy()
    assert function(z, out=z) is z and np.array_equal(bits(z), bits(want))
    one = x[:1].copy()
    assert function(one, out=one) is one and np.array_equal(bits(one), bits(want[:1]))
    assert taken == ["forward", "derivative", "forward in place"]
    made = calls.inplace_ufuncs["forward"]
    seen = []

    def counting(a, b):  # type: ignore[no-untyped-def]
        seen.append(a.size)
        return made(a, b)

    calls.inplace_ufuncs["forward"] = counting
    for size in (1, 2):
        z = x[:size].copy()
        assert function(z, out=z) is z and np.array_equal(bits(z), bits(want[:size]))
    assert seen == [2]  # (one element: the kernel's entry point, not the ufunc)
    calls.inplace_ufuncs["forward"] = made
    frozen = x.copy()
    frozen.flags.writeable = False
    with pytest.raises(UserValueError, match="read-only"):
        function(frozen, out=frozen)
    assert np.array_equal(bits(frozen), bits(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_once_made_the_ufunc_takes_small_calls_first_and_relukit_still_checks_out(dtype):
    """The first route of a small call (the ufunc already made, the fewest checks) gives the
    kernel's bits on any layout of x, and an out of another shape, even one that x broadcasts
    to or one of x's ndim and size, gets relukit's error and stays as it was."""
    function = relukit.get("silu")
    calls = calls_of(function, dtype)
    x = sample(600, dtype, seed=4).reshape(20, 30)
    want = np.empty_like(x)
    calls.map("forward", x.reshape(-1), x.reshape(-1), want.reshape(-1), False)
    function(x)  # (makes the ufunc)
    assert calls.ufuncs.get("forward")
    assert np.array_equal(bits(function(x)), bits(want))
    assert np.array_equal(bits(function(x.T)), bits(want.T))  # (F-ordered: NumPy's copies)
    assert np.array_equal(bits(function(x[:, ::3])), bits(want[:, ::3]))
    out = np.empty((30, 20), dtype).T
    assert function(x, out=out) is out and np.array_equal(bits(out), bits(want))
    for shape in [(30, 20), (2, 20, 30), (600,), (1, 600)]:
        other = np.full(shape, 7.0, dtype)
        with pytest.raises(UserValueError, match="out has shape"):
            function(x, out=other)
        assert np.all(other == 7.0)
    # a new output's order is the general path's whichever route: x's for C and F, else C
    assert function(x.T).flags.f_contiguous and function(x[:, ::3]).flags.c_contiguous
    assert function(x.T[::2]).flags.c_contiguous
    row = x[:1]  # (1, 30): broadcasts to out's (20, 30)
    other = np.full((20, 30), 7.0, dtype)
    with pytest.raises(UserValueError, match="out has shape"):
        function(row, out=other)
    assert np.all(other == 7.0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_whole_calls_up_to_the_alias_bytes_keep_the_kernels_bits(dtype):
    """Above UFUNC_BELOW and below ALIAS_BYTES, on one thread (where a call runs whole), the
    first route takes contiguous x to the ufuncs; strided x go the general way. The bits are
    the kernel's on each."""
    from relukit import threads

    function = relukit.get("elu", alpha=0.5)
    calls = calls_of(function, dtype)
    n = 1 << 15
    assert dispatch_below() < n and n * dtype.itemsize < host.ALIAS_BYTES
    x = sample(n, dtype, seed=5)
    want = np.empty_like(x)
    calls.map("forward", x, x, want, False)
    with threads.limit(1):
        for _ in range(2):  # (the first call makes the ufuncs)
            assert np.array_equal(bits(function(x)), bits(want))
            out = np.empty_like(x)
            assert function(x, out=out) is out and np.array_equal(bits(out), bits(want))
            z = x.copy()
            assert function(z, out=z) is z and np.array_equal(bits(z), bits(want))
            grid = np.asfortranarray(x.reshape(128, 256))
            assert np.array_equal(bits(function(grid)), bits(want.reshape(128, 256)))
            strided = np.repeat(x, 2)[::2]
            assert np.array_equal(bits(function(strided)), bits(want))
            flipped = np.empty((256, 128), dtype).T  # (F-ordered out, C-ordered x: the
            # general path, which NumPy's per-row loop calls would make slower, same bits)
            assert function(x.reshape(128, 256), out=flipped) is flipped
            assert np.array_equal(bits(flipped), bits(want.reshape(128, 256)))
            z = np.repeat(x, 2)
            function(z[::2], out=z[::2])
            assert np.array_equal(bits(z[::2]), bits(want))
            assert np.array_equal(bits(z[1::2]), bits(x))  # (untouched)
    assert calls.ufuncs.get("forward") and calls.inplace_ufuncs.get("forward")


def dispatch_below() -> int:
    from relukit.kernels import dispatch

    return dispatch.UFUNC_BELOW


def test_without_the_ufunc_small_calls_take_the_kernel_as_before(monkeypatch):
    function = relukit.get("gelu")
    x = sample(500, np.dtype(np.float32), seed=2)
    want = function(x)
    calls = calls_of(function, np.dtype(np.float32))
    calls.ufuncs.clear()
    calls.inplace_ufuncs.clear()
    monkeypatch.setattr(host.Calls, "ufunc", lambda self, op, inplace=False: False)
    assert np.array_equal(bits(function(x)), bits(want))
    out = np.empty_like(x)
    assert function(x, out=out) is out and np.array_equal(bits(out), bits(want))
    z = x.copy()
    assert function(z, out=z) is z and np.array_equal(bits(z), bits(want))


def test_16_bit_floats_have_no_ufunc():
    import ml_dtypes

    for dtype in (np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)):
        function = relukit.get("relu")
        try:
            calls = calls_of(function, dtype)
        except AssertionError:  # (float16 without F16C: no Calls at all)
            continue
        assert calls.ufunc("forward") is False


def test_one_loop_per_member_op_and_dtype_whatever_the_parameters(monkeypatch):
    # each bound member gets a ufunc of its own (its parameters), on one compiled loop: loading
    # the loop again for each had cost 3 ms and 45 kB of JIT memory per relukit.get
    kernels = host._module()
    made = []
    build = kernels.ufunc_loop

    def spy(*args):  # type: ignore[no-untyped-def]
        made.append(args[:3])
        return build(*args)

    monkeypatch.setattr(kernels, "ufunc_loop", spy)
    monkeypatch.setattr(host, "_kernel_cache", dict(host._kernel_cache))
    for key in [k for k in host._kernel_cache if k[0] == "ufunc"]:
        del host._kernel_cache[key]
    x = sample(100, np.dtype(np.float32), seed=3)
    for slope in (0.1, 0.2, 0.3):
        function = relukit.get("leaky_relu", negative_slope=slope)
        want = np.where(x > 0, x, np.float32(slope) * x)
        assert np.array_equal(bits(function(x)[7:]), bits(want[7:]))
    assert len(made) == 1


def test_no_ufunc_where_its_loop_cannot_clear_the_float_flags(monkeypatch):
    monkeypatch.setattr(host, "UFUNCS", False)
    function = relukit.get("elu", alpha=0.3)
    calls = calls_of(function, np.dtype(np.float64))
    calls.ufuncs.clear()
    assert calls.ufunc("forward") is False
    x = sample(100, np.dtype(np.float64), seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert function(x).shape == x.shape
