"""The piecewise-linear members' formulas, named by their registry names."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.dtypes import clip_decide
from relukit.kernels.cpu.dtypes import const as c

# ---------------------------------------------------------------------------------------------
# Formulas, on the working float v
#
# The piecewise-linear members repeat the registry's formula operation by operation in the
# working dtype (float32 for float32 and 16-bit inputs), so that they are bit-exact to the
# reference path and PyTorch.


@jit
def relu_d(v: Any) -> Any:
    return c(v, 1.0) if v > c(v, 0.0) else c(v, 0.0)


@jit
def hardtanh_d(v: Any, low: Any, high: Any) -> Any:
    """relu6's and hardtanh's derivative: 1 strictly inside (low, high), else 0."""
    return c(v, 1.0) if (v > low and v < high) else c(v, 0.0)


def hardtanh_f(e: Any, low: Any, high: Any, low_raw: Any, high_raw: Any) -> Any:
    """relu6's and hardtanh's clip of an element ``e`` (its own bits kept; ``low_raw`` and
    ``high_raw``: the bounds in ``e``'s type): compared with ``low`` and ``high`` in float32
    or float64, and a 16-bit float (raw bits) on the order keys of its bits, as the vector
    kernels decide it (:func:`relukit.kernels.cpu.dtypes.clip_decide`), so that which of them
    takes an element does not change its result, whatever the flush-to-zero mode."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(hardtanh_f, jit_options=INLINE_OPTIONS)
def _hardtanh_f(e, low, high, low_raw, high_raw):  # type: ignore[no-untyped-def]
    if isinstance(e, types.Float):

        def floats(e, low, high, low_raw, high_raw):  # type: ignore[no-untyped-def]
            return low_raw if e < low else (high_raw if e > high else e)

        return floats

    def bits(e, low, high, low_raw, high_raw):  # type: ignore[no-untyped-def]
        below, above, _ = clip_decide(e, low, high, low_raw)
        return low_raw if below else (high_raw if above else e)

    return bits


def hardtanh_code(e: Any, low: Any, high: Any, low_raw: Any) -> Any:
    """The clip's one-bit code of an element, ``low < x < high``, decided as
    :func:`hardtanh_f` decides its result."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(hardtanh_code, jit_options=INLINE_OPTIONS)
def _hardtanh_code(e, low, high, low_raw):  # type: ignore[no-untyped-def]
    if isinstance(e, types.Float):
        return lambda e, low, high, low_raw: e > low and e < high

    def bits(e, low, high, low_raw):  # type: ignore[no-untyped-def]
        return clip_decide(e, low, high, low_raw)[2]

    return bits


@jit
def leaky_relu_f(v: Any, a: Any) -> Any:
    return v if v > c(v, 0.0) else v * a


@jit
def leaky_relu_d(v: Any, a: Any) -> Any:
    return c(v, 1.0) if v > c(v, 0.0) else a


@jit
def prelu_f(v: Any, w: Any) -> Any:
    # prelu: at -inf a zero slope has the limit 0, where w·x would give NaN
    zero = c(v, 0.0)
    negative = zero if (w == zero and abs(v) == c(v, np.inf)) else w * v
    return v if v > zero else negative


@jit
def general_relu_flat(v: Any, t: Any, top: Any, capped: Any) -> Any:
    # above the threshold, the cap's clip to [0, max_value] holds: at or past the cap, and
    # (threshold < 0) at or below 0; see relukit.family.rectifiers
    return capped and v > t and (v >= top or (t < c(v, 0.0) and v <= c(v, 0.0)))


@jit
def general_relu_f(v: Any, a: Any, t: Any, top: Any, capped: Any, flat: Any) -> Any:
    if not v > t:
        return (c(v, 0.0) if v < t else v - t) if flat else (v - t) * a
    if not capped:
        return v
    return top if v >= top else (v if v > c(v, 0.0) else c(v, 0.0))


@jit
def general_relu_d(v: Any, a: Any, t: Any, top: Any, capped: Any) -> Any:
    if general_relu_flat(v, t, top, capped):
        return c(v, 0.0)
    return c(v, 1.0) if v > t else a


@jit
def squared_relu_f(v: Any) -> Any:
    r = v if v > c(v, 0.0) else c(v, 0.0)
    return r * r


@jit
def squared_relu_d(v: Any) -> Any:
    return c(v, 2.0) * (v if v > c(v, 0.0) else c(v, 0.0))


def relu_f(e: Any) -> Any:
    """relu of an element: floats by the formula, 16-bit floats on their raw bits."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(relu_f, jit_options=INLINE_OPTIONS)
def _relu_f(e):  # type: ignore[no-untyped-def]
    if isinstance(e, types.Float):
        return lambda e: c(e, 0.0) if e < c(e, 0.0) else e
    if isinstance(e, types.Integer) and e.bitwidth == 16:
        # The sign-bit trick: keep the bits where the sign is clear; a negative number that is
        # neither -0 nor NaN becomes +0.
        infinity = 0x7C00 if e.signed else 0x7F80
        dtype = np.int16 if e.signed else np.uint16

        def impl(e):  # type: ignore[no-untyped-def]
            magnitude = np.int32(e) & np.int32(0x7FFF)
            negative = (np.int32(e) & np.int32(0x8000)) != 0
            drop = negative and magnitude != 0 and magnitude <= infinity
            return dtype(0) if drop else e

        return impl
    return None
