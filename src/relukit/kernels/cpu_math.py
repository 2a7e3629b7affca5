"""Vectorisable scalar math for the compiled kernels (Numba; imported only by the kernels).

Numba turns ``math.exp`` or ``math.erf`` on float32 into calls to the C library, which stop the
loop vectoriser. The float32 functions here are written with nothing but arithmetic, fused
multiply-adds, bit casts and selects, so a loop that calls them compiles to SIMD code:

================  =============================================================================
``exp_f32``       Cody-Waite reduction ``x = k·ln2 + r``, ``|r| ≤ ln2/2``; ``expm1(r)`` by a
                  degree-7 polynomial; ``2^k·(1 + q)`` with one rounding (two in the subnormal
                  range).
``expm1_f32``     the same reduction; ``2^k·q + (2^k − 1)`` in one fused multiply-add.
``log1p_f32``     musl's ``log1pf`` (Sun's algorithm) with its branches turned into selects.
``erf_f32``       ``x + x·P(x²)`` for ``|x| < 1``; ``1 − exp(Q(|x|))`` above, where ``Q``
                  approximates ``log(erfc)`` on [1, 4] (erf rounds to ±1 beyond 3.92).
``tanh_f32``      ``x + x³·P(x²)`` for ``|x| < 0.625``; ``e/(e + 2)``, ``e = expm1(2|x|)``, above.
================  =============================================================================

The polynomial coefficients were fitted by iteratively reweighted least squares (Lawson's
algorithm, which converges to the minimax polynomial) against 40-digit mpmath values, with
relative weights. Measured against float64 on all 2^32 float32 inputs, the largest errors are
0.98 ulp (exp), 1.33 (expm1), 0.83 (log1p), 1.21 (erf) and 1.50 (tanh);
``tests/kernels/test_cpu.py`` checks ≤ 2 ulp on a dense sample of the whole range.
Special values are exact: NaN in gives NaN out, ±0 keep their sign where the function is odd,
and ±inf give the limits.

The generic helpers (``widen``, ``narrow``, ``exp``, ``erf``, ...) dispatch on the Numba type at
compile time: float32 (and 16-bit floats, which are widened to float32) use the functions above,
float64 uses the C library, so one kernel source serves every dtype. 16-bit floats travel as
their raw bits: float16 as ``int16`` and bfloat16 as ``uint16``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.caching import IndexDataCacheFile
from numba.extending import intrinsic, overload

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}
# Scalar helpers are always inlined into the loops that call them, so that those vectorise. They
# are not cached on their own: Numba keys such a cache on the helper's file alone (a change to
# another file they call would leave stale code in freshly compiled kernels), and the float32
# and float64 versions of one helper would share a cache index (see cached_kernel). Only the
# kernels are cached.
INLINE_OPTIONS = {"error_model": "numpy", "nogil": True, "forceinline": True}
jit = njit(**INLINE_OPTIONS)


class _KeyNamedCacheFile(IndexDataCacheFile):
    """Numba's cache index and data files, with each data file named by a hash of its key.

    Numba numbers the data files of one index in order of arrival. Two processes compiling
    different signatures of one function at once (float32 and float64, or the kernels of two
    members, which share the factory's code) can then both pick number 1, and the index of one
    ends up pointing at the other's code: a TypeError at the next call, or another member's
    kernel. Named by key, a data file can only hold the code of its key; a concurrent index
    write may still drop an entry, which costs a recompilation, never a wrong kernel.
    """

    def __init__(self, cache_path: str, filename_base: str, source_stamp: Any) -> None:
        super().__init__(cache_path, filename_base, source_stamp)
        self._filename_base = filename_base

    def save(self, key: Any, data: Any) -> None:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
        name = f"{self._filename_base}.{digest}.nbc"
        self._save_data(name, data)  # written to a temporary file, then renamed
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def cached_kernel(function: Any) -> Any:
    """``njit(cache=True)`` (with :data:`JIT_OPTIONS`) whose cache cannot mix up the code of two
    signatures written by concurrent processes (see :class:`_KeyNamedCacheFile`)."""
    dispatcher = njit(**JIT_OPTIONS)(function)
    cache = getattr(dispatcher, "_cache", None)
    current = getattr(cache, "_cache_file", None)
    if isinstance(current, IndexDataCacheFile):  # (Numba's internals as of 0.60-0.68)
        cache._cache_file = _KeyNamedCacheFile(
            current._cache_path, current._index_name[: -len(".nbi")], current._source_stamp
        )
    return dispatcher


F32 = np.float32
I32 = np.int32
U32 = np.uint32

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


UNROLL = 4


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


# Mask words: 64 elements at a time, compared or selected as one LLVM vector (on x86-64 with
# AVX-512 a compare gives a mask register, and <64 x i1> is a 64-bit word)


def _vector_at(context: Any, builder: Any, arrty: Any, array: Any, start: Any) -> Any:
    """Pointer to the 64 elements of ``array`` from ``start``, as one vector."""
    element = context.get_value_type(arrty.dtype)
    ary = context.make_array(arrty)(context, builder, array)
    pointer = builder.gep(ary.data, [start])
    return builder.bitcast(pointer, ir.VectorType(element, 64).as_pointer()), element


def _splat(builder: Any, value: Any) -> Any:
    vector = ir.VectorType(value.type, 64)
    one = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(
        one, ir.Constant(vector, None), ir.Constant(ir.VectorType(ir.IntType(32), 64), None)
    )


def _float_array(t: Any) -> bool:
    return isinstance(t, types.Array) and isinstance(t.dtype, types.Float) and t.ndim == 1


def _compare_word(kind: str) -> Any:
    """An intrinsic ``(array, start, a, b) -> uint64``: bit k set where element ``start + k``
    passes the comparison (``above``: x > a or NaN; ``greater``: x > a; ``between``:
    a < x < b, false for NaN)."""

    @intrinsic
    def word(typingctx: Any, array: Any, start: Any, a: Any, b: Any) -> Any:
        if not (_float_array(array) and a == array.dtype and b == array.dtype):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            pointer, element = _vector_at(context, builder, signature.args[0], args[0], args[1])
            values = builder.load(pointer, align=context.get_abi_sizeof(element))
            if kind == "above":
                bits = builder.fcmp_unordered(">", values, _splat(builder, args[2]))
            elif kind == "greater":
                bits = builder.fcmp_ordered(">", values, _splat(builder, args[2]))
            else:
                bits = builder.and_(
                    builder.fcmp_ordered(">", values, _splat(builder, args[2])),
                    builder.fcmp_ordered("<", values, _splat(builder, args[3])),
                )
            return builder.bitcast(bits, ir.IntType(64))

        return types.uint64(array, types.intp, a, b), codegen

    return word


word_above = _compare_word("above")
word_greater = _compare_word("greater")
word_between = _compare_word("between")


def _chain(builder: Any, element: Any, grads: Any, derivative: Any) -> Any:
    product = builder.fmul(grads, derivative)
    zero = ir.Constant(ir.VectorType(element, 64), None)
    return builder.select(builder.fcmp_ordered("==", derivative, zero), zero, product)


@intrinsic
def chain_word(
    typingctx: Any, g: Any, gstart: Any, word: Any, low: Any, high: Any, dst: Any, dstart: Any
) -> Any:
    """``dst[dstart+k] = g[gstart+k]·d_k`` for the 64 elements of a mask word: ``d_k = high``
    where bit k is set, ``low`` where it is clear; a zero ``d_k`` gives +0 (the chain rule of
    the piecewise-linear members)."""
    if not (_float_array(g) and _float_array(dst) and g.dtype == dst.dtype == low == high):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        garr, first, bits_word, below, above, out, out_first = args
        gptr, element = _vector_at(context, builder, signature.args[0], garr, first)
        align = context.get_abi_sizeof(element)
        bits = builder.bitcast(bits_word, ir.VectorType(ir.IntType(1), 64))
        derivative = builder.select(bits, _splat(builder, above), _splat(builder, below))
        result = _chain(builder, element, builder.load(gptr, align=align), derivative)
        optr, _ = _vector_at(context, builder, signature.args[5], out, out_first)
        builder.store(result, optr, align=align)
        return context.get_dummy_value()

    return types.void(g, types.intp, types.uint64, low, high, dst, types.intp), codegen


@intrinsic
def chain_word_slopes(
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
    """As :func:`chain_word`, with ``d_k = slopes[sstart+k]`` where bit k is clear."""
    if not (_float_array(g) and _float_array(slopes) and _float_array(dst)):
        return None
    if not g.dtype == slopes.dtype == dst.dtype == high:
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        garr, first, bits_word, above, slope_arr, slope_first, out, out_first = args
        gptr, element = _vector_at(context, builder, signature.args[0], garr, first)
        align = context.get_abi_sizeof(element)
        sptr, _ = _vector_at(context, builder, signature.args[4], slope_arr, slope_first)
        bits = builder.bitcast(bits_word, ir.VectorType(ir.IntType(1), 64))
        derivative = builder.select(bits, _splat(builder, above), builder.load(sptr, align=align))
        result = _chain(builder, element, builder.load(gptr, align=align), derivative)
        optr, _ = _vector_at(context, builder, signature.args[6], out, out_first)
        builder.store(result, optr, align=align)
        return context.get_dummy_value()

    sig = types.void(g, types.intp, types.uint64, high, slopes, types.intp, dst, types.intp)
    return sig, codegen


# ---------------------------------------------------------------------------------------------
# float32 functions

LOG2E = F32(1.4426950408889634)
LN2_HI = F32(0.693145751953125)
LN2_LO = F32(1.428606765330187e-06)
SHIFTER = F32(12582912.0)  # 1.5·2^23: (v + SHIFTER) − SHIFTER rounds v to an integer
# expm1(r) = r + r²·P(r) on |r| ≤ ln2/2, relative error 2.4e-10
EXPM1_P0 = F32(0.5)
EXPM1_P1 = F32(0.1666666567325592)
EXPM1_P2 = F32(0.041666362434625626)
EXPM1_P3 = F32(0.008333388715982437)
EXPM1_P4 = F32(0.0013940621865913272)
EXPM1_P5 = F32(0.00019845999486278743)


@jit
def _reduce(x: Any) -> Any:
    """(k, q) with x = k·ln2 + r and q = expm1(r), for finite x with |k| ≤ 2^21."""
    kf = (x * LOG2E + SHIFTER) - SHIFTER
    r = fma(-kf, LN2_HI, x)
    r = fma(-kf, LN2_LO, r)
    p = fma(EXPM1_P5, r, EXPM1_P4)
    p = fma(p, r, EXPM1_P3)
    p = fma(p, r, EXPM1_P2)
    p = fma(p, r, EXPM1_P1)
    p = fma(p, r, EXPM1_P0)
    return I32(kf), fma(r * r, p, r)


@jit
def _pow2(k: Any) -> Any:
    """2^k as a float32 for -126 ≤ k ≤ 127 (0 for k = -127)."""
    return i32_as_f32((k + I32(127)) << I32(23))


@jit
def exp_f32(x: Any) -> Any:
    """e^x in float32 (error < 1 ulp; exp(-inf) = 0, exp(inf) = inf, NaN propagates)."""
    xc = x if x > F32(-104.0) else F32(-104.0)
    xc = xc if xc < F32(89.0) else F32(89.0)
    k, q = _reduce(xc)
    # 2^k is not a float32 for k = 128 or k < -126: scale in two steps.
    high = k > I32(127)
    low = k < I32(-125)
    kk = k - I32(1) if high else (k + I32(64) if low else k)
    after = F32(2.0) if high else (F32(5.421010862427522e-20) if low else F32(1.0))
    s = _pow2(kk)
    y = fma(s, q, s) * after
    return x if x != x else y


@jit
def expm1_f32(x: Any) -> Any:
    """e^x − 1 in float32 (error < 1.5 ulp; expm1(±0) = ±0, expm1(-inf) = -1)."""
    xc = x if x > F32(-18.0) else F32(-18.0)
    xc = xc if xc < F32(89.0) else F32(89.0)
    k, q = _reduce(xc)
    high = k > I32(127)
    kk = k - I32(1) if high else k
    s = _pow2(kk)
    # s − 1 is exact for k < 24; above, fold the −1 into q instead (q − 2^-k is exact there).
    y = fma(s, q, s - F32(1.0)) if k < I32(24) else fma(s, q - _pow2(-kk), s)
    y = y * F32(2.0) if high else y
    return x if (x != x or x == F32(0.0)) else y


LOG1P_LG1 = F32(0.66666662693)
LOG1P_LG2 = F32(0.40000972152)
LOG1P_LG3 = F32(0.28498786688)
LOG1P_LG4 = F32(0.24279078841)
LOG1P_LN2_HI = F32(6.9313812256e-01)
LOG1P_LN2_LO = F32(9.0580006145e-06)
LOG1P_SMALL_HI = F32(0.41421353816986084)  # sqrt(2) - 1, rounded down: bits 0x3ed413d0
LOG1P_SMALL_LO = F32(-0.2928932309150696)  # sqrt(2)/2 - 1: bits 0xbe95f619


@jit
def log1p_f32(x: Any) -> Any:
    """log(1 + x) in float32 (error < 1 ulp; log1p(-1) = -inf, NaN below -1)."""
    small = (x < LOG1P_SMALL_HI) and (x >= LOG1P_SMALL_LO)
    u = F32(1.0) + x
    iu = f32_as_i32(u) + I32(0x3F800000 - 0x3F3504F3)
    k = (iu >> I32(23)) - I32(0x7F)
    c = (F32(1.0) - (u - x)) if k >= I32(2) else (x - (u - F32(1.0)))
    c = c / u
    c = F32(0.0) if (k >= I32(25) or small) else c
    f = i32_as_f32((iu & I32(0x007FFFFF)) + I32(0x3F3504F3)) - F32(1.0)
    f = x if small else f
    k = I32(0) if small else k
    s = f / (F32(2.0) + f)
    z = s * s
    w = z * z
    t1 = w * (LOG1P_LG2 + w * LOG1P_LG4)
    t2 = z * (LOG1P_LG1 + w * LOG1P_LG3)
    r = t2 + t1
    hfsq = F32(0.5) * f * f
    dk = F32(k)
    y = s * (hfsq + r) + (dk * LOG1P_LN2_LO + c) - hfsq + f + dk * LOG1P_LN2_HI
    tiny = abs(x) < F32(5.960464477539063e-08)  # |x| < 2^-24: log1p(x) rounds to x
    y = x if (tiny or x != x or x == F32(np.inf)) else y
    y = F32(-np.inf) if x == F32(-1.0) else y
    return F32(np.nan) if x < F32(-1.0) else y


# erf(x) = x + x·P(x²) on |x| < 1, relative error 1.2e-9
ERF_P0 = F32(0.12837916612625122)
ERF_P1 = F32(-0.3761262595653534)
ERF_P2 = F32(0.11283600330352783)
ERF_P3 = F32(-0.026854444295167923)
ERF_P4 = F32(0.005189535208046436)
ERF_P5 = F32(-0.0008020838140510023)
ERF_P6 = F32(7.889109110692516e-05)
# log(erfc(a)) = Q(a − 1) on [1, 4], error in erf 1.1e-9 (relative)
ERF_Q0 = F32(-1.8496055603027344)
ERF_Q1 = F32(-2.6389667987823486)
ERF_Q2 = F32(-0.8431175947189331)
ERF_Q3 = F32(-0.041503507643938065)
ERF_Q4 = F32(0.009895475581288338)
ERF_Q5 = F32(-0.0018293956527486444)
ERF_Q6 = F32(0.00018638273468241096)
SIGN = I32(-(2**31))


@jit
def _copysign(magnitude: Any, x: Any) -> Any:
    return i32_as_f32(f32_as_i32(magnitude) | (f32_as_i32(x) & SIGN))


@jit
def erf_f32(x: Any) -> Any:
    """The error function in float32 (error < 1.5 ulp; erf(±0) = ±0, erf(±inf) = ±1)."""
    a = abs(x)
    z = a * a
    p = fma(ERF_P6, z, ERF_P5)
    p = fma(p, z, ERF_P4)
    p = fma(p, z, ERF_P3)
    p = fma(p, z, ERF_P2)
    p = fma(p, z, ERF_P1)
    p = fma(p, z, ERF_P0)
    near = fma(a, p, a)
    t = (a if a < F32(4.0) else F32(4.0)) - F32(1.0)
    q = fma(ERF_Q6, t, ERF_Q5)
    q = fma(q, t, ERF_Q4)
    q = fma(q, t, ERF_Q3)
    q = fma(q, t, ERF_Q2)
    q = fma(q, t, ERF_Q1)
    q = fma(q, t, ERF_Q0)
    k, e = _reduce(q)  # exp(q) for q in [-17.4, -1.8]: no overflow, no subnormal result
    s = _pow2(k)
    far = F32(1.0) - fma(s, e, s)
    y = _copysign(near if a < F32(1.0) else far, x)
    return x if x != x else y


# tanh(x) = x + x³·P(x²) on |x| < 0.625, relative error 1.6e-10
TANH_P0 = F32(-0.3333333134651184)
TANH_P1 = F32(0.1333320587873459)
TANH_P2 = F32(-0.05394676327705383)
TANH_P3 = F32(0.021700697019696236)
TANH_P4 = F32(-0.008177383802831173)
TANH_P5 = F32(0.0021429494954645634)


@jit
def tanh_f32(x: Any) -> Any:
    """The hyperbolic tangent in float32 (error < 1.5 ulp; tanh(±0) = ±0, tanh(±inf) = ±1)."""
    a = abs(x)
    z = a * a
    p = fma(TANH_P5, z, TANH_P4)
    p = fma(p, z, TANH_P3)
    p = fma(p, z, TANH_P2)
    p = fma(p, z, TANH_P1)
    p = fma(p, z, TANH_P0)
    near = fma(a * z, p, a)
    e = expm1_f32(a + a if a < F32(10.0) else F32(20.0))
    far = e / (e + F32(2.0))
    y = _copysign(near if a < F32(0.625) else far, x)
    return x if x != x else y


@jit
def times_exp_f32(m: Any, x: Any) -> Any:
    """``m·e^x`` in float32, with e^x never formed: ``fma(m, q, m)·2^k`` rounds once (twice
    where the result is subnormal), so it does not lose digits where e^x is subnormal
    (error < 1 ulp). Made for the far tails of the smooth members: x ≤ 0 and 1/64 ≤ |m| ≤ 2^64
    (below x = -170 it gives m·0; x is clamped at 89)."""
    xc = x if x > F32(-170.0) else F32(-170.0)
    xc = xc if xc < F32(89.0) else F32(89.0)
    k, q = _reduce(xc)
    # 2^k in two factors that are float32s: the first keeps a product of |m| ≥ 1 normal.
    k1 = max(min(k, I32(127)), I32(-126))
    y = fma(m, q, m) * _pow2(k1) * _pow2(k - k1)
    y = m * F32(0.0) if x < F32(-170.0) else y
    return x if x != x else y


# ---------------------------------------------------------------------------------------------
# 16-bit floats, as raw bits: float16 in int16, bfloat16 in uint16


@jit
def half_to_f32(h: Any) -> Any:
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
def f32_to_half(f: Any) -> Any:
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
def bf16_to_f32(b: Any) -> Any:
    """The float32 value of the bfloat16 with bits ``b`` (exact)."""
    return i32_as_f32((I32(b) & I32(0xFFFF)) << I32(16))


@jit
def f32_to_bf16(f: Any) -> Any:
    """The bfloat16 bits of float32 ``f`` rounded to nearest even (NaN gives a quiet NaN)."""
    bits = f32_as_i32(f)
    rounded = (bits + I32(0x7FFF) + ((bits >> I32(16)) & I32(1))) >> I32(16)
    quiet = (bits >> I32(16)) | I32(0x0040)
    return np.uint16((quiet if f != f else rounded) & I32(0xFFFF))


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
        return lambda r, like: f32_to_bf16(np.float32(r))
    return None


@overload(const, jit_options=INLINE_OPTIONS)
def _const(like, value):  # type: ignore[no-untyped-def]
    if like == types.float64:
        return lambda like, value: np.float64(value)
    return lambda like, value: np.float32(value)


def _generic(name: str, f32: Any, f64: Any) -> Any:
    def stub(v: Any) -> Any:
        raise NotImplementedError("only for use inside Numba kernels")

    stub.__name__ = stub.__qualname__ = name

    @overload(stub, jit_options=INLINE_OPTIONS)
    def _impl(v):  # type: ignore[no-untyped-def]
        if v == types.float64:
            return lambda v: f64(v)
        if v == types.float32:
            return lambda v: f32(v)
        return None

    return stub


@jit
def _exp64(v: float) -> float:
    return math.exp(v)


@jit
def _expm164(v: float) -> float:
    return math.expm1(v)


@jit
def _log1p64(v: float) -> float:
    return math.log1p(v)


@jit
def _erf64(v: float) -> float:
    return math.erf(v)


@jit
def _tanh64(v: float) -> float:
    return math.tanh(v)


@jit
def _times_exp64(m: float, v: float) -> float:
    return m * math.exp(v)


exp = _generic("exp", exp_f32, _exp64)
expm1 = _generic("expm1", expm1_f32, _expm164)
log1p = _generic("log1p", log1p_f32, _log1p64)
erf = _generic("erf", erf_f32, _erf64)
tanh = _generic("tanh", tanh_f32, _tanh64)


def single(v: Any) -> Any:
    """Whether the working float is float32, as a compile-time constant: float32 kernels take
    the compensated steps below, float64 ones keep the registry's formula operation by
    operation (and so stay bit-exact to the reference path)."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(single, jit_options=INLINE_OPTIONS)
def _single(v):  # type: ignore[no-untyped-def]
    if v == types.float32:
        return lambda v: True
    if v == types.float64:
        return lambda v: False
    return None


def times_exp(m: Any, v: Any) -> Any:
    """``m·e^v``: float32 by :func:`times_exp_f32`, float64 as the product of the two."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(times_exp, jit_options=INLINE_OPTIONS)
def _times_exp(m, v):  # type: ignore[no-untyped-def]
    if m == v == types.float32:
        return lambda m, v: times_exp_f32(m, v)
    if m == v == types.float64:
        return lambda m, v: _times_exp64(m, v)
    return None


def product_error(a: Any, b: Any, p: Any) -> Any:
    """``a·b − p`` exactly, for ``p`` the rounded ``a·b``, in float32 (by one fused
    multiply-add); 0 in float64, where the registry's rounding is kept."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(product_error, jit_options=INLINE_OPTIONS)
def _product_error(a, b, p):  # type: ignore[no-untyped-def]
    if a == b == p == types.float32:
        return lambda a, b, p: fma(a, b, -p)
    if a == b == p == types.float64:
        return lambda a, b, p: np.float64(0.0)
    return None


@jit
def times_split(q: Any, hi: Any, lo: Any) -> Any:
    """``q·(hi + lo)`` rounded once, for a parameter split into a float32 and its remainder
    (``lo = 0`` in float64: then it is ``q·hi``, as the registry rounds it)."""
    return q * hi if (lo == 0 or q == 0) else fma(q, hi, q * lo)
