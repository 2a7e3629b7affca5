"""Few-bit codes in Triton: the interval of each input among a step derivative's borders, and
the backward from those codes.

The few-bit backward (``backward="bits"``: :mod:`relukit.memory.steps`, Few-Bit Backward by
Novikov et al.) keeps, per element, the index of the interval its input fell in among
``k − 1`` increasing borders (``k = 2**bits`` levels), and multiplies the incoming gradient by
that interval's level.

- Code: the number of borders below ``x`` (``torch.bucketize(x, borders)``, so an input on a
  border takes the lower level), with the borders rounded to nearest in the working precision
  (float32 for 16- and 32-bit inputs, float64 for float64) and x compared in it; NaN gets the
  last code, ``k − 1``.
- Layout: ``bits`` bits per element in C order, little-endian across the bytes (element ``i``
  starts at bit ``i·bits`` of the stream; 3-bit codes straddle bytes): the one packer's layout
  (:mod:`relukit.kernels.mask`). A program packs rows of 8 elements, ``bits`` bytes each.
- Backward: ``dx = g·level[code]`` with the levels rounded to the gradient's dtype, the
  product formed in float32 (float64 for float64) and rounded once: PyTorch's
  ``grad * levels.take(codes)``.

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

from collections.abc import Sequence

import torch
import triton.language as tl
from torch import Tensor

from relukit.kernels.gpu.launch import EXACT, check_mask, constants, grid, jit, narrow, wide

ROWS = 256
"""Rows of 8 elements per program (2048 elements)."""


@jit
def _encode(
    x_ptr,
    borders_ptr,
    codes_ptr,
    n,
    nbytes,
    BORDERS: tl.constexpr,
    BITS: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    valid = offsets < n
    x = tl.load(x_ptr + offsets, mask=valid, other=0).to(WIDE)
    code = tl.zeros(offsets.shape, tl.int32)
    for i in tl.static_range(BORDERS):
        code += tl.where(x > tl.load(borders_ptr + i).to(WIDE), 1, 0)
    code = tl.where(x != x, BORDERS, code)
    code = tl.where(valid, code, 0)
    row = tl.sum(code << (tl.arange(0, 8) * BITS)[None, :], axis=1)  # 8·BITS ≤ 32 bits
    byte = tl.arange(0, 4)[None, :]
    where = rows[:, None] * BITS + byte
    packed = (row[:, None] >> (byte * 8)) & 255
    tl.store(codes_ptr + where, packed.to(tl.uint8), mask=(byte < BITS) & (where < nbytes))


@jit
def _backward(
    g_ptr,
    codes_ptr,
    levels_ptr,
    dx_ptr,
    n,
    nbytes,
    BITS: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    valid = offsets < n
    byte = tl.arange(0, 4)[None, :]
    where = rows[:, None] * BITS + byte
    packed = tl.load(codes_ptr + where, mask=(byte < BITS) & (where < nbytes), other=0)
    row = tl.sum(packed.to(tl.int32) << (byte * 8), axis=1)
    code = (row[:, None] >> (tl.arange(0, 8) * BITS)[None, :]) & ((1 << BITS) - 1)
    g = tl.load(g_ptr + offsets, mask=valid, other=0).to(WIDE)
    level = tl.load(levels_ptr + code, mask=valid, other=0).to(WIDE)
    tl.store(dx_ptr + offsets, narrow(g * level, dx_ptr.dtype.element_ty), mask=valid)


def _work(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _rounded(values: Sequence[float], dtype: torch.dtype) -> list[float]:
    return torch.tensor(list(values), dtype=torch.float64).to(dtype).to(torch.float64).tolist()


def encode(x: Tensor, borders: Sequence[float], bits: int) -> Tensor:
    """The packed code of each element of ``x`` (C order) among ``borders`` (increasing,
    ``2**bits − 1`` of them; rounded to x's working precision)."""
    if not 1 <= bits <= 4:
        raise ValueError(f"relukit.kernels.gpu.steps.encode: bits={bits} is not in 1..4")
    if len(borders) != (1 << bits) - 1 or list(borders) != sorted(borders):
        raise ValueError(
            f"relukit.kernels.gpu.steps.encode: {bits} bits need {(1 << bits) - 1} increasing "
            f"borders; got {list(borders)}"
        )
    flat = x.detach().contiguous().view(-1)
    n = flat.numel()
    codes = torch.empty((n * bits + 7) // 8, dtype=torch.uint8, device=x.device)
    if n:
        _encode[grid(n, ROWS * 8)](
            flat,
            constants(_rounded(borders, _work(x.dtype)), x.device),
            codes,
            n,
            codes.numel(),
            len(borders),
            bits,
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
    check_mask("relukit.kernels.gpu.steps.backward", codes, grad, bits)
    flat = grad.detach().contiguous().view(-1)
    n = flat.numel()
    dx = torch.empty_like(flat)
    if n:
        _backward[grid(n, ROWS * 8)](
            flat,
            codes,
            constants(_rounded(levels, grad.dtype), grad.device),
            dx,
            n,
            codes.numel(),
            bits,
            wide(grad.dtype),
            ROWS,
            **EXACT,
        )
    return dx.view(grad.shape)
