"""The loops the kernels share: the block loop itself (:func:`blocks`), writing a block out
(streamed or not), the NaN and infinity conventions, the chain rule, and the one-pass select of
relu, relu6 and hardtanh."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, types
from numba.extending import overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.dtypes import NO_KEYS, clip_keys
from relukit.kernels.cpu.dtypes import const as c
from relukit.kernels.cpu.intrinsics import (
    clip_16,
    relu_16,
    stream_clip,
    stream_copy,
    stream_relu,
    vector_clip,
    vector_relu,
)
from relukit.kernels.cpu.rectifiers import hardtanh_f, relu_f

BLOCK = 2048  # elements per block: 8 KiB of float32, well inside L1
WORD = 64  # elements per mask word at one bit per element; kernels' chunks start at multiples


@njit(error_model="numpy", nogil=True)
def blocks(n: int, period: int, k: int, block: int, lead: int) -> Any:
    """The block loop of every kernel: ``(i, m, k)`` for each block ``[i, i + m)`` of
    ``[0, n)``, at most ``block`` elements (:data:`BLOCK`: in L1 with its buffer; the first
    ``lead`` elements long if ``lead`` > 0), cut where the period of a kernel's per-element
    ``aux`` wraps (``k`` its index into ``aux``, from the ``k`` given; ``period`` > n: no
    period)."""
    i = 0
    while i < n:
        m = min(lead if i == 0 and lead > 0 else block, n - i, period - k)
        yield i, m, k
        i += m
        k += m
        if k == period:
            k = 0


@jit
def conventions(v: Any, r: Any, low: Any, high: Any) -> Any:
    """The limits at ±inf (NaN: none declared) and NaN in → NaN out."""
    r = low if (v == c(v, -np.inf) and low == low) else r
    r = high if (v == c(v, np.inf) and high == high) else r
    return v if v != v else r


@jit
def chain(g: Any, d: Any) -> Any:
    """``g·d``, where a zero derivative of a piecewise-linear member blocks ``g`` (gives +0)."""
    return c(d, 0.0) if d == c(d, 0.0) else g * d


@jit
def emit(y: Any, start: int, buf: Any, m: int) -> None:
    """``y[start:start+m] = buf[:m]``, the 64-byte aligned middle with streaming stores."""
    size = y.itemsize
    head = ((-(np.int64(y.ctypes.data) + start * size)) & 63) // size
    head = min(head, m)
    for j in range(head):
        y[start + j] = buf[j]
    width = 64 // size
    nvec = (m - head) // width
    stream_copy(y, start + head, buf, head, nvec)
    for j in range(head + nvec * width, m):
        y[start + j] = buf[j]


@jit
def put(y: Any, start: int, buf: Any, m: int, stream: bool) -> None:
    """``y[start:start+m] = buf[:m]``, with streaming stores if ``stream``."""
    if stream:
        emit(y, start, buf, m)
    else:
        out = y[start : start + m]
        for j in range(m):
            out[j] = buf[j]


@jit
def select_one(e: Any, a0: Any, a1: Any, low_raw: Any, high_raw: Any, clip: bool) -> Any:
    """relu (``clip`` False) or the clip of relu6/hardtanh on an element, keeping its bits."""
    if clip:
        return hardtanh_f(e, a0, a1, low_raw, high_raw)
    return relu_f(e)


def select_vectors(
    xs: Any,
    ys: Any,
    start: int,
    nvec: int,
    a0: Any,
    a1: Any,
    low: Any,
    high: Any,
    clip: bool,
    stream: bool,
) -> None:
    """``ys[start:] = select_one(xs[start:])`` for ``nvec`` 64-byte vectors (``ys[start]``
    64-byte aligned), with streaming stores if ``stream``; 16-bit floats with ordinary stores."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(select_vectors, jit_options=INLINE_OPTIONS)
def _select_vectors(xs, ys, start, nvec, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
    if isinstance(xs.dtype, types.Float):

        def impl(xs, ys, start, nvec, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
            if clip and stream:
                stream_clip(xs, start, ys, start, nvec, a0, a1)
            elif stream:
                stream_relu(xs, start, ys, start, nvec, a0, a1)
            elif clip:
                vector_clip(xs, start, ys, start, nvec, a0, a1)
            else:
                vector_relu(xs, start, ys, start, nvec, a0, a1)

        return impl

    def halves(xs, ys, start, nvec, a0, a1, low, high, clip, stream):  # type: ignore[no-untyped-def]
        # 16-bit floats (raw bits): ordinary stores (the streaming ones are float vectors)
        if clip:
            clip_16(xs, start, ys, nvec, clip_keys(a0, a1, low), low, high)
        else:
            relu_16(xs, start, ys, nvec, NO_KEYS, low, high)

    return halves


@jit
def select_block(
    xs: Any,
    ys: Any,
    a0: Any,
    a1: Any,
    low: Any,
    high: Any,
    clip: bool,
    stream: bool,
) -> None:
    """One block of relu/relu6/hardtanh, straight from the registers in whole 64-byte vectors
    aligned on the output (in place too: each vector is read before it is written), streamed
    if ``stream``; the unaligned ends element by element, and all of an output that is not
    aligned on its element size (no element of it starts on a 64-byte boundary)."""
    m = xs.size
    size = ys.itemsize
    address = np.int64(ys.ctypes.data)
    head = min(m, ((-address) & 63) // size) if address % size == 0 else m
    for j in range(head):
        ys[j] = select_one(xs[j], a0, a1, low, high, clip)
    nvec = (m - head) // (64 // size)
    select_vectors(xs, ys, head, nvec, a0, a1, low, high, clip, stream)
    for j in range(head + nvec * (64 // size), m):
        ys[j] = select_one(xs[j], a0, a1, low, high, clip)
