"""The output-mode backward in Triton: ``g·f'(x)`` from ``y = f(x)`` and one branch bit, for
the members that are not monotonic (gelu in both forms, silu, mish).

The arithmetic is :func:`relukit.memory.output.invert`'s, per element, in one pass: right of
the member's minimum ``(x*, y*)`` the variable ``v = √(y − y*)``, left of it
``q = √(−log(y/y*))`` (where the table holds ``f'/y``), both divided by the table's step; the
integer part picks a segment of the table, the fraction ``t`` evaluates its polynomial by
Horner's rule; NaN outputs give NaN. ``f'`` is rounded to the tensors' dtype, then
``dx = g·f'`` is formed in float32 for 16-bit and float32 tensors (float64 for float64) and
rounded: the PyTorch-op path's ``grad * derivative``.

The branch bits are packed one per element (the packer's layout, C order). The result agrees
with the PyTorch-op path of :mod:`relukit.memory.output` to float rounding, not bit for bit:
``log`` and ``sqrt`` are the GPU's, and the polynomial's multiply-adds may round differently;
the tests hold the difference far inside the mode's documented error.
"""

from __future__ import annotations

from typing import Any

import torch
import triton.language as tl
from torch import Tensor

from relukit.kernels.gpu.launch import EXACT, check_mask, constants, grid, jit, narrow, wide

ROWS = 256
"""Bit bytes per program (2048 elements)."""

_COEFFICIENTS: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


@jit
def _from_output(
    y_ptr,
    bits_ptr,
    g_ptr,
    table_ptr,
    scalars_ptr,
    dx_ptr,
    n,
    RIGHT: tl.constexpr,
    LEFT: tl.constexpr,
    DEGREE: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    valid = offsets < n
    packed = tl.load(bits_ptr + rows, mask=rows < (n + 7) // 8, other=0).to(tl.int32)
    below = ((packed[:, None] >> tl.arange(0, 8)[None, :]) & 1) == 1
    y = tl.load(y_ptr + offsets, mask=valid, other=1).to(WIDE)
    g = tl.load(g_ptr + offsets, mask=valid, other=0).to(WIDE)
    y_min = tl.load(scalars_ptr).to(WIDE)
    scale = tl.load(scalars_ptr + 1).to(WIDE)
    z = tl.where(below, -tl.log(y / y_min), y - y_min)
    if WIDE == tl.float64:  # noqa: SIM300 (a constexpr, not a constant)
        c = tl.sqrt(tl.maximum(z, 0.0)) * scale
    else:
        c = tl.sqrt_rn(tl.maximum(z, 0.0)) * scale
    c = tl.where(below, tl.minimum(c, LEFT) + (RIGHT + 1), tl.minimum(c, RIGHT))
    c = tl.where(c != c, 0.0, c)
    index = c.to(tl.int32)
    t = c - index.to(WIDE)
    row = table_ptr + index * (DEGREE + 1)
    p = tl.load(row + DEGREE, mask=valid, other=0)
    for k in tl.static_range(DEGREE - 1, -1, -1):
        p = tl.load(row + k, mask=valid, other=0) + p * t
    d = tl.where(below, p * y, p)
    d = tl.where(y != y, y, d)
    d = narrow(d, dx_ptr.dtype.element_ty).to(WIDE)  # f' in the tensors' dtype, as the op has it
    tl.store(dx_ptr + offsets, narrow(g * d, dx_ptr.dtype.element_ty), mask=valid)


def _table_on(table: Any, dtype: torch.dtype, device: torch.device) -> Tensor:
    key = (id(table), dtype, device)
    found = _COEFFICIENTS.get(key)
    if found is None:
        found = torch.as_tensor(table.coefficients, dtype=dtype).contiguous().to(device)
        _COEFFICIENTS[key] = found
    return found


def backward(table: Any, y: Tensor, below: Tensor, grad: Tensor) -> Tensor:
    """``grad·f'(x)`` from the output ``y``, the packed branch bits ``below`` (x below the
    minimum) and an :class:`relukit.memory.output.InverseTable` (contiguous, grad's shape)."""
    check_mask("relukit.kernels.gpu.output.backward", below, grad)
    if y.shape != grad.shape:
        raise ValueError(
            f"relukit.kernels.gpu.output.backward: output of shape {tuple(y.shape)} and "
            f"gradient of shape {tuple(grad.shape)} differ"
        )
    flat_y = y.detach().contiguous().view(-1)
    flat_g = grad.detach().contiguous().view(-1)
    n = flat_g.numel()
    dx = torch.empty_like(flat_g)
    if n:
        work = torch.float64 if grad.dtype == torch.float64 else torch.float32
        _from_output[grid(n, ROWS * 8)](
            flat_y,
            below,
            flat_g,
            _table_on(table, work, grad.device),
            constants((table.y_min, 1 / table.step), grad.device),
            dx,
            n,
            table.right,
            table.left,
            table.degree,
            wide(grad.dtype),
            ROWS,
            **EXACT,
        )
    return dx.view(grad.shape)
