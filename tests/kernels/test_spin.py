"""relukit.kernels.cpu.spin: the compiled glue of the kernels' threads (``call_at``, the call
of a compiled function through the address of its C wrapper)."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from relukit.kernels.cpu.spin import call_at, wrapper_address


@njit
def _scaled_sum(x, y, k, add):  # type: ignore[no-untyped-def]
    total = 0
    for i in range(x.size):
        y[i] = x[i] * k + (1.0 if add else 0.0)
        total += 1
    return total


@njit
def _calls(function, x, y, k, add):  # type: ignore[no-untyped-def]
    return call_at(function, (x[1:], y[1:], k, add), np.int64)


@njit
def _calls_for_nothing(function, x, y, k, add):  # type: ignore[no-untyped-def]
    call_at(function, (x, y, k, add), None)


def test_call_at_passes_arrays_and_scalars_and_returns_the_result():
    x = np.arange(6.0)
    y = np.zeros_like(x)
    address, returned = wrapper_address(_scaled_sum, (x, y, 3, True))
    assert str(returned) == "int64"
    assert _calls(address, x, y, np.int64(3), True) == 5
    assert y.tolist() == [0.0, 4.0, 7.0, 10.0, 13.0, 16.0]
    _calls_for_nothing(address, x, y, np.int64(2), False)
    assert y.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def test_call_at_wants_an_integer_address_a_tuple_and_an_integer_or_none_back():
    @njit
    def not_a_tuple(function, x):  # type: ignore[no-untyped-def]
        call_at(function, x, None)

    @njit
    def float_back(function, x):  # type: ignore[no-untyped-def]
        return call_at(function, (x,), np.float64)

    for compiled in (not_a_tuple, float_back):
        with pytest.raises(TypingError):
            compiled(0, np.zeros(1))


def test_wrapper_address_refuses_a_function_numba_made_no_c_wrapper_of():
    @njit
    def optional(x):  # type: ignore[no-untyped-def]
        if x.size > 2:
            return None
        return x.size

    with pytest.raises(TypeError, match="no C wrapper"):
        wrapper_address(optional, (np.zeros(3),))
