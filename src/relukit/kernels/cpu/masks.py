"""Mask words: the packed codes of the mask path, 64 elements at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.dtypes import NO_KEYS, clip_keys, narrow, widen
from relukit.kernels.cpu.dtypes import const as c
from relukit.kernels.cpu.intrinsics import (
    clip_word,
    clip_word_16,
    clip_word_16_streamed,
    clip_word_streamed,
    leaky_word,
    leaky_word_16,
    leaky_word_16_plain,
    leaky_word_16_plain_streamed,
    leaky_word_16_streamed,
    leaky_word_plain,
    leaky_word_plain_streamed,
    leaky_word_streamed,
    relu_word,
    relu_word_16,
    relu_word_16_streamed,
    relu_word_streamed,
)
from relukit.kernels.cpu.loops import conventions
from relukit.kernels.cpu.rectifiers import hardtanh_code, hardtanh_f, leaky_relu_f, relu_f

GATHER = np.uint64(0x0102040810204080)  # eight 0/1 bytes times this: byte i's bit at 56 + i
SPREAD = np.uint64(0x0101010101010101)
BIT_OF_BYTE = np.uint64(0x8040201008040201)
HIGH_SEVEN = np.uint64(0x7F7F7F7F7F7F7F7F)


@jit
def pack(codes: Any, mask: Any, start: int, count: int, bits: int) -> None:
    """Pack ``codes[:count]`` (one byte each, zero beyond ``count`` up to a multiple of 8) into
    ``mask`` from byte ``start``: eight codes per byte at one bit, four at two bits."""
    if bits == 1:
        words = codes.view(np.uint64)
        for q in range((count + 7) // 8):
            mask[start + q] = np.uint8((words[q] * GATHER) >> np.uint64(56))
    else:
        quads = codes.view(np.uint32)
        for q in range((count + 3) // 4):
            v = quads[q]
            mask[start + q] = np.uint8(
                (v | (v >> np.uint32(6)) | (v >> np.uint32(12)) | (v >> np.uint32(18)))
                & np.uint32(0xFF)
            )


@jit
def unpack(mask: Any, start: int, count: int, codes: Any, bits: int) -> None:
    """The inverse of :func:`pack`: ``count`` codes from byte ``start`` into ``codes``."""
    if bits == 1:
        words = codes.view(np.uint64)
        for q in range((count + 7) // 8):
            spread = (np.uint64(mask[start + q]) * SPREAD) & BIT_OF_BYTE
            words[q] = ((spread + HIGH_SEVEN) >> np.uint64(7)) & SPREAD
    else:
        quads = codes.view(np.uint32)
        for q in range((count + 3) // 4):
            b = np.uint32(mask[start + q])
            quads[q] = (
                b | (b << np.uint32(6)) | (b << np.uint32(12)) | (b << np.uint32(18))
            ) & np.uint32(0x03030303)


@jit
def store_bytes(mask: Any, start: int, word: Any, count: int) -> None:
    """The low ``count`` bits of ``word`` into the bytes of ``mask`` from ``start``."""
    for q in range((count + 7) // 8):
        mask[start + q] = np.uint8((word >> np.uint64(8 * q)) & np.uint64(0xFF))


@jit
def load_bytes(mask: Any, start: int, count: int) -> Any:
    """The inverse of :func:`store_bytes`."""
    word = np.uint64(0)
    for q in range((count + 7) // 8):
        word |= np.uint64(mask[start + q]) << np.uint64(8 * q)
    return word


# The one-pass members: each 64 elements loaded once, their outputs stored and their codes
# returned as a word. Every word function takes ``(xs, start, ys, a0, a1, low, high, stream)``:
# relu and the clip of relu6/hardtanh read ``a0``/``a1`` (the bounds in the working dtype) and
# ``low``/``high`` (the bounds as 16-bit raw bits), leaky_relu ``a0`` (its slope) and
# ``low``/``high`` (its limits at ∓inf). 16-bit floats are raw bits (``a0``/``a1``, the slope
# and bounds, float32).


@jit
def _relu_word(xs: Any, start: int, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool):
    if stream:
        return relu_word_streamed(xs, start, ys, a0, a1)
    return relu_word(xs, start, ys, a0, a1)


@jit
def _clip_word(xs: Any, start: int, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool):
    if stream:
        return clip_word_streamed(xs, start, ys, a0, a1)
    return clip_word(xs, start, ys, a0, a1)


@jit
def _plain_limits(a: Any, low: Any, high: Any) -> bool:
    """Are leaky_relu's limits at ∓inf what its formula gives there (or NaN: none)? Then its
    words need not apply them (:func:`~relukit.kernels.cpu.intrinsics._leaky`)."""
    return (low != low or low == c(a, -np.inf) * a) and (high != high or high == c(a, np.inf))


@jit
def _leaky_word(xs: Any, start: int, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool):
    plain = _plain_limits(a0, low, high)
    if plain and stream:
        return leaky_word_plain_streamed(xs, start, ys, a0, low, high)
    if plain:
        return leaky_word_plain(xs, start, ys, a0, low, high)
    if stream:
        return leaky_word_streamed(xs, start, ys, a0, low, high)
    return leaky_word(xs, start, ys, a0, low, high)


@jit
def _relu_word_16(
    xs: Any, start: int, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool
):
    if stream:
        return relu_word_16_streamed(xs, start, ys, NO_KEYS, low, high)
    return relu_word_16(xs, start, ys, NO_KEYS, low, high)


@jit
def _clip_word_16(
    xs: Any, start: int, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool
):
    keys = clip_keys(a0, a1, low)  # (loop-invariant: computed once, before the words)
    if stream:
        return clip_word_16_streamed(xs, start, ys, keys, low, high)
    return clip_word_16(xs, start, ys, keys, low, high)


@jit
def _leaky_word_16(
    xs: Any, start: int, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool
) -> Any:
    plain = _plain_limits(a0, low, high)
    if plain and stream:
        return leaky_word_16_plain_streamed(xs, start, ys, a0, low, high)
    if plain:
        return leaky_word_16_plain(xs, start, ys, a0, low, high)
    if stream:
        return leaky_word_16_streamed(xs, start, ys, a0, low, high)
    return leaky_word_16(xs, start, ys, a0, low, high)


@jit
def _relu_one(e: Any, a0: Any, a1: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """One element's output and code (uint64 0 or 1): relu, ``not x <= 0``."""
    v = widen(e)
    return relu_f(e), np.uint64(v > c(v, 0.0) or v != v)


@jit
def _clip_one(e: Any, a0: Any, a1: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """The clip of relu6/hardtanh, ``a0 < x < a1``."""
    return hardtanh_f(e, a0, a1, low, high), np.uint64(hardtanh_code(e, a0, a1, low))


@jit
def _leaky_one(e: Any, a0: Any, a1: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """leaky_relu, ``x > 0``."""
    v = widen(e)
    return narrow(conventions(v, leaky_relu_f(v, a0), low, high), e), np.uint64(v > c(v, 0.0))


def _one_pass(word: Any, word_16: Any, one: Any) -> Any:
    """``run(xs, ys, mask, a0, a1, low, high, stream)``: a member's outputs on a chunk and its
    packed one-bit codes in one pass, 64 elements per ``word`` (``word_16`` for 16-bit floats),
    the ends element by element with ``one``."""

    def run(xs: Any, ys: Any, mask: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool):
        raise NotImplementedError("only for use inside Numba kernels")

    @overload(run, jit_options=INLINE_OPTIONS)
    def _run(xs, ys, mask, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
        vector = word if isinstance(xs.dtype, types.Float) else word_16

        def fused(xs, ys, mask, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
            # The groups follow ys's alignment (from its first 64-byte boundary: streamed
            # or not, no store then splits across two cache lines; relu at 2^16 float32, 1
            # thread, Xeon, with ys 16 bytes past a boundary: 12.0-12.8 µs, 9.0-9.7 aligned),
            # so a mask word takes the last ``head`` codes of one group and the first
            # ``64 - head`` of the next.
            n = xs.size
            words = mask[: (mask.size // 8) * 8].view(np.uint64)
            head = 0
            address = np.int64(ys.ctypes.data)
            if address % ys.itemsize != 0:
                stream = False  # (no element starts on a 64-byte boundary)
            else:
                head = min(n, ((-address) & 63) // ys.itemsize)
            carry = np.uint64(0)
            for j in range(head):
                ys[j], bit = one(xs[j], a0, a1, low, high)
                carry |= bit << np.uint64(j)
            # Four words at a time, stored together: a word stored after each 64 elements
            # cost 15-25 % over a copy (relu at 2^16 float32 in L2, 1 thread, Xeon: 7.7-7.9
            # µs against 6.7-6.9 four at a time, 5.9-6.1 for np.copyto, 6.2-6.3 with the
            # words not stored at all). The aligned loop is kept apart from the carrying one:
            # one loop for both, its carry shifted in two steps so that head 0 is defined,
            # was 3-4 % slower on either alignment)
            groups = (n - head) // 64
            quads = groups - groups % 4
            if head == 0:
                for w in range(0, quads, 4):
                    at = 64 * w
                    g0 = vector(xs, at, ys, a0, a1, low, high, stream)
                    g1 = vector(xs, at + 64, ys, a0, a1, low, high, stream)
                    g2 = vector(xs, at + 128, ys, a0, a1, low, high, stream)
                    g3 = vector(xs, at + 192, ys, a0, a1, low, high, stream)
                    words[w] = g0
                    words[w + 1] = g1
                    words[w + 2] = g2
                    words[w + 3] = g3
                for w in range(quads, groups):
                    words[w] = vector(xs, 64 * w, ys, a0, a1, low, high, stream)
            else:
                up = np.uint64(head)
                down = np.uint64(64 - head)
                for w in range(0, quads, 4):
                    at = head + 64 * w
                    g0 = vector(xs, at, ys, a0, a1, low, high, stream)
                    g1 = vector(xs, at + 64, ys, a0, a1, low, high, stream)
                    g2 = vector(xs, at + 128, ys, a0, a1, low, high, stream)
                    g3 = vector(xs, at + 192, ys, a0, a1, low, high, stream)
                    words[w] = carry | (g0 << up)
                    words[w + 1] = (g0 >> down) | (g1 << up)
                    words[w + 2] = (g1 >> down) | (g2 << up)
                    words[w + 3] = (g2 >> down) | (g3 << up)
                    carry = g3 >> down
                for w in range(quads, groups):
                    got = vector(xs, head + 64 * w, ys, a0, a1, low, high, stream)
                    words[w] = carry | (got << up)
                    carry = got >> down
            # the last elements: ``carry`` holds the codes from element 64·groups on
            at = 64 * groups
            count = head
            for j in range(head + 64 * groups, n):
                ys[j], bit = one(xs[j], a0, a1, low, high)
                carry |= bit << np.uint64(count)
                count += 1
                if count == 64:
                    words[at // 64] = carry
                    at += 64
                    count = 0
                    carry = np.uint64(0)
            if count > 0:
                store_bytes(mask, at // 8, carry, count)

        return fused

    return run


relu_with_mask = _one_pass(_relu_word, _relu_word_16, _relu_one)
clip_with_mask = _one_pass(_clip_word, _clip_word_16, _clip_one)
leaky_with_mask = _one_pass(_leaky_word, _leaky_word_16, _leaky_one)


def leaky_block(xs: Any, ys: Any, a: Any, low: Any, high: Any, stream: bool) -> None:
    """leaky_relu's forward on a chunk in one pass, 64 elements per :func:`_leaky_word` (their
    codes unused), stored from the registers from ``ys``'s first 64-byte boundary (streamed
    with ``stream``); the ends element by element.
    Each vector is loaded before it is stored, so ``ys`` may be ``xs``."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(leaky_block, jit_options=INLINE_OPTIONS)
def _leaky_block(xs, ys, a, low, high, stream):  # type: ignore[no-untyped-def]
    vector = _leaky_word if isinstance(xs.dtype, types.Float) else _leaky_word_16

    def block(xs, ys, a, low, high, stream):  # type: ignore[no-untyped-def]
        n = xs.size
        address = np.int64(ys.ctypes.data)
        if address % ys.itemsize == 0:
            head = min(n, ((-address) & 63) // ys.itemsize)
        else:
            head = n if stream else 0  # (no element on a boundary: streamed, none is)
        for j in range(head):
            ys[j], _ = _leaky_one(xs[j], a, a, low, high)
        groups = (n - head) // 64
        for w in range(groups):
            vector(xs, head + 64 * w, ys, a, a, low, high, stream)
        for j in range(head + 64 * groups, n):
            ys[j], _ = _leaky_one(xs[j], a, a, low, high)

    return block
