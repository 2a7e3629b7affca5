"""float32 member formulas as 16-lane LLVM vectors with a table lookup per lane.

gelu's centre, ``|x| < 4``: ``Φ(−a)`` (``a = |x|``) is one of 32 polynomials of degree 5 in
``t = a − c`` (:data:`relukit.kernels.cpu.fits32.GELU_TABLE`, one per eighth of ``[0, 4)``),
whose coefficients each lane takes from the table by its row ``⌊8a⌋``. With AVX-512 a lookup
is one two-table permute (``vpermi2ps``: 32 float32 entries in two registers); elsewhere it is
an element read per lane, with the same arithmetic, so the same bits, only slower.

This is what makes float32 gelu cheap: 16 lanes, about twenty vector operations per 16
elements, against the float64 formula's eight lanes and some forty operations
(:func:`relukit.kernels.cpu.math32.gelu_f32`), which stays for ``|x| ≥ 4``, NaN and ±inf.
Which formula an element takes depends on its own value alone.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS
from relukit.kernels.cpu.fits32 import (
    GELU_TABLE,
    GELU_TABLE_DEGREE,
    GELU_TABLE_ROWS,
    GELU_TABLE_STEP,
)
from relukit.kernels.cpu.intrinsics import _host_has
from relukit.kernels.cpu.loops import conventions
from relukit.kernels.cpu.math32 import gelu_f32

LANES = 16
GELU_CENTRE_END = GELU_TABLE_STEP * GELU_TABLE_ROWS  # 4: the centre is |x| < 4
AVX512 = _host_has("avx512f")

F32 = ir.FloatType()
I32 = ir.IntType(32)
VF = ir.VectorType(F32, LANES)
VI = ir.VectorType(I32, LANES)
TABLE = ir.VectorType(F32, GELU_TABLE_ROWS)


def _splat_f(value: float) -> Any:
    return ir.Constant(VF, [value] * LANES)


def _column(k: int) -> list[float]:
    return [row[k] for row in GELU_TABLE]


def _lookup(builder: Any, column: list[float], rows: Any) -> Any:
    """``column[rows[i]]`` in each lane: one ``vpermi2ps`` with AVX-512, else a read per lane
    from the column as one constant vector."""
    if AVX512:
        kind = ir.FunctionType(VF, [VF, VI, VF])
        permute = cgutils.get_or_insert_function(
            builder.module, kind, "llvm.x86.avx512.vpermi2var.ps.512"
        )
        low = ir.Constant(VF, column[:LANES])
        high = ir.Constant(VF, column[LANES:])
        return builder.call(permute, [low, rows, high])
    table = ir.Constant(TABLE, column)
    out = ir.Constant(VF, None)
    for lane in range(LANES):
        index = builder.extract_element(rows, ir.Constant(I32, lane))
        out = builder.insert_element(
            out, builder.extract_element(table, index), ir.Constant(I32, lane)
        )
    return out


def _call(builder: Any, name: str, kind: Any, args: list[Any]) -> Any:
    return builder.call(cgutils.get_or_insert_function(builder.module, kind, name), args)


@intrinsic
def gelu_centre_16(
    typingctx: Any, x: Any, start: Any, count: Any, y: Any, rest: Any, at: Any
) -> Any:
    """gelu of the ``count`` (≤ 16) float32 ``x[start:]`` with ``|x| < 4`` into the same
    places of ``y``; the places of the others (``|x| ≥ 4``, NaN, ±inf), which it leaves
    unwritten for :func:`~relukit.kernels.cpu.math32.gelu_f32`, go to ``rest[at:]`` (uint32,
    in order, compressed without a branch; 16 entries are written, so ``rest`` needs
    ``at + 16``); returns how many.

    ``Φ(−a) = p₀ + t·P(t)`` from the lane's table row; then ``x·p₀ + x·(t·P)`` for ``x < 0``
    and ``x·q_hi + x·(q_lo − t·P)`` (``q = Φ(c) = 1 − p₀``) above, each with its large term
    rounded once in a fused multiply-add; ±0 are kept. Within 0.91 ulp of the true value
    (``benchmarks/accuracy.py``). ``y`` must not overlap ``x`` except in the same places."""
    if not (
        isinstance(x, types.Array)
        and isinstance(y, types.Array)
        and x.dtype == y.dtype == types.float32
        and x.ndim == y.ndim == 1
        and isinstance(rest, types.Array)
        and rest.dtype == types.uint32
    ):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        xarr, first, n, yarr, rarr, at = args
        xary = context.make_array(signature.args[0])(context, builder, xarr)
        yary = context.make_array(signature.args[3])(context, builder, yarr)
        rary = context.make_array(signature.args[4])(context, builder, rarr)
        vector_pointer = VF.as_pointer()
        xptr = builder.bitcast(builder.gep(xary.data, [first]), vector_pointer)
        yptr = builder.bitcast(builder.gep(yary.data, [first]), vector_pointer)
        rptr = builder.bitcast(builder.gep(rary.data, [at]), VI.as_pointer())
        n32 = builder.trunc(n, I32) if n.type.width > 32 else n
        present = builder.icmp_signed(
            "<",
            ir.Constant(VI, list(range(LANES))),
            builder.shuffle_vector(
                builder.insert_element(ir.Constant(VI, None), n32, ir.Constant(I32, 0)),
                ir.Constant(VI, None),
                ir.Constant(VI, [0] * LANES),
            ),
        )
        mask = ir.VectorType(ir.IntType(1), LANES)
        v = _call(
            builder,
            "llvm.masked.load.v16f32.p0",
            ir.FunctionType(VF, [vector_pointer, I32, mask, VF]),
            [xptr, ir.Constant(I32, 4), present, ir.Constant(VF, None)],
        )
        a = _call(builder, "llvm.fabs.v16f32", ir.FunctionType(VF, [VF]), [v])
        centre = builder.fcmp_ordered("<", a, _splat_f(GELU_CENTRE_END))
        scaled = builder.fmul(a, _splat_f(1.0 / GELU_TABLE_STEP))  # exact
        rows = builder.fptosi(builder.select(centre, scaled, _splat_f(0.0)), VI)
        fma_kind = ir.FunctionType(VF, [VF, VF, VF])

        def fma(p: Any, q: Any, r: Any) -> Any:
            return _call(builder, "llvm.fma.v16f32", fma_kind, [p, q, r])

        t = builder.fsub(a, _lookup(builder, _column(0), rows))
        s = _lookup(builder, _column(GELU_TABLE_DEGREE + 1), rows)
        for k in range(GELU_TABLE_DEGREE, 1, -1):
            s = fma(s, t, _lookup(builder, _column(k), rows))
        tp = builder.fmul(t, s)  # p(t) − p₀
        left = builder.fcmp_ordered("<", v, _splat_f(0.0))
        p0 = _lookup(builder, _column(1), rows)
        q_hi = _lookup(builder, _column(GELU_TABLE_DEGREE + 2), rows)
        q_lo = _lookup(builder, _column(GELU_TABLE_DEGREE + 3), rows)
        big = builder.select(left, p0, q_hi)
        small = builder.select(left, tp, builder.fsub(q_lo, tp))
        r = fma(v, big, builder.fmul(v, small))
        r = builder.select(builder.fcmp_ordered("==", v, _splat_f(0.0)), v, r)
        done = builder.and_(present, centre)
        _call(
            builder,
            "llvm.masked.store.v16f32.p0",
            ir.FunctionType(ir.VoidType(), [VF, vector_pointer, I32, mask]),
            [r, yptr, ir.Constant(I32, 4), done],
        )
        others = builder.and_(present, builder.not_(centre))
        places = builder.add(
            ir.Constant(VI, list(range(LANES))),
            builder.shuffle_vector(
                builder.insert_element(
                    ir.Constant(VI, None), builder.trunc(first, I32), ir.Constant(I32, 0)
                ),
                ir.Constant(VI, None),
                ir.Constant(VI, [0] * LANES),
            ),
        )
        builder.store(_compress(builder, places, others), rptr, align=4)
        bits = builder.bitcast(others, ir.IntType(LANES))
        many = _call(
            builder,
            "llvm.ctpop.i16",
            ir.FunctionType(ir.IntType(LANES), [ir.IntType(LANES)]),
            [bits],
        )
        return builder.zext(many, ir.IntType(64))

    return types.intp(x, types.intp, types.intp, y, rest, types.intp), codegen


def _compress(builder: Any, values: Any, mask: Any) -> Any:
    """The lanes of ``values`` where ``mask`` is set, moved to the front in order (the rest
    zero): ``vpcompressd`` into a register with AVX-512 (its form that stores to memory is
    slow on some cores), else a lane-by-lane select."""
    kind = ir.VectorType(ir.IntType(1), LANES)
    if AVX512:
        return _call(
            builder,
            "llvm.x86.avx512.mask.compress.v16i32",
            ir.FunctionType(VI, [VI, VI, kind]),
            [values, ir.Constant(VI, None), mask],
        )
    out = ir.Constant(VI, None)
    slot = ir.Constant(I32, 0)
    for lane in range(LANES):
        taken = builder.extract_element(mask, ir.Constant(I32, lane))
        value = builder.extract_element(values, ir.Constant(I32, lane))
        out = builder.select(taken, builder.insert_element(out, value, slot), out)
        slot = builder.add(slot, builder.zext(taken, I32))
    return out


def gelu_forward_block(xs: Any, ys: Any, low: Any, high: Any, rest: Any, values: Any) -> bool:
    """gelu of a block into ``ys`` (same size, not overlapping) if ``xs`` holds float32: the
    centre 16 lanes at a time (:func:`gelu_centre_16`); the other elements gathered (their
    places into ``rest``, uint32, 16 more than the block's size, and values into ``values``,
    float32, as many), put through :func:`~relukit.kernels.cpu.math32.gelu_f32` and
    the registry's conventions (``low``, ``high``: the limits at ∓inf) in one vectorised
    loop, exactly as the element loop would, and scattered back. Returns whether it did
    (False, untouched, for any other dtype)."""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(gelu_forward_block, jit_options=INLINE_OPTIONS)
def _gelu_forward_block(xs, ys, low, high, rest, values):  # type: ignore[no-untyped-def]
    if not (isinstance(xs, types.Array) and xs.dtype == ys.dtype == types.float32):
        return lambda xs, ys, low, high, rest, values: False

    def impl(xs, ys, low, high, rest, values):  # type: ignore[no-untyped-def]
        m = xs.size
        count = 0
        for i in range(0, m, LANES):
            count += gelu_centre_16(xs, i, min(LANES, m - i), ys, rest, count)
        if count == 0:
            return True
        # whole vectors (the last place repeated): no scalar remainder of the slow formula
        padded = (count + LANES - 1) // LANES * LANES
        for k in range(count, padded):
            rest[k] = rest[count - 1]
        for k in range(padded):
            values[k] = xs[rest[k]]
        for k in range(padded):
            v = values[k]
            values[k] = conventions(v, gelu_f32(v), low, high)
        for k in range(padded):
            ys[rest[k]] = values[k]
        return True

    return impl
