"""Few-bit codes in Triton: the interval of each input among a step derivative's borders, and
the backward from those codes.

The few-bit backward (:mod:`relukit.memory.steps`, Few-Bit Backward by Novikov et al.) keeps,
per element, the index of the interval its input fell in among ``k − 1`` increasing borders
(``k = 2**bits`` levels), and multiplies the incoming gradient by that interval's level.

- Code: the number of borders below ``x`` (``searchsorted(borders, x, side="left")``, so an
  input on a border takes the lower level); NaN gets the last code, ``k − 1``. The comparison
  is exact in every dtype: each border is first replaced by the largest value of x's dtype at
  or below it (:func:`dtype_borders`), so ``x > border`` is decided in x's own precision with
  no rounding of the border.
- Layout: the codes packed in slots of ``slot`` bits (1, 2, 4 or 8: the packer's
  ``code_bits(k)``, so 3-bit codes take 4-bit slots), ``8 // slot`` to a byte, little-endian,
  in C order; :mod:`relukit.kernels.mask`'s layout.
- Backward: ``dx = g·level[code]``, the product formed in float32 for 16-bit and float32
  gradients (float64 for float64) and rounded once; levels are given as float64 and rounded to
  that precision first.

>>> import torch
>>> borders, levels = [-1.0, 0.0, 1.5], [0.0, 0.25, 0.75, 1.0]
>>> x = torch.tensor([-2.0, -0.5, 0.5, 1.6, float("nan")])
>>> codes = encode(x, borders, 2)
>>> codes.tolist()
[228, 3]
>>> backward(torch.ones(5), codes, levels, 2).tolist()
[0.0, 0.25, 0.75, 1.0, 1.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import triton.language as tl
from torch import Tensor

from relukit.kernels.gpu.launch import EXACT, check_mask, constants, grid, jit, narrow, wide

ROWS = 256
"""Code bytes per program."""
SLOTS = (1, 2, 4, 8)


@jit
def _encode(
    x_ptr,
    borders_ptr,
    codes_ptr,
    n,
    nbytes,
    BORDERS: tl.constexpr,
    SLOT: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    PER: tl.constexpr = 8 // SLOT
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * PER + tl.arange(0, PER)[None, :]
    valid = offsets < n
    x = tl.load(x_ptr + offsets, mask=valid, other=0).to(WIDE)
    code = tl.zeros(offsets.shape, tl.int32)
    for i in tl.static_range(BORDERS):
        code += tl.where(x > tl.load(borders_ptr + i).to(WIDE), 1, 0)
    code = tl.where(x != x, BORDERS, code)
    code = tl.where(valid, code, 0)
    packed = tl.sum(code << (tl.arange(0, PER) * SLOT)[None, :], axis=1)
    tl.store(codes_ptr + rows, packed.to(tl.uint8), mask=rows < nbytes)


@jit
def _backward(
    g_ptr,
    codes_ptr,
    levels_ptr,
    dx_ptr,
    n,
    nbytes,
    SLOT: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    PER: tl.constexpr = 8 // SLOT
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * PER + tl.arange(0, PER)[None, :]
    valid = offsets < n
    packed = tl.load(codes_ptr + rows, mask=rows < nbytes, other=0).to(tl.int32)
    code = (packed[:, None] >> (tl.arange(0, PER) * SLOT)[None, :]) & ((1 << SLOT) - 1)
    g = tl.load(g_ptr + offsets, mask=valid, other=0).to(WIDE)
    level = tl.load(levels_ptr + code, mask=valid, other=0).to(WIDE)
    tl.store(dx_ptr + offsets, narrow(g * level, dx_ptr.dtype.element_ty), mask=valid)


def slot_bits(bits: int) -> int:
    """Bits of the slot that holds a ``bits``-bit code (1, 2, 4 or 8)."""
    for slot in SLOTS:
        if bits <= slot:
            return slot
    raise ValueError(f"relukit.kernels.gpu.steps: codes of {bits} bits do not fit a byte")


@functools.lru_cache(maxsize=256)
def _dtype_borders(borders: tuple[float, ...], dtype: torch.dtype) -> tuple[float, ...]:
    exact = torch.tensor(borders, dtype=torch.float64)
    rounded = exact.to(dtype)
    down = torch.nextafter(rounded, torch.tensor(-math.inf, dtype=dtype))
    floor = torch.where(rounded.to(torch.float64) > exact, down, rounded)
    return tuple(floor.to(torch.float64).tolist())


def dtype_borders(borders: Sequence[float], dtype: torch.dtype) -> tuple[float, ...]:
    """Each border as the largest value of ``dtype`` at or below it: for x of that dtype,
    ``x > border`` exactly when ``x > dtype_borders(...)[i]``."""
    return _dtype_borders(tuple(float(b) for b in borders), dtype)


def encode(x: Tensor, borders: Sequence[float], bits: int) -> Tensor:
    """The packed code of each element of ``x`` (C order) among ``borders`` (increasing,
    ``2**bits − 1`` of them)."""
    if len(borders) != (1 << bits) - 1 or list(borders) != sorted(borders):
        raise ValueError(
            f"relukit.kernels.gpu.steps.encode: {bits} bits need {(1 << bits) - 1} increasing "
            f"borders; got {list(borders)}"
        )
    slot = slot_bits(bits)
    flat = x.detach().contiguous().view(-1)
    n = flat.numel()
    codes = torch.empty((n * slot + 7) // 8, dtype=torch.uint8, device=x.device)
    if n:
        _encode[grid(n, ROWS * 8 // slot)](
            flat,
            constants(dtype_borders(borders, x.dtype), x.device),
            codes,
            n,
            codes.numel(),
            len(borders),
            slot,
            wide(x.dtype),
            ROWS,
            **EXACT,
        )
    return codes


def backward(grad: Tensor, codes: Tensor, levels: Sequence[float], bits: int) -> Tensor:
    """``grad·levels[code]`` from the packed codes (contiguous, grad's shape)."""
    if len(levels) != 1 << bits:
        raise ValueError(
            f"relukit.kernels.gpu.steps.backward: {bits} bits need {1 << bits} levels; "
            f"got {len(levels)}"
        )
    slot = slot_bits(bits)
    check_mask("relukit.kernels.gpu.steps.backward", codes, grad, slot)
    flat = grad.detach().contiguous().view(-1)
    n = flat.numel()
    dx = torch.empty_like(flat)
    if n:
        _backward[grid(n, ROWS * 8 // slot)](
            flat,
            codes,
            constants(levels, grad.device),
            dx,
            n,
            codes.numel(),
            slot,
            wide(grad.dtype),
            ROWS,
            **EXACT,
        )
    return dx.view(grad.shape)
