"""The compiled loops: every elementwise member's forward, derivative and vjp, and the fused mask
forward/backward of the piecewise-linear members (Numba; imported only when first needed).

Each kernel is made by a factory from small integer codes (member, op, bits per code), which
Numba folds as constants: the branches of the other members are pruned before typing, so a
kernel holds one member's code only, and because the closure holds nothing but integers its
compiled code is cached on disk (``cache=True``) like a module-level function.

One loop serves every dtype: elements are read with :func:`~relukit.kernels.cpu.dtypes.widen`
and written with :func:`~relukit.kernels.cpu.dtypes.narrow`. The kernels are compiled for
float32 and float64; 16-bit floats (raw bits: float16 as int16, bfloat16 as uint16) get
kernels of their own for relu, relu6 and hardtanh's forward, which select between the input's
own bits and constants (a 16-bit NaN keeps its payload), and for every mask path, which widen
each element to float32 and round the result back once in the same pass; the other ops widen
them to float32 with :func:`convert_kernel` and round the result back once, as the reference
path does. (Once a smooth member's forward or derivative has computed enough 16-bit elements,
the host looks them up in a table of that kernel's results on every 16-bit input:
:func:`lookup_kernel`.)

The piecewise-linear members repeat the registry's (``relukit.family``) formula operation by
operation in the working dtype, with the constants rounded to it as NumPy rounds Python floats,
so that they are bit-exact to the reference path (and PyTorch) in every dtype. The smooth
members and the exponential units round once from a value computed to better than the
result's dtype: float64 inputs in double-double (:mod:`relukit.kernels.cpu.math64`), float32
and 16-bit inputs in float32 pairs (:mod:`relukit.kernels.cpu.math32`; gelu in float64).
float32 gelu, silu and sigmoid and the derivatives of gelu and silu take a table of float32
polynomials on their centre, 16 lanes at a time (:mod:`relukit.kernels.cpu.vector32`).
The float32 results are within 2 ulp of the true value, 16-bit ones within 1 (see
``benchmarks/RESULTS.md``, Accuracy).
Afterwards the registry's conventions are applied: the limits at ±inf (``p[4]``, ``p[5]``; NaN
where the formula already gives the limit) and NaN in → NaN out.

Parameters travel in ``p``, eight floats of the working dtype (float64 for the smooth members):
``p[0..3]`` and ``p[6..7]`` the member's parameters (see ``host.py``), ``p[4]``/``p[5]`` the limits
at -inf/+inf.
Per-element slopes (prelu's channels, rrelu's random slopes) travel in ``aux``, read periodically
(element ``i`` of the whole array uses ``aux[i % aux.size]``).

Large outputs are written with streaming stores (``stream=True``), which skip the
read-for-ownership of the destination's cache lines: relu, relu6, hardtanh, leaky_relu and
general_relu's forward (and their mask forwards, and the backward from a mask) straight from the
registers, the other members through an L1-resident block buffer (which also keeps the compute
loop from writing memory that may alias its input).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import carray, types
from numba.extending import overload

from relukit.kernels.cpu import rectifiers as rectifier_formulas
from relukit.kernels.cpu import smooth as smooth_formulas
from relukit.kernels.cpu.compile import INLINE_OPTIONS, cached_cfunc, cached_kernel, jit
from relukit.kernels.cpu.dtypes import const as c
from relukit.kernels.cpu.dtypes import (
    few_keys,
    few_value,
    few_values,
    narrow,
    passed,
    scratch,
    widen,
)
from relukit.kernels.cpu.intrinsics import (
    chain_word,
    chain_word_2,
    chain_word_2_streamed,
    chain_word_16,
    chain_word_16_nonzero,
    chain_word_16_nonzero_streamed,
    chain_word_16_streamed,
    chain_word_nonzero,
    chain_word_nonzero_streamed,
    chain_word_slopes,
    chain_word_slopes_streamed,
    chain_word_streamed,
    clear_float_status,
    general_values_16,
    pass_word,
    pass_word_streamed,
    store_fence,
    vector_few_values_16,
    vector_width_512,
    word_above,
    word_greater,
)
from relukit.kernels.cpu.loops import BLOCK, blocks, chain, conventions, put, select_block
from relukit.kernels.cpu.masks import (
    SLOPES_AFTER,
    clip_with_mask,
    general_block,
    general_with_mask,
    leaky_block,
    leaky_with_mask,
    load_bytes,
    planes,
    relu_with_mask,
    slopes_block,
    slopes_with_mask,
    store_bytes,
)
from relukit.kernels.cpu.math32 import moderate  # noqa: F401  (for the host side)
from relukit.kernels.cpu.mathlib import exp_f64, expm1_f64, log1p_f64, phi_f64, tanh_f64
from relukit.kernels.cpu.rectifiers import (
    general_relu_d,
    general_relu_f,
    hardtanh_d,
    leaky_relu_d,
    leaky_relu_f,
    prelu_f,
    relu_d,
    squared_relu_d,
    squared_relu_f,
)
from relukit.kernels.cpu.smooth import (
    celu_d,
    celu_f,
    elu_d,
    elu_f,
    gelu_d,
    gelu_f,
    gelu_tanh_d,
    gelu_tanh_f,
    mish_d,
    mish_f,
    selu_d,
    selu_f,
    sigmoid_d,
    sigmoid_f,
    silu_d,
    silu_f,
    softplus_d,
    softplus_f,
    tanh_d,
    tanh_f,
)
from relukit.kernels.cpu.spin import address, call_at, call_parallel, fetch_add
from relukit.kernels.cpu.vector32 import (
    LANES,
    gelu_derivative_block,
    gelu_forward_block,
    gelu_tanh_derivative_block,
    gelu_tanh_forward_block,
    mish_derivative_block,
    no_centre_block,
    sigmoid_forward_block,
    silu_derivative_block,
    silu_forward_block,
    tanh_forward_block,
)

# Member codes (closure constants of the kernels): the formulas with code of their own here
RELU = 1
LEAKY_RELU = 2
SLOPES = 3  # prelu per channel, rrelu in training: the slope of each element comes from aux
CHANNELS = 2  # mask_backward_kernel's slopes: prelu's per channel, a period of them in aux
HARDTANH = 4  # hardtanh and relu6 (hardtanh from 0 to 6)
GENERAL_RELU = 5
SQUARED_RELU = 6
ELU = 7
SELU = 8
CELU = 9
GELU = 10
GELU_TANH = 11
SILU = 12
MISH = 13
SOFTPLUS = 14
SIGMOID = 15
TANH = 16
# by the registry's formula key (SLOPES has none: the host adapts prelu's and rrelu's)
OWN_CODES = {
    "relu": RELU, "leaky_relu": LEAKY_RELU, "hardtanh": HARDTANH, "general_relu": GENERAL_RELU,
    "squared_relu": SQUARED_RELU, "elu": ELU, "selu": SELU, "celu": CELU, "gelu": GELU,
    "gelu_tanh": GELU_TANH, "silu": SILU, "mish": MISH, "softplus": SOFTPLUS,
    "sigmoid": SIGMOID, "tanh": TANH,
}  # fmt: skip

# Any other formula is a plain one: ``<key>_f(v, p)`` and ``<key>_d(v, p)`` in a formula
# module, on the working float ``v`` (float32 for float32 and 16-bit input, as for the
# piecewise-linear members; costed as a copy is) and the parameter slots ``p`` in it (the
# record's kernel floats in p[0..3], the limits in p[4], p[5]). The pairs are numbered from
# FIRST_PLAIN in order of key, as the formula modules hold them: the kernels' compiled code
# then depends only on the sources in compile.STAMP and the integers and flags in their
# closures, as their disk cache needs. The map kernel calls the pair by its code
# (:func:`plain_forward`, :func:`plain_derivative`), so adding such a member touches its
# record, its formulas and its tests, not this file.
FORMULA_MODULES = (rectifier_formulas, smooth_formulas)
FIRST_PLAIN = 32


def _plain_formulas() -> dict[int, tuple[str, Any, Any, bool]]:
    """``code: (key, forward, derivative, blocking)`` of each plain pair of the formula modules
    (the first module's where two hold one key); ``blocking``: the registry's member with that
    formula at its default parameters is piecewise linear, so that a zero derivative blocks
    the incoming gradient in its vjp (as the reference path's does)."""
    from relukit.family import MEMBERS
    from relukit.kernels.cpu.host import FORMULAS  # (formulas the host adapts: prelu, rrelu)

    blocking: dict[str, bool] = {}
    for spec in MEMBERS:
        if spec.kernel is not None:
            blocking.setdefault(spec.kernel(spec.bind({}))[0], spec.piecewise_linear)
    found: dict[str, tuple[Any, Any]] = {}
    for module in FORMULA_MODULES:
        for name in dir(module):
            key = name[:-2]
            if not name.endswith("_f") or key in OWN_CODES or key in FORMULAS or key in found:
                continue
            derivative = getattr(module, f"{key}_d", None)
            if derivative is not None:
                found[key] = (getattr(module, name), derivative)
    return {
        FIRST_PLAIN + i: (key, *found[key], blocking.get(key, False))
        for i, key in enumerate(sorted(found))
    }


PLAIN = _plain_formulas()


def code(key: str) -> int:
    """The member code of the registry's formula ``key``; KeyError where the kernels have
    none (the member then runs the reference path; prelu's and rrelu's, which the host
    adapts, are not asked)."""
    if key in OWN_CODES:
        return OWN_CODES[key]
    for number, (name, *_) in PLAIN.items():
        if name == key:
            return number
    raise KeyError(key)


def plain_forward(member: int, v: Any, p: Any) -> Any:
    """``<key>_f(v, p)`` of the plain formula with code ``member`` (a constant), in a kernel."""
    raise NotImplementedError("only for use inside Numba kernels")


def plain_derivative(member: int, v: Any, p: Any) -> Any:
    """``<key>_d(v, p)`` of the plain formula with code ``member`` (a constant), in a kernel."""
    raise NotImplementedError("only for use inside Numba kernels")


def _plain_call(which: int) -> Any:
    """The implementation of :func:`plain_forward` (``which`` 1) or :func:`plain_derivative`
    (2), chosen by the member code's literal value at compile time."""

    def choose(member: Any, v: Any, p: Any) -> Any:
        found = PLAIN.get(getattr(member, "literal_value", None))
        if found is None:
            return None  # (not a plain code: no implementation; the kernels never ask)
        formula = found[which]

        def call(member: Any, v: Any, p: Any) -> Any:
            return formula(v, p)

        return call

    return choose


overload(plain_forward, prefer_literal=True, jit_options=INLINE_OPTIONS)(_plain_call(1))
overload(plain_derivative, prefer_literal=True, jit_options=INLINE_OPTIONS)(_plain_call(2))


# piecewise linear: one code per element
LINEAR = (RELU, LEAKY_RELU, SLOPES, HARDTANH, GENERAL_RELU)
# mask forwards (and forwards) in one pass, stored from the registers (leaky_relu's codes are
# x > 0: p[7], the NaN-is-one code, is set only for rrelu in training, a SLOPES member)
ONE_PASS = (RELU, HARDTANH, LEAKY_RELU, GENERAL_RELU)
# evaluated in float64 whatever the input's dtype, parameters in float64 too
WIDE = (ELU, SELU, CELU, GELU, GELU_TANH, SILU, MISH, SOFTPLUS, SIGMOID, TANH)

FORWARD = 0
DERIVATIVE = 1  # also the vjp

# (member, op) by blocks (relukit.kernels.cpu.vector32): float32 (and 16-bit) with a centre
# table but for NO_TABLE, float64 for WIDE_BLOCKS (a formula on every element and the others
# apart: gelu's tails; the derivatives' expansions at their zeros, gelu′'s tails too)
CENTRE_BLOCKS = {
    (GELU, FORWARD): gelu_forward_block,
    (SILU, FORWARD): silu_forward_block,
    (SIGMOID, FORWARD): sigmoid_forward_block,
    (GELU, DERIVATIVE): gelu_derivative_block,
    (SILU, DERIVATIVE): silu_derivative_block,
    (TANH, FORWARD): tanh_forward_block,
    (GELU_TANH, FORWARD): gelu_tanh_forward_block,
    (GELU_TANH, DERIVATIVE): gelu_tanh_derivative_block,
    (MISH, DERIVATIVE): mish_derivative_block,
}
NO_TABLE = {(MISH, DERIVATIVE)}
WIDE_BLOCKS = {
    (GELU, FORWARD),
    (GELU, DERIVATIVE),
    (SILU, DERIVATIVE),
    (GELU_TANH, DERIVATIVE),
    (MISH, DERIVATIVE),
}
SMOOTH_BLOCK = 256  # elements per block of the smooth members and buffered kernels (map_kernel)
SPAN = 1 << 30  # elements per call of a centre block over a whole chunk (see map_kernel)


# ---------------------------------------------------------------------------------------------
# Elementwise kernels


def few_values_16(
    xs: Any,
    dst: Any,
    clip: bool,
    leaky: bool,
    general: bool,
    a0: Any,
    a1: Any,
    a2: Any,
    capped: Any,
    low: Any,
    high: Any,
) -> None:
    """The derivative of relu, leaky_relu (``leaky``), relu6 and hardtanh (``clip``) or
    general_relu (``general``) on 16-bit floats (raw bits) into ``dst``: the bits of
    :func:`map_kernel`'s loop, ``narrow(conventions(v, d(v), low, high), e)``, where ``d`` takes
    one of a few values (1, 0, the slope ``a0``), each rounded once, then chosen on the
    elements' order keys 32 at a time (:func:`~relukit.kernels.cpu.intrinsics.
    _vector_few_values_16`), the last ones alone (:func:`~relukit.kernels.cpu.dtypes.
    few_value`); a NaN passed on quieted, as ``narrow`` rounds it. float32 and float64: nothing
    (the loop's code is compiled for every dtype). (bfloat16 relu′ on 2^16 elements in cache,
    1 thread, AMD EPYC, the kernel alone, ns per element: 0.23-0.24 rounding each element,
    0.15-0.19 selecting in float32, 0.081-0.083 on the keys; a copy 0.04-0.06.)"""
    raise NotImplementedError("only for use inside Numba kernels")


@overload(few_values_16, jit_options=INLINE_OPTIONS)
def _few_values_16(xs, dst, clip, leaky, general, a0, a1, a2, capped, low, high):  # type: ignore[no-untyped-def]
    if not (isinstance(xs.dtype, types.Integer) and xs.dtype.bitwidth == 16):
        return lambda xs, dst, clip, leaky, general, a0, a1, a2, capped, low, high: None

    def impl(xs, dst, clip, leaky, general, a0, a1, a2, capped, low, high):  # type: ignore[no-untyped-def]
        e0 = xs[0]
        v0 = widen(e0)
        one = narrow(c(v0, 1.0), e0)
        zero = narrow(c(v0, 0.0), e0)
        other = narrow(a0, e0) if (leaky or general) else zero
        keys = few_keys(clip, general, a0, a1, a2, capped, e0)
        values = few_values(keys, general, one, other, zero, low, high, e0)
        n = xs.size
        nvec = n // 32
        if general:
            general_values_16(xs, 0, dst, nvec, keys, values)
        else:
            vector_few_values_16(xs, 0, dst, nvec, keys, values)
        for j in range(32 * nvec, n):
            dst[j] = few_value(xs[j], keys, general, values)

    return impl


def map_kernel(member: int, op: int, direct: bool = False) -> Any:
    """``kernel(x, g, aux, y, p, first, stream, vjp)``: ``y = f(x)`` (op FORWARD), or ``f'(x)``
    (op DERIVATIVE), or ``g·f'(x)`` (op DERIVATIVE with ``vjp``).

    ``first`` is the index of ``x[0]`` in the whole array (for the period of ``aux``); ``g`` is
    read only for the vjp (pass ``x`` otherwise) and ``aux`` only by the per-element-slope
    member (prelu's forward with slopes per channel, ``p[6] = 1``: in one pass, as
    leaky_relu's, ``aux`` holding a period of them and ``SLOPES_AFTER`` more). A ``direct``
    kernel computes straight into ``y``, which must then be disjoint from ``x`` and ``g`` and
    not streamed (LLVM vectorises the loop behind a runtime overlap check);
    otherwise each block goes through an L1-resident buffer (in place, streamed, or an output
    a few bytes after its input modulo 1 MiB: :func:`relukit.kernels.cpu.host.aliased`),
    except where a block takes it (:data:`CENTRE_BLOCKS`: float32 with a centre table, and
    float64 for :data:`WIDE_BLOCKS`): that writes into ``y`` in place, unless streamed or a vjp
    (silu in place on 2^16 float32 elements, 1 thread, AMD EPYC: 39 → 32 µs).
    """
    select = member in (RELU, HARDTANH) and op == FORWARD  # pure selects: keep the input's bits
    leaky = member == LEAKY_RELU and op == FORWARD  # one pass from the registers too
    general = member == GENERAL_RELU and op == FORWARD  # and general_relu's
    channels = member == SLOPES and op == FORWARD  # and prelu's per channel, with p[6] set
    blocking = member in LINEAR or (member in PLAIN and PLAIN[member][3])
    periodic = member == SLOPES
    derivative = op == DERIVATIVE
    smooth = member in WIDE
    centre = (member, op) in CENTRE_BLOCKS  # (a block function: see CENTRE_BLOCKS)
    table = centre and (member, op) not in NO_TABLE  # (float32: 16 lanes, a table row each)
    wide_block = (member, op) in WIDE_BLOCKS  # (the blocks that take float64 too)
    centre_block = CENTRE_BLOCKS[member, op] if centre else no_centre_block
    # a derivative of a few values: 16-bit floats select them (few_values_16)
    few = derivative and member in (RELU, LEAKY_RELU, HARDTANH, GENERAL_RELU)
    clip, leaky_d, general_d = member == HARDTANH, member == LEAKY_RELU, member == GENERAL_RELU

    @cached_kernel
    def kernel(
        x: Any, g: Any, aux: Any, y: Any, p: Any, first: int, stream: bool, vjp: bool
    ) -> None:
        n = x.size
        if n == 0:
            return
        a0 = p[0]
        a1 = p[1]
        a2 = p[2]
        a3 = p[3]
        capped = a3 > 0  # (general_relu's flags, read once: a load of p in the loop, which
        flat = p[6] > 0  # may alias y for all LLVM knows, kept it from being vectorised)
        vector_width_512()
        low = c(widen(x[0]), p[4])  # the limits in the working float
        high = c(widen(x[0]), p[5])
        low_raw = narrow(a0, x[0])
        high_raw = narrow(a1, x[0])
        period = n + 1
        start = 0
        if periodic:
            period = aux.size
            start = first % period
        # one pass over the whole chunk: no buffer, no blocks
        if select or leaky or general or (channels and flat):
            if leaky:
                leaky_block(x, y, a0, a0, low, high, stream)
            elif channels:  # (prelu's slopes per channel: aux holds a period and SLOPES_AFTER)
                slopes_block(x, y, aux, first % (aux.size - SLOPES_AFTER), 0, 0, stream)
            elif general:
                general_block(x, y, p, low, high, stream)
            else:
                select_block(x, y, a0, a1, low_raw, high_raw, member == HARDTANH, stream)
            if stream:
                store_fence()
            return
        buf = np.empty(1 if direct else BLOCK, dtype=y.dtype)
        # the centre's scratch in one allocation, of the working float: the places and values
        # of the others (a vector more than a block), and 16-bit blocks widened and done
        room = SMOOTH_BLOCK + LANES if (wide_block if x.itemsize == 8 else table) else 1
        space = scratch(x, 4 * room)
        rest = space[:room].view(np.uint32)
        values = space[room : 2 * room]
        wide = space[2 * room : 3 * room]
        out32 = space[3 * room :]
        # float32 straight into y: the centre over the whole chunk at once, the elements off it
        # gathered across blocks (vector32's block function; spans of 2^30 elements, whose
        # places fit its uint32 scratch). A buffered kernel's y that is not x, neither
        # streamed nor a vjp, is one the host found a few bytes after x modulo 1 MiB
        # (host.aliased; it passes no partly overlapping y, and a y apart from x taken this
        # way would only cost speed): there the blocks below go through the buffer, float32
        # ones of BLOCK elements (their others done with them), so that the loads run ahead
        # of the stores. (One call of the centre block fewer than a loop of its own: each is
        # inlined, and compiled again for every kernel.)
        apart = not direct and y.ctypes.data != x.ctypes.data and not (stream or vjp)
        if centre and not (stream or vjp or apart) and x.itemsize == 4:
            taken = True
            # the first span ends where y is 64-byte aligned, so that each whole vector after
            # it is stored into one cache line (NumPy's large arrays start 16 bytes past a
            # page; out= on 2^24 float32 elements there, x as np.empty_like(y) places it, 1
            # thread, AMD EPYC, ns per element, before / after: silu 0.55-0.58 / 0.37-0.38,
            # tanh 0.47-0.49 / 0.31-0.34, sigmoid 0.45 / 0.36, gelu 0.35 / 0.33; in cache
            # the same)
            b = min(((-np.int64(y.ctypes.data)) & 63) // 4, n)
            a = 0
            while a < n:
                if b == 0:
                    b = min(SPAN, n)
                xa, ga, ya = x[a:b], g[a:b], y[a:b]
                if not centre_block(xa, ga, ya, False, low, high, rest, values, wide, out32):
                    taken = False  # (the first span: another dtype or layout, nothing written)
                    break
                a, b = b, min(b + SPAN, n)
            if taken:
                return
        # Smooth members, and every kernel through the buffer, take short blocks, the first
        # one ending where a streamed y is 64-byte aligned: each block's lines then go out
        # whole while the next block is computed (a block of 2,048 computes, then writes, with
        # little overlap: about 1.6x slower at 2^24 for sigmoid; relu's derivative, 1 thread,
        # AMD EPYC, blocks of 2,048 / 256, ms: float64 2^22 out= (streamed) 2.6 / 1.4-1.7, in
        # place 2.3 / 1.2, 2^24 10.9 / 6.6, 9.8 / 5.5; float32 2^24 out= 4.3-4.6 / 3.4-3.6;
        # in cache and at 2^18 the same). Not float32 outputs aliased to x (see above).
        block = (
            SMOOTH_BLOCK if (smooth or not direct) and not (apart and x.itemsize == 4) else BLOCK
        )
        lead = ((-np.int64(y.ctypes.data)) & 63) // y.itemsize if stream else 0
        for i, m, k in blocks(n, period, start, block, lead):
            # Direct: into y. Otherwise into an L1-resident buffer, then streamed or copied
            # out: the loop then writes memory that cannot alias its inputs (in place, LLVM's
            # overlap check would send it to the scalar loop).
            dst = y[i : i + m] if direct else buf[:m]
            xs = x[i : i + m]
            gs = g[i : i + m]
            rs = aux[k : k + m]
            done = False
            if few and not vjp and x.itemsize == 2:
                few_values_16(xs, dst, clip, leaky_d, general_d, a0, a1, a2, capped, low, high)
                done = True
            elif centre:
                # a centre reads each place before it writes it (a place it hands back is
                # written twice: an interim value, then its own, its input kept aside
                # first): straight into y, in place too (no buffer, no copy out), unless
                # streamed, a vjp (y may be g) or apart (above).
                # (vjp and the choice of y as constants in each call: with them at run time,
                # LLVM's code for the whole block was some 1.5-1.7x slower, vjp or not: gelu
                # forward on 2^16 float32, 1 thread, Xeon, 49 µs against 29)
                if derivative and vjp:  # (forward kernels: never a vjp)
                    done = centre_block(xs, gs, dst, True, low, high, rest, values, wide, out32)
                elif stream or apart:
                    done = centre_block(xs, gs, dst, False, low, high, rest, values, wide, out32)
                else:
                    ys = y[i : i + m]
                    if centre_block(xs, gs, ys, False, low, high, rest, values, wide, out32):
                        continue
            for j in range(0 if done else m):  # (done: by a block of CENTRE_BLOCKS)
                e = xs[j]
                v = widen(e)
                x64 = np.float64(v)
                if member == RELU:
                    r = relu_d(v)
                elif member == HARDTANH:
                    r = hardtanh_d(v, a0, a1)
                elif member == LEAKY_RELU:
                    r = leaky_relu_d(v, a0) if derivative else leaky_relu_f(v, a0)
                elif member == SLOPES:
                    w = widen(rs[j])
                    r = leaky_relu_d(v, w) if derivative else prelu_f(v, w)
                elif member == GENERAL_RELU:
                    if derivative:
                        r = general_relu_d(v, a0, a1, a2, capped)
                    else:
                        r = general_relu_f(v, a0, a1, a2, capped, flat)
                elif member == SQUARED_RELU:
                    r = squared_relu_d(v) if derivative else squared_relu_f(v)
                elif member == ELU:
                    r = elu_d(v, x64, a0) if derivative else elu_f(v, x64, a0)
                elif member == SELU:
                    r = selu_d(v, x64) if derivative else selu_f(v, x64)
                elif member == CELU:
                    r = celu_d(v, x64, a0) if derivative else celu_f(v, x64, a0)
                elif member == GELU:
                    r = gelu_d(v, x64) if derivative else gelu_f(v, x64)
                elif member == GELU_TANH:
                    r = gelu_tanh_d(v, x64) if derivative else gelu_tanh_f(v, x64)
                elif member == SILU:
                    r = silu_d(v, x64) if derivative else silu_f(v, x64)
                elif member == MISH:
                    r = mish_d(v, x64) if derivative else mish_f(v, x64)
                elif member == SOFTPLUS:
                    r = softplus_d(v, x64, a0, a1) if derivative else softplus_f(v, x64, a0, a1)
                elif member == SIGMOID:
                    r = sigmoid_d(v, x64) if derivative else sigmoid_f(v, x64)
                elif member == TANH:
                    r = tanh_d(v, x64) if derivative else tanh_f(v, x64)
                else:
                    r = (
                        plain_derivative(member, v, p)
                        if derivative
                        else plain_forward(member, v, p)
                    )
                r = conventions(v, r, low, high)
                if derivative and vjp:
                    r = chain(widen(gs[j]), r) if blocking else widen(gs[j]) * r
                dst[j] = narrow(r, e)
            if not direct:
                put(y, i, buf, m, stream)
        if stream:
            store_fence()

    return kernel


@jit
def split_parts(n: int, count: int, grain: int, pieces: int) -> int:
    """How many chunks a call of ``n`` elements splits into on ``count`` threads: ``pieces``
    per thread, each at least ``grain`` elements, a multiple of ``count`` where more than it
    (3 chunks on 2 threads take 2 turns); 1: the call runs whole. (The rule of
    :func:`relukit.kernels.cpu.host._chunks` and of the ufunc loops that split.)"""
    if count < 2 or grain <= 0 or n < 2 * grain:
        return 1
    parts = max(1, min(pieces * count, n // grain))
    if parts > count:
        parts -= parts % count
    return parts


@jit
def split_bounds(n: int, parts: int, align: int, bounds: Any) -> None:
    """The ``parts + 1`` bounds of ``parts`` chunks of ``[0, n)`` into ``bounds`` (int64): the
    j-th at ``n·j/parts`` rounded down to a multiple of ``align``."""
    bounds[0] = 0
    for j in range(1, parts):
        bounds[j] = (n * j // parts) // align * align
    bounds[parts] = n


# the words of a ufunc loop's data (int64): the addresses of the kernel's parameters and of aux,
# aux's size, then how a call splits: threads (< 2: never), the grain, chunks per thread, the
# OpenMP runtime's GOMP_parallel (0: none, never split), the trampoline's address, then the
# address of the kernel's C wrapper (spin.call_at)
UFUNC_DATA = 9
UFUNC_PARALLEL = 6
UFUNC_KERNEL = 8
# the block a split ufunc call hands its trampoline (int64): chunks, claimed, the addresses of
# x, y, p and aux, aux's size, the kernel's C wrapper, then the chunks' bounds
SPLIT_HEAD = 8
SPLIT_ALIGN = 64  # (host.ALIGN: one mask word at one bit per element)


def ufunc_loop(itemsize: int, wide: int, inplace: int = 0) -> Any:
    """A NumPy ufunc inner loop (C: ``void loop(char **args, npy_intp const *dimensions,
    npy_intp const *steps, void *data)``) running a :func:`map_kernel` kernel (the direct one,
    or with ``inplace`` the buffered one, which may write over its input) on float32
    (``itemsize`` 4) or float64 (8) elements: ``y = f(x)`` or ``f'(x)``. One loop (per
    ``itemsize``, ``wide`` and ``inplace``) serves every member and op: the kernel is called
    through the address of its C wrapper in ``data``
    (:func:`relukit.kernels.cpu.spin.call_at`), compiled for the argument types this loop
    passes (its parameters ``p`` float64 where ``wide``, a :data:`WIDE` member, else of the
    elements' dtype). Linked in instead, the kernel's code was compiled into each member's
    loop again (0.3-0.6 s each, once per machine; 120 loops in a run of the test suite).

    ``data`` points at :data:`UFUNC_DATA` int64: the addresses of the kernel's parameters and of
    ``aux``, ``aux``'s size, how a call splits over threads (a thread count below 2: never),
    and the kernel's address (:data:`UFUNC_KERNEL`). Unit strides into a ``y`` apart from ``x``
    (with ``inplace``: ``y`` that is ``x``) run the kernel on the elements where they are,
    whole or, from :func:`split_parts`' size on, in chunks (as :func:`split_bounds` cuts them)
    on the OpenMP team: the loop calls ``GOMP_parallel`` on :func:`ufunc_trampoline` (their
    addresses in ``data``), with no Python between the ufunc's call and the team's (relu out=
    on 2^17 float32 elements, 2 threads, AMD EPYC: the kept plan's launch through Python cost
    2.2 µs more than the launch alone). Other strides, and other operands (for the in-place
    loop, those apart too), go through two contiguous copies, whole, so an element's value is
    the same either way. Compiled once and cached on disk like the kernels (its closure holds
    only integers: :func:`relukit.kernels.cpu.compile.cached_cfunc`)."""
    dtype = np.float32 if itemsize == 4 else np.float64
    names = {"ELEMENT": dtype, "PARAMETER": np.float64 if wide else dtype}

    def loop(args, dimensions, steps, data):  # type: ignore[no-untyped-def]
        n = dimensions[0]
        # (itemsize, wide and inplace in the closure: the cache's key)
        if n <= 0 or itemsize < 0 or wide < 0 or inplace < 0:
            return
        p = carray(address(data[0]), 8, PARAMETER)  # noqa: F821 (cached_cfunc's names)
        aux = carray(address(data[1]), data[2], ELEMENT)  # noqa: F821
        kernel = data[UFUNC_KERNEL]
        at_x = args[0]
        at_y = args[1]
        step_x = steps[0]
        step_y = steps[1]
        if inplace:
            fits = at_y == at_x
        else:
            fits = at_y >= at_x + n * itemsize or at_x >= at_y + n * itemsize
        if step_x == itemsize and step_y == itemsize and fits:
            parts = split_parts(n, data[3], data[4], data[5])
            if parts > 1 and data[UFUNC_PARALLEL] != 0:
                block = np.empty(SPLIT_HEAD + parts + 1, np.int64)
                block[0] = parts
                block[1] = 0
                block[2] = at_x
                block[3] = at_y
                block[4] = data[0]
                block[5] = data[1]
                block[6] = data[2]
                block[7] = kernel
                split_bounds(n, parts, SPLIT_ALIGN, block[SPLIT_HEAD:])
                call_parallel(data[UFUNC_PARALLEL], data[7], block.ctypes.data, min(parts, data[3]))
                if block[1] < parts:  # (never: read after the call, which keeps block alive)
                    return
            else:
                x = carray(address(at_x), n, ELEMENT)  # noqa: F821
                y = carray(address(at_y), n, ELEMENT)  # noqa: F821
                call_at(kernel, (x, x, aux, y, p, np.int64(0), False, False), None)
        else:
            x = np.empty(n, ELEMENT)  # noqa: F821
            y = np.empty(n, ELEMENT)  # noqa: F821
            for i in range(n):
                x[i] = carray(address(at_x + i * step_x), 1, ELEMENT)[0]  # noqa: F821
            call_at(kernel, (x, x, aux, y, p, np.int64(0), False, False), None)
            for i in range(n):
                carray(address(at_y + i * step_y), 1, ELEMENT)[0] = y[i]  # noqa: F821
        clear_float_status()  # (NumPy would warn of the flags raised comparing NaN)

    pointer = types.CPointer(types.int64)
    signature = types.void(pointer, pointer, pointer, pointer)
    return cached_cfunc(loop, signature, names)


def ufunc_trampoline(itemsize: int, wide: int) -> Any:
    """The ``void(void*)`` each thread of the OpenMP team runs for a split call of
    :func:`ufunc_loop` (the same ``itemsize`` and ``wide``): from the call's block
    (:data:`SPLIT_HEAD`) it claims chunks one at a time with an atomic counter and runs the
    kernel at the block's address on each (``first``: the chunk's start), as
    :mod:`relukit.kernels.cpu.team`'s trampolines do for the host's split calls. Cached on disk
    like the loop."""
    dtype = np.float32 if itemsize == 4 else np.float64
    names = {"ELEMENT": dtype, "PARAMETER": np.float64 if wide else dtype}

    def trampoline(data):  # type: ignore[no-untyped-def]
        head = carray(data, SPLIT_HEAD, np.int64)
        parts = head[0]
        # (itemsize and wide in the closure: the cache's key; a code the body does not read
        # would not be, and the float32 and float64 trampolines would share a cache entry)
        if parts <= 0 or itemsize < 0 or wide < 0:
            return
        block = carray(data, SPLIT_HEAD + parts + 1, np.int64)
        n = block[SPLIT_HEAD + parts]
        x = carray(address(block[2]), n, ELEMENT)  # noqa: F821 (cached_cfunc's names)
        y = carray(address(block[3]), n, ELEMENT)  # noqa: F821
        p = carray(address(block[4]), 8, PARAMETER)  # noqa: F821
        aux = carray(address(block[5]), block[6], ELEMENT)  # noqa: F821
        kernel = block[7]
        while True:
            j = fetch_add(block, 1)
            if j >= parts:
                break
            a = block[SPLIT_HEAD + j]
            b = block[SPLIT_HEAD + j + 1]
            call_at(kernel, (x[a:b], x[a:b], aux, y[a:b], p, a, False, False), None)
        clear_float_status()

    return cached_cfunc(trampoline, types.void(types.voidptr), names)


def ufunc_arguments(itemsize: int, p: np.ndarray) -> tuple[Any, ...]:
    """Arguments of the types :func:`ufunc_loop` and :func:`ufunc_trampoline` pass a map kernel
    of ``p``'s parameters (for :func:`relukit.kernels.cpu.spin.wrapper_address`)."""
    x = np.empty(0, np.float32 if itemsize == 4 else np.float64)
    return (x, x, x, x, p, 0, False, False)


# ---------------------------------------------------------------------------------------------


def mask_forward_kernel(member: int, bits: int, direct: bool = False) -> Any:
    """``kernel(x, aux, y, mask, p, table, first, stream)``: ``y = f(x)`` and the packed codes.

    The code of each element is the piece PyTorch's backward puts it in (see
    :mod:`relukit.kernels.mask`): ``x > 0`` (leaky_relu, prelu), ``not x <= 0`` (relu, rrelu
    in training: ``p[7] = 1``), ``min < x < max`` (hardtanh, relu6), and for general_relu
    ``table[piece]`` with the pieces below the threshold, between, and capped. ``x`` starts at
    a word boundary; ``mask`` holds this chunk's codes only. relu, relu6, hardtanh,
    leaky_relu and general_relu take one pass (:func:`~relukit.kernels.cpu.masks.relu_with_mask`
    and its siblings: each 64 elements loaded once, their outputs stored (streamed) from the
    registers and their codes packed into a word, general_relu's into one or two from the
    words of its pieces). prelu's slopes per channel (finite and not 0; ``p[6] = 1``: ``aux``
    holds a period of them and :data:`~relukit.kernels.cpu.masks.SLOPES_AFTER` more) take one
    pass too (:func:`~relukit.kernels.cpu.masks.slopes_with_mask`). The other per-element
    slopes (prelu's that are 0 or not finite, or of 16-bit floats; rrelu in training) compute
    a block into an L1-resident buffer, then its codes (one 64-element word per vector
    compare), then stream the buffer out; a ``direct`` kernel computes straight into ``y``
    (disjoint from ``x``, not streamed; see :func:`map_kernel`).
    """

    @cached_kernel
    def kernel(
        x: Any, aux: Any, y: Any, mask: Any, p: Any, table: Any, first: int, stream: bool
    ) -> None:
        n = x.size
        if n == 0:
            return
        a0 = p[0]
        a1 = p[1]
        low = p[4]
        high = p[5]
        nan_is_one = p[7] > 0
        if member in ONE_PASS and not nan_is_one:
            if member == RELU:
                relu_with_mask(x, y, mask, a0, a1, narrow(a0, x[0]), narrow(a1, x[0]), stream)
            elif member == HARDTANH:
                clip_with_mask(x, y, mask, a0, a1, narrow(a0, x[0]), narrow(a1, x[0]), stream)
            elif member == GENERAL_RELU:
                general_with_mask(x, y, mask, p, low, high, table, bits, stream)
            else:
                leaky_with_mask(x, y, mask, a0, a1, low, high, stream)
            if stream:
                store_fence()
            return
        if member == SLOPES and p[6] > 0:
            # prelu's slopes per channel (finite, not 0; float32 for 16-bit floats) in one
            # pass: aux holds a period of them and SLOPES_AFTER more
            slopes_with_mask(x, y, mask, aux, first % (aux.size - SLOPES_AFTER), 0, 0, stream)
            if stream:
                store_fence()
            return
        zero = c(widen(x[0]), 0.0)
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        period = aux.size if member == SLOPES else n + 1
        start = first % period if member == SLOPES else 0
        buf = np.empty(1 if direct else BLOCK, dtype=y.dtype)
        for i, m, k in blocks(n, period, start, BLOCK, 0):
            dst = y[i : i + m] if direct else buf[:m]
            xs = x[i : i + m]
            rs = aux[k : k + m] if member == SLOPES else aux[:0]
            for j in range(m):
                e = xs[j]
                v = widen(e)
                if member == LEAKY_RELU:  # (only with the NaN-is-one code, which it never has)
                    dst[j] = narrow(conventions(v, leaky_relu_f(v, a0), low, high), e)
                elif member == SLOPES:
                    dst[j] = narrow(conventions(v, prelu_f(v, widen(rs[j])), low, high), e)
            full = m // 64
            for w in range(full):
                if nan_is_one:
                    word = word_above(xs, 64 * w, zero, zero)
                else:
                    word = word_greater(xs, 64 * w, zero, zero)
                words[i // 64 + w] = word
            word = np.uint64(0)
            for j in range(64 * full, m):
                v = widen(xs[j])
                bit = v > zero or (nan_is_one and v != v)
                word |= np.uint64(bit) << np.uint64(j - 64 * full)
            if m > 64 * full:
                store_bytes(mask, (i + 64 * full) // 8, word, m - 64 * full)
            if not direct:
                put(y, i, buf, m, stream)
        if stream:
            store_fence()

    return kernel


def mask_backward_kernel(bits: int, slopes: int, half: bool = False) -> Any:
    """``kernel(g, mask, aux, dx, table, first, stream)``: ``dx = g · table[code]``.

    With ``slopes`` (1, or :data:`CHANNELS` for prelu's slopes per channel, as ``aux`` then
    holds them), code 0 takes its derivative from ``aux`` (prelu's channel slope, rrelu's
    random slope) instead of ``table[0]``. The product is formed in the working dtype (float32
    or float64; a ``half`` kernel takes 16-bit gradients as raw bits, widens each to float32 and
    rounds the product back once, in the same pass) and rounded once, exactly as ``vjp`` forms
    ``grad_out · f'(x)`` (a zero derivative gives +0). ``g`` starts at a word
    boundary; ``mask`` holds this chunk's codes only. Every dtype goes straight into ``dx``,
    64 elements per mask word (at two bits, general_relu's, per two words, their codes' bit
    planes pulled apart: :func:`~relukit.kernels.cpu.masks.planes`), from ``dx``'s first
    64-byte boundary, streamed or not (through an L1-resident buffer, as before, float32 ran
    at 0.55 of a copy at 2^16 and float64 at 0.62 at 2^24 on a Zen 4; straight, 0.93 and
    1.04; two bits through codes unpacked to bytes, 0.24-0.33 at 2^20-2^22). (``aux``'s
    period is a multiple of 64 or at least n, see ``host._periodic``, so a block cut where it
    wraps starts on a mask word; such a block starts off dx's 64-byte boundary unless dx
    starts on one, and is then not streamed, and its stores and those of the blocks after it
    may split cache lines: a speed cost only, for rrelu in training and prelu's slopes per
    element. With ``slopes`` CHANNELS, ``aux`` holds one period and
    :data:`~relukit.kernels.cpu.masks.SLOPES_AFTER` more, and no block is cut.)
    """

    @cached_kernel
    def kernel(g: Any, mask: Any, aux: Any, dx: Any, table: Any, first: int, stream: bool) -> None:
        n = g.size
        if n == 0:
            return
        t0 = table[0]
        t1 = table[1]
        t2 = table[2]
        t3 = table[3]
        words = mask[: (mask.size // 8) * 8].view(np.uint64)
        # prelu's slopes per channel: aux holds a period of them and SLOPES_AFTER more, so
        # that a block reads its slopes in one run from any index, and blocks are not cut
        # where the period wraps (cut there, most started off dx's 64-byte boundaries and
        # were not streamed: 64 channels, 2^20 float32, 1 thread, Xeon, 0.50 of a copy)
        pattern = slopes == CHANNELS
        period = aux.size if slopes and not pattern else n + 1
        start = first % period if slopes and not pattern else 0
        repeat = aux.size - SLOPES_AFTER if pattern else 1
        # straight into dx, 64 elements per mask word (two at two bits), streamed from dx's
        # first 64-byte boundary at one bit. (Through a block buffer, float32 at 2^16 ran at
        # 0.55 of a copy, float64 at 2^24 0.62; straight, 0.93 and 1.04. Two bits through
        # codes unpacked to bytes: general_relu at 2^22 float32, 1 thread, AMD EPYC, 0.33 of
        # a copy.)
        size = dx.itemsize
        # the mask's whole words, and the codes in its last bytes (as a word)
        whole = words.size
        last = load_bytes(mask, 8 * whole, 8 * (mask.size - 8 * whole))
        # the vectors start on dx's first 64-byte boundary, streamed or not (no store then
        # splits across two cache lines: relu at 2^16 float32, 1 thread, Xeon, with dx 16
        # bytes past a boundary, 15.6-16.5 µs, 7.4-8.2 aligned): the first block is as long
        # as the distance to it
        lead = ((-np.int64(dx.ctypes.data)) & 63) // size
        # relu, relu6 and hardtanh (derivatives 0 and 1) pass g or +0 (pass_word): 16-bit
        # floats select bits, as fast as a copy, where the multiply widens and rounds back
        # (measured, bfloat16 2^22: 0.58 ms select, 1.12 multiply, 2.19 through unpacked
        # bytes; a copy 0.56); float32 and float64 multiply by 1 under the mask alone
        passes = not slopes and t0 == 0 and t1 == 1
        # (neither derivative 0: the product needs no compare with 0, _chain_derivative)
        nonzero = not slopes and t0 != 0 and t1 != 0
        for i, m, k in blocks(n, period, start, BLOCK, lead):
            gs = g[i : i + m]
            dst = dx[i : i + m]
            if pattern:
                k = (first + i) % repeat
            rs = aux[k : k + m] if slopes else aux[:0]
            # whole 64-element groups from the block's start, which may be off a mask word
            # (the lead, a period of aux), streamed where it is on a 64-byte boundary of dx
            groups = m // 64
            shift = i & 63
            up = np.uint64(shift)
            down = np.uint64(64 - shift)
            q = i >> 6
            streamed = stream and ((np.int64(dx.ctypes.data) + i * size) & 63) == 0
            if bits == 1:
                # 64 elements per vector, their codes from one mask word (two where a period
                # of aux or the lead cut a block off a word boundary), streamed where the
                # block starts on a 64-byte boundary of dx; the rest element by element. (No
                # helper taking an array is called per vector or element: Numba's reference
                # counts on its arguments cost more than the vector.) prelu's slopes per
                # channel: each 64 elements read theirs from aux[s:s+64], s advanced by 64
                # modulo the period, so that a short period's slopes stay in L1 (read from
                # rs, a block's own run of slopes, they took as much of L1 as g's block: 64
                # channels, float64, 1 thread, 0.56-0.63 of a copy up to 2^20)
                s = k
                step = 64 % repeat
                for w in range(groups):
                    at = 64 * w
                    word = words[q + w]
                    if shift != 0:
                        after = words[q + w + 1] if q + w + 1 < whole else last
                        word = (word >> up) | (after << down)
                    if passes and streamed:
                        pass_word_streamed(gs, at, word, t1, dst, at)
                    elif passes:
                        pass_word(gs, at, word, t1, dst, at)
                    elif half and nonzero and streamed:
                        chain_word_16_nonzero_streamed(gs, at, word, t0, t1, dst, at)
                    elif half and nonzero:
                        chain_word_16_nonzero(gs, at, word, t0, t1, dst, at)
                    elif half and not slopes and streamed:
                        chain_word_16_streamed(gs, at, word, t0, t1, dst, at)
                    elif half and not slopes:
                        chain_word_16(gs, at, word, t0, t1, dst, at)
                    elif pattern and streamed:  # (16-bit floats too: widened, rounded back)
                        chain_word_slopes_streamed(gs, at, word, t1, aux, s, dst, at)
                    elif pattern:
                        chain_word_slopes(gs, at, word, t1, aux, s, dst, at)
                    elif slopes and streamed:
                        chain_word_slopes_streamed(gs, at, word, t1, rs, at, dst, at)
                    elif slopes:
                        chain_word_slopes(gs, at, word, t1, rs, at, dst, at)
                    elif nonzero and streamed:
                        chain_word_nonzero_streamed(gs, at, word, t0, t1, dst, at)
                    elif nonzero:
                        chain_word_nonzero(gs, at, word, t0, t1, dst, at)
                    elif streamed:
                        chain_word_streamed(gs, at, word, t0, t1, dst, at)
                    else:
                        chain_word(gs, at, word, t0, t1, dst, at)
                    s += step
                    if s >= repeat:
                        s -= repeat
                for j in range(64 * groups, m):
                    b = i + j
                    on = (mask[b >> 3] >> np.uint8(b & 7)) & np.uint8(1)
                    e = gs[j]
                    if half and passes:
                        dst[j] = passed(e) if on != 0 else e ^ e
                    elif half:
                        d = t1 if on != 0 else (rs[j] if slopes else t0)
                        dst[j] = narrow(chain(widen(e), d), e)
                    else:
                        dst[j] = chain(e, t1 if on != 0 else (rs[j] if slopes else t0))
            else:
                # two bits (general_relu: no per-element slopes): 64 elements per vector, their
                # codes' bit planes from the two mask words of each 64 elements (two such where
                # the lead cut the block off a word boundary); the rest element by element
                p0 = p1 = np.uint64(0)
                for w in range(-1, groups):
                    # the planes of the 64 elements from word q + w + 1 (past the mask's whole
                    # words: its last bytes, then zeros, which this block does not read)
                    k = 2 * (q + w + 1)
                    low = words[k] if k < whole else (last if k == whole else np.uint64(0))
                    k += 1
                    high = words[k] if k < whole else (last if k == whole else np.uint64(0))
                    n0, n1 = planes(low, high)
                    if w < 0:
                        p0, p1 = n0, n1
                        continue
                    at = 64 * w
                    c0, c1 = p0, p1
                    if shift != 0:
                        c0 = (p0 >> up) | (n0 << down)
                        c1 = (p1 >> up) | (n1 << down)
                    if streamed:
                        chain_word_2_streamed(gs, at, c0, c1, t0, t1, t2, t3, dst, at)
                    else:
                        chain_word_2(gs, at, c0, c1, t0, t1, t2, t3, dst, at)
                    p0, p1 = n0, n1
                for j in range(64 * groups, m):
                    b = i + j
                    code = (mask[b >> 2] >> np.uint8(2 * (b & 3))) & np.uint8(3)
                    d = t0 if code == 0 else (t1 if code == 1 else (t2 if code == 2 else t3))
                    e = gs[j]
                    dst[j] = narrow(chain(widen(e), d), e)
        if stream:
            store_fence()

    return kernel


def split_kernel() -> Any:
    """``kernel(x, mask, rest, nan_passes, keep) -> count``: one pass over 1-D float ``x``
    packing the codes ``x > 0`` (or ``not x <= 0`` with ``nan_passes``) into ``mask`` at one
    bit per element, and, with ``keep``, copying the elements of code 0 in order into
    ``rest`` (which has room for all of x); returns how many have code 0. (prelu keeps its
    non-positive inputs this way, rrelu counts the slopes it must draw.) Branch-free: signs of
    real data are unpredictable, and a mispredicted branch per element costs more than the
    memory traffic."""

    @cached_kernel
    def kernel(x: Any, mask: Any, rest: Any, nan_passes: bool, keep: bool) -> int:
        n = x.size
        k = 0
        nan = np.int64(nan_passes)
        top = rest.size - 1
        for b in range((n + 7) // 8):
            byte = 0
            for j in range(min(8, n - 8 * b)):
                v = x[8 * b + j]
                on = np.int64(v > 0) | (np.int64(v != v) & nan)
                if keep:
                    rest[min(k, top)] = v
                k += 1 - on
                byte |= on << j
            mask[b] = byte
        return k

    return kernel


def expand_kernel() -> Any:
    """``kernel(mask, values, fill, out)``: ``out[i] = fill`` where bit i of ``mask`` is 1, the
    next of ``values`` (in order) where it is 0: the inverse of :func:`split_kernel`
    (branch-free)."""

    @cached_kernel
    def kernel(mask: Any, values: Any, fill: Any, out: Any) -> None:
        k = 0
        last = values.size - 1
        if last < 0:
            out[:] = fill
            return
        for i in range(out.size):
            on = np.int64((mask[i >> 3] >> (i & 7)) & 1)
            v = values[min(k, last)]
            out[i] = fill if on else v
            k += 1 - on

    return kernel


def scale_kernel() -> Any:
    """``kernel(src, mask, slopes, out)``: ``out[i] = src[i]`` where bit i of ``mask`` is 1,
    ``src[i]·slopes[k]`` (the next slope, one rounding in src's dtype) where it is 0: rrelu's
    forward and backward from its drawn slopes (branch-free)."""

    @cached_kernel
    def kernel(src: Any, mask: Any, slopes: Any, out: Any) -> None:
        k = 0
        last = slopes.size - 1
        if last < 0:
            out[:] = src
            return
        for i in range(src.size):
            on = np.int64((mask[i >> 3] >> (i & 7)) & 1)
            e = src[i]
            scaled = e * slopes[min(k, last)]
            out[i] = e if on else scaled
            k += 1 - on

    return kernel


def copy_kernel() -> Any:
    """``kernel(x, y, stream)``: ``y[:] = x``, the copy the benchmark takes as a limit."""

    @cached_kernel
    def kernel(x: Any, y: Any, stream: bool) -> None:
        copy(x, y, stream)

    return kernel


def distance_kernel() -> Any:
    """``kernel(y, x)``: the bytes from ``x``'s first element to ``y``'s (an int64), for the
    host's aliasing check: 0.2-0.3 µs a call, where ``y.ctypes.data - x.ctypes.data`` in
    Python cost 2.3, and more in the call it was in (relu out= on 2^18 float32, 1 thread,
    Xeon: 53-56 µs against 44-45 for its ufunc alone)."""

    @cached_kernel
    def kernel(y: Any, x: Any) -> Any:
        return np.int64(y.ctypes.data) - np.int64(x.ctypes.data)

    return kernel


@jit
def copy(x: Any, y: Any, stream: bool) -> None:
    """``y[:] = x`` in one pass, streamed or not."""
    put(y, 0, x, x.size, stream)
    if stream:
        store_fence()


EXP = 0
EXPM1 = 1
LOG1P = 2
PHI = 3
TANH_FUNCTION = 4


def function_kernel(function: int) -> Any:
    """``kernel(x, y)``: ``y = f(x)`` on float64 arrays for one of the float32 kernels' float64
    functions (exp, expm1, log1p, Φ, tanh of :mod:`relukit.kernels.cpu.mathlib`), for tests."""

    @cached_kernel
    def kernel(x: Any, y: Any) -> None:
        for i in range(x.size):
            v = x[i]
            if function == EXP:
                y[i] = exp_f64(v)
            elif function == EXPM1:
                y[i] = expm1_f64(v)
            elif function == LOG1P:
                y[i] = log1p_f64(v)
            elif function == PHI:
                y[i] = phi_f64(v)
            else:
                y[i] = tanh_f64(v)

    return kernel


def lookup_kernel() -> Any:
    """``kernel(x, table, y)``: ``y[i] = table[x[i]]`` on 16-bit floats as raw bits, where
    ``table`` holds the raw results of all 65,536 inputs, indexed by the input's bits as an
    unsigned number: a smooth member's forward or derivative of every 16-bit float, computed
    once by the member's own kernel (:meth:`relukit.kernels.cpu.host.Calls.lookup_table`), so that a
    lookup gives that kernel's bits."""

    @cached_kernel
    def kernel(x: Any, table: Any, y: Any) -> None:
        for i in range(x.size):
            y[i] = table[np.uint16(x[i])]

    return kernel


def convert_kernel() -> Any:
    """``kernel(src, dst)``: ``dst = src`` between 16-bit floats (raw bits) and float32, rounded
    to nearest even (the cast NumPy and ml_dtypes make), for the members that compute 16-bit
    inputs in float32."""

    @cached_kernel
    def kernel(src: Any, dst: Any) -> None:
        if src.size == 0:
            return
        like = dst[0]  # only its type matters
        for i in range(src.size):
            dst[i] = narrow(widen(src[i]), like)

    return kernel
