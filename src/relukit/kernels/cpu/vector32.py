"""float32 member formulas as 16-lane LLVM vectors with a table row per lane.

gelu, silu and sigmoid are ``x·F(x)`` or ``F(x)`` with ``F`` a distribution function: Φ for
gelu, σ for silu and sigmoid, and ``σ(2u(x))`` for gelu's tanh form (``u = √(2/π)·(x +
0.044715·x³)``, odd: 1.53 → 0.37 ns per element out= on 2^16 N(0, 1), 1 thread, Xeon, PyTorch
2.24); the derivatives of gelu, silu and the tanh form are ``F(x)`` with ``F(x) + F(−x) = 1``
too (gelu′ = Φ + xφ, silu′ = σ·(1 + x·σ(−x)), the tanh form's 2.87 → 0.41 ns per element,
PyTorch's backward 2.24), so they take the same form with tables of their own. tanh,
odd, is ``x·F(|x|)`` with ``F(a) = tanh(a)/a`` (w = 1/4, degree 5, ``|x| < 8``: 0.56 → 0.32
ns per element out= on 2^16 N(0, 1), 1 thread, Xeon, PyTorch 0.35; every float32 there within
0.66 ulp from 2^-100 up, where its formula's was 1.31). On the centre, ``a = |x| < w·32``, the
small side ``F(−a)`` is one of 32 float32 polynomials in ``t = a − c``
(:data:`relukit.kernels.cpu.fits32.CENTRE_TABLES`: w = 1/8 and degree 5 for Φ, gelu′ and the
tanh form, w = 1/2 and degree 6 for σ, 7 for silu′), whose coefficients each lane takes from
the table by its row ``⌊a/w⌋``. With AVX-512 a lookup is one two-table permute
(``vpermi2ps``: 32 float32 entries in two registers); with AVX2 four 8-entry permutes and two
selects per 8 lanes (one permute where all 16 rows are below 8), and the compresses go
through a table of the 256 masks of 8 lanes
(gelu, silu, sigmoid and tanh out= on 2^16 float32 elements of 3·N(0, 1), 1 thread, compiled
for Haswell and run on an AMD EPYC: 16.5 / 10.0 / 10.1 / 9.8 → 2.54 / 1.97 / 1.96 / 1.90 ns
per element, against 0.70 / 0.39 / 0.38 / 0.33 with AVX-512 and PyTorch's AVX2 kernels'
0.62-0.69 / 0.81-1.18 / 0.94-1.00 / 2.5-3.0: ``benchmarks/vector_width.py``); elsewhere an
element is read per lane. The arithmetic is the same each way, so the bits are
(``tests/kernels/test_avx2_build.py`` compiles for Haswell and compares). (Φ's table with
w = 1/4 and degree 8, to |x| < 8, was tried: its rows then span a fall of e^{a/4} in Φ(−a),
and p₀ + t·P loses up to 2.3 ulp to cancellation or to the size of t·P, 1.0-1.7 from a = 2
on.)

That is about twenty vector operations per 16 elements, against some forty for the formulas
the elements off the centre (and NaN, −inf) keep up to the bounds where the member is a
constant or x (:data:`FAR`; beyond them the centre writes that value itself): gelu's tails
(:func:`relukit.kernels.cpu.math32.gelu_f32`, an exp with its argument's large terms cancelled
exactly), the float32 pairs of silu and sigmoid
(:func:`~relukit.kernels.cpu.math32.times_sigmoid`), the tails of gelu′ and silu′
(:func:`~relukit.kernels.cpu.math32.gelu_d32`, :func:`~relukit.kernels.cpu.math32.silu_d32`)
and those of tanh and gelu's tanh form (:func:`~relukit.kernels.cpu.math32.tanh_f32`,
:func:`~relukit.kernels.cpu.math32.gelu_tanh_f32`).
The centre compresses those elements out of each vector, places and values, and they are then
computed together in whole vectors. Which formula an element takes depends on its own value
alone. gelu′ and silu′ on 2^16 float32 elements of N(0, 1), 1 thread, AMD EPYC: 2.51 → 0.44
and 1.81 → 0.52 ns per element with their tables (PyTorch's backward 1.05 and 0.55). The
float64 blocks kept beside them split elements the same way without a table
(:func:`_centre_block`): gelu's centre and tails, and the derivatives of gelu (both forms),
silu and mish away from and near their zeros, where the registry's expansion is needed (on
3·N(0, 1) about 7 % of the elements; gelu′'s tails too); float64 derivative out= on 2^16
elements, 1 thread, AMD EPYC, ns per element, 3·N(0, 1): silu′ 6.8 → 5.2, gelu-tanh′ 8.3 → 6.4,
mish′ 9.5 → 8.5, gelu′ 21.6 → 22.0 (most of its blocks take the whole formula); N(0, 1):
gelu′ 21.6 → 16.8.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from relukit.kernels.cpu.compile import INLINE_OPTIONS, jit
from relukit.kernels.cpu.dtypes import narrow, widen
from relukit.kernels.cpu.fits32 import CENTRE_PAIRED, CENTRE_SHAPES, CENTRE_TABLES
from relukit.kernels.cpu.intrinsics import AVX512_F, _host_has, popcount, trailing_zeros
from relukit.kernels.cpu.loops import conventions
from relukit.kernels.cpu.masks import pack
from relukit.kernels.cpu.math32 import (
    gelu_d32,
    gelu_f32,
    gelu_tanh_d32,
    gelu_tanh_f32,
    sigmoid_f32,
    silu_d32,
    silu_f32,
    tanh_f32,
)
from relukit.kernels.cpu.smooth import (
    gelu_d_centre,
    gelu_d_off_centre,
    gelu_d_wide,
    gelu_f_wide_centre,
    gelu_f_wide_in_tail,
    gelu_f_wide_tail,
    gelu_tanh_d_general,
    gelu_tanh_d_may_be_near,
    gelu_tanh_d_wide,
    mish_d_general,
    mish_d_may_be_near,
    mish_d_wide,
    silu_d_general,
    silu_d_may_be_near,
    silu_d_wide,
)

LANES = 16
AVX512 = AVX512_F
AVX2 = _host_has("avx2")
# an AVX2 host without AVX-512, as ``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES`` name it: what
# the tests and benchmarks/vector_width.py compile for to run the AVX2 build on this host
AVX2_HOST = (
    "haswell",
    "+avx,+avx2,+fma,+bmi,+bmi2,+f16c,+popcnt,+lzcnt,+movbe,+sse4.1,+sse4.2,+ssse3",
)

F32 = ir.FloatType()
I32 = ir.IntType(32)
VF = ir.VectorType(F32, LANES)
VI = ir.VectorType(I32, LANES)
MASK = ir.VectorType(ir.IntType(1), LANES)


def _splat_f(value: float) -> Any:
    return ir.Constant(VF, [value] * LANES)


def _call(builder: Any, name: str, kind: Any, args: list[Any]) -> Any:
    return builder.call(cgutils.get_or_insert_function(builder.module, kind, name), args)


def _lookup(builder: Any, column: list[float], rows: Any) -> Any:
    """``column[rows[i]]`` in each lane (32 entries): one ``vpermi2ps`` with AVX-512, else a
    read per lane from the column as one constant vector (AVX2 hosts take :func:`_lookups`'
    :func:`_lookup_8`). The same entries each way (the rows are within [0, 31] where AVX-512
    is not used: :func:`_truncated`)."""
    if AVX512:
        kind = ir.FunctionType(VF, [VF, VI, VF])
        permute = cgutils.get_or_insert_function(
            builder.module, kind, "llvm.x86.avx512.vpermi2var.ps.512"
        )
        low = ir.Constant(VF, column[:LANES])
        high = ir.Constant(VF, column[LANES:])
        return builder.call(permute, [low, rows, high])
    table = ir.Constant(ir.VectorType(F32, len(column)), column)
    out = ir.Constant(VF, None)
    for lane in range(LANES):
        index = builder.extract_element(rows, ir.Constant(I32, lane))
        out = builder.insert_element(
            out, builder.extract_element(table, index), ir.Constant(I32, lane)
        )
    return out


def _lookups(builder: Any, columns: list[list[float]], rows: Any) -> list[Any]:
    """:func:`_lookup` of each of ``columns`` at the same ``rows``. With AVX2 (not AVX-512),
    where every row of the 16 lanes is below 8, one ``vpermps`` per 8 lanes and column does
    (the first 8 entries), in a branch: rows from 8 up need all four and their selects. (The
    AVX2 build on the AMD EPYC, on 2^16 float32 elements of N(0, 1), 1 thread, ns per element:
    silu 2.05 → 1.07, silu′ 2.37 → 1.15, sigmoid 2.05 → 1.01, their rows below 8 where |x| <
    4; tanh's (|x| < 2), all below 8 in about half the vectors there, 1.95 → 1.40-1.88; gelu's
    (|x| < 1) rarely all are, and on 3·N(0, 1) few vectors qualify for any table: unchanged
    there within the noise between processes, 1.8-3.4 ns for the same code. Lanes off the
    centre, whose values are not stored, still count: they take row 31.)"""
    if AVX512 or not AVX2:
        return [_lookup(builder, column, rows) for column in columns]
    below = builder.icmp_unsigned("<", rows, ir.Constant(VI, [8] * LANES))
    every = builder.icmp_unsigned(
        "==", builder.bitcast(below, ir.IntType(LANES)), ir.Constant(ir.IntType(LANES), -1)
    )
    with builder.if_else(every) as (first_eight, all_rows):
        with first_eight:
            near = [_lookup_8(builder, column, rows, pieces=1) for column in columns]
            near_block = builder.block
        with all_rows:
            full = [_lookup_8(builder, column, rows) for column in columns]
            full_block = builder.block
    found = []
    for a, b in zip(near, full, strict=True):
        merged = builder.phi(VF)
        merged.add_incoming(a, near_block)
        merged.add_incoming(b, full_block)
        found.append(merged)
    return found


def _lookup_8(builder: Any, column: list[float], rows: Any, pieces: int = 4) -> Any:
    """:func:`_lookup` with AVX2's 8-lane ``vpermps``: per 8 lanes four permutes (one per 8
    entries) and the two selects that pick among them by the row's bits 3 and 4 (``rows``
    within [0, 31]), or with ``pieces`` 1 the first permute alone (``rows`` within [0, 7]).
    Before it, each entry was read per lane (extracted from the column's constant vector by a
    variable index, which goes through memory): gelu out= on 2^16 float32 elements, 1 thread,
    compiled for Haswell and run on an AMD EPYC (Zen 4), 16.5 ns per element against 0.64 with
    AVX-512."""
    assert pieces in (1, 4)
    half = ir.VectorType(F32, 8)
    indices = ir.VectorType(I32, 8)
    permute = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(half, [half, indices]), "llvm.x86.avx2.permps"
    )
    zeros = ir.Constant(VI, None)
    bit_3 = ir.Constant(indices, [8] * 8)
    bit_4 = ir.Constant(indices, [16] * 8)
    zero = ir.Constant(indices, None)
    found = []
    for start in (0, 8):
        lanes = ir.Constant(indices, list(range(start, start + 8)))
        rows_8 = builder.shuffle_vector(rows, zeros, lanes)
        looked = [
            builder.call(permute, [ir.Constant(half, column[k : k + 8]), rows_8])
            for k in range(0, 8 * pieces, 8)
        ]
        if pieces == 1:
            found.append(looked[0])
            continue
        odd = builder.icmp_unsigned("!=", builder.and_(rows_8, bit_3), zero)
        upper = builder.icmp_unsigned("!=", builder.and_(rows_8, bit_4), zero)
        low = builder.select(odd, looked[1], looked[0])
        high = builder.select(odd, looked[3], looked[2])
        found.append(builder.select(upper, high, low))
    return builder.shuffle_vector(found[0], found[1], ir.Constant(VI, list(range(LANES))))


def _compress(builder: Any, values: Any, mask: Any) -> Any:
    """The lanes of ``values`` where ``mask`` is set, moved to the front in order (the rest
    zero): ``vpcompressd`` into a register with AVX-512 (its form that stores to memory is
    slow on some cores), else a lane-by-lane select."""
    if AVX512:
        return _call(
            builder,
            "llvm.x86.avx512.mask.compress.v16i32",
            ir.FunctionType(VI, [VI, VI, MASK]),
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


def _compress_store(builder: Any, values: Any, mask: Any, pointer: Any) -> None:
    """The lanes of ``values`` (int32) where ``mask`` is set, in order, stored from ``pointer``
    (16 entries written: those and others after them). With AVX-512 :func:`_compress` and one
    store; with AVX2 each 8 lanes by one ``vpermd`` whose indices come from a table of the
    256 masks of 8 lanes (:data:`COMPRESS_8`, a nibble per lane), the second half stored after
    the first's count; else :func:`_compress`'s lane-by-lane selects. (Those went through
    memory per lane: tanh out= on 2^16 float32 elements of 3·N(0, 1), compiled for Haswell and
    run on an AMD EPYC, 3.0 → 1.9 ns per element, where 12 % of vectors take the branch.)"""
    if AVX512 or not AVX2:
        builder.store(_compress(builder, values, mask), pointer, align=4)
        return
    module = builder.module
    half = ir.VectorType(I32, 8)
    table = module.globals.get("relukit_compress_8")
    if table is None:
        kind = ir.ArrayType(I32, 256)
        table = ir.GlobalVariable(module, kind, "relukit_compress_8")
        table.initializer = ir.Constant(kind, COMPRESS_8)
        table.global_constant = True
        table.linkage = "internal"
    permute = cgutils.get_or_insert_function(
        module, ir.FunctionType(half, [half, half]), "llvm.x86.avx2.permd"
    )
    count = cgutils.get_or_insert_function(
        module, ir.FunctionType(ir.IntType(8), [ir.IntType(8)]), "llvm.ctpop.i8"
    )
    bits = builder.bitcast(mask, ir.IntType(LANES))
    shifts = ir.Constant(half, list(range(0, 32, 4)))
    nibble = ir.Constant(half, [15] * 8)
    entries = builder.bitcast(pointer, I32.as_pointer())
    offset = ir.Constant(I32, 0)
    for start in (0, 8):
        lanes = builder.trunc(
            builder.lshr(bits, ir.Constant(ir.IntType(LANES), start)), ir.IntType(8)
        )
        word = builder.load(builder.gep(table, [ir.Constant(I32, 0), builder.zext(lanes, I32)]))
        spread = builder.insert_element(ir.Constant(half, None), word, ir.Constant(I32, 0))
        spread = builder.shuffle_vector(spread, ir.Constant(half, None), ir.Constant(half, None))
        order = builder.and_(builder.lshr(spread, shifts), nibble)
        part = builder.shuffle_vector(
            values, ir.Constant(VI, None), ir.Constant(half, list(range(start, start + 8)))
        )
        target = builder.bitcast(builder.gep(entries, [offset]), half.as_pointer())
        builder.store(builder.call(permute, [part, order]), target, align=4)
        offset = builder.add(offset, builder.zext(builder.call(count, [lanes]), I32))


def _compress_8_table() -> list[int]:
    """For each mask of 8 lanes, the lanes it sets in order, a nibble each (lowest first)."""
    words = []
    for mask in range(256):
        lanes = [lane for lane in range(8) if mask >> lane & 1]
        words.append(sum(lane << (4 * k) for k, lane in enumerate(lanes)))
    return words


COMPRESS_8 = _compress_8_table()


def _truncated(builder: Any, values: Any) -> Any:
    """Float lanes to int32 toward zero, defined for every input (``cvttps2dq``: NaN and the
    out-of-range give 0x80000000; LLVM's ``fptosi`` would give poison) with AVX-512; else
    ``fptosi`` of the lanes clamped to [0, 31] first."""
    if AVX512:
        return _call(
            builder,
            "llvm.x86.avx512.mask.cvttps2dq.512",
            ir.FunctionType(VI, [VF, VI, ir.IntType(16), I32]),
            [values, ir.Constant(VI, None), ir.Constant(ir.IntType(16), -1), ir.Constant(I32, 4)],
        )
    low = builder.select(builder.fcmp_ordered(">=", values, _splat_f(0.0)), values, _splat_f(0.0))
    clamped = builder.select(builder.fcmp_ordered("<", low, _splat_f(31.0)), low, _splat_f(31.0))
    return builder.fptosi(clamped, VI)


def _splat_i(builder: Any, value: Any) -> Any:
    one = builder.insert_element(ir.Constant(VI, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(one, ir.Constant(VI, None), ir.Constant(VI, [0] * LANES))


# Where each centre's member is a constant (or x) in float32: ``(right, right_value, left,
# left_value)``, the value (None: x itself) of every float32 x ≥ right and x ≤ left.
# These are the float32 formulas' own values there, bit for bit (found by evaluating them on
# every float32 from 4 to 1,024 on each side; ``tests/kernels/test_vector32.py`` checks the
# 2^20 float32 from each bound out, every 997th beyond, and that each bound is the least): a
# centre writes them itself instead of handing the elements to the formulas, whose
# exponentials there go through subnormal numbers, each a microcode assist on Intel cores
# (gelu out= on 2^16 float32 elements uniform on [15, 20], 1 thread, Xeon: 13.9 ns per
# element, PyTorch 0.48). +inf is written too (the conventions
# give it the same value), and so is −inf where the left value is its convention's (sigmoid's
# +0, tanh's −1; the others' −0 is not: at −inf the registry gives +0). NaN goes on to the
# formulas and conventions.
FAR = {
    "gelu": (5.3475156, None, -14.356069, -0.0),
    "silu": (16.676973, None, -104.00001, -0.0),
    "sigmoid": (17.32868, 1.0, -103.972084, 0.0),
    "gelu_derivative": (5.910161, 1.0, -14.000001, -0.0),
    "silu_derivative": (19.556345, 1.0, -104.00001, -0.0),
    "tanh": (9.010914, 1.0, -9.010914, -1.0),
    "gelu_tanh": (4.9941373, None, -10.681297, -0.0),
    "gelu_tanh_derivative": (5.46786, 1.0, -10.681297, -0.0),
}


def _centre_16(table: str, times_x: bool, odd: bool = False, far: str | None = None) -> Any:
    """The intrinsic ``centre(x, start, count, y, rest, values, at, often)`` of one table:
    ``x·F(x)`` (``times_x``) or ``F(x)`` of the ``count`` (≤ 16) float32 ``x[start:]`` on the
    centre (and, with ``far``, beyond its far bounds) into the same places of ``y``; the
    places of the others go to ``rest[at:]`` (uint32) and their values to ``values[at:]``
    (float32), in order,
    compressed (16 entries written, so each needs ``at + 16``); returns how many. It writes them
    where a lane is off the centre or, with ``often`` nonzero, always: where others are
    frequent, a branch on them mispredicts and costs more than the two compresses do. gelu out=
    on 2^24 float32 elements, 1 thread, AMD EPYC, ns per element, always / on the branch:
    3·N(0, 1) (18 % off) 0.86 / 0.98, N(0, 1) 0.49 / 0.41; the block passes ``often`` once
    more than 1 in 64 of its elements so far were handed back: 0.92-0.96 and 0.41. A whole
    vector (``count`` 16) is stored whole, the others' places with interim values, which the
    block overwrites with theirs (their values are kept aside first, so ``y`` may be ``x``);
    a shorter one with a lane mask, which leaves them and every place past ``count``
    unwritten. (The masked store of every vector ran at about half a plain one's rate once
    ``y`` came from DRAM on the AMD EPYC here, Zen 5: out= at 2^24 float32 on 3·N(0, 1), 1
    thread, ns per element, silu 0.34 → 0.21, sigmoid 0.30 → 0.22, gelu 0.57 → 0.43;
    PyTorch's 0.23, 0.23, 0.45-0.48.)

    ``F(−a) = p₀ + t·P(t)`` from the lane's row; ``x·F(x)`` is one fused multiply-add,
    ``x·p₀ + x·(t·P)`` for ``x < 0`` and ``x − x·F(−a)`` above, ``F(−a)`` rounded once there
    (it is at most ``F(x)``, so its rounding counts for less than the result's; ±0 kept: the
    side is the sign bit's). That is 7 operations where ``x·q_hi + x·(q_lo − t·P)`` above,
    ``q_hi + q_lo = 1 − p₀``, took 10, with the same bound (every float32 on gelu's centre:
    0.99 → 1.04 ulp, silu's 1.22 both ways), and 0.47 → 0.35 ns per element for gelu out= on
    2^16 N(0, 1), 1 thread, Xeon, with the whole vectors of a block loaded without a lane
    mask (its two operations gone). ``F(x)`` is ``p₀ + t·P`` and ``q_hi + (q_lo − t·P)``,
    ``q_hi + q_lo = 1 − p₀`` exactly, from two subtractions, in a
    paired table (:data:`~relukit.kernels.cpu.fits32.CENTRE_PAIRED`, the derivatives) with
    ``t·p₁′`` (p₁'s remainder) added to ``p₀`` and taken from ``q_lo`` first. An ``odd``
    member's table holds ``F(a) = f(a)/a`` instead (tanh), and ``f(x) = x·p₀ + x·(t·P)``.
    With ``far`` (a key of :data:`FAR`) it also writes the lanes where the member is a
    constant or x (+inf among them, and −inf where :data:`FAR` says), and hands back only the
    rest (a lane mask and two selects, in the branch
    the others take, so the centre's own lanes pay nothing for them).
    ``y`` must not overlap ``x`` except in the same places."""
    rows_table = CENTRE_TABLES[table]
    step, count_rows, degree = CENTRE_SHAPES[table]
    end = step * count_rows
    paired = table in CENTRE_PAIRED

    def column(k: int) -> list[float]:
        return [row[k] for row in rows_table]

    @intrinsic
    def centre(
        typingctx: Any,
        x: Any,
        start: Any,
        count: Any,
        y: Any,
        rest: Any,
        values: Any,
        at: Any,
        often: Any,
    ) -> Any:
        if not (
            isinstance(x, types.Array)
            and isinstance(y, types.Array)
            and isinstance(values, types.Array)
            and x.dtype == y.dtype == values.dtype == types.float32
            and x.ndim == y.ndim == 1
            and isinstance(rest, types.Array)
            and rest.dtype == types.uint32
        ):
            return None

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            xarr, first, n, yarr, rarr, varr, slot, often = args
            xary = context.make_array(signature.args[0])(context, builder, xarr)
            yary = context.make_array(signature.args[3])(context, builder, yarr)
            rary = context.make_array(signature.args[4])(context, builder, rarr)
            vary = context.make_array(signature.args[5])(context, builder, varr)
            pointer = VF.as_pointer()
            xptr = builder.bitcast(builder.gep(xary.data, [first]), pointer)
            yptr = builder.bitcast(builder.gep(yary.data, [first]), pointer)
            rptr = builder.bitcast(builder.gep(rary.data, [slot]), VI.as_pointer())
            vptr = builder.bitcast(builder.gep(vary.data, [slot]), VI.as_pointer())
            lanes = ir.Constant(VI, list(range(LANES)))
            present = builder.icmp_signed("<", lanes, _splat_i(builder, builder.trunc(n, I32)))
            v = _call(
                builder,
                "llvm.masked.load.v16f32.p0",
                ir.FunctionType(VF, [pointer, I32, MASK, VF]),
                [xptr, ir.Constant(I32, 1), present, ir.Constant(VF, None)],
            )
            a = _call(builder, "llvm.fabs.v16f32", ir.FunctionType(VF, [VF]), [v])
            inside = builder.fcmp_ordered("<", a, _splat_f(end))
            scaled = builder.fmul(a, _splat_f(1.0 / step))  # exact: a power of 2
            rows = _truncated(builder, scaled)  # (off the centre: some row, not stored)
            fma_kind = ir.FunctionType(VF, [VF, VF, VF])

            def fma(p: Any, q: Any, r: Any) -> Any:
                return _call(builder, "llvm.fma.v16f32", fma_kind, [p, q, r])

            # every entry of the lanes' rows: (c, p₀, …, p_d[, p₁′])
            row = _lookups(builder, [column(k) for k in range(len(rows_table[0]))], rows)
            t = builder.fsub(a, row[0])
            s = row[degree + 1]
            for k in range(degree, 1, -1):
                s = fma(s, t, row[k])
            p0 = row[1]
            raw = builder.bitcast(v, VI)
            # the side by the sign bit (−0 on the left) and t·P = p(t) − p₀, for every form
            # (LLVM drops what a form does not use)
            left = builder.icmp_signed("<", raw, ir.Constant(VI, None))
            tp = builder.fmul(t, s)
            if odd:
                # x·F(|x|): x·p₀ + x·(t·P), p₀ unrounded (±0 kept: t·P > 0 at 0)
                r = fma(v, p0, builder.fmul(v, tp))
            elif times_x:
                # x·F(x) as fma(x, A, B): on the left x·p₀ + x·(t·P) (A = p₀, B = x·(t·P):
                # the table's p₀ unrounded), on the right x − x·F(−a) (A = −(p₀ + t·P)
                # rounded once, B = x; F(−a) ≤ F(a) there, so its rounding counts less);
                # −0 gives −0·p₀ + −0 (t·P > 0 at 0)
                minus_f = fma(builder.fneg(t), s, builder.fneg(p0))  # (one vfnmsub)
                big = builder.select(left, p0, minus_f)
                addend = builder.select(left, builder.fmul(v, tp), v)
                r = fma(v, big, addend)
            else:
                # q = 1 − p₀ as a pair, exact: q_hi rounded, q_lo its error (Fast2Sum)
                one = _splat_f(1.0)
                q_hi = builder.fsub(one, p0)
                q_lo = builder.fsub(builder.fsub(one, q_hi), p0)
                low_left, low_right = p0, q_lo
                if paired:  # + t·p₁′ (p₁'s remainder) on the small side
                    p1_rest = row[degree + 2]
                    low_left = fma(t, p1_rest, p0)
                    low_right = fma(builder.fneg(t), p1_rest, q_lo)
                r = builder.select(
                    left,
                    fma(t, s, low_left),
                    builder.fadd(q_hi, fma(builder.fneg(t), s, low_right)),
                )
            others = builder.and_(present, builder.not_(inside))
            bits = builder.bitcast(others, ir.IntType(LANES))
            # (what the branch below may change: the lanes stored, their values, those handed)
            stored = cgutils.alloca_once_value(builder, builder.and_(present, inside))
            result = cgutils.alloca_once_value(builder, r)
            handed = cgutils.alloca_once_value(builder, bits)
            any_other = builder.icmp_unsigned("!=", bits, ir.Constant(ir.IntType(LANES), 0))
            often = builder.icmp_unsigned("!=", often, ir.Constant(often.type, 0))
            with builder.if_then(builder.or_(any_other, often)):
                if far is not None:
                    right_bound, right_value, left_bound, left_value = FAR[far]
                    on_right = builder.fcmp_ordered(">=", v, _splat_f(right_bound))  # (+inf too)
                    on_left = builder.fcmp_ordered("<=", v, _splat_f(left_bound))
                    if left_value == 0.0 and math.copysign(1.0, left_value) < 0:
                        # (a −0 on the left, where the registry gives −inf +0)
                        finite = builder.fcmp_ordered(">", v, _splat_f(-math.inf))
                        on_left = builder.and_(on_left, finite)
                    constant = builder.and_(others, builder.or_(on_right, on_left))
                    value = builder.select(
                        on_right,
                        v if right_value is None else _splat_f(right_value),
                        _splat_f(left_value),
                    )
                    builder.store(builder.select(constant, value, r), result)
                    builder.store(builder.or_(builder.load(stored), constant), stored)
                    others = builder.and_(others, builder.not_(constant))
                    builder.store(builder.bitcast(others, ir.IntType(LANES)), handed)
                places = builder.add(lanes, _splat_i(builder, builder.trunc(first, I32)))
                _compress_store(builder, places, others, rptr)
                _compress_store(builder, raw, others, vptr)
            # a whole vector (n = 16, as the block's loop passes it for all but its last) is
            # stored whole: the lanes handed back get the formula's values later, and theirs
            # are kept aside already (see the docstring)
            whole = builder.icmp_unsigned("==", n, ir.Constant(n.type, LANES))
            with builder.if_else(whole, likely=True) as (plain, masked):
                with plain:
                    builder.store(builder.load(result), yptr, align=4)
                with masked:
                    _call(
                        builder,
                        "llvm.masked.store.v16f32.p0",
                        ir.FunctionType(ir.VoidType(), [VF, pointer, I32, MASK]),
                        [builder.load(result), yptr, ir.Constant(I32, 1), builder.load(stored)],
                    )
            many = _call(
                builder,
                "llvm.ctpop.i16",
                ir.FunctionType(ir.IntType(LANES), [ir.IntType(LANES)]),
                [builder.load(handed)],
            )
            return builder.zext(many, ir.IntType(64))

        signature = types.intp(x, types.intp, types.intp, y, rest, values, types.intp, types.intp)
        return signature, codegen

    return centre


gelu_centre_16 = _centre_16("GELU", times_x=True, far="gelu")
silu_centre_16 = _centre_16("SIGMOID", times_x=True, far="silu")
sigmoid_centre_16 = _centre_16("SIGMOID", times_x=False, far="sigmoid")
gelu_derivative_centre_16 = _centre_16("GELU_DERIVATIVE", times_x=False, far="gelu_derivative")
silu_derivative_centre_16 = _centre_16("SILU_DERIVATIVE", times_x=False, far="silu_derivative")
tanh_centre_16 = _centre_16("TANH", times_x=True, odd=True, far="tanh")
gelu_tanh_centre_16 = _centre_16("GELU_TANH", times_x=True, far="gelu_tanh")
gelu_tanh_derivative_centre_16 = _centre_16(
    "GELU_TANH_DERIVATIVE", times_x=False, far="gelu_tanh_derivative"
)


def _centre_block(centre: Any, formula: Any, name: str, apart: Any = None) -> Any:
    """``block(xs, gs, ys, vjp, low, high, rest, values, wide, out) -> bool``: the member (or its
    derivative: ``formula`` and the centre say which) of a block into ``ys`` (same size; ``xs``
    itself or apart from it: each place is read before it is written, and the others' values are
    kept aside first), times ``gs`` with ``vjp`` (``ys`` apart from ``gs`` then), as the element
    loop's ``g·f′`` in the working float, rounded once. float32: the centre 16 lanes at a time;
    the other elements compressed out by it (their places into ``rest``, uint32, 16 more than
    the block's size and a multiple of 16, their values into ``values``, float32, as many), put
    through ``formula`` (the member's float32 formula) and the registry's conventions (``low``,
    ``high``: the limits at ∓inf) in one vectorised loop, exactly as the element loop would, and
    scattered back. A float32 block may be a whole chunk: the others are then done each time
    ``rest`` fills, so that each vector of the formula gets 16 of them (gelu out= on 2^16
    float32 elements, 1 thread, Xeon, ns per element, done per 256-element block / gathered over
    the chunk: 3·N(0, 1), 18 % off the centre, 1.49 / 0.89; uniform on the centre with 0.8 % off
    it 1.05 / 0.53, and 0.50 with none off). 16-bit floats (raw bits): widened into ``wide``,
    that done into ``out`` (float32, the block's size each), then rounded back once, so that
    they get the float32 path's values rounded, on every host. float64, for a member with
    ``apart = (inner, other, rare, most)``: ``inner`` on every element, then the elements
    where ``rare`` holds compacted, put through ``other`` in one vectorised loop and scattered
    back, so that each gets what the element loop gives it where ``inner`` and ``other`` are
    those of the formula it takes: gelu's centre and tails (``rare``: ``|x| > 1`` or NaN; the
    centre's 68 % of N(0, 1) inputs do not pay for the tail's exp and Mills ratio: gelu out=
    on 2^16 float64 elements, 1 thread, AMD EPYC, 17.1 ns per element with both on every
    element, 9.2 this way), and a derivative without and with its expansion at its zero
    (``rare``: within about 1/4 of the zero; gelu′: its tails too). ``most`` < 1: the others
    are compacted from a word of their flags, a set bit at a time, and a block where they are
    more than ``most`` of the elements, where the split costs more than it saves, takes
    ``other`` on every element instead (silu′ with every element near its zero: 12.7 ns per
    element split, 7.1 this way); ``most`` = 1: a place per element without a branch (gelu's
    forward, where a third to three quarters of the elements are tails). ``values`` is
    float64 then, ``rest`` as before.
    With no ``centre`` (a member without a float32 table) the block takes float64 alone.
    Returns whether it did (False, untouched, for a float64 member without ``apart``, a
    non-contiguous layout, or another dtype where there is no ``centre``)."""

    block = _block_stub(name)

    @overload(block, jit_options=INLINE_OPTIONS)
    def _block(xs, gs, ys, vjp, low, high, rest, values, wide, out):  # type: ignore[no-untyped-def]
        contiguous = isinstance(xs, types.Array) and xs.layout == ys.layout == "C"
        raw = contiguous and isinstance(xs.dtype, types.Integer) and xs.dtype.bitwidth == 16
        if centre is None and not (contiguous and xs.dtype == ys.dtype == types.float64):
            return lambda xs, gs, ys, vjp, low, high, rest, values, wide, out: False
        if raw and xs.dtype == ys.dtype:

            def halves(xs, gs, ys, vjp, low, high, rest, values, wide, out):  # type: ignore[no-untyped-def]
                m = xs.size
                for j in range(m):
                    wide[j] = widen(xs[j])
                block(wide[:m], wide[:m], out[:m], False, low, high, rest, values, wide, out)
                if vjp:
                    for j in range(m):
                        ys[j] = narrow(widen(gs[j]) * out[j], xs[j])
                else:
                    for j in range(m):
                        ys[j] = narrow(out[j], xs[j])
                return True

            return halves
        if apart is not None and contiguous and xs.dtype == ys.dtype == types.float64:
            inner, other, rare, most = apart
            sparse = most < 1.0

            def split(xs, gs, ys, vjp, low, high, rest, values, wide, out):  # type: ignore[no-untyped-def]
                m = xs.size
                count = 0
                if sparse:
                    # the places of the others, in order: which they are in one vectorised
                    # loop (a byte each, in wide's room), packed in place to a bit each (a
                    # mask's layout), then the set bits of each 64 taken one by one
                    flags = wide.view(np.uint8)
                    for j in range(m):
                        flags[j] = rare(xs[j])
                    padded = (m + 63) // 64 * 64
                    for j in range(m, padded):
                        flags[j] = 0
                    pack(flags, flags, 0, padded)  # (byte q from bytes 8q on: read first)
                    words = flags[: padded // 8].view(np.uint64)
                    many = np.uint64(0)
                    for w in range(padded // 64):
                        many += popcount(words[w])
                    if many > most * m:
                        for j in range(m):
                            v = xs[j]
                            ys[j] = conventions(v, other(v), low, high)
                        if vjp:
                            _times_g(ys, gs)
                        return True
                    for w in range(padded // 64):
                        word = words[w]
                        while word != np.uint64(0):
                            rest[count] = np.uint32(64 * w + trailing_zeros(word))
                            count += 1
                            word &= word - np.uint64(1)
                else:
                    for j in range(m):  # (without a branch: each place, kept if an other)
                        rest[count] = j
                        count += rare(xs[j])
                for k in range(count):  # (their values before ys is written: ys may be xs)
                    values[k] = xs[rest[k]]
                for j in range(m):
                    v = xs[j]
                    ys[j] = conventions(v, inner(v), low, high)
                others_64(ys, rest, values, count, low, high)
                if vjp:
                    _times_g(ys, gs)
                return True

            return split
        if not (contiguous and xs.dtype == ys.dtype == types.float32):
            return lambda xs, gs, ys, vjp, low, high, rest, values, wide, out: False

        def impl(xs, gs, ys, vjp, low, high, rest, values, wide, out):  # type: ignore[no-untyped-def]
            m = xs.size
            count = 0
            seen = 0
            full = rest.size - LANES  # (a centre call writes 16 entries from count)
            whole = m - m % LANES  # (whole vectors: no lane mask to build)
            for i in range(0, m, LANES):
                often = seen * 64 > i  # (more than 1 in 64 so far)
                if i < whole:
                    found = centre(xs, i, LANES, ys, rest, values, count, often)
                else:
                    found = centre(xs, i, m - i, ys, rest, values, count, often)
                count += found
                seen += found
                if count > full:  # (a whole chunk: the others so far, then on)
                    others_32(ys, rest, values, count, low, high)
                    count = 0
            others_32(ys, rest, values, count, low, high)
            if vjp:
                _times_g(ys, gs)
            return True

        return impl

    others_32 = _others(formula, LANES) if centre is not None else None
    others_64 = _others(apart[1], 8) if apart is not None else None
    return block


@jit
def _times_g(ys: Any, gs: Any) -> None:
    """``ys ← g·ys`` in the working float: a block's vjp, as the element loop forms ``g·f′``."""
    for j in range(ys.size):
        ys[j] = gs[j] * ys[j]


def _others(formula: Any, lanes: int) -> Any:
    """``others(ys, rest, values, count, low, high)``: the ``count`` elements off a block's
    centre (their places in ``rest``, their values in ``values``) through ``formula`` and the
    conventions in whole vectors of ``lanes`` (the last element repeated: no scalar remainder
    of the formula), scattered back into ``ys``."""

    @jit
    def others(ys: Any, rest: Any, values: Any, count: int, low: Any, high: Any) -> None:
        if count == 0:
            return
        padded = (count + lanes - 1) // lanes * lanes
        for k in range(count, padded):
            rest[k] = rest[count - 1]
            values[k] = values[count - 1]
        for k in range(padded):
            v = values[k]
            values[k] = conventions(v, formula(v), low, high)
        for k in range(padded):
            ys[rest[k]] = values[k]

    return others


def _block_stub(name: str) -> Any:
    """A block function's Python stub, ``name(xs, gs, ys, vjp, low, high, rest, values, wide,
    out) -> bool``, for an ``overload`` to give its Numba implementation."""

    def block(
        xs: Any,
        gs: Any,
        ys: Any,
        vjp: bool,
        low: Any,
        high: Any,
        rest: Any,
        values: Any,
        wide: Any,
        out: Any,
    ) -> bool:
        raise NotImplementedError("only for use inside Numba kernels")

    block.__name__ = block.__qualname__ = name
    return block


# the block function of a member and op without a centre table: does nothing, returns False
no_centre_block = _block_stub("no_centre_block")


@overload(no_centre_block, jit_options=INLINE_OPTIONS)
def _no_centre_block(xs, gs, ys, vjp, low, high, rest, values, wide, out):  # type: ignore[no-untyped-def]
    return lambda xs, gs, ys, vjp, low, high, rest, values, wide, out: False


def _of_x(derivative: Any) -> Any:
    """A float64 member formula ``f(v, x)`` as ``f(x)`` (v is x itself in float64)."""

    @jit
    def of_x(x: float) -> float:
        return derivative(x, x)

    return of_x


gelu_forward_block = _centre_block(
    gelu_centre_16,
    gelu_f32,
    "gelu_forward_block",
    (gelu_f_wide_centre, gelu_f_wide_tail, gelu_f_wide_in_tail, 1.0),
)
silu_forward_block = _centre_block(silu_centre_16, silu_f32, "silu_forward_block")
sigmoid_forward_block = _centre_block(sigmoid_centre_16, sigmoid_f32, "sigmoid_forward_block")
# (most: below the share of others where the split saves time, inner's cost against other's:
# silu′ 3.9 / 6.3 ns per element, gelu′ 5.2 / 21.1 in plain loops on 2^16 float64)
gelu_derivative_block = _centre_block(
    gelu_derivative_centre_16,
    gelu_d32,
    "gelu_derivative_block",
    (gelu_d_centre, _of_x(gelu_d_wide), gelu_d_off_centre, 0.6),
)
silu_derivative_block = _centre_block(
    silu_derivative_centre_16,
    silu_d32,
    "silu_derivative_block",
    (silu_d_general, _of_x(silu_d_wide), silu_d_may_be_near, 0.25),
)
tanh_forward_block = _centre_block(tanh_centre_16, tanh_f32, "tanh_forward_block")
gelu_tanh_forward_block = _centre_block(
    gelu_tanh_centre_16, gelu_tanh_f32, "gelu_tanh_forward_block"
)
gelu_tanh_derivative_block = _centre_block(
    gelu_tanh_derivative_centre_16,
    gelu_tanh_d32,
    "gelu_tanh_derivative_block",
    (gelu_tanh_d_general, _of_x(gelu_tanh_d_wide), gelu_tanh_d_may_be_near, 0.25),
)
# float64 alone (no float32 table)
mish_derivative_block = _centre_block(
    None,
    None,
    "mish_derivative_block",
    (mish_d_general, _of_x(mish_d_wide), mish_d_may_be_near, 0.25),
)
