"""Mask words: the packed codes of the mask path, 64 elements at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.dtypes import const as c
from relukit.kernels.cpu.dtypes import narrow, widen
from relukit.kernels.cpu.intrinsics import (
    clip_word,
    clip_word_16,
    clip_word_streamed,
    leaky_word_16,
    relu_word,
    relu_word_16,
    relu_word_streamed,
)
from relukit.kernels.cpu.loops import conventions, select_one
from relukit.kernels.cpu.rectifiers import leaky_relu_f

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


@jit
def select_word(xs: Any, start: int, ys: Any, a0: Any, a1: Any, clip: bool, stream: bool) -> Any:
    """:func:`_select_word`'s four variants, chosen by the (constant) flags."""
    if clip:
        if stream:
            return clip_word_streamed(xs, start, ys, a0, a1)
        return clip_word(xs, start, ys, a0, a1)
    if stream:
        return relu_word_streamed(xs, start, ys, a0, a1)
    return relu_word(xs, start, ys, a0, a1)


@jit
def select_bit(e: Any, a0: Any, a1: Any, clip: bool) -> Any:
    """The code of one element (as :func:`_select_word`), as a uint64 0 or 1."""
    v = widen(e)
    if clip:
        return np.uint64(v > a0 and v < a1)
    return np.uint64(v > c(v, 0.0) or v != v)


def select_with_mask(
    xs: Any, ys: Any, mask: Any, a0: Any, a1: Any, low: Any, high: Any, clip: bool, stream: bool
) -> None:
    """relu or the clip of relu6/hardtanh on a chunk, with its packed one-bit codes."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(select_with_mask, jit_options=INLINE_OPTIONS)
def _select_with_mask(xs, ys, mask, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):

        def fused(xs, ys, mask, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
            # One pass: each 64 elements are loaded once, their outputs stored (streamed from
            # a 64-byte boundary of ys) and their codes packed in a register. The groups
            # follow ys's alignment, so a mask word takes the last ``head`` codes of one
            # group and the first ``64 - head`` of the next.
            n = xs.size
            words = mask[: (mask.size // 8) * 8].view(np.uint64)
            head = 0
            if stream:
                head = min(n, ((-np.int64(ys.ctypes.data)) & 63) // ys.itemsize)
            carry = np.uint64(0)
            for j in range(head):
                ys[j] = select_one(xs[j], a0, a1, low, high, clip)
                carry |= select_bit(xs[j], a0, a1, clip) << np.uint64(j)
            groups = (n - head) // 64
            if head == 0:
                for w in range(groups):
                    words[w] = select_word(xs, 64 * w, ys, a0, a1, clip, stream)
            else:
                up = np.uint64(head)
                down = np.uint64(64 - head)
                for w in range(groups):
                    word = select_word(xs, head + 64 * w, ys, a0, a1, clip, stream)
                    words[w] = carry | (word << up)
                    carry = word >> down
            # the last elements: ``carry`` holds the codes from element 64·groups on
            at = 64 * groups
            count = head
            for j in range(head + 64 * groups, n):
                ys[j] = select_one(xs[j], a0, a1, low, high, clip)
                carry |= select_bit(xs[j], a0, a1, clip) << np.uint64(count)
                count += 1
                if count == 64:
                    words[at // 64] = carry
                    at += 64
                    count = 0
                    carry = np.uint64(0)
            if count > 0:
                store_bytes(mask, at // 8, carry, count)

        return fused

    def halves(xs, ys, mask, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
        # 16-bit floats (raw bits, not streamed): one pass too, 64 elements per vector
        n = xs.size
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        groups = n // 64
        for w in range(groups):
            if clip:
                words[w] = clip_word_16(xs, 64 * w, ys, a0, a1, low, high)
            else:
                words[w] = relu_word_16(xs, 64 * w, ys, a0, a1, low, high)
        word = np.uint64(0)
        for j in range(64 * groups, n):
            e = xs[j]
            word |= select_bit(e, a0, a1, clip) << np.uint64(j - 64 * groups)
            ys[j] = select_one(e, a0, a1, low, high, clip)
        if n > 64 * groups:
            store_bytes(mask, 8 * groups, word, n - 64 * groups)

    return halves


def leaky_words_16(xs: Any, ys: Any, mask: Any, i: int, a: Any, low: Any, high: Any) -> bool:
    """leaky_relu with its codes ``x > 0`` on a block ``xs`` of 16-bit floats (raw bits) that
    starts at element ``i`` of the chunk (a multiple of 64), in one pass
    (:func:`~relukit.kernels.cpu.intrinsics.leaky_word_16` per 64 elements): True. For float32
    and float64 blocks it does nothing and gives False (their loop is the kernel's own)."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(leaky_words_16, jit_options=INLINE_OPTIONS)
def _leaky_words_16(xs, ys, mask, i, a, low, high):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):
        return lambda xs, ys, mask, i, a, low, high: False

    def halves(xs, ys, mask, i, a, low, high):  # type: ignore[no-untyped-def]
        m = xs.size
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        full = m // 64
        for w in range(full):
            words[i // 64 + w] = leaky_word_16(xs, 64 * w, ys, a, low, high)
        word = np.uint64(0)
        for j in range(64 * full, m):
            e = xs[j]
            v = widen(e)
            word |= np.uint64(v > c(v, 0.0)) << np.uint64(j - 64 * full)
            ys[j] = narrow(conventions(v, leaky_relu_f(v, a), low, high), e)
        if m > 64 * full:
            store_bytes(mask, (i + 64 * full) // 8, word, m - 64 * full)
        return True

    return halves
