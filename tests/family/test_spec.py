"""The Activation data type, its parameter binding and checks, and the registry's lookup."""

from __future__ import annotations

import math

import pytest

from relukit.family import MEMBERS, lookup
from relukit.family.spec import (
    INF,
    Activation,
    Kink,
    Limits,
    Parameter,
    ParameterError,
    boolean,
    constant,
    integer,
    non_negative,
    optional_real,
    positive,
    positive_integer,
    real,
)


def _identity(m, x):
    return x


def _one(m, x):
    return m.ones_like(x)


def _toy(**overrides) -> Activation:
    fields = {
        "name": "toy",
        "formula": "x",
        "latex": "x",
        "forward": _identity,
        "derivative": _one,
        "reference": "none",
        "year": 2000,
        "output_range": "(-∞, ∞)",
    }
    fields.update(overrides)
    return Activation(**fields)


# ---------------------------------------------------------------------------------------------
# construction


def test_exactly_one_of_derivative_and_vjp():
    with pytest.raises(TypeError, match="toy: give exactly one of derivative and vjp"):
        _toy(derivative=None)
    with pytest.raises(TypeError, match="exactly one"):
        _toy(vjp=lambda m, x, g: g)


def test_integers_policy_is_checked():
    with pytest.raises(TypeError, match="integers must be"):
        _toy(integers="round")
    for policy in ("same", "float", "refuse"):
        assert _toy(integers=policy).integers == policy


def test_elementwise_and_piecewise_linear_flags():
    toy = _toy()
    assert toy.elementwise and not toy.piecewise_linear
    assert toy.derivative_bits() == 0
    structural = _toy(derivative=None, vjp=lambda m, x, g: g)
    assert not structural.elementwise


@pytest.mark.parametrize(
    ("pieces", "bits"), [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4)]
)
def test_derivative_bits_is_the_ceiling_of_log2_of_the_pieces(pieces, bits):
    assert _toy(derivative_pieces=lambda p: pieces).derivative_bits() == bits


def test_derivative_bits_of_the_registry():
    relu, general = lookup("relu"), lookup("general_relu")
    assert relu.derivative_bits() == 1
    assert general.derivative_bits() == 1  # slopes {0, 1}
    assert general.derivative_bits({"negative_slope": 0.1}) == 1  # {0.1, 1}
    assert general.derivative_bits({"negative_slope": 0.1, "max_value": 6.0}) == 2  # {0.1, 1, 0}
    assert general.derivative_bits({"max_value": 6.0}) == 1  # {0, 1}
    assert lookup("gelu").derivative_bits() == 0


def test_names_are_the_name_then_the_aliases():
    assert _toy(aliases=("a", "b")).names == ("toy", "a", "b")
    assert lookup("silu").names == ("silu", "swish")


# ---------------------------------------------------------------------------------------------
# binding


def _bindable() -> Activation:
    return _toy(
        parameters=(
            Parameter("a", 1.0, "first", positive),
            Parameter("b", 2, "second", integer, int),
            Parameter("c", None, "free"),
        ),
        check=lambda p: None if p["a"] < p["b"] else f"a={p['a']!r} must be < b={p['b']!r}",
    )


def test_bind_overlays_defaults():
    spec = _bindable()
    assert spec.bind({}) == {"a": 1.0, "b": 2, "c": None}
    assert spec.bind({"a": 0.5, "c": "anything"}) == {"a": 0.5, "b": 2, "c": "anything"}


def test_bind_names_an_unknown_parameter_with_its_value_and_the_choices():
    with pytest.raises(ParameterError, match=r"unknown parameter z=3 \(parameters: a, b, c\)"):
        _bindable().bind({"z": 3})
    with pytest.raises(ParameterError, match=r"unknown parameter slope=0\.1 \(parameters: none\)"):
        lookup("relu").bind({"slope": 0.1})


def test_bind_reports_a_failed_parameter_check_with_name_and_value():
    with pytest.raises(ParameterError, match=r"a=-1\.0: must be > 0"):
        _bindable().bind({"a": -1.0})
    with pytest.raises(ParameterError, match=r"b=2\.5: must be an integer"):
        _bindable().bind({"b": 2.5})


def test_bind_runs_the_member_check_after_the_parameter_checks():
    with pytest.raises(ParameterError, match=r"a=3\.0 must be < b=2"):
        _bindable().bind({"a": 3.0})


def test_parameter_error_is_a_value_error():
    assert issubclass(ParameterError, ValueError)


def test_every_default_passes_its_own_check():
    for spec in MEMBERS:
        for parameter in spec.parameters:
            if parameter.check is not None:
                assert parameter.check(parameter.default) is None, (spec.name, parameter.name)
        spec.bind({})


# ---------------------------------------------------------------------------------------------
# checks


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (real, [0, -1.5, 3, 1e300], ["1", None, True, math.inf, -math.inf, math.nan, 1j]),
        (positive, [1e-300, 2, 0.5], [0, 0.0, -1, math.inf, math.nan, False, "2"]),
        (non_negative, [0, 0.0, 2.5], [-1e-300, -1, math.nan, math.inf, True]),
        (optional_real, [None, 0, -2.5], [math.nan, "x", True]),
        (integer, [0, -3, 7], [1.0, True, False, "1", None]),
        (positive_integer, [1, 5], [0, -1, 2.0, True]),
        (boolean, [True, False], [0, 1, None, "True"]),
    ],
)
def test_checks(check, good, bad):
    for value in good:
        assert check(value) is None, value
    for value in bad:
        problem = check(value)
        assert isinstance(problem, str) and problem, value


def test_check_messages():
    assert real("1") == "must be a real number"
    assert real(math.nan) == "must be finite"
    assert positive(0) == "must be > 0"
    assert non_negative(-1) == "must be >= 0"
    assert positive_integer(0) == "must be >= 1"
    assert boolean(1) == "must be True or False"


def test_constant_ignores_the_parameters():
    f = constant(2.5)
    assert f({}) == 2.5 and f({"anything": 1}) == 2.5


def test_kink_and_limits_hold_functions_of_the_parameters():
    kink = Kink("x = t", "s", lambda p: p["t"], lambda p: p["s"])
    assert kink.at({"t": 3.0, "s": 0.5}) == 3.0 and kink.derivative({"t": 3.0, "s": 0.5}) == 0.5
    limits = Limits(lambda p: (-p["a"], INF), lambda p: (0.0, 1.0))
    assert limits.forward({"a": 2.0}) == (-2.0, INF)
    assert limits.derivative({}) == (0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# lookup


@pytest.mark.parametrize(
    ("name", "member"),
    [
        ("relu", "relu"),
        ("ReLU", "relu"),
        ("  leaky-relu ", "leaky_relu"),
        ("Leaky_ReLU", "leaky_relu"),
        ("swish", "silu"),
        ("SWISH", "silu"),
        ("relu6", "relu6"),
    ],
)
def test_lookup_normalises_names_and_knows_aliases(name, member):
    assert lookup(name).name == member


def test_lookup_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"unknown activation 'relu7' \(choose from: relu, leaky"):
        lookup("relu7")


def test_lookup_needs_a_string():
    with pytest.raises(TypeError, match="must be a string, got int"):
        lookup(3)


def test_names_and_aliases_are_unique_across_the_registry():
    names = [name for spec in MEMBERS for name in spec.names]
    assert len(names) == len(set(names))
    assert all(name == name.lower().replace("-", "_") for name in names)
