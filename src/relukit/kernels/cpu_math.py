"""Vectorisable scalar math for the compiled kernels (Numba; imported only by the kernels).

Numba turns ``math.exp`` or ``math.erfc`` into calls to the C library, which stop the loop
vectoriser. The float32 (and 16-bit) kernels evaluate the smooth members in float64 and round
once, and the float64 functions they use here are written with nothing but arithmetic, fused
multiply-adds, bit casts and selects, so a loop that calls them compiles to SIMD code:

================  =============================================================================
``exp_f64``       Cody-Waite reduction ``x = k·ln2 + r``, ``|r| ≤ ln2/2``; ``expm1(r)`` by its
                  Taylor polynomial to degree 12; ``2^k`` from the bits of the rounding shifter
                  (in two steps where the result is subnormal).
``expm1_f64``     the same reduction; ``2^k·q + (2^k − 1)`` in one fused multiply-add.
``log1p_f64``     ``k·ln2 + 2·atanh(f/(2 + f))`` by its series, plus the rounding of ``1 + w``.
``tanh_f64``      ``e/(e + 2)``, ``e = expm1(2|x|)``.
``phi_f64``       Φ(x): erf's Taylor series for ``|x| < 1.188``, ``e^{−x²/2}·erfcx(|x|/√2)/2``
                  beyond, ``erfcx`` a Chebyshev fit (:mod:`relukit.kernels.fits`).
================  =============================================================================

Their relative error is below 2e-13 (``tests/kernels/test_cpu.py`` checks them against the C
library and mpmath); rounded to float32, that leaves the members' results within 0.5 ulp of the
true value plus 2^-16 ulp. The float64 kernels call the C library instead.

The generic helpers (``widen``, ``narrow``, ``const``, ``single``) dispatch on the Numba type at
compile time, so one kernel source serves every dtype. 16-bit floats travel as their raw bits:
float16 as ``int16`` and bfloat16 as ``uint16``.
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

from relukit.kernels.fits import ERFCX, ERFCX_HIGH, ERFCX_K, ERFCX_LOW

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
# float64 functions for the float32 kernels
#
# The float32 (and 16-bit) kernels evaluate each smooth member's formula in float64 and round
# once, so that the result is within an ulp of the true value wherever it is a normal float32.
# The C library's float64 functions would stop the loop vectoriser; these are arithmetic, fused
# multiply-adds, bit casts and selects only. Their relative error is below 1e-13, far below the
# 2^-24 that rounding to float32 adds; they are not meant for float64 results (the float64
# kernels use the C library).


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


LOG2E_64 = 1.4426950408889634
LN2_HI_64 = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k·LN2_HI_64 is exact
LN2_LO_64 = 1.90821492927058770002e-10
SHIFTER_64 = 6755399441055744.0  # 1.5·2^52: k sits in the low bits of (v + SHIFTER_64)
SHIFTER_BITS = 0x4338000000000000
SQRT2_64 = 1.4142135623730951
SQRT1_2_64 = 0.7071067811865476
# 1/k! for k = 2..12: expm1(r) = r + r²·P(r) on |r| ≤ ln2/2, relative error 2e-16
EXPM1_64 = tuple(1.0 / math.factorial(k) for k in range(2, 13))
# 1/(2n + 1) for n = 0..8: log(1 + f) = 2s·P(s²), s = f/(2 + f), |s| ≤ 0.172: error 3e-16
ATANH_64 = tuple(1.0 / (2 * n + 1) for n in range(9))
# erf(z) = z·P(z²) on |z| < 0.84: the Taylor series, 17 terms (error 1e-16)
ERF_64 = tuple(
    2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(17)
)
_W_LOW = (ERFCX_LOW - ERFCX_K) / (ERFCX_LOW + ERFCX_K)
_W_HIGH = (ERFCX_HIGH - ERFCX_K) / (ERFCX_HIGH + ERFCX_K)
ERFCX_SCALE = 2 / (_W_HIGH - _W_LOW)
ERFCX_SHIFT = -(_W_HIGH + _W_LOW) / (_W_HIGH - _W_LOW)
PHI_SPLIT = ERFCX_LOW * math.sqrt(2)  # |x| where Φ changes from erf's series to erfcx


def polynomial(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``p(x) = c₀ + c₁x + … + c_n xⁿ`` (Horner's scheme in fused multiply-adds) with
    the coefficients written into its code: a loop over a tuple would be kept as a loop, and
    stop the vectoriser."""
    body = repr(float(coefficients[-1]))
    for c in reversed(coefficients[:-1]):
        body = f"fma({body}, x, {float(c)!r})"
    namespace: dict[str, Any] = {"fma": fma}
    exec(f"def {name}(x):\n    return {body}\n", namespace)
    return jit(namespace[name])


def chebyshev(coefficients: tuple[float, ...], name: str) -> Any:
    """A jitted ``Σ c_k T_k(s)`` (Clenshaw's recurrence), unrolled as :func:`polynomial`."""
    lines = [f"def {name}(s):", "    b1 = 0.0", "    b2 = 0.0", "    s2 = 2.0 * s"]
    for c in reversed(coefficients[1:]):
        lines.append(f"    b1, b2 = fma(s2, b1, {float(c)!r} - b2), b1")
    lines.append(f"    return fma(s, b1, {float(coefficients[0])!r} - b2)")
    namespace: dict[str, Any] = {"fma": fma}
    exec("\n".join(lines) + "\n", namespace)
    return jit(namespace[name])


expm1_series = polynomial(EXPM1_64, "expm1_series")
atanh_series = polynomial(ATANH_64, "atanh_series")
erf_series = polynomial(ERF_64, "erf_series")
erfcx_series = chebyshev(ERFCX, "erfcx_series")


@jit
def _reduce64(x: float) -> Any:
    """(k, expm1(r)) with x = k·ln2 + r, for |x| < 2^50."""
    shifted = fma(x, LOG2E_64, SHIFTER_64)
    kf = shifted - SHIFTER_64
    r = fma(-kf, LN2_HI_64, x)
    r = fma(-kf, LN2_LO_64, r)
    q = fma(r * r, expm1_series(r), r)
    return f64_as_i64(shifted) - np.int64(SHIFTER_BITS), q


@jit
def _pow2_64(k: Any) -> float:
    """2^k as a float64 for −1022 ≤ k ≤ 1023."""
    return i64_as_f64((k + np.int64(1023)) << np.int64(52))


@jit
def exp_f64(x: float) -> float:
    """e^x: 0 below −745.2, inf above 709.78 (NaN gives NaN)."""
    xc = x if x > -746.0 else -746.0
    xc = xc if xc < 710.0 else 710.0
    k, q = _reduce64(xc)
    # 2^k is not a float64 for k = 1024 or k < −1022: scale in two steps
    high = k > np.int64(1023)
    low = k < np.int64(-1000)
    kk = k - np.int64(1) if high else (k + np.int64(64) if low else k)
    after = 2.0 if high else (5.421010862427522e-20 if low else 1.0)
    s = _pow2_64(kk)
    y = fma(s, q, s) * after
    y = np.inf if x > 709.782712893384 else y
    y = 0.0 if x < -745.2 else y
    return x if x != x else y


@jit
def expm1_f64(x: float) -> float:
    """e^x − 1 (x clamped to [−40, 709]: −1 below, and inf above 709.78; ±0 kept)."""
    xc = x if x > -40.0 else -40.0
    xc = xc if xc < 709.0 else 709.0
    k, q = _reduce64(xc)
    s = _pow2_64(k)
    y = fma(s, q, s - 1.0)
    y = np.inf if x > 709.782712893384 else y
    return x if (x == 0.0 or x != x) else y


@jit
def log1p_f64(w: float) -> float:
    """log(1 + w) for w ≥ 0 (finite)."""
    u = 1.0 + w
    c = (w - (u - 1.0)) / u  # the rounding error of 1 + w, carried to first order
    big = u > SQRT2_64
    f = 0.5 * u - 1.0 if big else u - 1.0
    s = f / (2.0 + f)
    y = 2.0 * s * atanh_series(s * s) + c
    return (y + LN2_LO_64) + LN2_HI_64 if big else y


@jit
def tanh_f64(x: float) -> float:
    """tanh(x) = e/(e + 2), e = expm1(2|x|), with x's sign (1 beyond |x| = 20)."""
    a = abs(x)
    e = expm1_f64(a + a if a < 20.0 else 40.0)
    return math.copysign(e / (e + 2.0), x)


@jit
def phi_f64(x: float) -> float:
    """Φ(x), the standard normal distribution function: ``(1 + erf(x/√2))/2`` for
    |x| < 1.188, ``e^{−x²/2}·erfcx(|x|/√2)/2`` below and 1 minus that above (erfcx fitted,
    :mod:`relukit.kernels.fits`). x² must be exact (x a float32); below x = −16.9 (where
    Φ < 1e-64, 0 in float32) the result is only of the right size."""
    a = abs(x)
    z = a * SQRT1_2_64
    erf = z * erf_series(z * z)
    near = 0.5 + 0.5 * math.copysign(erf, x)
    zc = z if z < ERFCX_HIGH else ERFCX_HIGH
    w = (zc - ERFCX_K) / (zc + ERFCX_K)
    tail = 0.5 * exp_f64(-0.5 * (x * x)) * erfcx_series(fma(w, ERFCX_SCALE, ERFCX_SHIFT))
    far = tail if x < 0.0 else 1.0 - tail
    return near if a < PHI_SPLIT else far


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
