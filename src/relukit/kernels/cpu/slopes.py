"""Fused kernels of the members with per-element slopes in relukit.nn: prelu and rrelu (training);
prelu's, without ``keep``, also for the array API's prelu per channel whose period is long
(:func:`relukit.kernels.cpu.host.channels_forward`).

Each is one pass over a 1-D chunk, 64 elements (one mask word) at a time as one LLVM vector:
compare, select, and the compressed values stored or loaded with LLVM's masked compress-store
and expand-load (on AVX-512 one ``vcompressps``/``vexpandps`` per register; elsewhere LLVM
expands them into plain code), so that saving "the inputs that were not positive" costs no
branch per element. A chunk starts at a multiple of 64 elements of the whole array (``first``)
and holds its mask words; its last partial word, if any, is done element by element. The
compressed array of a chunk (``rest``, ``slopes``, ``u``) holds exactly that chunk's code-0
elements: the host side (:mod:`relukit.nn.kernel`) counts them first (:func:`count_off`,
:func:`zero_bits`), so that chunks run at once and every compressed array has its exact size
(without ``keep``, prelu's kernels compress nothing: nothing is counted).

======================  ==========================================================================
``prelu_forward``       ``y = x if x > 0 else s·x`` (``torch.prelu``'s product), the mask words
                        ``x > 0`` and, with ``keep``, the elements ``not x > 0`` (NaN included)
                        compressed in order into ``rest``
``prelu_backward``      from the mask and ``rest``: ``gx = g if x > 0 else s·g`` and (with
                        ``keep``) ``gw = +0 if x > 0 else x·g``, element by element as PyTorch's
                        ``_prelu_kernel_backward`` computes them (the weight's sum stays PyTorch's)
``rrelu_forward``       the mask words ``not x <= 0`` and, from the uniform draws ``u`` (float64,
                        one per element ``x <= 0``), the slope ``r = work(low + u·(high − low))``
                        and ``y = x·r`` in x's dtype; the slopes compressed into ``slopes``
``rrelu_backward``      ``gx = g`` where the bit is 1, ``g·r`` (the next slope) where it is 0
``count_off``           how many elements of a chunk have code 0 (``nan_off``: NaN among them)
``zero_bits``           how many of the bits ``a .. b-1`` of a mask are 0
======================  ==========================================================================

The slope ``s`` of element ``i`` of a C-contiguous input is ``w[(i // inner) % C]`` (``inner``:
the product of the dims after the channel axis, axis 1 in relukit.nn; ``C``: the weight's size,
1 for a single slope). Where one
period ``P = C·inner`` is short the host passes it as a pattern of ``P + 64`` elements
(``pattern[j] = s(j)``), so that the slopes of the 64 elements from ``i`` are
``pattern[i % P : i % P + 64]``; otherwise (``period = 0``) each word's slopes are written into
a 64-element buffer run by run (not again while the words stay inside one run). Both are worked
out in the loop, word after word, without a call per word: a call taking the arrays (increments
and decrements of their reference counts, and two divisions, per word) made prelu's forward run
at 0.43 of a copy at 2^20 float32 on one thread (Xeon, 713 µs against 305), and at 0.94 without.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from relukit.kernels.cpu.compile import cached_kernel, jit
from relukit.kernels.cpu.intrinsics import _splat, popcount

WORD = 64

# ---------------------------------------------------------------------------------------------
# 64-element words as LLVM vectors


def _float_array(t: Any) -> bool:
    return isinstance(t, types.Array) and isinstance(t.dtype, types.Float) and t.ndim == 1


def _at(context: Any, builder: Any, arrty: Any, array: Any, start: Any) -> Any:
    """Pointer to element ``start`` of a 1-D array."""
    ary = context.make_array(arrty)(context, builder, array)
    return builder.gep(ary.data, [start])


def _load(context: Any, builder: Any, arrty: Any, array: Any, start: Any) -> Any:
    element = context.get_value_type(arrty.dtype)
    pointer = builder.bitcast(
        _at(context, builder, arrty, array, start), ir.VectorType(element, WORD).as_pointer()
    )
    return builder.load(pointer, align=context.get_abi_sizeof(element))


def _store(context: Any, builder: Any, arrty: Any, array: Any, start: Any, value: Any) -> None:
    element = context.get_value_type(arrty.dtype)
    pointer = builder.bitcast(
        _at(context, builder, arrty, array, start), ir.VectorType(element, WORD).as_pointer()
    )
    builder.store(value, pointer, align=context.get_abi_sizeof(element))


def _function(builder: Any, name: str, result: Any, arguments: list[Any]) -> Any:
    return cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, arguments), name)


def _suffix(vector: Any) -> str:
    """LLVM's name of a vector type in an intrinsic's name: ``v64f32``, ``v8f64``."""
    kind = "f64" if isinstance(vector.element, ir.DoubleType) else "f32"
    return f"v{vector.count}{kind}"


def _compress(builder: Any, context: Any, arrty: Any, array: Any, start: Any, values: Any,
              keep: Any) -> None:  # fmt: skip
    """Store the lanes of ``values`` where ``keep`` is set, in order, from ``array[start]``: one
    64-byte piece at a time, compressed in a register (``llvm.experimental.vector.compress``:
    ``vcompressps``/``vcompresspd`` into a register on AVX-512) and stored with a mask of its
    first lanes. (LLVM's masked compress-store is the form of vcompress that stores to memory,
    which is microcoded on Zen 4: prelu's forward keeping its inputs took 2.1 ns an element
    there, float64, against 0.4 without them.) Writes nothing past the kept elements: chunks
    run at once into neighbouring parts of one array."""
    element = values.type.element
    size = context.get_abi_sizeof(element)
    lanes = 64 // size
    piece = ir.VectorType(element, lanes)
    flags = ir.VectorType(ir.IntType(1), lanes)
    i32, i64 = ir.IntType(32), ir.IntType(64)
    count_type = ir.IntType(lanes)
    first = ir.Constant(ir.VectorType(i32, lanes), list(range(lanes)))
    compress = _function(
        builder, f"llvm.experimental.vector.compress.{_suffix(piece)}", piece,
        [piece, flags, piece],
    )  # fmt: skip
    store = _function(
        builder, f"llvm.masked.store.{_suffix(piece)}.p0", ir.VoidType(),
        [piece, piece.as_pointer(), i32, flags],
    )  # fmt: skip
    ctpop = _function(builder, f"llvm.ctpop.i{lanes}", count_type, [count_type])
    pointer = _at(context, builder, arrty, array, start)
    offset = ir.Constant(i64, 0)
    undefined = ir.Constant(piece, ir.Undefined)
    for q in range(WORD // lanes):
        taken = ir.Constant(ir.VectorType(i32, lanes), list(range(q * lanes, (q + 1) * lanes)))
        part = builder.shuffle_vector(values, values, taken)
        take = builder.shuffle_vector(keep, keep, taken)
        packed = builder.call(compress, [part, take, undefined])
        count = builder.call(ctpop, [builder.bitcast(take, count_type)])
        prefix = builder.icmp_unsigned("<", first, _splat(builder, builder.zext(count, i32), lanes))
        target = builder.bitcast(builder.gep(pointer, [offset]), piece.as_pointer())
        builder.call(store, [packed, target, ir.Constant(i32, size), prefix])
        offset = builder.add(offset, builder.zext(count, i64))


def _expand(builder: Any, context: Any, arrty: Any, array: Any, start: Any, take: Any) -> Any:
    """A vector with the next elements from ``array[start]`` in the lanes where ``take`` is set
    (in order) and 0 elsewhere."""
    pointer = _at(context, builder, arrty, array, start)
    vector = ir.VectorType(context.get_value_type(arrty.dtype), WORD)
    name = f"llvm.masked.expandload.{_suffix(vector)}"
    function = _function(builder, name, vector, [pointer.type, take.type, vector])
    return builder.call(function, [pointer, take, ir.Constant(vector, None)])


def _bits(builder: Any, word: Any) -> Any:
    return builder.bitcast(word, ir.VectorType(ir.IntType(1), WORD))


def _word(builder: Any, bits: Any) -> Any:
    return builder.bitcast(bits, ir.IntType(64))


@intrinsic
def prelu_word(
    typingctx: Any, x: Any, i: Any, s: Any, p: Any, y: Any, rest: Any, k: Any, keep: Any
) -> Any:
    """``y[i:i+64]`` from ``x[i:i+64]`` and the slopes ``s[p:p+64]``; with ``keep``, the elements
    ``not x > 0`` compressed into ``rest`` from ``k``. Returns the word of ``x > 0``."""
    if not (_float_array(x) and _float_array(s) and _float_array(y) and _float_array(rest)):
        return None
    sig = types.uint64(x, types.intp, s, types.intp, y, rest, types.intp, types.boolean)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        xt, _, st, _, yt, rt, _, _ = signature.args
        xa, ia, sa, pa, ya, ra, ka, keepa = args
        values = _load(context, builder, xt, xa, ia)
        slopes = _load(context, builder, st, sa, pa)
        positive = builder.fcmp_ordered(">", values, ir.Constant(values.type, None))
        result = builder.select(positive, values, builder.fmul(slopes, values))
        _store(context, builder, yt, ya, ia, result)
        with builder.if_then(keepa):
            _compress(builder, context, rt, ra, ka, values, builder.not_(positive))
        return _word(builder, positive)

    return sig, codegen


@intrinsic
def prelu_grad_word(
    typingctx: Any, g: Any, i: Any, word: Any, s: Any, p: Any, rest: Any, k: Any, gx: Any, gw: Any,
    keep: Any,
) -> Any:  # fmt: skip
    """``gx[i:i+64]`` and (with ``keep``) ``gw[i:i+64]`` from ``g[i:i+64]``, the word of
    ``x > 0``, the slopes ``s[p:p+64]`` and the saved inputs ``rest`` from ``k``."""
    if not all(_float_array(t) for t in (g, s, rest, gx, gw)):
        return None
    sig = types.void(
        g, types.intp, types.uint64, s, types.intp, rest, types.intp, gx, gw, types.boolean
    )

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        gt, _, _, st, _, rt, _, xt, wt, _ = signature.args
        ga, ia, worda, sa, pa, ra, ka, xa, wa, keepa = args
        grads = _load(context, builder, gt, ga, ia)
        slopes = _load(context, builder, st, sa, pa)
        positive = _bits(builder, worda)
        scaled = builder.fmul(slopes, grads)
        _store(context, builder, xt, xa, ia, builder.select(positive, grads, scaled))
        with builder.if_then(keepa):
            inputs = _expand(builder, context, rt, ra, ka, builder.not_(positive))
            zero = ir.Constant(grads.type, None)
            product = builder.fmul(inputs, grads)
            _store(context, builder, wt, wa, ia, builder.select(positive, zero, product))
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def rrelu_word(
    typingctx: Any, x: Any, i: Any, u: Any, k: Any, low: Any, span: Any, y: Any, slopes: Any
) -> Any:
    """``y[i:i+64]`` from ``x[i:i+64]``: x where ``not x <= 0``, else ``x·r`` with
    ``r = work(low + u·span)`` of the next draw in ``u`` (float64) from ``k``; the slopes
    compressed into ``slopes`` from ``k``. Returns the word of ``not x <= 0``."""
    if not (_float_array(x) and _float_array(y) and _float_array(slopes) and _float_array(u)):
        return None
    sig = types.uint64(x, types.intp, u, types.intp, types.float64, types.float64, y, slopes)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        xt, _, ut, _, _, _, yt, st = signature.args
        xa, ia, ua, ka, lowa, spana, ya, sa = args
        values = _load(context, builder, xt, xa, ia)
        passes = builder.fcmp_unordered(">", values, ir.Constant(values.type, None))
        draws = _expand(builder, context, ut, ua, ka, builder.not_(passes))
        wide = builder.fadd(_splat(builder, lowa), builder.fmul(draws, _splat(builder, spana)))
        r = wide if values.type == wide.type else builder.fptrunc(wide, values.type)
        scaled = builder.fmul(values, r)
        _store(context, builder, yt, ya, ia, builder.select(passes, values, scaled))
        _compress(builder, context, st, sa, ka, r, builder.not_(passes))
        return _word(builder, passes)

    return sig, codegen


@intrinsic
def scale_word(typingctx: Any, g: Any, i: Any, word: Any, slopes: Any, k: Any, gx: Any) -> Any:
    """``gx[i:i+64]``: ``g`` where the word's bit is 1, ``g·`` the next slope from ``k``."""
    if not (_float_array(g) and _float_array(slopes) and _float_array(gx)):
        return None
    sig = types.void(g, types.intp, types.uint64, slopes, types.intp, gx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        gt, _, _, st, _, xt = signature.args
        ga, ia, worda, sa, ka, xa = args
        grads = _load(context, builder, gt, ga, ia)
        passes = _bits(builder, worda)
        r = _expand(builder, context, st, sa, ka, builder.not_(passes))
        scaled = builder.fmul(grads, r)
        _store(context, builder, xt, xa, ia, builder.select(passes, grads, scaled))
        return context.get_dummy_value()

    return sig, codegen


# ---------------------------------------------------------------------------------------------
# the kernels


@jit
def _runs(
    w: Any, inner: int, buffer: Any, channel: int, left: int, filled: int
) -> tuple[int, int, int]:
    """The slopes of the next 64 elements in ``buffer``, from ``channel``, with ``left`` elements
    of its run to go; ``filled``: the channel whose slope fills all of ``buffer`` already (-1:
    none), so that a word inside one run writes nothing. Returns the next word's ``(channel,
    left, filled)``."""
    inside = left >= WORD
    if not (inside and filled == channel):
        j = 0
        run, to_go = channel, left
        while j < WORD:
            m = min(WORD - j, to_go)
            s = w[run]
            for t in range(j, j + m):
                buffer[t] = s
            j += m
            to_go -= m
            if to_go == 0:
                to_go = inner
                run = run + 1 if run + 1 < w.size else 0
    filled = channel if inside else -1
    left -= WORD
    while left <= 0:
        left += inner
        channel = channel + 1 if channel + 1 < w.size else 0
    return channel, left, filled


@jit
def _tail_mask(x: Any, start: int, mask: Any, nan_passes: bool) -> None:
    """The mask bytes of the elements from ``start`` (the last partial word): ``x > 0``, or
    ``not x <= 0`` with ``nan_passes``."""
    byte = 0
    for i in range(start, x.size):
        v = x[i]
        on = v > 0 or (nan_passes and v != v)
        byte |= np.int64(on) << (i & 7)
        if i & 7 == 7 or i == x.size - 1:
            mask[i >> 3] = byte
            byte = 0


@cached_kernel
def prelu_forward(
    x: Any, first: int, w: Any, inner: int, pattern: Any, period: int, y: Any, words: Any,
    mask: Any, rest: Any, keep: bool,
) -> None:  # fmt: skip
    n = x.size
    full = n // WORD
    k = 0
    if period > 0:
        p = first % period
        for q in range(full):
            word = prelu_word(x, q * WORD, pattern, p, y, rest, k, keep)
            words[q] = word
            if keep:
                k += WORD - popcount(word)
            p = (p + WORD) % period
    else:
        buffer = np.empty(WORD, dtype=x.dtype)
        channel, left, filled = (first // inner) % w.size, inner - first % inner, -1
        for q in range(full):
            channel, left, filled = _runs(w, inner, buffer, channel, left, filled)
            word = prelu_word(x, q * WORD, buffer, 0, y, rest, k, keep)
            words[q] = word
            if keep:
                k += WORD - popcount(word)
    # the last partial word: its mask bytes first, from x (y may be x, and a negative slope
    # turns a negative input positive)
    _tail_mask(x, full * WORD, mask, False)
    for i in range(full * WORD, n):
        v = x[i]
        on = v > 0
        scaled = w[((first + i) // inner) % w.size] * v
        y[i] = v if on else scaled
        if keep and not on:
            rest[k] = v
            k += 1


@cached_kernel
def prelu_backward(
    g: Any, first: int, w: Any, inner: int, pattern: Any, period: int, words: Any, mask: Any,
    rest: Any, gx: Any, gw: Any, keep: bool,
) -> None:  # fmt: skip
    n = g.size
    full = n // WORD
    k = 0
    zero = gx.dtype.type(0.0)
    buffer = np.empty(WORD if period == 0 else 0, dtype=g.dtype)
    p = first % period if period > 0 else 0
    channel, left, filled = (first // inner) % w.size, inner - first % inner, -1
    for q in range(full):
        word = words[q]
        if period > 0:
            prelu_grad_word(g, q * WORD, word, pattern, p, rest, k, gx, gw, keep)
            p = (p + WORD) % period
        else:
            channel, left, filled = _runs(w, inner, buffer, channel, left, filled)
            prelu_grad_word(g, q * WORD, word, buffer, 0, rest, k, gx, gw, keep)
        if keep:
            k += WORD - popcount(word)
    for i in range(full * WORD, n):
        on = (mask[i >> 3] >> (i & 7)) & 1
        d = g[i]
        scaled = w[((first + i) // inner) % w.size] * d
        gx[i] = d if on else scaled
        if keep:
            if on:
                gw[i] = zero
            else:
                gw[i] = rest[k] * d
                k += 1


@cached_kernel
def rrelu_forward(
    x: Any, u: Any, low: float, high: float, y: Any, words: Any, mask: Any, slopes: Any
) -> None:
    n = x.size
    full = n // WORD
    span = high - low
    k = 0
    for q in range(full):
        word = rrelu_word(x, q * WORD, u, k, low, span, y, slopes)
        words[q] = word
        k += WORD - popcount(word)
    _tail_mask(x, full * WORD, mask, True)  # (first: y may be x)
    for i in range(full * WORD, n):
        v = x[i]
        on = not v <= 0
        r = y.dtype.type(low + (u[k] if k < u.size else 0.0) * span)
        scaled = v * r
        y[i] = v if on else scaled
        if not on:
            slopes[k] = r
            k += 1


@cached_kernel
def rrelu_backward(g: Any, words: Any, mask: Any, slopes: Any, gx: Any) -> None:
    n = g.size
    full = n // WORD
    k = 0
    for q in range(full):
        word = words[q]
        scale_word(g, q * WORD, word, slopes, k, gx)
        k += WORD - popcount(word)
    for i in range(full * WORD, n):
        on = (mask[i >> 3] >> (i & 7)) & 1
        d = g[i]
        if on:
            gx[i] = d
        else:
            gx[i] = d * slopes[k]
            k += 1


@cached_kernel
def count_off(x: Any, nan_off: bool) -> int:
    k = 0
    if nan_off:  # not x > 0: prelu's code 0
        for i in range(x.size):
            k += np.int64(not x[i] > 0)
    else:  # x <= 0: rrelu's code 0
        for i in range(x.size):
            k += np.int64(x[i] <= 0)
    return k


@cached_kernel
def zero_bits(words: Any, mask: Any, a: int, b: int) -> int:
    k = 0
    full_a = (a + WORD - 1) // WORD
    full_b = b // WORD
    if full_a >= full_b:
        for i in range(a, b):
            k += 1 - np.int64((mask[i >> 3] >> (i & 7)) & 1)
        return k
    for i in range(a, full_a * WORD):
        k += 1 - np.int64((mask[i >> 3] >> (i & 7)) & 1)
    for q in range(full_a, full_b):
        k += WORD - np.int64(popcount(words[q]))
    for i in range(full_b * WORD, b):
        k += 1 - np.int64((mask[i >> 3] >> (i & 7)) & 1)
    return k
