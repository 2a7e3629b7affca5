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
    FAST_DEPOSITS,
    clip_word,
    clip_word_16,
    clip_word_16_streamed,
    clip_word_streamed,
    deposit,
    extract,
    general_words,
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
    slopes_word,
    slopes_word_streamed,
)
from relukit.kernels.cpu.loops import BLOCK, conventions
from relukit.kernels.cpu.rectifiers import (
    general_relu_f,
    general_relu_flat,
    hardtanh_code,
    hardtanh_f,
    leaky_relu_f,
    relu_f,
)

SLOPES_AFTER = BLOCK
"""Slopes held past one period of them (:func:`slopes_with_mask`, and the mask backward's
pattern of slopes), so that the 64 elements of a word, or a block of the kernels, from any index
in the period read theirs in one run."""

GATHER = np.uint64(0x0102040810204080)  # eight 0/1 bytes times this: byte i's bit at 56 + i


@jit
def pack(codes: Any, mask: Any, start: int, count: int) -> None:
    """Pack ``codes[:count]`` (one 0/1 byte each, zero beyond ``count`` up to a multiple of 8)
    into ``mask`` from byte ``start``, eight codes per byte."""
    words = codes.view(np.uint64)
    for q in range((count + 7) // 8):
        mask[start + q] = np.uint8((words[q] * GATHER) >> np.uint64(56))


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
def _relu_one(xs: Any, j: int, a0: Any, a1: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """Element ``j``'s output and code (uint64 0 or 1): relu, ``not x <= 0``."""
    e = xs[j]
    v = widen(e)
    return relu_f(e), np.uint64(v > c(v, 0.0) or v != v)


@jit
def _clip_one(xs: Any, j: int, a0: Any, a1: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """The clip of relu6/hardtanh, ``a0 < x < a1``."""
    e = xs[j]
    return hardtanh_f(e, a0, a1, low, high), np.uint64(hardtanh_code(e, a0, a1, low))


@jit
def _leaky_one(xs: Any, j: int, a0: Any, a1: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """leaky_relu, ``x > 0``."""
    e = xs[j]
    v = widen(e)
    return narrow(conventions(v, leaky_relu_f(v, a0), low, high), e), np.uint64(v > c(v, 0.0))


@jit
def _slopes_word(
    xs: Any, start: int, ys: Any, s: Any, base: int, low: Any, high: Any, stream: bool
) -> Any:
    """prelu with a slope per element: those of the 64 elements from ``start`` are ``s``'s from
    ``(base + start) % period``, ``s`` holding a period of them and :data:`SLOPES_AFTER` more."""
    at = (base + start) % (s.size - SLOPES_AFTER)
    if stream:
        return slopes_word_streamed(xs, start, ys, s, at)
    return slopes_word(xs, start, ys, s, at)


@jit
def _slopes_one(xs: Any, j: int, s: Any, base: int, low: Any, high: Any) -> tuple[Any, Any]:
    """prelu with element ``j``'s slope (finite and not 0), ``x > 0`` (16-bit floats widened to
    float32, their slopes' dtype, and rounded back once)."""
    e = xs[j]
    v = widen(e)
    slope = s[(base + j) % (s.size - SLOPES_AFTER)]
    return narrow(v if not v <= c(v, 0.0) else v * slope, e), np.uint64(v > c(v, 0.0))


def _one_pass(word: Any, word_16: Any, one: Any) -> Any:
    """``run(xs, ys, mask, a0, a1, low, high, stream)``: a member's outputs on a chunk and its
    packed one-bit codes in one pass, 64 elements per ``word`` (``word_16`` for 16-bit floats),
    the ends element by element with ``one`` (``one(xs, j, a0, a1, low, high)``: element
    ``j``'s output and code). Without ``word_16``, 16-bit floats raise."""

    def run(xs: Any, ys: Any, mask: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool):
        raise NotImplementedError("only for use inside Numba kernels")

    @overload(run, jit_options=INLINE_OPTIONS)
    def _run(xs, ys, mask, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
        vector = word if isinstance(xs.dtype, types.Float) else word_16
        # four words an iteration but for float64, whose word is already eight vectors: there
        # the 32 streamed stores of four words ran at 0.6-0.8 of a copy from 2^22 on (relu6
        # at 2^24, 1 thread, AMD EPYC, 10.6 ms, one word an iteration 5.0, a streaming copy
        # 5.1), and no size gained from them; float32 and the 16-bit floats keep four
        four = xs.dtype.bitwidth < 64
        if vector is None:

            def none(xs, ys, mask, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
                raise NotImplementedError("no 16-bit kernel: the host side sends none here")

            return none

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
                ys[j], bit = one(xs, j, a0, a1, low, high)
                carry |= bit << np.uint64(j)
            # Four words at a time, stored together: a word stored after each 64 elements
            # cost 15-25 % over a copy (relu at 2^16 float32 in L2, 1 thread, Xeon: 7.7-7.9
            # µs against 6.7-6.9 four at a time, 5.9-6.1 for np.copyto, 6.2-6.3 with the
            # words not stored at all). The aligned loop is kept apart from the carrying one:
            # one loop for both, its carry shifted in two steps so that head 0 is defined,
            # was 3-4 % slower on either alignment)
            groups = (n - head) // 64
            quads = groups - groups % 4 if four else 0
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
                ys[j], bit = one(xs, j, a0, a1, low, high)
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
# prelu with one slope per channel, ``a0``: the slopes (float32 for 16-bit floats) as a period
# of them and SLOPES_AFTER more, ``a1``: the index in it of the chunk's first element
slopes_with_mask = _one_pass(_slopes_word, _slopes_word, _slopes_one)


@jit
def _head(ys: Any, n: int, stream: bool) -> int:
    """How many of the ``n`` elements of ``ys`` lie before its first 64-byte boundary: those a
    forward-only pass does element by element (all, if none starts on one and it streams)."""
    address = np.int64(ys.ctypes.data)
    if address % ys.itemsize == 0:
        return min(n, ((-address) & 63) // ys.itemsize)
    return n if stream else 0


def _forward_only(word: Any, word_16: Any, one: Any) -> Any:
    """``block(xs, ys, a0, a1, low, high, stream)``: a member's forward on a chunk in one pass,
    64 elements per ``word`` (``word_16`` for 16-bit floats; their codes unused), stored from
    the registers from ``ys``'s first 64-byte boundary (streamed with ``stream``); the ends
    element by element with ``one``, as in :func:`_one_pass`. Each vector is loaded before it
    is stored, so ``ys`` may be ``xs``. Without ``word_16``, 16-bit floats raise."""

    def block(xs: Any, ys: Any, a0: Any, a1: Any, low: Any, high: Any, stream: bool) -> None:
        raise NotImplementedError("only for use inside Numba kernels")

    @overload(block, jit_options=INLINE_OPTIONS)
    def _block(xs, ys, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
        vector = word if isinstance(xs.dtype, types.Float) else word_16
        if vector is None:

            def none(xs, ys, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
                raise NotImplementedError("no 16-bit kernel: the host side sends none here")

            return none

        def run(xs, ys, a0, a1, low, high, stream):  # type: ignore[no-untyped-def]
            n = xs.size
            head = _head(ys, n, stream)
            for j in range(head):
                ys[j], _ = one(xs, j, a0, a1, low, high)
            groups = (n - head) // 64
            for w in range(groups):
                vector(xs, head + 64 * w, ys, a0, a1, low, high, stream)
            for j in range(head + 64 * groups, n):
                ys[j], _ = one(xs, j, a0, a1, low, high)

        return run

    return block


leaky_block = _forward_only(_leaky_word, _leaky_word_16, _leaky_one)
slopes_block = _forward_only(_slopes_word, _slopes_word, _slopes_one)


# ---------------------------------------------------------------------------------------------
# general_relu in one pass: its output and, per 64 elements, two words of its pieces (above the
# threshold, held by the cap), from which the codes' bit planes are formed and packed at one
# or two bits per element

ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
ONE = np.uint64(1)  # (one element's plane bit: _plane of single bits sets the high ones too)
EVEN_BITS = np.uint64(0x5555555555555555)  # a two-bit code's low bit in a word, and its high
ODD_BITS = np.uint64(0xAAAAAAAAAAAAAAAA)
HALF_WORD = np.uint64(32)


@jit
def _general_one(e: Any, a: Any, t: Any, top: Any, capped: Any, flat: Any, low: Any, high: Any):
    """One element's output and pieces (uint64 0 or 1): above the threshold, held by the cap."""
    v = widen(e)
    on = capped > c(capped, 0.0)
    r = conventions(v, general_relu_f(v, a, t, top, on, flat > c(flat, 0.0)), low, high)
    return narrow(r, e), np.uint64(v > t), np.uint64(general_relu_flat(v, t, top, on))


@jit
def general_values(p: Any, low: Any, high: Any) -> Any:
    """The seven parameters of :func:`~relukit.kernels.cpu.intrinsics.general_word` from
    general_relu's ``p`` (slope, threshold, cap, capped and flat flags at 0, 1, 2, 3, 6, as
    :func:`relukit.kernels.cpu.host._general` lays them) and its limits: slope, t_flat,
    threshold, top, held_floor, low, high, in ``p``'s float; and whether the words need the
    limits applied (the formula does not give them at ∓inf: a threshold or cap beyond
    float32's range, taken as ±inf)."""
    a, t = p[0], p[1]
    zero = c(a, 0.0)
    capped = p[3] > zero
    flat = p[6] > zero
    infinity = c(a, np.inf)
    at_low = general_relu_f(-infinity, a, t, p[2], capped, flat)
    at_high = general_relu_f(infinity, a, t, p[2], capped, flat)
    limits = not ((low != low or at_low == low) and (high != high or at_high == high))
    values = (
        c(a, 1.0) if flat else a,
        t if flat else -infinity,
        t,
        p[2],
        zero if t < zero else c(a, np.nan),
        low,
        high,
    )
    return values, limits


_word_000 = general_words[False, False, False]
_word_001 = general_words[False, False, True]
_word_010 = general_words[False, True, False]
_word_011 = general_words[False, True, True]
_word_100 = general_words[True, False, False]
_word_101 = general_words[True, False, True]
_word_110 = general_words[True, True, False]
_word_111 = general_words[True, True, True]


@jit
def _general_group(
    xs: Any, at: int, ys: Any, values: Any, capped: bool, limits: bool, stream: bool
) -> Any:
    """:func:`~relukit.kernels.cpu.intrinsics.general_word` of the variant (``capped``,
    ``limits``, ``stream``) on the 64 elements from ``at``: the words above and held."""
    if capped:
        if limits:
            if stream:
                return _word_111(xs, at, ys, values)
            return _word_110(xs, at, ys, values)
        if stream:
            return _word_101(xs, at, ys, values)
        return _word_100(xs, at, ys, values)
    if limits:
        if stream:
            return _word_011(xs, at, ys, values)
        return _word_010(xs, at, ys, values)
    if stream:
        return _word_001(xs, at, ys, values)
    return _word_000(xs, at, ys, values)


@jit
def _plane(above: Any, held: Any, k0: Any, k1: Any, k2: Any) -> Any:
    """One bit plane of the codes: ``k0``/``k1``/``k2`` all ones where that bit of the code of
    the piece below / between / held is set (held lies inside above)."""
    return (held & k2) | (above & ~held & k1) | (~above & k0)


@jit
def _bit_masks(codes: Any, b: int) -> tuple[Any, Any, Any]:
    """:func:`_plane`'s masks of bit ``b`` of the pieces' codes (``codes``: int64, 3)."""
    one = np.int64(1)
    return (
        ALL if (codes[0] >> b) & one else np.uint64(0),
        ALL if (codes[1] >> b) & one else np.uint64(0),
        ALL if (codes[2] >> b) & one else np.uint64(0),
    )


@jit
def _spread(w: Any) -> Any:
    """The low 32 bits of ``w`` onto its even bits (bit k to bit 2k)."""
    w &= np.uint64(0xFFFFFFFF)
    w = (w | (w << np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    w = (w | (w << np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    w = (w | (w << np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    w = (w | (w << np.uint64(2))) & np.uint64(0x3333333333333333)
    return (w | (w << np.uint64(1))) & np.uint64(0x5555555555555555)


@jit
def _interleaved(p0: Any, p1: Any) -> tuple[Any, Any]:
    """Two-bit codes from their bit planes: the words of elements 0-31 and 32-63."""
    high0, high1 = p0 >> HALF_WORD, p1 >> HALF_WORD
    if FAST_DEPOSITS:  # (2-bit general_relu at 2^16 float32, AMD EPYC: 11.4 µs, 18.3 by shifts)
        low = deposit(p0, EVEN_BITS) | deposit(p1, ODD_BITS)
        return low, deposit(high0, EVEN_BITS) | deposit(high1, ODD_BITS)
    return _spread(p0) | (_spread(p1) << ONE), _spread(high0) | (_spread(high1) << ONE)


@jit
def _gather(w: Any) -> Any:
    """The even bits of ``w`` into its low 32 (bit 2k to bit k): :func:`_spread`'s inverse."""
    w &= EVEN_BITS
    w = (w | (w >> np.uint64(1))) & np.uint64(0x3333333333333333)
    w = (w | (w >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    w = (w | (w >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    w = (w | (w >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    return (w | (w >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)


@jit
def planes(low: Any, high: Any) -> tuple[Any, Any]:
    """The bit planes of 64 two-bit codes (:func:`_interleaved`'s inverse) from the words of
    elements 0-31 and 32-63."""
    if FAST_DEPOSITS:
        p0 = extract(low, EVEN_BITS) | (extract(high, EVEN_BITS) << HALF_WORD)
        return p0, extract(low, ODD_BITS) | (extract(high, ODD_BITS) << HALF_WORD)
    p0 = _gather(low) | (_gather(high) << HALF_WORD)
    return p0, _gather(low >> ONE) | (_gather(high >> ONE) << HALF_WORD)


@jit
def _put_last(mask: Any, at: int, p0: Any, p1: Any, bits: int, count: int) -> None:
    """The codes of the last ``count`` (< 64) elements, of word ``at``, byte by byte."""
    if bits == 1:
        store_bytes(mask, 8 * at, p0, count)
        return
    low, high = _interleaved(p0, p1)
    store_bytes(mask, 16 * at, low, min(2 * count, 64))
    if count > 32:
        store_bytes(mask, 16 * at + 8, high, 2 * count - 64)


@jit
def general_with_mask(
    xs: Any,
    ys: Any,
    mask: Any,
    p: Any,
    low: Any,
    high: Any,
    codes: Any,
    bits: int,
    stream: bool,
) -> None:
    """general_relu on a chunk and its codes (``codes[piece]`` at ``bits`` bits: pieces below
    the threshold, between, held by the cap) in one pass: 64 elements per
    :func:`~relukit.kernels.cpu.intrinsics.general_word`, stored from ``ys``'s first 64-byte
    boundary (streamed with ``stream``), so a mask word takes the last ``head`` codes of one
    group and the first ``64 - head`` of the next (as :func:`_one_pass`'s, per bit plane);
    the ends element by element. ``p``: slope, threshold, cap, capped and flat flags at 0, 1,
    2, 3, 6, as :func:`relukit.kernels.cpu.host._general` lays them."""
    a, t, top, capped, flat = p[0], p[1], p[2], p[3], p[6]
    values, limits = general_values(p, low, high)
    on = capped > c(capped, 0.0)
    n = xs.size
    words = mask[: (mask.size // 8) * 8].view(np.uint64)
    k00, k01, k02 = _bit_masks(codes, 0)
    k10, k11, k12 = _bit_masks(codes, 1)
    head = 0
    address = np.int64(ys.ctypes.data)
    if address % ys.itemsize != 0:
        stream = False  # (no element starts on a 64-byte boundary)
    else:
        head = min(n, ((-address) & 63) // ys.itemsize)
    carry0 = np.uint64(0)
    carry1 = np.uint64(0)
    for j in range(head):
        ys[j], above, held = _general_one(xs[j], a, t, top, capped, flat, low, high)
        carry0 |= (_plane(above, held, k00, k01, k02) & ONE) << np.uint64(j)
        carry1 |= (_plane(above, held, k10, k11, k12) & ONE) << np.uint64(j)
    groups = (n - head) // 64
    up = np.uint64(head)
    down = np.uint64(64 - head)
    # (no helper that takes an array is called per word: Numba's reference counts on its
    # arguments cost more than the word, general_relu on 2^16 float32: 24 µs against 10)
    for w in range(groups):
        at = head + 64 * w
        above, held = _general_group(xs, at, ys, values, on, limits, stream)
        p0 = _plane(above, held, k00, k01, k02)
        p1 = _plane(above, held, k10, k11, k12)
        if head != 0:
            p0, carry0 = carry0 | (p0 << up), p0 >> down
            p1, carry1 = carry1 | (p1 << up), p1 >> down
        if bits == 1:
            words[w] = p0
        else:
            words[2 * w], words[2 * w + 1] = _interleaved(p0, p1)
    # the last elements: the carries hold the codes from element 64·groups on
    at = groups
    count = head
    for j in range(head + 64 * groups, n):
        ys[j], above, held = _general_one(xs[j], a, t, top, capped, flat, low, high)
        carry0 |= (_plane(above, held, k00, k01, k02) & ONE) << np.uint64(count)
        carry1 |= (_plane(above, held, k10, k11, k12) & ONE) << np.uint64(count)
        count += 1
        if count == 64:
            if bits == 1:
                words[at] = carry0
            else:
                words[2 * at], words[2 * at + 1] = _interleaved(carry0, carry1)
            at += 1
            count = 0
            carry0 = np.uint64(0)
            carry1 = np.uint64(0)
    if count > 0:
        _put_last(mask, at, carry0, carry1, bits, count)


@jit
def general_block(xs: Any, ys: Any, p: Any, low: Any, high: Any, stream: bool) -> None:
    """general_relu's forward on a chunk in one pass (:func:`general_with_mask` without the
    codes): 64 elements per word stored from ``ys``'s first 64-byte boundary (streamed with
    ``stream``), the ends element by element. ``ys`` may be ``xs``."""
    a, t, top, capped, flat = p[0], p[1], p[2], p[3], p[6]
    values, limits = general_values(p, low, high)
    on = capped > c(capped, 0.0)
    n = xs.size
    head = _head(ys, n, stream)
    for j in range(head):
        ys[j], _, _ = _general_one(xs[j], a, t, top, capped, flat, low, high)
    groups = (n - head) // 64
    for w in range(groups):
        at = head + 64 * w
        _general_group(xs, at, ys, values, on, limits, stream)
    for j in range(head + 64 * groups, n):
        ys[j], _, _ = _general_one(xs[j], a, t, top, capped, flat, low, high)
