"""The element types of the kernels: 16-bit floats as raw bits (float16 in int16, bfloat16 in
uint16) and the generic helpers that one kernel source serves every dtype with."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.intrinsics import (
    F16C,
    f32_as_i32,
    f32_to_bf16_bits,
    f32_to_half_bits,
    half_bits_to_f32,
    i32_as_f32,
)

F32 = np.float32
I32 = np.int32
U32 = np.uint32


# ---------------------------------------------------------------------------------------------
# 16-bit floats, as raw bits: float16 in int16, bfloat16 in uint16


@jit
def _half_to_f32_ops(h: Any) -> Any:
    """The float32 value of the float16 with bits ``h`` (exact; F. Giesen's conversion)."""
    bits = I32(h) & I32(0xFFFF)
    o = (bits & I32(0x7FFF)) << I32(13)
    exponent = o & I32(0x0F800000)
    o = o + I32((127 - 15) << 23)
    special = o + I32((128 - 16) << 23)
    subnormal = i32_as_f32(o + I32(1 << 23)) - F32(6.103515625e-05)
    o = special if exponent == I32(0x0F800000) else o
    o = f32_as_i32(subnormal) if exponent == I32(0) else o
    return i32_as_f32(o | ((bits & I32(0x8000)) << I32(16)))


@jit
def _f32_to_half_ops(f: Any) -> Any:
    """The float16 bits of float32 ``f`` rounded to nearest even (NaN gives a quiet NaN)."""
    bits = f32_as_i32(f)
    sign = (bits >> I32(16)) & I32(0x8000)
    a = bits & I32(0x7FFFFFFF)
    nan_or_inf = I32(0x7E00) if a > I32(0x7F800000) else I32(0x7C00)
    # subnormal results: align the mantissa with a magic addition (rounds to nearest even)
    sub = f32_as_i32(i32_as_f32(a) + F32(0.5)) - I32(0x3F000000)
    odd = (a >> I32(13)) & I32(1)
    normal = (a + I32(((15 - 127) << 23) + 0xFFF) + odd) >> I32(13)
    h = normal if a >= I32(113 << 23) else sub
    h = nan_or_inf if a >= I32((127 + 16) << 23) else h
    return np.int16(h | sign)


@jit
def _half_to_f32_hardware(h: Any) -> Any:
    # (fpext quiets a signalling NaN, where the bit operations keep its payload: no output
    # shows it, since every float16 NaN result is stored as 0x7E00 with its sign)
    return half_bits_to_f32(np.int16(h))


@jit
def _f32_to_half_hardware(f: Any) -> Any:
    # fptrunc keeps the top of a NaN's payload; the kernels give every NaN as 0x7E00 and sign
    nan = np.int16((f32_as_i32(f) >> I32(16)) & I32(0x8000) | I32(0x7E00))
    return nan if f != f else f32_to_half_bits(f)


# float16 <-> float32: the hardware's conversions where the host has F16C (vectorised as
# vcvtph2ps / vcvtps2ph, 16 lanes: relukit's float16 map kernels ran 3x slower on the bit
# operations below), else those bit operations; the same bits either way
half_to_f32 = _half_to_f32_hardware if F16C else _half_to_f32_ops
f32_to_half = _f32_to_half_hardware if F16C else _f32_to_half_ops


@jit
def bf16_to_f32(b: Any) -> Any:
    """The float32 value of the bfloat16 with bits ``b`` (exact)."""
    return i32_as_f32((I32(b) & I32(0xFFFF)) << I32(16))


@jit
def order_key(e: Any) -> Any:
    """The order key of a 16-bit float (raw bits, int16 or uint16) as an int32 in [-2^15, 2^15):
    its bits as a signed integer with the magnitude bits flipped when the sign is set, so that
    the keys of the numbers are ordered as their values, -0 just below +0, and the NaNs lie
    outside those of [-inf, inf]. Its own inverse on the low 16 bits."""
    bits = I32(e) & I32(0xFFFF)
    key = bits ^ I32(0x7FFF) if bits >= I32(0x8000) else bits
    return key - I32(0x10000) if key >= I32(0x8000) else key


@jit
def _value_key(key: Any, like: Any) -> Any:
    """The float32 value of the 16-bit float (of ``like``'s raw type) whose order key is
    ``key``, as an order key of float32 (``±0`` one key): compared exactly, as integers, so
    that no flush-to-zero mode of the FPU changes the comparison."""
    return _key32(widen(_raw(order_key(key), like)))


@jit
def _key32(f: Any) -> Any:
    """The order key of a float32 that is not NaN, as an int32, with ``-0`` and ``+0`` one key:
    ``a < b`` exactly when ``_key32(a) < _key32(b)``, subnormals included. (The negative keys
    move up by one, which puts -0 on +0's key: a test of the bits for zero would not do, since
    LLVM turns it into a float compare with 0, which flush-to-zero answers for subnormals.)"""
    bits = f32_as_i32(f)
    sign = bits >> I32(31)  # -1 or 0
    return (bits ^ (sign & I32(0x7FFFFFFF))) + (sign & I32(1))


@jit
def _infinities(like: Any) -> tuple[Any, Any]:
    """The order keys of -inf and +inf of ``like``'s raw 16-bit type."""
    infinity = I32(0x7F80) if _unsigned(like) else I32(0x7C00)
    return order_key(infinity | I32(0x8000)), infinity


@jit
def _bound_keys(b: Any, like: Any) -> tuple[Any, Any]:
    """``(lt, gt)`` for a float32 bound ``b`` (not NaN) and the 16-bit floats of ``like``'s raw
    type: for every one that is not NaN, ``x < b`` exactly when ``order_key(x) < lt`` and
    ``x > b`` exactly when ``order_key(x) > gt`` (``lt``: the least key of a value ``>= b``;
    ``gt``: the greatest of a value ``<= b``; ``b`` rounded to nearest is one key from each).
    Every comparison is on integer keys: with flush-to-zero on, a float compare would see a
    subnormal as 0, and the threads of one call need not share that mode."""
    lowest, infinity = _infinities(like)
    k = order_key(narrow(b, like))
    kb = _key32(F32(b))
    at = _value_key(k, like)
    below = k > lowest and _value_key(k - I32(1), like) >= kb  # (the one below is no NaN)
    above = k < infinity and _value_key(k + I32(1), like) <= kb
    lt = k + I32(1) if at < kb else (k - I32(1) if below else k)
    gt = k - I32(1) if at > kb else (k + I32(1) if above else k)
    return lt, gt


@jit
def clip_keys(low: Any, high: Any, like: Any) -> Any:
    """The bounds of a clip of 16-bit floats (``like``'s raw type) as order keys, the
    ``keys`` of :func:`relukit.kernels.cpu.intrinsics._clip_16`: ``(below_low, above_low,
    above_high, below_high)``, so that, for ``x`` not NaN, ``x < low`` is ``key(-inf) <=
    key < below_low``, ``x > high`` is ``above_high < key <= key(inf)``, and ``low < x <
    high`` is ``above_low < key < below_high`` (NaN keys fall outside all three). A NaN bound
    compares false: its ranges are empty."""
    lowest, infinity = _infinities(like)
    below_low, above_low = _bound_keys(low, like)
    below_high, above_high = _bound_keys(high, like)
    if low != low:
        below_low, above_low = lowest, I32(0x7FFF)
    if high != high:
        above_high, below_high = infinity, I32(-0x8000)
    return (
        np.int16(below_low),
        np.int16(above_low),
        np.int16(above_high),
        np.int16(below_high),
    )


@jit
def few_keys(clip: bool, general: bool, a0: Any, a1: Any, a2: Any, capped: Any, like: Any) -> Any:
    """The order keys of :func:`few_value` (and of the vectors of
    :func:`relukit.kernels.cpu.intrinsics._vector_few_values_16`) for a 16-bit derivative of
    ``like``'s raw type, from the float32 parameters: relu and leaky_relu, ``x > 0`` as
    ``0 < key < 0x7FFF`` (the key of a positive number, +inf too); the clip (``clip``),
    ``a0 < x < a1``; general_relu (``general``: threshold ``a1``, cap ``a2``), ``x > a1`` as
    ``key > keys[0]``, ``x >= a2`` as ``key >= keys[2]``, and the flags (bit 0 ``capped``, bit
    1 a negative threshold). Each bound's keys: :func:`_bound_keys`."""
    zero = const(a0, 0.0)
    if general:
        above = _bound_keys(a1, like)[1]
        top = _bound_keys(a2, like)[0] if capped else I32(0)
        flags = (I32(1) if capped else I32(0)) | (I32(2) if a1 < zero else I32(0))
        return (np.int16(above), np.int16(0x7FFF), np.int16(top), np.int16(flags))
    if clip:
        return (
            np.int16(_bound_keys(a0, like)[1]),
            np.int16(_bound_keys(a1, like)[0]),
            np.int16(0),
            np.int16(0),
        )
    return (np.int16(_bound_keys(zero, like)[1]), np.int16(0x7FFF), np.int16(0), np.int16(0))


@jit
def few_piece(key: Any, keys: Any, general: bool, one: Any, other: Any, zero: Any) -> Any:
    """:func:`few_value`'s choice for a key that is neither ±inf nor NaN (and for ±inf where
    no limit is declared)."""
    above = key > I32(keys[0])
    if general:
        capped = (I32(keys[3]) & I32(1)) != I32(0)
        negative = (I32(keys[3]) & I32(2)) != I32(0)
        held = capped and above and (key >= I32(keys[2]) or (negative and key <= I32(0)))
        return zero if held else (one if above else other)
    return one if (above and key < I32(keys[1])) else other


@jit
def few_values(
    keys: Any, general: bool, one: Any, other: Any, zero: Any, low: Any, high: Any, like: Any
) -> Any:
    """The ``values`` of :func:`few_value`: (one, other, zero, at -inf, at +inf) in ``like``'s
    raw type, the derivative's limits ``low`` / ``high`` (float32, NaN: none declared) rounded
    once where declared, else the piece's value there (as ``conventions`` has them)."""
    lowest, infinity = _infinities(like)
    at_low = narrow(low, like) if low == low else few_piece(lowest, keys, general, one, other, zero)
    at_high = (
        narrow(high, like) if high == high else few_piece(infinity, keys, general, one, other, zero)
    )
    return (one, other, zero, at_low, at_high)


@jit
def few_value(e: Any, keys: Any, general: bool, values: Any) -> Any:
    """The derivative of a piecewise-linear member at one 16-bit float ``e`` (raw bits), one of
    ``values`` = (one, other, zero, at -inf, at +inf) chosen on its order key against
    :func:`few_keys`, a NaN passed on quieted: element by element, as the vectors choose."""
    lowest, infinity = _infinities(e)
    key = order_key(e)
    if key < lowest or key > infinity:
        return passed(e)
    if key == lowest:
        return values[3]
    if key == infinity:
        return values[4]
    return few_piece(key, keys, general, values[0], values[1], values[2])


NO_KEYS = (np.int16(0), np.int16(0), np.int16(0), np.int16(0))
"""What relu's 16-bit vectors take in place of :func:`clip_keys` (they do not read them)."""


@jit
def clip_decide(e: Any, low: Any, high: Any, like: Any) -> tuple[bool, bool, bool]:
    """``(x < low, x > high, low < x < high)`` for a 16-bit float ``e`` (raw bits), decided
    on its order key against :func:`clip_keys` as the vector clip decides them (NaN: all
    false). Element by element, for the ends of the arrays the vectors do not cover."""
    below_low, above_low, above_high, below_high = clip_keys(low, high, like)
    lowest, infinity = _infinities(like)
    k = order_key(e)
    below = k >= lowest and k < I32(below_low)
    above = k > I32(above_high) and k <= infinity
    inside = k > I32(above_low) and k < I32(below_high)
    return below, above, inside


def _unsigned(like: Any) -> bool:
    """Whether ``like`` is bfloat16's raw type (uint16), as a compile-time constant."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(_unsigned, jit_options=INLINE_OPTIONS)
def _unsigned_impl(like):  # type: ignore[no-untyped-def]
    return (lambda like: True) if _is_bf16(like) else (lambda like: False)


def _raw(bits: Any, like: Any) -> Any:
    """The low 16 bits of the int32 ``bits`` as ``like``'s raw type."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(_raw, jit_options=INLINE_OPTIONS)
def _raw_impl(bits, like):  # type: ignore[no-untyped-def]
    if _is_bf16(like):
        return lambda bits, like: np.uint16(bits & I32(0xFFFF))
    return lambda bits, like: np.int16(bits)


# ---------------------------------------------------------------------------------------------
# Generic helpers, resolved at compile time from the Numba type (the overload functions carry no
# annotations: Numba requires the implementations they return to repeat their signature exactly)


def widen(v: Any) -> Any:
    """The working float of an element: float32/float64 as is, 16-bit bits as float32."""
    raise NotImplementedError("only for use inside Numba kernels")


def narrow(r: Any, like: Any) -> Any:
    """The working float ``r`` stored in the element type of ``like`` (16-bit: rounded once)."""
    raise NotImplementedError("only for use inside Numba kernels")


def const(like: Any, value: Any) -> Any:
    """``value`` as the working float type of an element ``like``."""
    raise NotImplementedError("only for use inside Numba kernels")


def _is_half(t: Any) -> bool:
    return isinstance(t, types.Integer) and t.bitwidth == 16 and t.signed


def _is_bf16(t: Any) -> bool:
    return isinstance(t, types.Integer) and t.bitwidth == 16 and not t.signed


@overload(widen, jit_options=INLINE_OPTIONS)
def _widen(v):  # type: ignore[no-untyped-def]
    if isinstance(v, types.Float):
        return lambda v: v
    if _is_half(v):
        return lambda v: half_to_f32(v)
    if _is_bf16(v):
        return lambda v: bf16_to_f32(v)
    return None


@overload(narrow, jit_options=INLINE_OPTIONS)
def _narrow(r, like):  # type: ignore[no-untyped-def]
    if like == types.float64:
        return lambda r, like: np.float64(r)
    if like == types.float32:
        return lambda r, like: np.float32(r)
    if _is_half(like):
        return lambda r, like: f32_to_half(np.float32(r))
    if _is_bf16(like):
        return lambda r, like: f32_to_bf16_bits(np.float32(r))
    return None


@overload(const, jit_options=INLINE_OPTIONS)
def _const(like, value):  # type: ignore[no-untyped-def]
    if like == types.float64:
        return lambda like, value: np.float64(value)
    return lambda like, value: np.float32(value)


def scratch(like: Any, n: int) -> Any:
    """An uninitialised 1-D array of ``n`` working floats of the elements of array ``like``:
    float64 for float64, float32 for float32 and the 16-bit floats."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(scratch, jit_options=INLINE_OPTIONS)
def _scratch(like, n):  # type: ignore[no-untyped-def]
    if like.dtype == types.float64:
        return lambda like, n: np.empty(n, dtype=np.float64)
    return lambda like, n: np.empty(n, dtype=np.float32)


def passed(e: Any) -> Any:
    """A 16-bit element (raw bits) as ``narrow(widen(e)·1, e)`` stores it, without the
    arithmetic: itself, a NaN quieted (bfloat16: the quiet bit set, payload kept; float16: the
    quiet NaN 0x7E00 with e's sign, as :func:`f32_to_half` rounds every NaN). A float32 or
    float64 element: itself (for the 16-bit loops' code, compiled for every dtype)."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(passed, jit_options=INLINE_OPTIONS)
def _passed(e):  # type: ignore[no-untyped-def]
    if isinstance(e, types.Float):
        return lambda e: e
    if _is_half(e):

        def half_impl(e):  # type: ignore[no-untyped-def]
            nan = (I32(e) & I32(0x7FFF)) > I32(0x7C00)
            return np.int16((I32(e) & I32(0x8000)) | I32(0x7E00)) if nan else e

        return half_impl
    if _is_bf16(e):

        def bf16_impl(e):  # type: ignore[no-untyped-def]
            nan = (I32(e) & I32(0x7FFF)) > I32(0x7F80)
            return np.uint16(I32(e) | I32(0x0040)) if nan else e

        return bf16_impl
    return None


def single(v: Any) -> Any:
    """Whether the working float is float32, as a compile-time constant (float32 kernels use
    the float64 functions above, float64 ones the C library)."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(single, jit_options=INLINE_OPTIONS)
def _single(v):  # type: ignore[no-untyped-def]
    if v == types.float32:
        return lambda v: True
    if v == types.float64:
        return lambda v: False
    return None
