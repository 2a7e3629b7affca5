"""The public callables: integer inputs, parameters as NumPy and PyTorch users spell them,
the errors that name function, parameter and value, and pickling (issue 10)."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pytest
import torch

import relukit
from relukit.family import MEMBERS, ParameterError

# ---------------------------------------------------------------------------------------------
# integer inputs


@pytest.mark.parametrize("name", ["relu", "relu6", "hardtanh"])
def test_integer_x_does_not_truncate_the_gradient(name):
    f = relukit.get(name)
    x = [-2, 0, 2, 7]
    expected = f.vjp(np.array(x, dtype=np.float64), np.full(4, 0.5))
    for got in (
        f.vjp(x, [0.5, 0.5, 0.5, 0.5]),
        f.vjp(np.array(x), np.full(4, 0.5)),
    ):
        np.testing.assert_array_equal(got, expected)
        assert got.dtype.kind == "f"
    for int_dtype in (np.int8, np.int16, np.int64, np.uint32):
        g = np.full(4, 0.5, np.float32)
        got = f.vjp(np.array(x).astype(int_dtype), g)
        assert got.dtype == np.result_type(int_dtype, np.float32)  # NumPy's x * g
    derivative = f.derivative(np.array(x))
    assert derivative.dtype == np.float64
    np.testing.assert_array_equal(derivative, f.derivative(np.array(x, dtype=np.float64)))
    # integer grad_out too: NumPy's int * int is int, but a gradient is a float
    assert f.vjp(np.array(x), np.array([3, 3, 3, 3])).dtype == np.float64
    t = f.vjp(torch.tensor(x), torch.full((4,), 0.5))
    assert t.dtype == torch.float32 and t.tolist() == expected.tolist()
    # the forward keeps the integer dtype, as NumPy's maximum and PyTorch's relu do
    assert f(np.array(x)).dtype == np.int64


INTEGER_MEMBERS = [s.name for s in MEMBERS if s.elementwise and s.integers != "refuse"]


@pytest.mark.parametrize("name", INTEGER_MEMBERS)
@pytest.mark.parametrize("n", [1, 1020, 5000])
def test_an_integer_x_gives_the_bits_of_its_promoted_float_values(name, n):
    # one answer: 26 as an int8 and 26.0 as a float64 take the same path (the thorough fuzz
    # found sigmoid's derivative one ulp apart when integers stayed on the reference path)
    f = relukit.get(name)
    x = np.resize(np.array([-7, -1, 0, 1, 3, 26], np.int8), n)
    g = np.full(n, 0.5, np.float32)
    for op, args in (("derivative", ()), ("vjp", (g,))):
        got = getattr(f, op)(x, *args)
        expected = getattr(f, op)(x.astype(got.dtype), *args)
        np.testing.assert_array_equal(got, expected, err_msg=f"{name}.{op}")
    if f(x).dtype.kind == "f":
        np.testing.assert_array_equal(f(x), f(x.astype(np.float64)))


def test_python_ints_are_promoted_like_numpy_for_float_only_members():
    assert relukit.gelu(1) == relukit.gelu(1.0)
    np.testing.assert_array_equal(relukit.elu([-1, 0, 1]), relukit.elu([-1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(relukit.leaky_relu((-1, 2)), [-0.01, 2.0])
    np.testing.assert_array_equal(
        relukit.elu.vjp([-1, 1], [1, 1]), relukit.elu.derivative([-1.0, 1.0])
    )
    # an integer array stays refused, as PyTorch refuses it, with a clear message
    with pytest.raises(TypeError, match=r"relukit\.elu: x has integer dtype int64"):
        relukit.elu(np.array([1, 2]))


# ---------------------------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize(
    ("name", "params", "same_as"),
    [
        ("leaky_relu", {"negative_slope": np.float32(0.5)}, {"negative_slope": 0.5}),
        ("leaky_relu", {"negative_slope": torch.tensor(0.5)}, {"negative_slope": 0.5}),
        ("leaky_relu", {"negative_slope": np.array(0.5)}, {"negative_slope": 0.5}),
        ("maxout", {"pieces": np.int64(2)}, {"pieces": 2}),
        (
            "hardtanh",
            {"min_val": np.float64(-2), "max_val": torch.tensor(3)},
            {"min_val": -2.0, "max_val": 3},
        ),
        ("rrelu", {"training": np.bool_(True), "seed": np.int64(4)}, {"training": True, "seed": 4}),
        ("prelu", {"weight": [0.5, 0.1]}, {"weight": np.array([0.5, 0.1])}),
        ("prelu", {"weight": (np.float32(0.5), 0.1)}, {"weight": np.array([0.5, 0.1])}),
        ("gelu", {"approximate": np.str_("tanh")}, {"approximate": "tanh"}),
    ],
)
def test_numpy_and_torch_scalars_and_lists_are_parameters(name, params, same_as):
    x = np.array([[-2.0, 3.0], [-4.0, -1.0]])
    np.testing.assert_array_equal(relukit.get(name, **params)(x), relukit.get(name, **same_as)(x))


def test_prelu_weight_list_has_a_weight_gradient():
    x = np.array([[-2.0, 3.0], [-4.0, -1.0]])
    got = relukit.prelu.vjp(x, np.ones_like(x), weight=[0.5, 0.1], wrt="weight")
    np.testing.assert_array_equal(got, [-6.0, -1.0])


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        (
            lambda: relukit.prelu(np.ones((2, 3)), weight=[0.1, 0.2, 0.3], axis=7),
            ValueError,
            r"relukit\.prelu: axis=7 is out of range for an input with 2 axes",
        ),
        (
            lambda: relukit.get("leaky_relu", negative_slope=10**400),
            ValueError,
            r"relukit\.leaky_relu: negative_slope=1000.*\(401 digits\): must be finite",
        ),
        (
            lambda: relukit.get("maxout", pieces=np.float32(2.5)),
            ValueError,
            r"relukit\.maxout: pieces=2\.5: must be an integer",
        ),
        (lambda: relukit.get("prelu", weight=[]), ValueError, r"weight=\[\]: must hold"),
        (lambda: relukit.get("prelu", weight=["a"]), ValueError, r"weight=\['a'\]: slope"),
        (
            lambda: relukit.relu.vjp([1.0], None),
            TypeError,
            r"relukit\.relu\.vjp: grad_out must be a real number or array, got .*NoneType",
        ),
        (
            lambda: relukit.gelu(np.ones(3, dtype=np.longdouble)),
            TypeError,
            r"relukit\.gelu: x has dtype float128 \(long double\)",
        ),
    ],
)
def test_errors_name_function_parameter_and_value(call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    assert isinstance(info.value, relukit.UserError)
    assert "\n" not in str(info.value)


def test_vjp_with_out_names_it_without_printing_the_array():
    big = np.zeros(5000)
    with pytest.raises(ValueError, match=r"relukit\.relu: unknown parameter out=") as info:
        relukit.relu.vjp(np.ones(5000), np.ones(5000), out=big)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


@pytest.mark.parametrize("n", [3, 5000])
def test_read_only_out_is_refused_by_relukit_and_left_alone(n):
    out = np.zeros(n)
    out.flags.writeable = False
    for op in ("__call__", "derivative"):
        with pytest.raises(ValueError, match=r"relukit\.relu: out is a read-only array"):
            getattr(relukit.relu, op)(np.ones(n), out=out)
    with pytest.raises(ValueError, match=r"forward_with_mask: out is a read-only array"):
        relukit.relu.forward_with_mask(np.ones(n), out=out)
    assert not out.any()
    leaf = torch.zeros(n, requires_grad=True)
    with pytest.raises(ValueError, match=r"relukit\.relu: out is a tensor that requires grad"):
        relukit.relu(torch.ones(n), out=leaf)


# ---------------------------------------------------------------------------------------------
# pickling


@pytest.mark.parametrize(
    "f",
    [
        relukit.relu,
        relukit.swish,
        relukit.maxout,
        relukit.get("leaky_relu", negative_slope=0.1),
        relukit.get("general_relu", negative_slope=0.2, max_value=0.0, threshold=-1.0),
        relukit.get("prelu", weight=np.array([0.5, 0.1])),
        relukit.get("rrelu", training=True, seed=3),
        relukit.get("gelu", approximate="tanh"),
    ],
    ids=repr,
)
def test_members_pickle_by_name_and_parameters(f):
    data = pickle.dumps(f)
    assert len(data) < 1000  # by reference, not by value
    g = pickle.loads(data)
    assert repr(g) == repr(f)
    x = np.array([[-2.0, 3.0], [-4.0, -1.0]])
    np.testing.assert_array_equal(g(x), f(x))
    if f.params == {} or f is relukit.swish:
        assert g is f or g is relukit.silu


def test_process_pool_maps_a_member_like_a_ufunc():
    chunks = [np.linspace(-3, 3, n) for n in (5, 2000, 7)]
    leaky = relukit.get("leaky_relu", negative_slope=0.2)
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(relukit.relu, chunks))
        leaky_results = list(pool.map(leaky, chunks))
    for chunk, result, leaky_result in zip(chunks, results, leaky_results, strict=True):
        np.testing.assert_array_equal(result, np.maximum(chunk, 0))
        np.testing.assert_array_equal(leaky_result, leaky(chunk))


def test_weight_gradient_checks_the_shape_of_grad_out():
    """Found by the fuzz harness: NumPy's broadcasting error escaped."""
    with pytest.raises(ValueError, match=r"relukit\.prelu: grad_out has shape \(0,\)"):
        relukit.prelu.vjp(np.zeros(5), np.zeros(0), wrt="weight")


# ---------------------------------------------------------------------------------------------
# the one-frame path of NumPy arrays (dispatch.elementwise_method)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "gelu", "elu"])
@pytest.mark.parametrize("shape", [(5,), (3, 7), (2, 3, 1500)])
def test_repeated_calls_take_every_form_of_out_as_the_general_path_does(name, shape):
    from relukit.kernels import dispatch

    f = relukit.get(name)
    rng = np.random.default_rng(3)
    for dtype in (np.float32, np.float64, np.float32):  # (the second float32: a dtype switch)
        x = rng.normal(size=shape).astype(dtype)
        before = x.copy()
        with dispatch.forced("reference"):
            want = f(x)
            want_d = f.derivative(x)
        for op, expected in ((f, want), (f.derivative, want_d)):
            for _ in range(2):  # the first call finds the dtype's kernels; the second is lean
                got = op(x)
                assert got.shape == shape and got.dtype == dtype
                np.testing.assert_allclose(
                    got, expected, rtol=4e-7 if dtype == np.float32 else 1e-15
                )
                out = np.full(shape, np.nan, dtype)
                assert op(x, out=out) is out
                np.testing.assert_array_equal(out, got)
                z = x.copy()
                assert op(z, out=z) is z
                np.testing.assert_array_equal(z, got)
                np.testing.assert_array_equal(x, before)
        # another layout or dtype of out: the general path writes it or names the mismatch
        wide = np.empty(shape, np.float64 if dtype == np.float32 else np.float32)
        with pytest.raises(TypeError, match="out has dtype"):
            f(x, out=wide)
        if len(shape) > 1:
            transposed = np.empty(shape[::-1], dtype).T
            assert f(x, out=transposed) is transposed
            np.testing.assert_array_equal(transposed, f(x))


def test_the_one_frame_path_leaves_read_only_and_overlapping_arrays_to_the_general_path():
    x = np.linspace(-3.0, 3.0, 4096, dtype=np.float32)
    relukit.relu(x)  # (the dtype's kernels found: the next calls are lean)
    frozen = x.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        relukit.relu(frozen, out=frozen)
    np.testing.assert_array_equal(relukit.relu(frozen), np.maximum(x, 0))
    buffer = np.random.default_rng(0).normal(size=4097).astype(np.float32)
    expected = np.maximum(buffer[:-1], 0)  # (written one element on from where it is read)
    relukit.relu(buffer[:-1], out=buffer[1:])
    np.testing.assert_array_equal(buffer[1:], expected)
    empty = np.empty((0, 3), np.float32)
    assert relukit.relu(empty).shape == (0, 3)
    assert relukit.relu.derivative(empty, out=empty) is empty


@pytest.mark.parametrize("n", [3, 3000])
def test_a_parameter_past_the_dtype_s_range_rounds_to_inf_on_torch_as_on_numpy(n):
    # the fuzz test found torch's where refusing negative_slope=1e308 on float32 tensors
    x = np.resize(np.array([-1.0, 2.0, -np.inf, 0.0], np.float32), n)
    f = relukit.leaky_relu
    for op in ("__call__", "derivative"):
        with np.errstate(over="ignore", invalid="ignore"):
            expected = getattr(f, op)(x, negative_slope=1e308)
            got = getattr(f, op)(torch.from_numpy(x).requires_grad_(), negative_slope=1e308)
        np.testing.assert_array_equal(got.detach().numpy(), expected, err_msg=op)


@pytest.mark.parametrize("op", ["__call__", "derivative", "vjp"])
def test_a_tensor_that_requires_grad_gets_a_result_without_a_warning(op):
    # (the reference path's last asarray, meant for NumPy's 0-d scalars, asked torch.asarray
    # of such a tensor, which warns in torch 2.13 that requires_grad now defaults to its own)
    import warnings

    x = torch.tensor([-1.0, 0.5, 2.0, -3.0], requires_grad=True)
    for spec in MEMBERS:
        if not spec.elementwise and op != "__call__":
            continue
        f = relukit.get(spec.name)
        args = (x, torch.ones(4)) if op == "vjp" else (x,)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = getattr(f, op)(*args)
        want = getattr(f, op)(*(a.detach() for a in args))  # (the same bits: kernels.tracked)
        assert torch.equal(got.detach(), want), spec.name


PAST_THE_RANGE = [
    ("leaky_relu", {"negative_slope": 1e308}),
    ("leaky_relu", {"negative_slope": -1e300}),
    ("general_relu", {"max_value": 1e300}),
    ("general_relu", {"negative_slope": 1e300, "threshold": 1e300}),
    ("hardtanh", {"min_val": -1e300, "max_val": 1e300}),
    ("prelu", {"weight": 1e300}),
    ("elu", {"alpha": 1e300}),
    ("celu", {"alpha": 1e300}),
    ("softplus", {"beta": 1e300}),
    ("rrelu", {"lower": 1e300, "upper": 1e301}),
]


@pytest.mark.parametrize(("name", "params"), PAST_THE_RANGE, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=lambda d: d.__name__)
def test_a_parameter_past_the_dtype_s_range_warns_of_nothing(name, params, dtype):
    # (it rounds to ±inf in the dtype, as documented: NumPy's casts of it warned, at 96 of
    # these calls, from the kernels' plan and the mask path's derivative table)
    import warnings

    f = relukit.get(name)
    x = np.resize(np.array([-1.0, 2.0, 0.0, -np.inf], dtype), 5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(x, **params)
        f.derivative(x, **params)
        f(torch.from_numpy(x), **params)
        if f.spec.mask_code is not None:
            _, mask = f.forward_with_mask(x, **params)
            f.backward_from_mask(x, mask, **params)


def test_integer_inputs_keep_numpy_s_rules_for_parameters_past_their_range():
    # (the working dtype is the integer one: a bound past int8's range is not rounded into it)
    x = np.array([-5, 3, 100], np.int8)
    f = relukit.hardtanh
    np.testing.assert_array_equal(f(x, min_val=-1000.0, max_val=1000.0), x)
    got = f(torch.from_numpy(x), min_val=-1000.0, max_val=1000.0)
    assert got.dtype == torch.int8 and torch.equal(got, torch.from_numpy(x))


# ---------------------------------------------------------------------------------------------
# keyword parameters per call: bound once per distinct set and kept


def test_keyword_parameters_take_the_bound_route_and_give_its_bits():
    f = relukit.get("leaky_relu")
    f._bound.clear()
    x = np.linspace(-3, 3, 1000, dtype=np.float32)
    bound = relukit.get("leaky_relu", negative_slope=0.07)
    for _ in range(3):
        np.testing.assert_array_equal(f(x, negative_slope=0.07), bound(x))
        np.testing.assert_array_equal(f.derivative(x, negative_slope=0.07), bound.derivative(x))
        np.testing.assert_array_equal(
            f.vjp(x, np.ones_like(x), negative_slope=0.07), bound.vjp(x, np.ones_like(x))
        )
        y, mask = f.forward_with_mask(x, negative_slope=0.07)
        np.testing.assert_array_equal(y, bound(x))
        np.testing.assert_array_equal(
            f.backward_from_mask(np.ones_like(x), mask, negative_slope=0.07),
            bound.vjp(x, np.ones_like(x)),
        )
    out = np.empty_like(x)
    assert f(x, out=out, negative_slope=0.07) is out
    np.testing.assert_array_equal(out, bound(x))
    assert len(f._bound) == 1  # one binding, made once, for every op
    (kept,) = f._bound.values()
    assert kept.params == bound.params


def test_keyword_parameters_tell_apart_the_sign_of_zero_and_the_type():
    f = relukit.get("leaky_relu")
    x = np.array([-1.0, 2.0])
    # x·(−0.0) is +0 for negative x; x·0.0 is −0: the two bindings must not be confused
    for first, second in ((-0.0, 0.0), (0.0, -0.0)):
        f._bound.clear()
        a = f(x, negative_slope=first)
        b = f(x, negative_slope=second)
        assert np.signbit(a[0]) == np.signbit(-1.0 * first)
        assert np.signbit(b[0]) == np.signbit(-1.0 * second)
    assert relukit.activation._params_key({"a": 1}) != relukit.activation._params_key({"a": True})


def test_keyword_parameters_that_may_change_are_bound_at_each_call():
    f = relukit.get("leaky_relu")
    f._bound.clear()
    slope = np.array(0.5)
    x = np.array([-2.0, 2.0])
    np.testing.assert_array_equal(f(x, negative_slope=slope), [-1.0, 2.0])
    slope[...] = 0.25  # a 0-d array changed in place: the next call sees the new value
    np.testing.assert_array_equal(f(x, negative_slope=slope), [-0.5, 2.0])
    t = torch.tensor(0.5)
    np.testing.assert_array_equal(f(x, negative_slope=t), [-1.0, 2.0])
    t.fill_(0.125)
    np.testing.assert_array_equal(f(x, negative_slope=t), [-0.25, 2.0])
    assert not f._bound


def test_keyword_parameters_kept_are_bounded_and_bad_ones_raise_and_change_nothing():
    f = relukit.get("leaky_relu")
    f._bound.clear()
    x = np.array([-2.0, 2.0])
    for k in range(relukit.activation._KEPT_BINDINGS + 5):
        assert f(x, negative_slope=k / 8)[0] == -2.0 * k / 8
        assert len(f._bound) <= relukit.activation._KEPT_BINDINGS
    out = np.full(2, 7.0)
    with pytest.raises(ParameterError, match=r"relukit\.leaky_relu: unknown"):
        f(x, out=out, slope=0.1)
    with pytest.raises(ParameterError, match=r"relukit\.relu6: unknown"):
        relukit.relu6.forward_with_mask(x, slope=0.1)
    np.testing.assert_array_equal(out, [7.0, 7.0])
    np.testing.assert_array_equal(x, [-2.0, 2.0])
