"""Compiled CPU kernels of the smooth members' memory modes (:mod:`relukit.memory`).

Each is one pass over contiguous float32 or float64 arrays (NumPy views of CPU tensors), in the
mask layout of :mod:`relukit.kernels.mask` (element ``i`` at bit ``i·bits`` of the
little-endian stream). The loops have no branches (selects only), so that LLVM turns them into
SIMD code, and the tables they look up are copied to the stack first (:func:`_stack_copy`:
only then does LLVM know that the lookups cannot alias the output, and vectorise them as
gathers). A call splits its array as every kernel's call does (:func:`spread`: chunks of
whole 64-element blocks, claimed one at a time by the threads of relukit's pool):

- :func:`below_bits`: the bit ``x < x*`` of the output mode, packed: one vector compare per
  64 elements (:func:`relukit.kernels.cpu.intrinsics.word_above`);
- :func:`inverse_backward`: ``g·f'`` from the output ``y`` and the bit ``x < x*``, by the
  piecewise polynomials of :class:`relukit.memory.output.InverseTable` (degree 3 or 7), the
  arithmetic of :func:`relukit.memory.output.invert` element by element, both sides of the
  minimum computed for every element and then selected. float32 works in float32 with a
  logarithm of bit operations and atanh's series, float64 with the math library's ``log1p``
  (see "the output mode" below);
- :func:`step_codes`: the ``bits``-bit code of each input among the borders (the number of
  borders below it; NaN: the last), packed 64 elements (``bits`` words) at a time, as word
  operations: a vector compare per border, the code's bit planes by AND/OR of those words,
  laid into the stream by bit deposits (BMI2's ``pdep``);
- :func:`step_backward`: ``g·levels[code]`` from the packed codes.

The PyTorch-operation versions (:mod:`relukit.memory.output`, :mod:`relukit.nn.stepped`) are
the path on every other device, dtype and layout; ``tests/kernels/test_memory.py`` holds these
kernels to them.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from relukit.kernels.cpu.compile import INLINE_OPTIONS, cached_kernel
from relukit.kernels.cpu.dtypes import const
from relukit.kernels.cpu.intrinsics import (
    deposit,
    f32_as_i32,
    f64_as_i64,
    fma,
    i32_as_f32,
    i64_as_f64,
    vector_width_512,
    word_above,
    word_greater,
)
from relukit.kernels.cpu.mathlib import log1p_f64
from relukit.kernels.cpu.team import START, STOP

_BLOCK = 64
_inline = numba.njit(**INLINE_OPTIONS)
_LN2 = math.log(2.0)
_MANTISSA = np.int64((1 << 52) - 1)
_ONE_BITS = np.int64(0x3FF0000000000000)
_F32 = np.float32
_I32 = np.int32
WHERE = "relukit.kernels.cpu.memory"


# ---------------------------------------------------------------------------------------------
# tables on the stack: a loop that loads from a table at data-dependent indices and stores to an
# array vectorises only where LLVM knows the two cannot overlap, and for a stack copy it does

TABLE_MAX = 8192  # elements of a table copied to the stack (64 KiB of float64)
# The output mode's tables are laid out by columns (coefficient j of row k at j·COLUMN + k), so
# that a lookup is one gather from a constant offset with the row as its 32-bit index.
COLUMN32 = TABLE_MAX // 4  # rows of a degree-3 table
COLUMN64 = TABLE_MAX // 8  # rows of a degree-7 table


@intrinsic
def _stack_copy(typingctx: Any, src: Any) -> Any:
    """A pointer to a stack copy of the first ``TABLE_MAX`` elements of the 1-D ``src``, in the
    frame of the kernel that calls it (never through a helper: the copy would die with the
    helper's frame when LLVM inlines it)."""
    if not (isinstance(src, types.Array) and isinstance(src.dtype, types.Number) and src.ndim == 1):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        element = context.get_value_type(signature.args[0].dtype)
        buffer = cgutils.alloca_once(builder, ir.ArrayType(element, TABLE_MAX))
        pointer = builder.bitcast(buffer, element.as_pointer())
        n = builder.extract_value(ary.shape, 0)
        limit = ir.Constant(n.type, TABLE_MAX)
        n = builder.select(builder.icmp_signed(">", n, limit), limit, n)
        size = ir.Constant(n.type, context.get_abi_sizeof(element))
        byte = ir.IntType(8).as_pointer()
        cgutils.raw_memcpy(
            builder,
            builder.bitcast(pointer, byte),
            builder.bitcast(ary.data, byte),
            builder.mul(n, size),
            1,
        )
        return pointer

    return types.CPointer(src.dtype)(src), codegen


# ---------------------------------------------------------------------------------------------
# mask words: ``bits`` 64-bit words hold the codes of one block


@_inline
def _load_word(packed: Any, first: int) -> Any:
    """The little-endian 64-bit word of ``packed[first:first + 8]`` (bytes past the end: 0)."""
    w = np.int64(0)
    last = min(first + 8, packed.shape[0])
    for b in range(first, last):
        w |= np.int64(packed[b]) << np.int64(8 * (b - first))
    return w


@_inline
def _store_word(packed: Any, first: int, w: Any) -> None:
    """Write the bytes of ``w`` from ``packed[first]`` (those past the end are dropped)."""
    last = min(first + 8, packed.shape[0])
    for b in range(first, last):
        packed[b] = np.uint8((w >> np.int64(8 * (b - first))) & np.int64(255))


# ---------------------------------------------------------------------------------------------
# the output mode
#
# float32 works in float32 (eight lanes, twice float64's). Its logarithm (of r = y/y* in (0, 1],
# only to place y in the table: a relative error of 2e-7 in −log r moves f' by about 1e-7 of
# itself) is made of bit operations and atanh's series; r is held at or above the smallest
# normal float32, so f'/y is held there as the tensor version holds it at the table's end.
# float64 works in float64 with the math library's log1p (relative error 3e-16). Where f' is
# ill-conditioned in y (near the minimum) float32 results differ from the tensor version's,
# which rounds its intermediate values to float32, by up to ~1e-4 (both within the bound the
# rounding of y allows; tests/kernels/test_memory.py).


@_inline
def _minus_log32(r: Any) -> Any:
    """−log(r) for r in [2^-126, 1] in float32: r = 2^e·m, m in [√½, √2), 2·atanh(s)."""
    b = f32_as_i32(r)
    e = (b >> _I32(23)) - _I32(127)
    m = i32_as_f32((b & _I32(0x7FFFFF)) | _I32(0x3F800000))
    big = m > _F32(1.4142135)
    m = m * _F32(0.5) if big else m
    e = e + _I32(1) if big else e
    f = m - _F32(1.0)
    s = f / (_F32(2.0) + f)
    s2 = s * s
    p = fma(
        fma(fma(fma(s2, _F32(1 / 9), _F32(1 / 7)), s2, _F32(1 / 5)), s2, _F32(1 / 3)), s2, _F32(1.0)
    )
    return -fma(_F32(e), _F32(_LN2), _F32(2.0) * s * p)


@_inline
def _minus_log64(r: float) -> float:
    """−log(r) for r in [2^-1022, 1] in float64: r = 2^e·m, m in [1, 2), and log1p(m − 1)."""
    b = f64_as_i64(r)
    e = ((b >> np.int64(52)) & np.int64(0x7FF)) - np.int64(1023)
    m = i64_as_f64((b & _MANTISSA) | _ONE_BITS)
    return -fma(np.float64(e), _LN2, log1p_f64(m - 1.0))


@_inline
def _position(y, below, y_min, inv_y_min, scale, right, left, tiny, minus_log):  # type: ignore[no-untyped-def]
    """(row, t): the table row of ``y`` (an int32, so that the lookups are 32-bit-index
    gathers) and its position in the row's segment, in y's dtype."""
    one, zero = y_min / y_min, y_min - y_min
    r = y * inv_y_min
    r = r if r < one else one
    r = r if r > tiny else tiny  # NaN: tiny (the result is NaN anyway)
    left_z = minus_log(r)  # both sides computed, then selected: no branch in the loop
    right_z = y - y_min
    z = left_z if below else right_z
    z = z if z > zero else zero
    c = np.sqrt(z) * scale
    limit = left if below else right
    c = c if c < limit else limit
    floor = np.floor(c)
    first = right + one if below else zero  # the left rows follow the right ones and the limit
    return np.int32(floor + first), c - floor


@_inline
def _derivative32(y, below, rows, y_min, inv_y_min, scale, right, left):  # type: ignore[no-untyped-def]
    k, t = _position(
        y, below, y_min, inv_y_min, scale, right, left, _F32(1.1754944e-38), _minus_log32
    )
    c = COLUMN32
    d = fma(fma(fma(rows[3 * c + k], t, rows[2 * c + k]), t, rows[c + k]), t, rows[k])
    d = d * y if below else d
    return y if y != y else d


@_inline
def _derivative64(y, below, rows, y_min, inv_y_min, scale, right, left):  # type: ignore[no-untyped-def]
    k, t = _position(
        y, below, y_min, inv_y_min, scale, right, left, 2.2250738585072014e-308, _minus_log64
    )
    c = COLUMN64
    d = rows[7 * c + k]
    for j in range(6, -1, -1):
        d = fma(d, t, rows[j * c + k])
    d = d * y if below else d
    return y if y != y else d


def _make_inverse_kernel(wide: bool) -> Any:
    """``inverse(y, packed, g, out, table, y_min, scale, right, left, start, stop)``.

    The kernel closes over ``wide`` (a bool), not over the derivative's dispatcher: closure
    values are part of Numba's cache key, and a dispatcher pickles with an identity of its
    process, so the kernel would be compiled afresh (seconds) in every process. Numba prunes
    the branch on the constant, so each kernel calls one derivative.
    """

    @cached_kernel
    def inverse(y, packed, g, out, table, y_min, scale, right, left, start, stop):  # type: ignore[no-untyped-def]
        if stop <= start:
            return
        if not wide:
            vector_width_512()  # 16 float32 lanes (float64 gains nothing from 8)
        derivative = _derivative64 if wide else _derivative32
        rows = _stack_copy(table)  # a pointer: its lookups do not wrap negative indices
        like = y[0]  # the arithmetic is in y's dtype
        ymin = const(like, y_min)
        inv_y_min = const(like, 1 / y_min)
        s = const(like, scale)
        r = const(like, right)
        lft = const(like, left)
        one = np.int64(1)
        for block in range(start, stop, _BLOCK):
            word = _load_word(packed, block // 8)
            # slices, indexed from 0: an index LLVM cannot prove non-negative is wrapped, and
            # the wrapped loads become gathers
            ys = y[block : block + _BLOCK]
            gs = g[block : block + _BLOCK]
            outs = out[block : block + _BLOCK]
            if ys.shape[0] == _BLOCK:
                for j in range(_BLOCK):
                    below = ((word >> np.int64(j)) & one) != 0
                    outs[j] = gs[j] * derivative(ys[j], below, rows, ymin, inv_y_min, s, r, lft)
            else:
                for j in range(ys.shape[0]):
                    below = ((word >> np.int64(j)) & one) != 0
                    outs[j] = gs[j] * derivative(ys[j], below, rows, ymin, inv_y_min, s, r, lft)

    return inverse


def _make_below_bits() -> Any:

    @cached_kernel
    def below(x, just_below, packed, start, stop):  # type: ignore[no-untyped-def]
        # x < t is "not (x > the float before t) and not NaN": the complement of word_above
        scratch = np.zeros(_BLOCK, dtype=x.dtype)
        for block in range(start, stop, _BLOCK):
            if block + _BLOCK <= stop:
                word = ~np.int64(word_above(x, block, just_below, just_below))
            else:
                m = stop - block
                scratch[:] = np.nan
                scratch[:m] = x[block:stop]
                word = ~np.int64(word_above(scratch, 0, just_below, just_below))
            _store_word(packed, block // 8, word)

    return below


# ---------------------------------------------------------------------------------------------
# the bits mode


def _step_plan(bits: int) -> tuple[np.ndarray, ...]:
    """How a block's ``bits`` words (element k's code at bits ``bits·k`` to ``bits·k + bits``)
    hold its ``bits`` bit planes (plane j: bit k is bit j of element k's code): for each piece,
    the word, the plane, the first element in the word, and the positions of the plane's bits
    in the word (for :func:`~relukit.kernels.cpu.intrinsics.deposit` and ``extract``)."""
    words, planes, firsts, masks = [], [], [], []
    for w in range(bits):
        for j in range(bits):
            ks = [k for k in range(_BLOCK) if 64 * w <= bits * k + j < 64 * w + 64]
            if ks:
                words.append(w)
                planes.append(j)
                firsts.append(ks[0])
                masks.append(sum(1 << (bits * k + j - 64 * w) for k in ks))
    return (
        np.array(words, dtype=np.int64),
        np.array(planes, dtype=np.int64),
        np.array(firsts, dtype=np.uint64),
        np.array(masks, dtype=np.uint64),
    )


def _code_plan(bits: int) -> tuple[np.ndarray, ...]:
    """Bit j of a code ``c = #{b: x > borders[b]}`` from the thermometer words ``t[b]`` (bit k:
    element k above border ``b - 1``; ``t[nb + 1] = 0``): c has bit j set where
    ``2^j + i·2^(j+1) <= c < (i + 1)·2^(j+1)``, so plane j is the OR over i of
    ``t[2^j + i·2^(j+1)] & ~t[(i + 1)·2^(j+1)]`` (an index past nb reads the 0 word)."""
    nb = (1 << bits) - 1
    planes, lows, highs = [], [], []
    for j in range(bits):
        for i in range(1 << (bits - 1 - j)):
            planes.append(j)
            lows.append((1 << j) + i * (1 << (j + 1)))
            highs.append(min((i + 1) * (1 << (j + 1)), nb + 1))
    return np.array(planes, np.int64), np.array(lows, np.int64), np.array(highs, np.int64)


def _make_step_codes(bits: int) -> Any:
    """Per 64-element block: one vector compare per border gives its thermometer word, bit
    operations give the code's bit planes, and bit deposits lay them out as the block's
    ``bits`` words (1.5 ns an element as a loop over the elements' codes; this is word work)."""
    nb = (1 << bits) - 1  # compile-time constants: the loops unroll
    p_word, p_plane, p_first, p_mask = _step_plan(bits)
    c_plane, c_low, c_high = _code_plan(bits)

    @cached_kernel
    def step_codes(x, borders, packed, start, stop):  # type: ignore[no-untyped-def]
        scratch = np.zeros(_BLOCK, dtype=x.dtype)
        thermometer = np.zeros(nb + 2, dtype=np.uint64)
        planes = np.zeros(bits, dtype=np.uint64)
        words = np.zeros(bits, dtype=np.uint64)
        infinity = x.dtype.type(np.inf)
        for block in range(start, stop, _BLOCK):
            source, at = x, block
            if block + _BLOCK > stop:
                scratch[:] = -infinity  # (code 0: no bits past the end)
                scratch[: stop - block] = x[block:stop]
                source, at = scratch, 0
            for b in range(1, nb + 1):
                thermometer[b] = word_greater(source, at, borders[b - 1], borders[b - 1])
            nan = word_above(source, at, infinity, infinity)  # (NaN: the last code)
            for j in range(bits):
                planes[j] = nan
            for p in range(c_plane.size):
                planes[c_plane[p]] |= thermometer[c_low[p]] & ~thermometer[c_high[p]]
            for w in range(bits):
                words[w] = 0
            for p in range(p_word.size):
                words[p_word[p]] |= deposit(planes[p_plane[p]] >> p_first[p], p_mask[p])
            first = block // 8 * bits
            for w in range(bits):
                _store_word(packed, first + 8 * w, np.int64(words[w]))

    return step_codes


def _make_step_backward(bits: int) -> Any:
    field = np.int64((1 << bits) - 1)

    @cached_kernel
    def step_backward(g, packed, levels, out, start, stop):  # type: ignore[no-untyped-def]
        table = numba.carray(_stack_copy(levels), (TABLE_MAX,))
        n = packed.shape[0]
        for group in range(start // 8, (stop + 7) // 8):
            # the codes of 8 elements fill ``bits`` bytes
            acc = np.int64(0)
            for byte in range(bits):
                index = group * bits + byte
                if index < n:
                    acc |= np.int64(packed[index]) << np.int64(8 * byte)
            first = group * 8
            for i in range(first, min(first + 8, stop)):
                code = (acc >> np.int64(bits * (i - first))) & field
                out[i] = g[i] * table[code]

    return step_backward


def spread(n: int, kernel: Any, *args: Any) -> None:
    """``kernel(*args)`` over ``[0, n)`` as the other kernels run
    (:func:`relukit.kernels.cpu.host._spread`: chunks of whole 64-element blocks, up to four per
    thread, claimed one at a time), with :data:`~relukit.kernels.cpu.team.START` and
    :data:`~relukit.kernels.cpu.team.STOP` among ``args`` the bounds of each chunk."""
    from relukit.kernels.cpu.host import _spread

    _spread(n, False, kernel, args)


_INVERSE: dict[bool, Any] = {}
_BELOW: list[Any] = []
_STEP_CODES: dict[int, Any] = {}
_STEP_BACKWARD: dict[int, Any] = {}


_ROWS: dict[tuple[int, str], tuple[Any, np.ndarray]] = {}


def _rows(table: Any, dtype: np.dtype) -> np.ndarray:
    """The table's coefficients by columns, each padded to the kernel's column length, as one
    flat array of ``dtype``, made once per table (a call on a small tensor would otherwise
    spend more on the conversion than on the kernel)."""
    key = (id(table), str(dtype))
    found = _ROWS.get(key)
    if found is None or found[0] is not table:
        count, width = table.coefficients.shape
        column = TABLE_MAX // width
        if count > column:
            raise ValueError(f"{WHERE}: a table of {count} rows (at most {column})")
        rows = np.zeros((width, column), dtype=dtype)
        rows[:, :count] = table.coefficients.T
        found = _ROWS[key] = (table, rows.reshape(-1))
    return found[1]


def inverse_backward(table: Any, y: np.ndarray, packed: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g·f'`` from ``y`` and the packed bits by ``table`` (flat arrays of one dtype: float32
    with the degree-3 table, float64 with the degree-7 one)."""
    wide = y.dtype == np.float64
    if table.degree != (7 if wide else 3):
        raise ValueError(f"{WHERE}: a degree-{table.degree} table for {y.dtype} outputs")
    rows = _rows(table, y.dtype)
    kernel = _INVERSE.get(wide) or _INVERSE.setdefault(wide, _make_inverse_kernel(wide))
    out = np.empty_like(g)
    args = (float(table.y_min), 1 / table.step, float(table.right), float(table.left))
    spread(y.size, kernel, y, packed, g, out, rows, *args, START, STOP)
    return out


def below_bits(x: np.ndarray, threshold: float) -> np.ndarray:
    """The packed bits ``x < threshold`` (the output mode's bit: below the minimum)."""
    packed = np.empty(-(-x.size // 8), dtype=np.uint8)
    t = x.dtype.type(threshold)
    just_below = np.nextafter(t, x.dtype.type(-np.inf))
    if not _BELOW:
        _BELOW.append(_make_below_bits())
    kernel = _BELOW[0]
    spread(x.size, kernel, x, just_below, packed, START, STOP)
    return packed


def step_codes(x: np.ndarray, borders: np.ndarray, bits: int) -> np.ndarray:
    """The packed ``bits``-bit codes of ``x`` (flat) among ``borders`` (of x's dtype)."""
    packed = np.empty(-(-x.size * bits // 8), dtype=np.uint8)
    kernel = _STEP_CODES.get(bits) or _STEP_CODES.setdefault(bits, _make_step_codes(bits))
    spread(x.size, kernel, x, borders, packed, START, STOP)
    return packed


def step_backward(g: np.ndarray, packed: np.ndarray, levels: np.ndarray, bits: int) -> np.ndarray:
    """``g·levels[code]`` from the packed codes (``levels`` of g's dtype)."""
    out = np.empty_like(g)
    kernel = _STEP_BACKWARD.get(bits) or _STEP_BACKWARD.setdefault(bits, _make_step_backward(bits))
    spread(g.size, kernel, g, packed, levels, out, START, STOP)
    return out
