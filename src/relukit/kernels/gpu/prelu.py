"""PReLU and RReLU in Triton: a one-bit mask plus the few values the mask cannot hold.

PReLU saves the mask ``x > 0`` and, when its weight needs a gradient, the inputs that are not
positive, packed in C order (NaN included: PyTorch's ``x > 0`` is false there). RReLU in
training saves the mask and one random slope per input ≤ 0 (drawn by PyTorch's generator, so
its forward stays PyTorch's; :func:`rrelu_backward` is the kernel here). Element ``i``'s saved
value is number ``k`` of the packed list, ``k`` the count of zero bits before bit ``i``: each
program counts the zeros of its block, a cumulative sum over the blocks gives each its start,
and ``tl.cumsum`` places the elements inside it.

Values are PyTorch's ``_prelu_kernel`` and ``_prelu_kernel_backward``'s, bit for bit:
``y = x > 0 ? x : w·x``; ``dx = x > 0 ? g : w·g``; per element ``dw = x > 0 ? +0 : x·g``,
summed over the broadcast axes by PyTorch's own ``sum_to_size`` on a tensor laid out as x was
(so the sum runs in the order PyTorch's does). RReLU: ``dx = took a slope ? g·slope : g``.

>>> import torch
>>> x, w = torch.tensor([[-2.0, 3.0], [4.0, -1.0]]), torch.tensor([0.5, 0.25])
>>> y, mask, negatives = forward(x, w, True)
>>> y.tolist(), mask.tolist(), negatives.tolist()
([[-1.0, 3.0], [4.0, -0.25]], [6], [-2.0, -1.0])
>>> dx, dw = backward(torch.ones(2, 2), mask, negatives, w, True, [2, 1])
>>> dx.tolist(), dw.tolist()
([[0.5, 1.0], [1.0, 0.25]], [-2.0, -1.0])
"""

from __future__ import annotations

import torch
import triton.language as tl
from torch import Tensor

from relukit.kernels.gpu.launch import EXACT, check_mask, grid, jit, narrow, wide

ROWS = 256
"""Mask bytes per program (2048 elements)."""
BLOCK = ROWS * 8


@jit
def _prelu_forward(
    x_ptr,
    w_ptr,
    y_ptr,
    mask_ptr,
    counts_ptr,
    n,
    inner,
    channels,
    COUNT: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    valid = offsets < n
    x = tl.load(x_ptr + offsets, mask=valid, other=0).to(WIDE)
    w = tl.load(w_ptr + (offsets // inner) % channels, mask=valid, other=0).to(WIDE)
    positive = x > 0
    tl.store(y_ptr + offsets, narrow(tl.where(positive, x, w * x), y_ptr.dtype.element_ty), valid)
    code = tl.where(valid & positive, 1, 0)
    packed = tl.sum(code << tl.arange(0, 8)[None, :], axis=1)
    tl.store(mask_ptr + rows, packed.to(tl.uint8), mask=rows < (n + 7) // 8)
    if COUNT:
        tl.store(counts_ptr + pid, tl.sum(tl.where(valid & (x > 0), 0, tl.where(valid, 1, 0))))


@jit
def _compact(x_ptr, out_ptr, starts_ptr, n, WIDE: tl.constexpr, ROWS: tl.constexpr):
    """The inputs that are not positive, in C order, each block from its start."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    valid = offsets < n
    x = tl.load(x_ptr + offsets, mask=valid, other=0)
    kept = tl.where(valid & (x.to(WIDE) > 0), 0, tl.where(valid, 1, 0))
    per_row = tl.sum(kept, axis=1)
    index = tl.load(starts_ptr + pid) + (tl.cumsum(per_row, axis=0) - per_row)[:, None]
    index += tl.cumsum(kept, axis=1) - kept
    tl.store(out_ptr + index, x, mask=kept == 1)


@jit
def _count_zeros(mask_ptr, counts_ptr, n, ROWS: tl.constexpr):
    """Per program of ``ROWS`` mask bytes: how many of its elements have bit 0."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    packed = tl.load(mask_ptr + rows, mask=rows < (n + 7) // 8, other=0).to(tl.int32)
    code = (packed[:, None] >> tl.arange(0, 8)[None, :]) & 1
    tl.store(counts_ptr + pid, tl.sum(tl.where((offsets < n) & (code == 0), 1, 0)))


@jit
def _from_saved(
    g_ptr,
    mask_ptr,
    saved_ptr,
    starts_ptr,
    w_ptr,
    dx_ptr,
    dw_ptr,
    n,
    inner,
    channels,
    PRELU: tl.constexpr,
    WEIGHT_GRAD: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    """PReLU's (``PRELU``) or RReLU's backward from the mask and the saved values."""
    pid = tl.program_id(0)
    rows = pid.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * 8 + tl.arange(0, 8)[None, :]
    valid = offsets < n
    packed = tl.load(mask_ptr + rows, mask=rows < (n + 7) // 8, other=0).to(tl.int32)
    code = (packed[:, None] >> tl.arange(0, 8)[None, :]) & 1
    g = tl.load(g_ptr + offsets, mask=valid, other=0).to(WIDE)
    if PRELU:
        w = tl.load(w_ptr + (offsets // inner) % channels, mask=valid, other=0).to(WIDE)
        dx = tl.where(code == 1, g, w * g)
    if (not PRELU) or WEIGHT_GRAD:
        kept = tl.where(valid & (code == 0), 1, 0)
        per_row = tl.sum(kept, axis=1)
        index = tl.load(starts_ptr + pid) + (tl.cumsum(per_row, axis=0) - per_row)[:, None]
        index += tl.cumsum(kept, axis=1) - kept
        saved = tl.load(saved_ptr + index, mask=kept == 1, other=0).to(WIDE)
        if PRELU:
            dw = tl.where(code == 1, tl.zeros_like(g), saved * g)
            tl.store(dw_ptr + offsets, narrow(dw, dw_ptr.dtype.element_ty), mask=valid)
        else:
            dx = tl.where(code == 1, g, g * saved)
    tl.store(dx_ptr + offsets, narrow(dx, dx_ptr.dtype.element_ty), mask=valid)


def channel_layout(x: Tensor, weight: Tensor) -> tuple[int, int] | None:
    """``(inner, channels)``: element i takes ``weight[(i // inner) % channels]``; None when
    the weight is not one slope or one per channel (axis 1) of ``x``, as ``torch.prelu`` takes."""
    channels = weight.numel()
    if channels == 1:
        return 1, 1
    if x.dim() < 2 or x.shape[1] != channels:
        return None
    if weight.dim() == x.dim():
        if any(s != 1 for i, s in enumerate(weight.shape) if i != 1):
            return None
    elif weight.dim() != 1:
        return None
    inner = 1
    for size in x.shape[2:]:
        inner *= size
    return inner, channels


def _weight_shape(weight: Tensor, ndim: int) -> list[int]:
    """The shape ``torch.prelu`` broadcasts the weight to (relukit.nn.prelu.broadcast_weight)."""
    if weight.dim() == ndim:
        return list(weight.shape)
    shape = [1] * ndim
    if ndim > 1:
        shape[1] = weight.numel()
    return shape


def _starts(counts: Tensor) -> tuple[Tensor, int]:
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1]) if ends.numel() else 0
    return ends - counts, total


def forward(x: Tensor, weight: Tensor, keep_negatives: bool) -> tuple[Tensor, Tensor, Tensor]:
    """PReLU's ``(y, mask, negatives)`` (see ``relukit::prelu``); y contiguous, x's shape."""
    inner, channels = channel_layout(x, weight) or (0, 0)
    if not channels:
        raise ValueError(
            f"relukit.kernels.gpu.prelu.forward: weight of shape {tuple(weight.shape)} is not "
            f"one slope or one per channel of an input of shape {tuple(x.shape)}"
        )
    flat = x.detach().contiguous().view(-1)
    n = flat.numel()
    y = torch.empty_like(flat)
    mask = torch.empty((n + 7) // 8, dtype=torch.uint8, device=x.device)
    programs = grid(n, BLOCK)
    counts = torch.empty(programs, dtype=torch.int64, device=x.device)
    w = weight.detach().contiguous().view(-1)
    if n:
        _prelu_forward[programs](
            flat,
            w,
            y,
            mask,
            counts,
            n,
            inner,
            channels,
            keep_negatives,
            wide(x.dtype),
            ROWS,
            **EXACT,
        )
    negatives = x.new_empty(0)
    if keep_negatives and n:
        starts, total = _starts(counts)
        negatives = x.new_empty(total)
        _compact[programs](flat, negatives, starts, n, wide(x.dtype), ROWS, **EXACT)
    return y.view(x.shape), mask, negatives


def _saved_starts(mask: Tensor, n: int) -> Tensor:
    programs = grid(n, BLOCK)
    counts = torch.empty(programs, dtype=torch.int64, device=mask.device)
    _count_zeros[programs](mask, counts, n, ROWS, **EXACT)
    return _starts(counts)[0]


def backward(
    grad: Tensor,
    mask: Tensor,
    negatives: Tensor,
    weight: Tensor,
    weight_grad: bool,
    input_strides: list[int],
) -> tuple[Tensor, Tensor]:
    """PReLU's gradients for the input and (if ``weight_grad``) the weight, from what
    :func:`forward` saved; ``input_strides`` is the layout x had (the weight's sum runs in its
    order). The weight's gradient is zeros when not asked for."""
    check_mask("relukit.kernels.gpu.prelu.backward", mask, grad)
    inner, channels = channel_layout(grad, weight) or (0, 0)
    if not channels:
        raise ValueError(
            f"relukit.kernels.gpu.prelu.backward: weight of shape {tuple(weight.shape)} does not "
            f"fit a gradient of shape {tuple(grad.shape)}"
        )
    flat = grad.detach().contiguous().view(-1)
    n = flat.numel()
    dx = torch.empty_like(flat)
    dw = torch.empty_like(flat) if weight_grad else dx
    if n:
        starts = _saved_starts(mask, n) if weight_grad else mask
        w = weight.detach().contiguous().view(-1)
        _from_saved[grid(n, BLOCK)](
            flat,
            mask.contiguous(),
            negatives if weight_grad else flat,
            starts,
            w,
            dx,
            dw,
            n,
            inner,
            channels,
            True,
            weight_grad,
            wide(grad.dtype),
            ROWS,
            **EXACT,
        )
    if not weight_grad:
        return dx.view(grad.shape), torch.zeros_like(weight)
    per_element = dw.view(grad.shape)
    if per_element.stride() != tuple(input_strides):
        layout = torch.empty_strided(
            grad.shape, input_strides, dtype=grad.dtype, device=grad.device
        )
        per_element = layout.copy_(per_element)
    grad_w = per_element.sum_to_size(_weight_shape(weight, grad.dim()))
    return dx.view(grad.shape), grad_w.reshape(weight.shape)


def rrelu_backward(grad: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
    """RReLU's ``grad·noise``: the saved slope where the input took one, 1 elsewhere."""
    check_mask("relukit.kernels.gpu.prelu.rrelu_backward", mask, grad)
    flat = grad.detach().contiguous().view(-1)
    n = flat.numel()
    dx = torch.empty_like(flat)
    if n:
        _from_saved[grid(n, BLOCK)](
            flat,
            mask.contiguous(),
            slopes,
            _saved_starts(mask, n),
            flat,
            dx,
            dx,
            n,
            1,
            1,
            False,
            False,
            wide(grad.dtype),
            ROWS,
            **EXACT,
        )
    return dx.view(grad.shape)
