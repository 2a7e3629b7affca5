"""A registry formula the kernels have no code of their own for (a plain one) runs through its
``<key>_f(v, p)`` / ``<key>_d(v, p)`` pair in a formula module, numbered from the registry
(:data:`relukit.kernels.cpu.kernels.PLAIN`): adding such a member touches its record, its
formulas and its tests, not the kernels."""

from __future__ import annotations

import dataclasses
import sys
import types
from typing import Any

import numpy as np
import pytest
from numba.core.caching import NullCache

from relukit.family import MEMBERS, lookup
from relukit.kernels.cpu import host, kernels
from relukit.kernels.cpu.compile import jit
from relukit.kernels.cpu.dtypes import const as c


@jit
def shifted_f(v: Any, p: Any) -> Any:
    """``max(x − p[0], 0)``: relu of the input less a shift."""
    shift = c(v, p[0])
    return v - shift if v > shift else c(v, 0.0)


@jit
def shifted_d(v: Any, p: Any) -> Any:
    return c(v, 1.0) if v > c(v, p[0]) else c(v, 0.0)


FORMULAS = types.SimpleNamespace(
    shifted_test_f=shifted_f, shifted_test_d=shifted_d, smooth_test_f=shifted_f,
    smooth_test_d=shifted_d, half_test_f=shifted_f, orphan_test_f=shifted_f,
    orphan_test_d=shifted_d, prelu_f=shifted_f, prelu_d=shifted_d,
)  # fmt: skip


def test_every_formula_key_of_the_registry_has_a_member_code():
    for spec in MEMBERS:
        if spec.kernel is None:
            continue
        key = spec.kernel(spec.bind({}))[0]
        if key in host.FORMULAS:  # (adapted by the host: per-element slopes, flags)
            continue
        assert isinstance(kernels.code(key), int), spec.name
    assert all(number < kernels.FIRST_PLAIN for number in kernels.OWN_CODES.values())
    with pytest.raises(KeyError):
        kernels.code("no_such_formula")
    unknown = dataclasses.replace(lookup("relu"), kernel=lambda p: ("no_such_formula", ()))
    assert host.plan(unknown, "forward", {}, np.dtype(np.float32)) is None


def test_plain_formulas_are_the_formula_modules_pairs_in_order_of_key(monkeypatch):
    relu, silu = lookup("relu"), lookup("silu")
    added = (
        dataclasses.replace(relu, name="shifted", kernel=lambda p: ("shifted_test", (1.0,))),
        dataclasses.replace(silu, name="smoothed", kernel=lambda p: ("smooth_test", ())),
        dataclasses.replace(relu, name="half", kernel=lambda p: ("half_test", ())),  # no _d
    )
    before = {key: rest for key, *rest in kernels._plain_formulas().values()}
    monkeypatch.setattr(sys.modules["relukit.family"], "MEMBERS", (*MEMBERS, *added))
    monkeypatch.setattr(kernels, "FORMULA_MODULES", (*kernels.FORMULA_MODULES, FORMULAS))
    found = kernels._plain_formulas()
    expected = {
        **before,
        "shifted_test": [shifted_f, shifted_d, True],  # (piecewise linear: blocks g)
        "smooth_test": [shifted_f, shifted_d, False],
        "orphan_test": [shifted_f, shifted_d, False],  # (a pair no member names)
    }  # (not half_test, which has no _d, nor prelu, which the host adapts)
    assert found == {
        kernels.FIRST_PLAIN + i: (key, *expected[key]) for i, key in enumerate(sorted(expected))
    }
    monkeypatch.setattr(kernels, "PLAIN", found)
    assert found[kernels.code("shifted_test")][0] == "shifted_test"
    assert kernels.code("relu") == kernels.RELU


def _uncached(kernel: Any) -> Any:
    kernel._cache = NullCache()  # (these codes mean test formulas only in this process)
    return kernel


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("blocking", [True, False])
def test_the_map_kernel_calls_a_plain_pair_by_its_code(monkeypatch, dtype, blocking):
    code = 99  # (Numba keeps the pair it first typed for a code: one pair for 99 here)
    monkeypatch.setitem(kernels.PLAIN, code, ("shifted_test", shifted_f, shifted_d, blocking))
    x = np.array([-2.0, -0.0, 0.5, 1.0, 1.5, 3.0, np.inf, -np.inf, np.nan] * 40, dtype)
    g = np.full_like(x, np.inf)
    p = np.array([1.0, 0, 0, 0, np.nan, np.nan, 0, 0], dtype)
    y = np.empty_like(x)
    forward = _uncached(kernels.map_kernel(code, kernels.FORWARD))
    forward(x, x, x, y, p, 0, False, False)
    with np.errstate(invalid="ignore"):
        expected = np.where(x > 1, x - 1, np.where(np.isnan(x), x, 0)).astype(dtype)
    np.testing.assert_array_equal(y, expected)
    assert not np.signbit(y[x <= 1]).any()
    derivative = _uncached(kernels.map_kernel(code, kernels.DERIVATIVE))
    derivative(x, x, x, y, p, 0, False, False)
    np.testing.assert_array_equal(y, np.where(np.isnan(x), x, x > 1).astype(dtype))
    derivative(x, g, x, y, p, 0, False, True)  # the vjp, with g = inf
    with np.errstate(invalid="ignore"):
        product = np.where(np.isnan(x), x, g * (x > 1)).astype(dtype)
    # a piecewise-linear member's zero derivative blocks g (+0, the reference path's vjp);
    # a smooth member's multiplies it (inf·0 = NaN)
    expected = np.where((x <= 1) & blocking, 0, product).astype(dtype)
    np.testing.assert_array_equal(y, expected)
