"""LLVM intrinsics of the compiled kernels: bit casts, fused multiply-add, streaming stores and
64-element vector compares and selects (written in LLVM IR where Numba's own code generation
would not give the instruction wanted)."""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from relukit.kernels.cpu.spin import X86

# ---------------------------------------------------------------------------------------------
# Intrinsics: bit casts, fused multiply-add, streaming stores


@intrinsic
def f32_as_i32(typingctx: Any, x: Any) -> Any:
    """The bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def i32_as_f32(typingctx: Any, i: Any) -> Any:
    """The float32 whose bits are the low 32 bits of the integer ``i``."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        value = args[0]
        if i.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif i.bitwidth < 32:
            value = (builder.sext if i.signed else builder.zext)(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(i), codegen


@intrinsic
def vector_width_512(typingctx: Any) -> Any:
    """Lets LLVM's loop vectoriser use 512-bit vectors in the function that calls it (its
    cost model keeps to 256 bits on AVX-512 machines, whose cores may slow their clock for
    512; for the smooth members' arithmetic, 16 float32 lanes are faster all the same). A
    no-op on machines without AVX-512."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        # llvmlite knows no string attributes; the set renders its items verbatim
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def fma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a·b + c`` rounded once (LLVM's ``llvm.fma``; a single instruction on x86-64 with FMA)."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fma(*args)

    return a(a, a, a), codegen


@intrinsic
def stream_copy(typingctx: Any, dst: Any, dst_start: Any, src: Any, src_start: Any, nvec: Any):
    """Copy ``nvec`` 64-byte vectors from ``src[src_start:]`` to ``dst[dst_start:]`` with
    non-temporal (streaming) stores. ``dst[dst_start]`` must be 64-byte aligned.

    Streaming stores write whole cache lines to memory without first reading them (no
    read-for-ownership), which is what lets a kernel that writes a fresh output reach the speed
    of a copy. Call :func:`store_fence` before the output is read by another thread.
    """
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
        return None
    if dst.dtype != src.dtype:
        return None
    sig = types.void(dst, types.intp, src, types.intp, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        d, ds, s, ss, nv = args
        element = context.get_value_type(signature.args[0].dtype)
        size = context.get_abi_sizeof(element)
        vector = ir.VectorType(element, 64 // size)
        dary = context.make_array(signature.args[0])(context, builder, d)
        sary = context.make_array(signature.args[2])(context, builder, s)
        dptr = builder.bitcast(builder.gep(dary.data, [ds]), vector.as_pointer())
        sptr = builder.bitcast(builder.gep(sary.data, [ss]), vector.as_pointer())
        nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        with cgutils.for_range(builder, nv) as loop:
            value = builder.load(builder.gep(sptr, [loop.index]), align=size)
            store = builder.store(value, builder.gep(dptr, [loop.index]), align=64)
            store.set_metadata("nontemporal", nontemporal)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx: Any) -> Any:
    """``sfence``: order the streaming stores before any later store (x86-64 only)."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence"
        )
        builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def clear_float_status(typingctx: Any) -> Any:
    """Clear this thread's floating-point exception flags: MXCSR's six status bits (x86-64;
    elsewhere nothing, and the host does not make the ufuncs that need it). NumPy reads them
    after a ufunc's inner loop and warns; the kernels raise "invalid" comparing NaN where
    their results are right, and no other relukit call warns, so the ufunc loops clear them
    when done."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        if X86:
            word = ir.IntType(32)
            pointer = ir.IntType(8).as_pointer()
            kind = ir.FunctionType(ir.VoidType(), [pointer])
            module = builder.module
            store = cgutils.get_or_insert_function(module, kind, "llvm.x86.sse.stmxcsr")
            load = cgutils.get_or_insert_function(module, kind, "llvm.x86.sse.ldmxcsr")
            slot = cgutils.alloca_once(builder, word)
            builder.call(store, [builder.bitcast(slot, pointer)])
            cleared = builder.and_(builder.load(slot), ir.Constant(word, 0xFFFFFFC0))
            builder.store(cleared, slot)
            builder.call(load, [builder.bitcast(slot, pointer)])
        return context.get_dummy_value()

    return types.void(), codegen


UNROLL = 4
# the bounds of a 16-bit clip as order keys (see _clip_16)
KEYS = types.UniTuple(types.int16, 4)


def _vector_select(clip: bool, nontemporal: bool = True) -> Any:
    """An intrinsic ``(x, xstart, y, ystart, nvec, low, high)`` writing ``nvec`` 64-byte vectors
    of relu(x) (``0 if x < 0 else x``) or of the clip (``low if x < low else high if x > high
    else x``), ``y[ystart]`` 64-byte aligned: the compute and the store of the select-only
    members in one pass of whole vectors, with streaming stores (``nontemporal``) or plain ones
    (which may write the vector just read: in place)."""

    @intrinsic
    def stream(
        typingctx: Any,
        x: Any,
        xstart: Any,
        y: Any,
        ystart: Any,
        nvec: Any,
        low: Any,
        high: Any,
    ) -> Any:
        if not (isinstance(x, types.Array) and isinstance(x.dtype, types.Float)):
            return None
        if not (isinstance(y, types.Array) and y.dtype == x.dtype == low == high):
            return None
        sig = types.void(x, types.intp, y, types.intp, types.intp, low, high)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, xs, yarr, ys, nv, lo, hi = args
            element = context.get_value_type(signature.args[0].dtype)
            size = context.get_abi_sizeof(element)
            vector = ir.VectorType(element, 64 // size)
            xary = context.make_array(signature.args[0])(context, builder, xarr)
            yary = context.make_array(signature.args[2])(context, builder, yarr)
            xptr = builder.bitcast(builder.gep(xary.data, [xs]), vector.as_pointer())
            yptr = builder.bitcast(builder.gep(yary.data, [ys]), vector.as_pointer())
            streaming = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])

            def splat(value: Any) -> Any:
                one = builder.insert_element(
                    ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0)
                )
                mask = ir.Constant(ir.VectorType(ir.IntType(32), vector.count), None)
                return builder.shuffle_vector(one, ir.Constant(vector, None), mask)

            lows, highs = splat(lo), splat(hi)
            zero = ir.Constant(vector, None)

            def vectors(indices: list[Any]) -> None:
                # all loads first: in place, each vector is written only where it was read
                values = [builder.load(builder.gep(xptr, [i]), align=size) for i in indices]
                for i, v in zip(indices, values, strict=True):
                    if clip:
                        above = builder.select(builder.fcmp_ordered(">", v, highs), highs, v)
                        r = builder.select(builder.fcmp_ordered("<", v, lows), lows, above)
                    else:
                        r = builder.select(builder.fcmp_ordered("<", v, zero), zero, v)
                    store = builder.store(r, builder.gep(yptr, [i]), align=64)
                    if nontemporal:
                        store.set_metadata("nontemporal", streaming)

            # UNROLL vectors an iteration (LLVM does not unroll this loop itself), then the rest
            unroll = ir.Constant(nv.type, UNROLL)
            groups = builder.sdiv(nv, unroll)
            with cgutils.for_range(builder, groups) as loop:
                first = builder.mul(loop.index, unroll)
                vectors([builder.add(first, ir.Constant(nv.type, u)) for u in range(UNROLL)])
            with cgutils.for_range(builder, builder.sub(nv, builder.mul(groups, unroll))) as loop:
                vectors([builder.add(builder.mul(groups, unroll), loop.index)])
            return context.get_dummy_value()

        return sig, codegen

    return stream


stream_relu = _vector_select(clip=False)
stream_clip = _vector_select(clip=True)
vector_relu = _vector_select(clip=False, nontemporal=False)
vector_clip = _vector_select(clip=True, nontemporal=False)


# Mask words: 64 elements at a time, compared or selected one 64-byte vector at a time (on
# x86-64 with AVX-512 a compare gives a mask register, and <64 x i1> is a 64-bit word)


def _vector_at(context: Any, builder: Any, arrty: Any, array: Any, start: Any) -> Any:
    """Pointer to the 64 elements of ``array`` from ``start``, as one vector."""
    element = context.get_value_type(arrty.dtype)
    ary = context.make_array(arrty)(context, builder, array)
    pointer = builder.gep(ary.data, [start])
    return builder.bitcast(pointer, ir.VectorType(element, 64).as_pointer()), element


def _splat(builder: Any, value: Any, lanes: int = 64) -> Any:
    vector = ir.VectorType(value.type, lanes)
    one = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(
        one, ir.Constant(vector, None), ir.Constant(ir.VectorType(ir.IntType(32), lanes), None)
    )


def _store(builder: Any, value: Any, pointer: Any, align: int, stream: bool) -> None:
    """Store a vector: with ``stream`` a streaming store (``pointer`` 64-byte aligned)."""
    if stream:
        store = builder.store(value, pointer, align=64)
        store.set_metadata(
            "nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        )
    else:
        builder.store(value, pointer, align=align)


def _load_apart(builder: Any, pointer: Any, align: int) -> Any:
    """Load the vector at ``pointer`` so that no later operation takes it from memory: on an
    AVX-512 host one 64-byte piece at a time, each passed through an empty inline-assembly
    statement, whose result LLVM cannot fold into the instruction that uses it. (A select of
    loaded values becomes a masked multiply or move with a memory operand, which the AMD EPYC
    here (Zen 5, LLVM's znver5) runs at half a copy's rate once the data comes from DRAM:
    relu's backward_from_mask on 2^24 float32 elements, 1 thread, 5.2-6.0 ms, against 2.4-2.5
    loaded apart and 3.0-3.3 for ``np.copyto``. Elsewhere there is no masked operation to
    fold it into: a plain load.)"""
    vector = pointer.type.pointee
    element = vector.element
    widths = {ir.DoubleType: 64, ir.FloatType: 32, ir.HalfType: 16}
    width = element.width if isinstance(element, ir.IntType) else widths[type(element)]
    lanes = min(vector.count, 512 // width)
    pieces_count = vector.count // lanes
    if not AVX512_F or vector.count % lanes or pieces_count & (pieces_count - 1):
        return builder.load(pointer, align=align)  # (whole 64-byte pieces, a power of two)
    piece = ir.VectorType(element, lanes)
    base = builder.bitcast(pointer, piece.as_pointer())
    opaque = ir.FunctionType(piece, [piece])
    pieces = []
    for q in range(vector.count // lanes):
        value = builder.load(builder.gep(base, [ir.Constant(ir.IntType(64), q)]), align=align)
        pieces.append(builder.asm(opaque, "", "=v,0", [value], False))
    while len(pieces) > 1:  # (concatenated pairwise: registers side by side, no shuffle)
        count = 2 * pieces[0].type.count
        order = ir.Constant(ir.VectorType(ir.IntType(32), count), list(range(count)))
        pieces = [
            builder.shuffle_vector(pieces[i], pieces[i + 1], order)
            for i in range(0, len(pieces), 2)
        ]
    return pieces[0]


def _word_by_vectors(
    builder: Any, xptr: Any, yptr: Any, element: Any, size: int, stream: bool, kernel: Any
) -> Any:
    """The 64 elements from ``xptr`` one 64-byte vector at a time: ``kernel(v, q) -> (r,
    codes)`` of the ``q``-th vector ``v``, ``r`` stored to ``yptr`` (streamed with ``stream``),
    the codes shifted into the word that is returned. (The whole word's compares at once need
    more mask registers than AVX-512 has, and their spills halved the streamed float64 rate:
    relu6 at 2^24, 13.6 ms against relu's 5.8.) Each vector is loaded before it is stored, so
    ``yptr`` may be ``xptr``."""
    lanes = 64 // size
    piece = ir.VectorType(element, lanes).as_pointer()
    xs, ys = builder.bitcast(xptr, piece), builder.bitcast(yptr, piece)
    word = ir.Constant(ir.IntType(64), 0)
    for q in range(64 // lanes):
        at = [ir.Constant(ir.IntType(64), q)]
        r, codes = kernel(builder.load(builder.gep(xs, at), align=size), q)
        _store(builder, r, builder.gep(ys, at), size, stream)
        bits = builder.zext(builder.bitcast(codes, ir.IntType(lanes)), ir.IntType(64))
        word = builder.or_(word, builder.shl(bits, ir.Constant(ir.IntType(64), q * lanes)))
    return word


def _float_array(t: Any) -> bool:
    return isinstance(t, types.Array) and isinstance(t.dtype, types.Float) and t.ndim == 1


def _half_array(t: Any) -> bool:
    """A 1-D array of 16-bit floats as raw bits (float16 in int16, bfloat16 in uint16)."""
    return (
        isinstance(t, types.Array)
        and isinstance(t.dtype, types.Integer)
        and t.dtype.bitwidth == 16
        and t.ndim == 1
    )


def _widened(builder: Any, values: Any, signed: bool) -> Any:
    """Raw 16-bit floats as float32 (exact): float16 through ``fpext`` (one vcvtph2ps per 16
    with F16C), bfloat16 as the high half of a float32's bits."""
    lanes = values.type.count
    if signed:
        halves = builder.bitcast(values, ir.VectorType(ir.HalfType(), lanes))
        return builder.fpext(halves, ir.VectorType(ir.FloatType(), lanes))
    wide = builder.zext(values, ir.VectorType(ir.IntType(32), lanes))
    shifted = builder.shl(wide, _splat(builder, ir.Constant(ir.IntType(32), 16), lanes))
    return builder.bitcast(shifted, ir.VectorType(ir.FloatType(), lanes))


def _relu_16(builder: Any, v: Any, signed: bool) -> tuple[Any, Any]:
    """(relu of raw 16-bit floats, their codes ``not x <= 0``) from the bits alone: a negative
    number that is neither -0 nor NaN becomes +0 (the sign-bit rule of
    :func:`relukit.kernels.cpu.rectifiers.relu_f`); the code is x > 0, or NaN.

    As 16-bit integers the negative numbers (-inf included, -0 not) are one range, from 0x8001
    to ``0x8000 | inf`` (``inf``: the infinity's bits), which adding 0x7FFF moves to ``[0, inf
    - 1]`` (one add, one unsigned compare); the negative NaNs lie above ``0x8000 | inf``, so
    the codes are ``v > (0x8000 | inf)`` as signed integers, and ``v != 0``: five vector
    operations per 32 elements, where the sign, magnitude and NaN tests written out took ten.
    """
    lanes = v.type.count
    i16 = ir.IntType(16)
    infinity = 0x7C00 if signed else 0x7F80

    def splat(value: int) -> Any:
        return _splat(builder, ir.Constant(i16, value), lanes)

    zero = ir.Constant(v.type, None)
    drop = builder.icmp_unsigned("<=", builder.add(v, splat(0x7FFF)), splat(infinity - 1))
    above = builder.icmp_signed(">", v, splat(infinity - 0x8000))  # (0x8000 | inf, signed)
    code = builder.and_(above, builder.icmp_unsigned("!=", v, zero))
    return builder.select(drop, zero, v), code


def _above_zero_16(builder: Any, v: Any, signed: bool) -> Any:
    """The codes ``x > 0`` (NaN not) of raw 16-bit floats from their bits: ``0 < v <= inf`` as
    16-bit integers, one subtraction and one unsigned compare, in element order (widened, the
    compares of two float32 halves were joined, and LLVM converted each float16 half a second
    time for them: leaky_relu's mask forward at 2^20, 1 thread, AMD EPYC, µs, float16
    166-185 → 134-151, bfloat16 113-117 → 102-108; prelu's with 64 slopes alike)."""
    lanes = v.type.count
    i16 = ir.IntType(16)
    infinity = 0x7C00 if signed else 0x7F80
    less_one = builder.sub(v, _splat(builder, ir.Constant(i16, 1), lanes))
    return builder.icmp_unsigned("<", less_one, _splat(builder, ir.Constant(i16, infinity), lanes))


def _order_keys(builder: Any, v: Any) -> Any:
    """The order keys of raw 16-bit floats (:func:`relukit.kernels.cpu.dtypes.order_key`, in
    16-bit lanes): the bits as signed integers, the magnitude bits flipped where the sign is
    set (-0 just below +0, the NaNs outside [-inf, inf])."""
    lanes = v.type.count

    def splat(value: int) -> Any:
        return _splat(builder, ir.Constant(ir.IntType(16), value), lanes)

    return builder.xor(v, builder.and_(builder.ashr(v, splat(15)), splat(0x7FFF)))


def _clip_16(builder: Any, v: Any, signed: bool, keys: Any, lo_raw: Any, hi_raw: Any) -> Any:
    """(the clip of raw 16-bit floats to [lo, hi], their codes ``lo < x < hi``) on the bits:
    ``keys`` are the bounds as order keys (:func:`relukit.kernels.cpu.dtypes.clip_keys`), the
    bits ``lo_raw`` / ``hi_raw`` are put below and above, each element's own bits kept between
    (and NaN, whose code is 0). The order key of a 16-bit float (its bits as a signed integer,
    the magnitude bits flipped when negative) orders the numbers as their values do, with -0
    just below +0 and the NaNs outside [-inf, inf]: the ranges ``[key(-inf), below)`` and
    ``(above, key(inf)]`` are one subtraction and one unsigned compare each, the codes two
    signed compares. About half the vector operations of comparing the elements widened to
    float32, and the same answers (see ``clip_keys``)."""
    lanes = v.type.count
    i16 = ir.IntType(16)
    infinity = 0x7C00 if signed else 0x7F80
    lowest = ((0x8000 | infinity) ^ 0x7FFF) - 0x10000  # key(-inf)

    def splat(value: Any) -> Any:
        if isinstance(value, int):
            value = ir.Constant(i16, value)
        return _splat(builder, value, lanes)

    below_lo, above_lo, above_hi, below_hi = (builder.extract_value(keys, i) for i in range(4))
    key = _order_keys(builder, v)
    # key - key(-inf) < below_lo - key(-inf), unsigned: key(-inf) <= key < below_lo
    span = builder.sub(below_lo, ir.Constant(i16, lowest))
    below = builder.icmp_unsigned("<", builder.sub(key, splat(lowest)), splat(span))
    # key - above_hi - 1 < key(inf) - above_hi, unsigned: above_hi < key <= key(inf)
    start = builder.add(above_hi, ir.Constant(i16, 1))
    span = builder.sub(ir.Constant(i16, infinity), above_hi)
    above = builder.icmp_unsigned("<", builder.sub(key, splat(start)), splat(span))
    r = builder.select(above, splat(hi_raw), v)
    r = builder.select(below, splat(lo_raw), r)
    code = builder.and_(
        builder.icmp_signed(">", key, splat(above_lo)),
        builder.icmp_signed("<", key, splat(below_hi)),
    )
    return r, code


def _compare_word(kind: str) -> Any:
    """An intrinsic ``(array, start, a, b) -> uint64``: bit k set where element ``start + k``
    passes the comparison (``above``: x > a or NaN; ``greater``: x > a; ``b`` is not read).
    16-bit floats (raw bits, float32 ``a`` and ``b``) are widened
    to float32 in the vector first, so their codes are one vector pass too."""

    @intrinsic
    def word(typingctx: Any, array: Any, start: Any, a: Any, b: Any) -> Any:
        half = _half_array(array)
        if half:
            if not (a == b == types.float32):
                return None
        elif not (_float_array(array) and a == array.dtype and b == array.dtype):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            pointer, element = _vector_at(context, builder, signature.args[0], args[0], args[1])
            values = builder.load(pointer, align=context.get_abi_sizeof(element))
            if half:
                values = _widened(builder, values, signature.args[0].dtype.signed)
            if kind == "above":
                bits = builder.fcmp_unordered(">", values, _splat(builder, args[2]))
            else:
                bits = builder.fcmp_ordered(">", values, _splat(builder, args[2]))
            return builder.bitcast(bits, ir.IntType(64))

        return types.uint64(array, types.intp, a, b), codegen

    return word


def _vector_select_16(clip: bool) -> Any:
    """An intrinsic ``(x, start, y, nvec, keys, low_raw, high_raw)`` writing ``nvec``
    64-byte vectors (32 elements) of relu (``clip`` False) or the clip of relu6/hardtanh on
    16-bit floats as raw bits (float16 in int16, bfloat16 in uint16), each element's own bits
    kept: relu by the sign-bit rule of :func:`relukit.kernels.cpu.rectifiers.relu_f` (a
    negative number that is neither -0 nor NaN becomes +0), the clip by comparing their order
    keys with the bounds' (``keys``, see :func:`_clip_16`; relu does not read them) and
    putting ``low_raw`` / ``high_raw`` (the bounds' bits) below and above. Each vector is
    loaded before it is stored, so ``y`` may be ``x``."""

    @intrinsic
    def select(
        typingctx: Any,
        x: Any,
        start: Any,
        y: Any,
        nvec: Any,
        keys: Any,
        low_raw: Any,
        high_raw: Any,
    ) -> Any:
        if not (_half_array(x) and isinstance(y, types.Array) and y.dtype == x.dtype):
            return None
        if not (keys == KEYS and low_raw == high_raw == x.dtype):
            return None
        sig = types.void(x, types.intp, y, types.intp, keys, low_raw, high_raw)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            _, _, _, _, bounds, lo_raw, hi_raw = args
            signed = signature.args[0].dtype.signed

            def kernel(v: Any) -> Any:
                if clip:
                    return _clip_16(builder, v, signed, bounds, lo_raw, hi_raw)[0]
                return _relu_16(builder, v, signed)[0]

            return _vectors_16(context, builder, signature, args, kernel)

        return sig, codegen

    return select


def _vectors_16(context: Any, builder: Any, signature: Any, args: Any, kernel: Any) -> Any:
    """The loop of an intrinsic ``(x, start, y, nvec, ...)`` over 16-bit floats (raw bits):
    ``y[start:]`` from ``x[start:]``, ``nvec`` vectors of 32, each ``kernel(v)`` of the loaded
    vector ``v``, stored after it is loaded (``y`` may be ``x``)."""
    xarr, first, yarr, nv = args[:4]
    vector = ir.VectorType(ir.IntType(16), 32)
    xary = context.make_array(signature.args[0])(context, builder, xarr)
    yary = context.make_array(signature.args[2])(context, builder, yarr)
    xptr = builder.bitcast(builder.gep(xary.data, [first]), vector.as_pointer())
    yptr = builder.bitcast(builder.gep(yary.data, [first]), vector.as_pointer())
    with cgutils.for_range(builder, nv) as loop:
        v = builder.load(builder.gep(xptr, [loop.index]), align=2)
        builder.store(kernel(v), builder.gep(yptr, [loop.index]), align=2)
    return context.get_dummy_value()


def _passed_16(builder: Any, values: Any, signed: bool, others: Any = None) -> Any:
    """Raw 16-bit floats passed on as ``narrow(widen(e)·1, e)`` stores them: themselves, a NaN
    quieted (float16: the quiet NaN 0x7E00 with its sign; bfloat16: the quiet bit set, the
    payload kept), as :func:`relukit.kernels.cpu.dtypes.passed` element by element; with
    ``others``, its lanes where ``values`` are not NaN."""
    element = values.type.element
    lanes = values.type.count

    def splat(v: int) -> Any:
        return _splat(builder, ir.Constant(element, v), lanes)

    nan = _nan_16(builder, values, signed)
    if signed:
        quiet = builder.or_(builder.and_(values, splat(0x8000)), splat(0x7E00))
    else:
        quiet = builder.or_(values, splat(0x0040))
    return builder.select(nan, quiet, values if others is None else others)


relu_16 = _vector_select_16(clip=False)
clip_16 = _vector_select_16(clip=True)


def _vector_few_values_16(general: bool) -> Any:
    """An intrinsic ``(x, start, y, nvec, keys, values)`` writing ``nvec`` vectors of 32 16-bit
    floats (raw bits) from ``x[start]`` to ``y[start:]``: the derivative of a piecewise-linear
    member, one of ``values`` = (one, other, zero, at -inf, at +inf), in x's raw type, chosen
    on the order keys (:func:`_clip_16`; the keys and the scalar rule:
    :func:`relukit.kernels.cpu.dtypes.few_keys`, :func:`~relukit.kernels.cpu.dtypes.few_value`).
    relu, leaky_relu and the clip: one where ``keys[0] < key < keys[1]``, else other;
    general_relu (``general``): zero where the cap holds (``keys[3]`` bit 0: capped, bit 1: a
    negative threshold; ``key > keys[0]`` and ``key >= keys[2]``, or ``key <= 0`` below a
    negative threshold), else one above the threshold (``key > keys[0]``), else other. ±inf
    take their values, a NaN is passed on quieted (as ``narrow`` rounds it). Each vector is
    loaded before it is stored, so ``y`` may be ``x``. About fifteen 16-bit vector operations
    per 32 elements, where comparing them widened to float32 and selecting in 32-bit lanes
    took some thirty."""

    @intrinsic
    def few(typingctx: Any, x: Any, start: Any, y: Any, nvec: Any, keys: Any, values: Any) -> Any:
        if not (_half_array(x) and isinstance(y, types.Array) and y.dtype == x.dtype):
            return None
        if not (keys == KEYS and values == types.UniTuple(x.dtype, 5)):
            return None
        sig = types.void(x, types.intp, y, types.intp, keys, values)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            _, _, _, _, bounds, picks = args
            signed = signature.args[0].dtype.signed
            i16 = ir.IntType(16)
            infinity = 0x7C00 if signed else 0x7F80

            def splat(value: Any) -> Any:
                if isinstance(value, int):
                    value = ir.Constant(i16, value)
                return _splat(builder, value, 32)

            k0, k1, k2, flags = (splat(builder.extract_value(bounds, i)) for i in range(4))
            one, other, zero, at_low, at_high = (
                splat(builder.extract_value(picks, i)) for i in range(5)
            )
            none = splat(0)
            capped = builder.icmp_unsigned("!=", builder.and_(flags, splat(1)), none)
            negative = builder.icmp_unsigned("!=", builder.and_(flags, splat(2)), none)

            def kernel(v: Any) -> Any:
                key = _order_keys(builder, v)
                above = builder.icmp_signed(">", key, k0)
                if general:
                    high = builder.icmp_signed(">=", key, k2)
                    low = builder.and_(negative, builder.icmp_signed("<=", key, none))
                    held = builder.and_(capped, builder.and_(above, builder.or_(high, low)))
                    r = builder.select(held, zero, builder.select(above, one, other))
                else:
                    inside = builder.and_(above, builder.icmp_signed("<", key, k1))
                    r = builder.select(inside, one, other)
                minus_infinity = builder.icmp_unsigned("==", v, splat(0x8000 | infinity))
                r = builder.select(minus_infinity, at_low, r)
                r = builder.select(builder.icmp_unsigned("==", v, splat(infinity)), at_high, r)
                return _passed_16(builder, v, signed, r)

            return _vectors_16(context, builder, signature, args, kernel)

        return sig, codegen

    return few


vector_few_values_16 = _vector_few_values_16(general=False)
general_values_16 = _vector_few_values_16(general=True)


def _select_word_16(clip: bool, stream: bool) -> Any:
    """An intrinsic ``(x, start, y, keys, low_raw, high_raw) -> uint64``: the 64 16-bit
    floats (raw bits) from ``x[start]`` selected as :func:`_vector_select_16` selects them,
    stored to ``y[start:]`` (streamed with ``stream``: ``y[start]`` 64-byte aligned), and
    their one-bit codes as a word: relu's ``not x <= 0`` (x > 0 or NaN, from the bits), the
    clip's ``low < x < high`` (on the order keys, false for NaN). One pass: each vector is
    loaded once (before it is stored, so ``y`` may be ``x``)."""

    @intrinsic
    def word(
        typingctx: Any,
        x: Any,
        start: Any,
        y: Any,
        keys: Any,
        low_raw: Any,
        high_raw: Any,
    ) -> Any:
        if not (_half_array(x) and _half_array(y) and y.dtype == x.dtype):
            return None
        if not (keys == KEYS and low_raw == high_raw == x.dtype):
            return None
        sig = types.uint64(x, types.intp, y, keys, low_raw, high_raw)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, bounds, lo_raw, hi_raw = args
            signed = signature.args[0].dtype.signed
            xptr, element = _vector_at(context, builder, signature.args[0], xarr, first)
            yptr, _ = _vector_at(context, builder, signature.args[2], yarr, first)

            def kernel(v: Any, _: int) -> tuple[Any, Any]:
                if clip:
                    return _clip_16(builder, v, signed, bounds, lo_raw, hi_raw)
                return _relu_16(builder, v, signed)

            return _word_by_vectors(builder, xptr, yptr, element, 2, stream, kernel)

        return sig, codegen

    return word


relu_word_16 = _select_word_16(clip=False, stream=False)
relu_word_16_streamed = _select_word_16(clip=False, stream=True)
clip_word_16 = _select_word_16(clip=True, stream=False)
clip_word_16_streamed = _select_word_16(clip=True, stream=True)


word_above = _compare_word("above")
word_greater = _compare_word("greater")


def _chain(builder: Any, element: Any, grads: Any, derivative: Any, zeros: bool = True) -> Any:
    """``grads · derivative``, +0 where the derivative is 0 (``zeros``: it may be)."""
    product = builder.fmul(grads, derivative)
    if not zeros:
        return product
    zero = ir.Constant(ir.VectorType(element, 64), None)
    return builder.select(builder.fcmp_ordered("==", derivative, zero), zero, product)


def _chain_word(stream: bool, zeros: bool = True) -> Any:
    """An intrinsic ``(g, gstart, word, low, high, dst, dstart)``: ``dst[dstart+k] =
    g[gstart+k]·d_k`` for the 64 elements of a mask word: ``d_k = high`` where bit k is set,
    ``low`` where it is clear; a zero ``d_k`` gives +0 (the chain rule of the piecewise-linear
    members). With ``stream`` the stores are streaming and ``dst[dstart]`` 64-byte aligned.
    Without ``zeros`` (for a caller that knows neither value is 0: leaky_relu's slope, prelu's
    one weight, rrelu's mean slope) the product alone, without the compare of each derivative
    with 0 (see :func:`_chain_derivative`)."""

    @intrinsic
    def chain(
        typingctx: Any, g: Any, gstart: Any, word: Any, low: Any, high: Any, dst: Any, dstart: Any
    ) -> Any:
        if not (_float_array(g) and _float_array(dst) and g.dtype == dst.dtype == low == high):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            garr, first, bits_word, below, above, out, out_first = args
            gptr, element = _vector_at(context, builder, signature.args[0], garr, first)
            align = context.get_abi_sizeof(element)
            derivative = _chain_derivative(builder, bits_word, below, above)
            grads = _load_apart(builder, gptr, align)
            result = _chain(builder, element, grads, derivative, zeros)
            optr, _ = _vector_at(context, builder, signature.args[5], out, out_first)
            _store(builder, result, optr, align, stream)
            return context.get_dummy_value()

        return types.void(g, types.intp, types.uint64, low, high, dst, types.intp), codegen

    return chain


chain_word = _chain_word(stream=False)
chain_word_streamed = _chain_word(stream=True)
chain_word_nonzero = _chain_word(stream=False, zeros=False)
chain_word_nonzero_streamed = _chain_word(stream=True, zeros=False)


def _chain_derivative(builder: Any, bits_word: Any, below: Any, above: Any) -> Any:
    """The 64 derivatives of a mask word: ``above`` where bit k is set, ``below`` where it is
    clear. (The compare of each with 0 that :func:`_chain` adds is a third 512-bit operation
    a vector beside this select and the multiply; dropped where neither value is 0,
    leaky_relu's backward_from_mask at 2^20, 1 thread, AMD EPYC, in a copy's time: bfloat16
    0.51-0.59 → 0.72-0.74, float16 0.47-0.55 → 0.59-0.64.)"""
    bits = builder.bitcast(bits_word, ir.VectorType(ir.IntType(1), 64))
    return builder.select(bits, _splat(builder, above), _splat(builder, below))


def _pass_word(stream: bool) -> Any:
    """An intrinsic ``(g, gstart, word, one, dst, dstart)``: ``dst[dstart+k] = g[gstart+k]``
    where bit k of the mask word is set, +0 where it is clear, for 64 elements: the chain rule
    of a derivative that is 0 or 1 (relu's, relu6's, hardtanh's), with the bits the product
    gives (a NaN quieted). For float32 and float64 that is ``g·one`` (``one`` is 1, passed at
    run time, where LLVM would fold a constant away) in one masked multiply a vector, where
    :func:`chain_word` also selects the derivative and compares it with 0: three 512-bit
    operations a vector, which the AMD EPYC here (Zen 5) runs below a copy's rate (relu's
    backward_from_mask at 2^16 float32 in L2, 1 thread, AMD EPYC: 3.7 µs against a copy's
    2.2). For 16-bit floats as raw bits (float16 in int16, bfloat16 in uint16; ``one``
    float32), ``narrow(widen(g)·1)``, as :func:`relukit.kernels.cpu.dtypes.passed`, in one
    vector select. Streamed with ``stream`` (``dst[dstart]`` 64-byte aligned)."""

    @intrinsic
    def select(
        typingctx: Any, g: Any, gstart: Any, word: Any, one: Any, dst: Any, dstart: Any
    ) -> Any:
        half = _half_array(g) and _half_array(dst) and one == types.float32
        if not (half or (_float_array(g) and _float_array(dst) and g.dtype == one)):
            return None
        if g.dtype != dst.dtype:
            return None
        signed = half and g.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            garr, first, bits_word, unit, out, out_first = args
            gptr, element = _vector_at(context, builder, signature.args[0], garr, first)
            align = context.get_abi_sizeof(element)
            values = _load_apart(builder, gptr, align)
            if half:
                passed = _passed_16(builder, values, signed)
            else:
                passed = builder.fmul(values, _splat(builder, unit))
            bits = builder.bitcast(bits_word, ir.VectorType(ir.IntType(1), 64))
            result = builder.select(bits, passed, ir.Constant(values.type, None))
            optr, _ = _vector_at(context, builder, signature.args[4], out, out_first)
            _store(builder, result, optr, align, stream)
            return context.get_dummy_value()

        return types.void(g, types.intp, types.uint64, one, dst, types.intp), codegen

    return select


pass_word = _pass_word(stream=False)
pass_word_streamed = _pass_word(stream=True)


def _narrowed(builder: Any, values: Any, signed: bool, nans: bool = True) -> Any:
    """float32 values rounded to nearest even into raw 16-bit floats, as
    :func:`relukit.kernels.cpu.dtypes.narrow` rounds them: float16 by the hardware's
    conversion (F16C), a NaN as 0x7E00 with its sign; bfloat16 on the bits, a NaN quieted
    (its high half with the quiet bit). Without ``nans`` (for a caller that knows no value
    is NaN) float16 is the conversion alone."""
    if not signed:
        return _bf16_bits(builder, values)
    lanes = values.type.count
    halves = ir.VectorType(ir.IntType(16), lanes)
    rounded = builder.bitcast(builder.fptrunc(values, ir.VectorType(ir.HalfType(), lanes)), halves)
    if not nans:
        return rounded
    nan = builder.fcmp_unordered("uno", values, values)
    sign = builder.and_(rounded, _splat(builder, ir.Constant(ir.IntType(16), 0x8000), lanes))
    quiet = builder.or_(sign, _splat(builder, ir.Constant(ir.IntType(16), 0x7E00), lanes))
    return builder.select(nan, quiet, rounded)


def _leaky(builder: Any, v: Any, slope: Any, lo: Any, hi: Any, plain: bool) -> tuple[Any, Any]:
    """leaky_relu of a vector ``v`` and its codes ``v > 0``: ``v`` or ``v·slope`` (a scalar, or
    a vector of one slope per lane), the limits ``lo`` / ``hi`` at ∓inf where they are
    numbers, NaN kept (as ``conventions(v, leaky_relu_f(v, slope), lo, hi)``). ``plain``: the
    caller knows that the limits are what the formula gives at ∓inf (or are NaN: none), so only
    NaN needs keeping, which selecting ``v`` where ``not v <= 0`` does."""
    lanes = v.type.count
    element = v.type.element
    zero = _splat(builder, ir.Constant(element, 0), lanes)
    positive = builder.fcmp_ordered(">", v, zero)
    slopes = slope if isinstance(slope.type, ir.VectorType) else _splat(builder, slope, lanes)
    product = builder.fmul(v, slopes)
    if plain:
        return builder.select(builder.fcmp_unordered(">", v, zero), v, product), positive
    return _limits(builder, v, builder.select(positive, v, product), lo, hi), positive


def _no_nan_16(builder: Any, values: list[Any], signed: bool) -> Any:
    """No NaN among raw 16-bit floats ``values`` (i1; vectors of one width)."""
    nan = _nan_16(builder, values[0], signed)
    for piece in values[1:]:
        nan = builder.or_(nan, _nan_16(builder, piece, signed))
    lanes = nan.type.count
    module = builder.module
    flags = ir.VectorType(ir.IntType(1), lanes)
    kind = ir.FunctionType(ir.IntType(1), [flags])
    reduce = cgutils.get_or_insert_function(module, kind, f"llvm.vector.reduce.or.v{lanes}i1")
    return builder.not_(builder.call(reduce, [nan]))


def _nan_16(builder: Any, values: Any, signed: bool) -> Any:
    """Which raw 16-bit floats of ``values`` are NaN: magnitude above the infinity's
    (compared as unsigned: the magnitude has no sign bit)."""
    lanes = values.type.count
    i16 = ir.IntType(16)
    magnitude = builder.and_(values, _splat(builder, ir.Constant(i16, 0x7FFF), lanes))
    infinity = _splat(builder, ir.Constant(i16, 0x7C00 if signed else 0x7F80), lanes)
    return builder.icmp_unsigned(">", magnitude, infinity)


def _kept_or_scaled_16(builder: Any, v: Any, signed: bool, slope: Any, keep: Any) -> Any:
    """Raw float16 ``v`` where ``keep``, elsewhere ``v·slope`` formed in float32 and rounded
    back once (:func:`_kept_or_narrowed_16`)."""
    lanes = v.type.count
    product = builder.fmul(_widened(builder, v, signed), _splat(builder, slope, lanes))
    return _kept_or_narrowed_16(builder, v, signed, product, keep)


def _kept_or_narrowed_16(builder: Any, v: Any, signed: bool, others: Any, keep: Any) -> Any:
    """Raw float16 ``v`` where ``keep``, elsewhere the float32 ``others`` rounded back once
    (F16C), for a caller that knows that no ``v`` is NaN and that ``others`` are formed from
    ``v`` and a member's slopes and thresholds (finite, though one beyond float32's range is
    ±inf here), so that one is NaN only as ``±inf·0`` or ``inf − inf``: such a NaN has no
    payload and, on x86, the sign bit set, so the conversion alone gives the bits of the NaN
    rule (0x7E00 with the sign), and a kept element is its own bits, as
    ``narrow(widen(v)·1)`` and ``narrow(widen(v))`` give them.
    The same bits as every lane rounded back with that rule, without its NaN test, and with
    a 16-bit select per 32 elements where the float32 select took one per 16. (bfloat16
    gained nothing: its widening is two integer operations per 16 lanes and its rounding
    instruction quiets a NaN itself, and the test for NaN made its backward slower.)"""
    return builder.select(keep, v, _narrowed(builder, others, signed, nans=False))


def _pieces_16(builder: Any, pointer: Any) -> list[Any]:
    """The 64 raw 16-bit floats at ``pointer`` (a vector's pointer) as two 64-byte vectors,
    loaded as :func:`_word_by_vectors` loads them, so that it reuses the loads (one 128-byte
    load, taken apart, became 64 word inserts)."""
    element = pointer.type.pointee.element
    pieces = builder.bitcast(pointer, ir.VectorType(element, 32).as_pointer())
    return [
        builder.load(builder.gep(pieces, [ir.Constant(ir.IntType(64), q)]), align=2)
        for q in range(2)
    ]


def _unless_nan_16(
    builder: Any, values: list[Any], signed: bool, fast: Any, slow: Any, ready: Any = None
) -> Any:
    """``fast()`` where no raw 16-bit float of ``values`` is NaN (and ``ready``, an i1, holds),
    else ``slow()``; both are code generators that return one LLVM value (or None), which is
    returned."""
    take = _no_nan_16(builder, values, signed)
    if ready is not None:
        take = builder.and_(ready, take)
    with builder.if_else(take, likely=True) as (quick, general):
        with quick:
            quick_value = fast()
            quick_block = builder.block
        with general:
            general_value = slow()
            general_block = builder.block
    if quick_value is None:
        return None
    result = builder.phi(quick_value.type)
    result.add_incoming(quick_value, quick_block)
    result.add_incoming(general_value, general_block)
    return result


def _leaky_word_16(plain: bool, stream: bool) -> Any:
    """An intrinsic ``(x, start, y, a, low, high) -> uint64``: leaky_relu on the 64 16-bit
    floats (raw bits) from ``x[start]``, into ``y[start:]`` (streamed with ``stream``:
    ``y[start]`` 64-byte aligned), and their codes ``x > 0`` as a word, in one pass: widened
    to float32, :func:`_leaky`, rounded back once (as ``narrow(conventions(v, leaky_relu_f(v,
    a), low, high))``); a ``plain`` float16 word with no NaN takes x or its product
    (:func:`_kept_or_scaled_16`). Each vector is loaded before it is stored, so ``y`` may be
    ``x``."""

    @intrinsic
    def word(typingctx: Any, x: Any, start: Any, y: Any, a: Any, low: Any, high: Any) -> Any:
        if not (_half_array(x) and _half_array(y) and y.dtype == x.dtype):
            return None
        if not a == low == high == types.float32:
            return None
        signed = x.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, slope, lo, hi = args
            xptr, element = _vector_at(context, builder, signature.args[0], xarr, first)
            yptr, _ = _vector_at(context, builder, signature.args[2], yarr, first)

            def kernel(v: Any, _: int) -> tuple[Any, Any]:
                wide = _widened(builder, v, signed)
                r, _ = _leaky(builder, wide, slope, lo, hi, plain)
                return _narrowed(builder, r, signed), _above_zero_16(builder, v, signed)

            def general() -> Any:
                return _word_by_vectors(builder, xptr, yptr, element, 2, stream, kernel)

            if not (plain and signed):
                return general()

            def kept(v: Any, _: int) -> tuple[Any, Any]:
                code = _above_zero_16(builder, v, signed)
                return _kept_or_scaled_16(builder, v, signed, slope, code), code

            def quick() -> Any:
                return _word_by_vectors(builder, xptr, yptr, element, 2, stream, kept)

            # float16, plain, no NaN among the 64: x where x > 0, else x·slope, with no NaN
            # rule (_kept_or_scaled_16; leaky_relu's forward_with_mask(out=) at 2^20, 1
            # thread, AMD EPYC, 72-74 µs → 47-48, a copy 34-41)
            return _unless_nan_16(builder, _pieces_16(builder, xptr), signed, quick, general)

        return types.uint64(x, types.intp, y, a, low, high), codegen

    return word


leaky_word_16 = _leaky_word_16(plain=False, stream=False)
leaky_word_16_streamed = _leaky_word_16(plain=False, stream=True)
leaky_word_16_plain = _leaky_word_16(plain=True, stream=False)
leaky_word_16_plain_streamed = _leaky_word_16(plain=True, stream=True)


def _leaky_word(stream: bool, plain: bool) -> Any:
    """An intrinsic ``(x, start, y, a, low, high) -> uint64``: leaky_relu of the 64 float32 or
    float64 elements from ``x[start]`` (:func:`_leaky`, ``plain`` or not) stored to
    ``y[start:start+64]`` (streamed if ``stream``: ``y[start]`` 64-byte aligned) and their
    codes ``x > 0`` as a word. Each vector is loaded before it is stored, so ``y`` may be
    ``x``."""

    @intrinsic
    def word(typingctx: Any, x: Any, start: Any, y: Any, a: Any, low: Any, high: Any) -> Any:
        if not (_float_array(x) and _float_array(y) and y.dtype == x.dtype == a == low == high):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, slope, lo, hi = args
            xptr, element = _vector_at(context, builder, signature.args[0], xarr, first)
            yptr, _ = _vector_at(context, builder, signature.args[2], yarr, first)

            def kernel(v: Any, _: int) -> tuple[Any, Any]:
                return _leaky(builder, v, slope, lo, hi, plain)

            size = context.get_abi_sizeof(element)
            return _word_by_vectors(builder, xptr, yptr, element, size, stream, kernel)

        return types.uint64(x, types.intp, y, a, low, high), codegen

    return word


leaky_word = _leaky_word(stream=False, plain=False)
leaky_word_streamed = _leaky_word(stream=True, plain=False)
leaky_word_plain = _leaky_word(stream=False, plain=True)
leaky_word_plain_streamed = _leaky_word(stream=True, plain=True)


def _slopes_word(stream: bool) -> Any:
    """An intrinsic ``(x, start, y, s, at) -> uint64``: prelu of the 64 elements from
    ``x[start]`` (float32 or float64, or 16-bit floats as raw bits, with float32 slopes), each
    with its own slope, ``s[at:at+64]`` (finite and not 0, so that ``x·s`` is prelu's value at
    ∓inf too), stored to ``y[start:start+64]`` (streamed if ``stream``: ``y[start]`` 64-byte
    aligned), and their codes ``x > 0`` as a word: leaky_relu's :func:`_leaky` (plain) with a
    vector of slopes; 16-bit floats widened to float32 and rounded back once, as
    ``narrow(prelu_f(widen(x), s))``. Each vector is loaded before it is stored, so ``y`` may
    be ``x``."""

    @intrinsic
    def word(typingctx: Any, x: Any, start: Any, y: Any, s: Any, at: Any) -> Any:
        if not (isinstance(at, types.Integer) and _float_array(s)):
            return None
        half = _half_array(x) and _half_array(y) and y.dtype == x.dtype
        if half and s.dtype != types.float32:
            return None
        if not half and not (_float_array(x) and _float_array(y) and y.dtype == x.dtype == s.dtype):
            return None
        signed = half and x.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, sarr, offset = args
            xptr, element = _vector_at(context, builder, signature.args[0], xarr, first)
            yptr, _ = _vector_at(context, builder, signature.args[2], yarr, first)
            sptr, slope = _vector_at(context, builder, signature.args[3], sarr, offset)
            size = context.get_abi_sizeof(element)
            pieces = builder.bitcast(sptr, ir.VectorType(slope, 64 // size).as_pointer())
            align = context.get_abi_sizeof(slope)

            def kernel(v: Any, q: int) -> tuple[Any, Any]:
                at = [ir.Constant(ir.IntType(64), q)]
                slopes = builder.load(builder.gep(pieces, at), align=align)
                if not half:
                    return _leaky(builder, v, slopes, None, None, True)
                wide = _widened(builder, v, signed)
                r, _ = _leaky(builder, wide, slopes, None, None, True)
                return _narrowed(builder, r, signed), _above_zero_16(builder, v, signed)

            return _word_by_vectors(builder, xptr, yptr, element, size, stream, kernel)

        return types.uint64(x, types.intp, y, s, types.intp), codegen

    return word


slopes_word = _slopes_word(stream=False)
slopes_word_streamed = _slopes_word(stream=True)


def _limits(builder: Any, v: Any, r: Any, lo: Any, hi: Any) -> Any:
    """``conventions(v, r, lo, hi)`` on vectors: the limits ``lo`` / ``hi`` at ∓inf where they
    are numbers, NaN in kept."""
    element = v.type.element
    for limit, infinity in ((lo, float("-inf")), (hi, float("inf"))):
        at = builder.fcmp_ordered(
            "==", v, _splat(builder, ir.Constant(element, infinity), v.type.count)
        )
        number = builder.fcmp_ordered("==", limit, limit)
        r = builder.select(
            builder.and_(at, _splat(builder, number, v.type.count)),
            _splat(builder, limit, v.type.count),
            r,
        )
    return builder.select(builder.fcmp_unordered("uno", v, v), v, r)


def _general(builder: Any, v: Any, values: Any, capped: bool, limits: bool) -> tuple[Any, Any, Any]:
    """general_relu of a vector ``v``, and its pieces (``v > t``; where the cap holds: none
    unless ``capped``), from ``values`` (scalars,
    :func:`~relukit.kernels.cpu.masks.general_values`) with no branch on them: at or below the
    threshold ``t``, +0 below ``t_flat`` and ``(v − t)·slope`` from it (a zero slope: ``t_flat``
    = t, slope 1, so +0 below t and ``v − t`` at it; else ``t_flat`` = −∞); above it ``v``, or
    ``capped`` its clip to [0, top] (``top`` where ``v >= top``, else x86's max with 0);
    held where above and ``v >= top`` or ``v <= held_floor`` (0 where the threshold is below
    0, else NaN: none), as :func:`~relukit.kernels.cpu.rectifiers.general_relu_f` and
    ``general_relu_flat`` give, and a NaN comes out as itself. With ``limits`` the limits
    ``values[5]`` / ``values[6]`` at ∓inf are set where they are numbers (as ``conventions``);
    without, the caller knows the formula gives them (:func:`~relukit.kernels.cpu.masks.
    general_values`: all but parameters beyond float32's range). (Selects on the flags as
    scalars became a branch per vector, and a clip by compares took 7 compares a vector:
    2.1-2.5x leaky_relu's time.)"""
    lanes = v.type.count
    top, held_floor = (_splat(builder, value, lanes) for value in values[3:5])
    t = _splat(builder, values[2], lanes)
    zero = ir.Constant(v.type, None)
    lower, above = _general_lower(builder, v, values)
    if not capped:
        # a NaN: not above, but not below either (the unordered compare keeps it as itself)
        r = builder.select(builder.fcmp_unordered(">", v, t), v, lower)
        held = None
    else:
        positive = builder.select(builder.fcmp_ordered(">", v, zero), v, zero)
        capping = builder.fcmp_ordered(">=", v, top)  # (a cap of -0.0 gives +0 below it)
        r = builder.select(above, builder.select(capping, top, positive), lower)
        held = builder.or_(capping, builder.fcmp_ordered("<=", v, held_floor))
        held = builder.and_(above, held)
        r = builder.select(builder.fcmp_unordered("uno", v, v), v, r)
    if limits:
        r = _limits(builder, v, r, values[5], values[6])
    return r, above, held


def _general_lower(builder: Any, v: Any, values: Any) -> tuple[Any, Any]:
    """general_relu's piece at or below the threshold of a vector ``v`` (+0 below ``t_flat``,
    ``(v − t)·slope`` from it), and the flags ``v > t`` (:func:`_general`)."""
    lanes = v.type.count
    slope, t_flat, t = (_splat(builder, value, lanes) for value in values[:3])
    zero = ir.Constant(v.type, None)
    below_flat = builder.fcmp_ordered("<", v, t_flat)
    lower = builder.select(below_flat, zero, builder.fmul(builder.fsub(v, t), slope))
    return lower, builder.fcmp_ordered(">", v, t)


def _general_word(capped: bool, limits: bool, stream: bool) -> Any:
    """An intrinsic ``(x, start, y, values) -> (above, held)``: general_relu on the 64 elements
    from ``x[start]`` (float32 or float64; 16-bit floats as raw bits, widened to float32 and
    rounded back once), as ``narrow(conventions(v, general_relu_f(v, ...), low, high))``
    with the registry's limits, stored to ``y[start:start+64]`` (streamed with ``stream``:
    ``y[start]`` 64-byte aligned), and two words of their pieces: bit k of ``above`` set
    where element ``start + k`` is above the threshold, of ``held`` where the cap holds it
    (:func:`_general`, ``capped`` or not: ``held`` is then 0, with ``limits`` or not;
    ``values``: its seven parameters, a tuple of the working float). Each vector is loaded
    before it is stored, so ``y`` may be ``x``."""

    @intrinsic
    def word(typingctx: Any, x: Any, start: Any, y: Any, values: Any) -> Any:
        half = _half_array(x)
        if half:
            if not (_half_array(y) and y.dtype == x.dtype):
                return None
            work = types.float32
        else:
            if not (_float_array(x) and _float_array(y) and y.dtype == x.dtype):
                return None
            work = x.dtype
        if values != types.UniTuple(work, 7):
            return None
        signed = half and x.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, packed = args
            scalars = [builder.extract_value(packed, i) for i in range(7)]
            xptr, element = _vector_at(context, builder, signature.args[0], xarr, first)
            yptr, _ = _vector_at(context, builder, signature.args[2], yarr, first)
            size = context.get_abi_sizeof(element)
            lanes = 64 // size
            piece = ir.VectorType(element, lanes).as_pointer()
            xs, ys = builder.bitcast(xptr, piece), builder.bitcast(yptr, piece)
            count = 64 // lanes

            def load(q: int) -> Any:
                return builder.load(builder.gep(xs, [ir.Constant(ir.IntType(64), q)]), align=size)

            def loop(kept: bool) -> Any:
                words = [ir.Constant(ir.IntType(64), 0), ir.Constant(ir.IntType(64), 0)]
                for q in range(count):
                    raw = load(q)
                    v = _widened(builder, raw, signed) if half else raw
                    if kept:
                        lower, above = _general_lower(builder, v, scalars)
                        out = _kept_or_narrowed_16(builder, raw, signed, lower, above)
                        held = None
                    else:
                        r, above, held = _general(builder, v, scalars, capped, limits)
                        out = _narrowed(builder, r, signed) if half else r
                    at = [ir.Constant(ir.IntType(64), q)]
                    _store(builder, out, builder.gep(ys, at), size, stream)
                    for i, codes in enumerate((above, held) if capped else (above,)):
                        bits = builder.bitcast(codes, ir.IntType(lanes))
                        bits = builder.zext(bits, ir.IntType(64))
                        shifted = builder.shl(bits, ir.Constant(ir.IntType(64), q * lanes))
                        words[i] = builder.or_(words[i], shifted)
                return context.make_tuple(builder, signature.return_type, words)

            if not (signed and not capped and not limits):
                return loop(False)
            # float16 without the cap or set limits, no NaN among the 64: x where x > t, else
            # the lower piece, with no NaN rule (_kept_or_narrowed_16; general_relu's
            # forward_with_mask(out=) at 2^20, 1 thread, AMD EPYC, 98-99 µs → 70-79)
            pieces = _pieces_16(builder, xptr)
            return _unless_nan_16(builder, pieces, signed, lambda: loop(True), lambda: loop(False))

        result = types.UniTuple(types.uint64, 2)
        return result(x, types.intp, y, values), codegen

    return word


general_words = {
    (capped, limits, stream): _general_word(capped, limits, stream)
    for capped in (False, True)
    for limits in (False, True)
    for stream in (False, True)
}
"""The variants of :func:`_general_word` by (capped, limits, stream)."""


def _chain_word_16(stream: bool, zeros: bool = True) -> Any:
    """:func:`chain_word` for 64 16-bit floats as raw bits (float16 in int16, bfloat16 in
    uint16; ``low`` and ``high`` float32): each gradient widened to float32, multiplied, and
    rounded back once to nearest even (a NaN quieted), as ``narrow(chain(widen(g), d))``;
    streamed with ``stream`` (``dst[dstart]`` 64-byte aligned); without ``zeros``, as
    :func:`chain_word`'s, and then a float16 word whose ``high`` is 1 and whose gradients are
    not NaN takes them or their products (:func:`_kept_or_scaled_16`)."""

    @intrinsic
    def chain(
        typingctx: Any, g: Any, gstart: Any, word: Any, low: Any, high: Any, dst: Any, dstart: Any
    ) -> Any:
        if not (_half_array(g) and _half_array(dst) and g.dtype == dst.dtype):
            return None
        if not low == high == types.float32:
            return None
        signed = g.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            garr, first, bits_word, below, above, out, out_first = args
            gptr, _ = _vector_at(context, builder, signature.args[0], garr, first)
            optr, _ = _vector_at(context, builder, signature.args[5], out, out_first)
            raw = _load_apart(builder, gptr, 2)

            def general() -> None:
                grads = _widened(builder, raw, signed)
                derivative = _chain_derivative(builder, bits_word, below, above)
                product = _chain(builder, ir.FloatType(), grads, derivative, zeros)
                _store(builder, _narrowed(builder, product, signed), optr, 2, stream)

            if zeros or not signed:
                general()
                return context.get_dummy_value()

            def quick() -> None:
                keep = builder.bitcast(bits_word, ir.VectorType(ir.IntType(1), 64))
                result = _kept_or_scaled_16(builder, raw, signed, below, keep)
                _store(builder, result, optr, 2, stream)

            # float16, derivative 1 where the bit is set, no NaN among the gradients: g
            # itself or g·below, with no NaN rule (_kept_or_scaled_16; leaky_relu's
            # backward_from_mask(out=) at 2^20, 1 thread, AMD EPYC, 59-62 µs → 51)
            one = builder.fcmp_ordered("==", above, ir.Constant(ir.FloatType(), 1.0))
            _unless_nan_16(builder, [raw], signed, quick, general, one)
            return context.get_dummy_value()

        return types.void(g, types.intp, types.uint64, low, high, dst, types.intp), codegen

    return chain


chain_word_16 = _chain_word_16(stream=False)
chain_word_16_streamed = _chain_word_16(stream=True)
chain_word_16_nonzero = _chain_word_16(stream=False, zeros=False)
chain_word_16_nonzero_streamed = _chain_word_16(stream=True, zeros=False)


def _chain_word_2(stream: bool) -> Any:
    """An intrinsic ``(g, gstart, plane0, plane1, d0, d1, d2, d3, dst, dstart)``: ``dst[dstart+k]
    = g[gstart+k]·d_k`` for 64 elements whose two-bit codes have their bits k in ``plane0``
    (low bit) and ``plane1``: ``d_k`` is ``d0``-``d3`` by code; a zero ``d_k`` gives +0 (the
    chain rule of the piecewise-linear members). 16-bit floats (raw bits; the ``d`` float32)
    are widened, multiplied and rounded back once, as ``narrow(chain(widen(g), d))``. With
    ``stream`` the stores are streaming and ``dst[dstart]`` 64-byte aligned. Each vector is
    loaded before it is stored, so ``dst`` may be ``g``."""

    @intrinsic
    def chain(
        typingctx: Any,
        g: Any,
        gstart: Any,
        plane0: Any,
        plane1: Any,
        d0: Any,
        d1: Any,
        d2: Any,
        d3: Any,
        dst: Any,
        dstart: Any,
    ) -> Any:
        half = _half_array(g)
        if half:
            if not (_half_array(dst) and g.dtype == dst.dtype):
                return None
            work = types.float32
        else:
            if not (_float_array(g) and _float_array(dst) and g.dtype == dst.dtype):
                return None
            work = g.dtype
        if not d0 == d1 == d2 == d3 == work:
            return None
        signed = half and g.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            garr, first, low_bits, high_bits, v0, v1, v2, v3, out, out_first = args
            gptr, element = _vector_at(context, builder, signature.args[0], garr, first)
            align = context.get_abi_sizeof(element)
            grads = _load_apart(builder, gptr, align)
            if half:
                grads = _widened(builder, grads, signed)
            b0 = builder.bitcast(low_bits, ir.VectorType(ir.IntType(1), 64))
            b1 = builder.bitcast(high_bits, ir.VectorType(ir.IntType(1), 64))
            derivative = builder.select(
                b1,
                builder.select(b0, _splat(builder, v3), _splat(builder, v2)),
                builder.select(b0, _splat(builder, v1), _splat(builder, v0)),
            )
            result = _chain(builder, grads.type.element, grads, derivative)
            if half:
                result = _narrowed(builder, result, signed)
            optr, _ = _vector_at(context, builder, signature.args[8], out, out_first)
            _store(builder, result, optr, align, stream)
            return context.get_dummy_value()

        kinds = (g, types.intp, types.uint64, types.uint64, d0, d1, d2, d3, dst, types.intp)
        return types.void(*kinds), codegen

    return chain


chain_word_2 = _chain_word_2(stream=False)
chain_word_2_streamed = _chain_word_2(stream=True)


def _chain_word_slopes(stream: bool) -> Any:
    """As :func:`_chain_word`, ``(g, gstart, word, high, slopes, sstart, dst, dstart)``, with
    ``d_k = slopes[sstart+k]`` where bit k is clear; 16-bit floats as raw bits (``high`` and
    ``slopes`` float32), as :func:`_chain_word_16` takes them."""

    @intrinsic
    def chain(
        typingctx: Any,
        g: Any,
        gstart: Any,
        word: Any,
        high: Any,
        slopes: Any,
        sstart: Any,
        dst: Any,
        dstart: Any,
    ) -> Any:
        if not _float_array(slopes):
            return None
        half = _half_array(g) and _half_array(dst) and g.dtype == dst.dtype
        if half and not slopes.dtype == high == types.float32:
            return None
        if not half and not (
            _float_array(g) and _float_array(dst) and g.dtype == slopes.dtype == dst.dtype == high
        ):
            return None
        signed = half and g.dtype.signed

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            garr, first, bits_word, above, slope_arr, slope_first, out, out_first = args
            gptr, element = _vector_at(context, builder, signature.args[0], garr, first)
            align = context.get_abi_sizeof(element)
            sptr, wide = _vector_at(context, builder, signature.args[4], slope_arr, slope_first)
            bits = builder.bitcast(bits_word, ir.VectorType(ir.IntType(1), 64))
            slope_values = _load_apart(builder, sptr, context.get_abi_sizeof(wide))
            derivative = builder.select(bits, _splat(builder, above), slope_values)
            grads = _load_apart(builder, gptr, align)
            if half:
                product = _chain(builder, wide, _widened(builder, grads, signed), derivative)
                result = _narrowed(builder, product, signed)
            else:
                result = _chain(builder, element, grads, derivative)
            optr, _ = _vector_at(context, builder, signature.args[6], out, out_first)
            _store(builder, result, optr, align, stream)
            return context.get_dummy_value()

        sig = types.void(g, types.intp, types.uint64, high, slopes, types.intp, dst, types.intp)
        return sig, codegen

    return chain


chain_word_slopes = _chain_word_slopes(stream=False)
chain_word_slopes_streamed = _chain_word_slopes(stream=True)


def _count_bits(function: str, doc: str) -> Any:
    """An intrinsic ``count(word) -> uint64`` of a uint64 by LLVM's ``function``
    (``llvm.ctpop.i64``, or ``llvm.cttz.i64``, whose result is poison at 0: never call it
    with 0)."""
    extra = [ir.Constant(ir.IntType(1), 1)] if function == "llvm.cttz.i64" else []

    @intrinsic
    def count(typingctx: Any, word: Any) -> Any:
        if word != types.uint64:
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            i64 = ir.IntType(64)
            kind = ir.FunctionType(i64, [i64, *(e.type for e in extra)])
            function_ = cgutils.get_or_insert_function(builder.module, kind, function)
            return builder.call(function_, [args[0], *extra])

        return types.uint64(types.uint64), codegen

    count.__doc__ = doc
    return count


popcount = _count_bits("llvm.ctpop.i64", "The number of bits set in a uint64.")
trailing_zeros = _count_bits(
    "llvm.cttz.i64", "The number of trailing zero bits of a nonzero uint64 (``tzcnt``)."
)


@intrinsic
def f64_as_i64(typingctx: Any, x: Any) -> Any:
    """The bits of a float64 as an int64."""
    if x != types.float64:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def i64_as_f64(typingctx: Any, i: Any) -> Any:
    """The float64 whose bits are the int64 ``i``."""
    if not (isinstance(i, types.Integer) and i.bitwidth == 64):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(i), codegen


def _select_word(clip: bool, stream: bool) -> Any:
    """An intrinsic ``(xs, start, ys, low, high) -> uint64``: the outputs of the 64 elements
    from ``start`` (relu, or the clip of relu6/hardtanh, as :func:`select_one`) stored to
    ``ys[start:start+64]`` and their codes returned as a word (bit k: element ``start + k``;
    relu: ``not x <= 0``, the clip: ``low < x < high``). With ``stream`` the stores are
    streaming and ``ys[start]`` must be 64-byte aligned. Each element is loaded before its
    output is stored, so ``ys`` may be ``xs``."""

    @intrinsic
    def word(typingctx: Any, xs: Any, start: Any, ys: Any, low: Any, high: Any) -> Any:
        if not (isinstance(xs, types.Array) and isinstance(xs.dtype, types.Float)):
            return None
        if not (isinstance(ys, types.Array) and ys.dtype == xs.dtype == low == high):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, yarr, lo, hi = args
            xptr, element = _vector_at(context, builder, signature.args[0], xarr, first)
            yptr, _ = _vector_at(context, builder, signature.args[2], yarr, first)
            size = context.get_abi_sizeof(element)

            def kernel(v: Any, _: int) -> tuple[Any, Any]:
                lanes = v.type.count
                if not clip:
                    zero = ir.Constant(v.type, None)
                    r = builder.select(builder.fcmp_ordered("<", v, zero), zero, v)
                    return r, builder.fcmp_unordered(">", v, zero)
                lows, highs = _splat(builder, lo, lanes), _splat(builder, hi, lanes)
                below = builder.fcmp_ordered("<", v, lows)
                above = builder.fcmp_ordered(">", v, highs)
                r = builder.select(below, lows, builder.select(above, highs, v))
                inside = builder.and_(
                    builder.fcmp_ordered(">", v, lows), builder.fcmp_ordered("<", v, highs)
                )
                return r, inside

            return _word_by_vectors(builder, xptr, yptr, element, size, stream, kernel)

        return types.uint64(xs, types.intp, ys, low, high), codegen

    return word


relu_word = _select_word(clip=False, stream=False)
relu_word_streamed = _select_word(clip=False, stream=True)
clip_word = _select_word(clip=True, stream=False)
clip_word_streamed = _select_word(clip=True, stream=True)


# ---------------------------------------------------------------------------------------------
# Bit deposit (BMI2's pdep; a loop over the mask's bits where the host lacks it)


def _host_has(feature: str) -> bool:
    """Does the CPU Numba compiles for have ``feature``? As Numba decides it: the features
    ``NUMBA_CPU_FEATURES`` lists, over the host's (which Numba passes whenever none are listed,
    whatever ``NUMBA_CPU_NAME`` names; for a named CPU with listed features, those not listed
    count as absent); and an extension only with what it extends (AVX-512's with AVX-512F,
    AVX-512F with AVX2, AVX2, FMA and F16C with AVX), as LLVM turns them off together. (Read
    from the host alone, ``NUMBA_CPU_FEATURES=-avx512f`` on an AVX-512 host had the words
    give 512-bit vectors to inline assembly on a target without them, and LLVM exited the
    process.)"""
    from numba.core import codegen, config

    named = bool(config.CPU_NAME) and config.CPU_NAME != "host"
    listed = config.CPU_FEATURES
    features: dict[str, bool] = {}
    for given in ([] if listed is not None and named else [codegen.get_host_cpu_features()]) + (
        [] if listed is None else [listed]
    ):
        for item in given.split(","):
            item = item.strip()
            if len(item) > 1 and item[0] in "+-":
                features[item[1:]] = item[0] == "+"
    extended = _EXTENDS.get(feature) or ("avx512f" if feature.startswith("avx512") else None)
    if extended is not None and not _host_has(extended):
        return False
    return features.get(feature, False)


_EXTENDS = {"avx512f": "avx2", "avx2": "avx", "fma": "avx", "f16c": "avx"}


BMI2 = _host_has("bmi2")
AVX512_F = _host_has("avx512f")


def _host_cpu() -> str:
    """The CPU Numba compiles for (LLVM's name): the host's, or ``NUMBA_CPU_NAME``."""
    import llvmlite.binding as llvm
    from numba.core import config

    if config.CPU_NAME and config.CPU_NAME != "host":
        return str(config.CPU_NAME)
    return str(llvm.get_host_cpu_name())


FAST_DEPOSITS = BMI2 and _host_cpu() not in ("znver1", "znver2")
"""Are BMI2's ``pdep`` and ``pext`` fast here (one a cycle; microcoded on AMD's Zen 1 and 2, at
some 250 cycles each)? Else the two-bit codes' planes are spread and gathered by shifts."""


def _bit_instruction(name: str, doc: str) -> Any:
    """An intrinsic ``(value, mask) -> uint64`` calling BMI2's ``name`` (LLVM's x86 intrinsic)."""

    @intrinsic
    def instruction(typingctx: Any, value: Any, mask: Any) -> Any:
        if not (isinstance(value, types.Integer) and isinstance(mask, types.Integer)):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            word = ir.IntType(64)
            a = context.cast(builder, args[0], signature.args[0], types.uint64)
            b = context.cast(builder, args[1], signature.args[1], types.uint64)
            kind = ir.FunctionType(word, [word, word])
            function = cgutils.get_or_insert_function(
                builder.module, kind, f"llvm.x86.bmi.{name}.64"
            )
            return builder.call(function, [a, b])

        return types.uint64(value, mask), codegen

    instruction.__doc__ = doc
    return instruction


_pdep = _bit_instruction("pdep", "The low bits of a uint64 into the set bits of a mask, in order.")
_pext = _bit_instruction("pext", "The bits of a uint64 at the set bits of a mask, packed low.")


def _deposit_loop(value: Any, mask: Any) -> Any:
    """pdep without BMI2: the low bits of ``value`` into the set bits of ``mask``, in order."""
    result = np.uint64(0)
    source = np.uint64(value)
    m = np.uint64(mask)
    one = np.uint64(1)
    while m != 0:
        lowest = m & (~m + one)
        if source & one:
            result |= lowest
        source >>= one
        m &= m - one
    return result


def _extract_loop(value: Any, mask: Any) -> Any:
    """pext without BMI2: the bits of ``value`` at the set bits of ``mask``, packed low."""
    result = np.uint64(0)
    source = np.uint64(value)
    m = np.uint64(mask)
    one = np.uint64(1)
    at = np.uint64(0)
    while m != 0:
        lowest = m & (~m + one)
        if source & lowest:
            result |= one << at
        at += one
        m &= m - one
    return result


if BMI2:
    deposit = _pdep
    extract = _pext
else:  # pragma: no cover (hosts without BMI2)
    from numba import njit

    deposit = njit(inline="always")(_deposit_loop)
    extract = njit(inline="always")(_extract_loop)


# ---------------------------------------------------------------------------------------------
# float16 by the hardware's conversions (F16C: vcvtph2ps / vcvtps2ph, 16 lanes with AVX-512)


F16C = _host_has("f16c")


@intrinsic
def half_bits_to_f32(typingctx: Any, h: Any) -> Any:
    """The float32 value of the float16 with bits ``h`` (an int16): LLVM's ``fpext``, exact."""
    if not (isinstance(h, types.Integer) and h.bitwidth == 16):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(h), codegen


@intrinsic
def f32_to_bf16_bits(typingctx: Any, f: Any) -> Any:
    """The bfloat16 bits (uint16) of float32 ``f`` rounded to nearest even, a NaN as its top
    half with the quiet bit set: ``(b + 0x7FFF + (b >> 16 & 1)) >> 16`` in 32-bit integers.
    Written in LLVM because Numba widens int32 arithmetic to int64, which the vectoriser then
    runs at 8 lanes in four times the instructions (relukit's bfloat16 stores took 0.17 ns per
    element, against 0.03 in 32-bit lanes)."""
    if f != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return _bf16_bits(builder, args[0])

    return types.uint16(f), codegen


def _llvm_version() -> tuple[int, ...]:
    import llvmlite.binding as llvm

    return tuple(llvm.llvm_version_info)


AVX512_BF16 = (
    _host_has("avx512bf16") and _host_has("avx512dq") and _llvm_version() >= (20,)
)  # (DQ: the class test's vfpclassps; every CPU with BF16 has it)
"""Has the host AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake and Sapphire Rapids and
later), whose ``vcvtne2ps2bf16`` rounds 32 float32 to bfloat16 in one instruction, and an LLVM
whose intrinsic for it returns ``bfloat`` vectors (llvmlite's LLVM 20 and 22; LLVM 14 and 15,
of Numba before 0.62, returned ``i16``)? It rounds as :func:`_bf16_bits` does (to nearest even,
a NaN as its high half with the quiet bit) but for subnormal inputs, which it takes as zero."""


class _BFloat(ir.Type):
    """LLVM's ``bfloat``, which llvmlite's IR builder lacks: only named, as the element of the
    vector that ``vcvtne2ps2bf16``'s intrinsic returns, and bit-cast at once."""

    def __str__(self) -> str:
        return "bfloat"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _BFloat)

    def __hash__(self) -> int:
        return hash("bfloat")


def _bf16_bits(builder: Any, values: Any) -> Any:
    """float32 values (a scalar or a vector) rounded to nearest even into bfloat16 bits, a NaN
    quieted (its high half with the quiet bit). A vector of 32·k lanes on a host with
    :data:`AVX512_BF16` is rounded by its instruction, and by the bits (below) only where one of
    its lanes is subnormal (a branch, not taken but for those): the rounding's ten instructions
    per 16 lanes become one per 32 and a class test per 16. (leaky_relu's bfloat16 mask path,
    1 thread, AMD EPYC, µs, 2^16 / 2^20 elements: forward 13.9-15.1 / 176-187 → 11.2 / 129,
    backward 13.0-14.3 / 168-180 → 10.0 / 125, against a copy's 2.9 / 45-50; prelu's the same;
    general_relu's forward unchanged, its 2-bit codes cost more.)"""
    if isinstance(values.type, ir.VectorType) and AVX512_BF16 and values.type.count % 32 == 0:
        return _bf16_bits_converted(builder, values)
    return _bf16_bits_by_bits(builder, values)


def _bf16_bits_converted(builder: Any, values: Any) -> Any:
    """:func:`_bf16_bits` of a vector of 32·k float32 lanes by ``vcvtne2ps2bf16``, or by the
    bits where a lane is subnormal."""
    lanes = values.type.count
    module = builder.module
    i32 = ir.IntType(32)
    sixteen = ir.VectorType(ir.FloatType(), 16)

    def lanes_of(vector: Any, first: int, count: int) -> Any:
        picked = ir.Constant(ir.VectorType(i32, count), list(range(first, first + count)))
        return builder.shuffle_vector(vector, vector, picked)

    kind = ir.FunctionType(ir.VectorType(_BFloat(), 32), [sixteen, sixteen])
    convert = cgutils.get_or_insert_function(module, kind, "llvm.x86.avx512bf16.cvtne2ps2bf16.512")
    converted = None
    for first in range(0, lanes, 32):  # (the low 16 results come from the second operand)
        low, high = lanes_of(values, first, 16), lanes_of(values, first + 16, 16)
        rounded = builder.bitcast(
            builder.call(convert, [high, low]), ir.VectorType(ir.IntType(16), 32)
        )
        if converted is None:
            converted = rounded
        else:  # (in order: a shuffle takes two vectors of one width, so the pieces are padded)
            width = converted.type.count
            padded = builder.shuffle_vector(
                rounded,
                rounded,
                ir.Constant(ir.VectorType(i32, width), [j % 32 for j in range(width)]),
            )
            converted = builder.shuffle_vector(
                converted,
                padded,
                ir.Constant(ir.VectorType(i32, width + 32), list(range(width + 32))),
            )
    # any subnormal lane (vfpclassps's class 0x20; LLVM's llvm.is.fpclass became three
    # instructions), and then the bits round them all
    flags = ir.VectorType(ir.IntType(1), 16)
    kind = ir.FunctionType(flags, [sixteen, i32])
    classify = cgutils.get_or_insert_function(module, kind, "llvm.x86.avx512.fpclass.ps.512")
    subnormal = None
    for first in range(0, lanes, 16):
        found = builder.call(classify, [lanes_of(values, first, 16), ir.Constant(i32, 0x20)])
        subnormal = found if subnormal is None else builder.or_(subnormal, found)
    kind = ir.FunctionType(ir.IntType(1), [flags])
    reduce = cgutils.get_or_insert_function(module, kind, "llvm.vector.reduce.or.v16i1")
    any_subnormal = builder.call(reduce, [subnormal])
    with builder.if_else(any_subnormal, likely=False) as (by_bits, by_instruction):
        with by_bits:
            exact = _bf16_bits_by_bits(builder, values)
            exact_block = builder.block
        with by_instruction:
            converted_block = builder.block
    result = builder.phi(converted.type)
    result.add_incoming(exact, exact_block)
    result.add_incoming(converted, converted_block)
    return result


def _bf16_bits_by_bits(builder: Any, values: Any) -> Any:
    """:func:`_bf16_bits` on the bits: ``(b + 0x7FFF + (b >> 16 & 1)) >> 16`` in 32-bit
    integers, a NaN as ``b >> 16 | 0x40``."""
    if isinstance(values.type, ir.VectorType):
        lanes = values.type.count
        i32, i16 = ir.VectorType(ir.IntType(32), lanes), ir.VectorType(ir.IntType(16), lanes)

        def constant(v: int) -> Any:
            return _splat(builder, ir.Constant(ir.IntType(32), v), lanes)
    else:
        i32, i16 = ir.IntType(32), ir.IntType(16)

        def constant(v: int) -> Any:
            return ir.Constant(i32, v)

    wide = builder.bitcast(values, i32)
    high_half = builder.lshr(wide, constant(16))
    odd = builder.and_(high_half, constant(1))
    rounded = builder.lshr(builder.add(builder.add(wide, constant(0x7FFF)), odd), constant(16))
    quiet = builder.or_(high_half, constant(0x0040))
    nan = builder.fcmp_unordered("uno", values, values)
    return builder.trunc(builder.select(nan, quiet, rounded), i16)


@intrinsic
def f32_to_half_bits(typingctx: Any, f: Any) -> Any:
    """The float16 bits (int16) of float32 ``f`` rounded to nearest even: LLVM's ``fptrunc``
    (a NaN keeps the top of its payload; callers that want one NaN select it)."""
    if f != types.float32:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.int16(f), codegen
