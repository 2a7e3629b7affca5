"""Forward with a packed mask, and backward from the mask, for the one-mask formulas in Triton.

Formulas are the registry's compiled formulas (``Activation.kernel``), with their parameters in
the registry's order: ``relu`` () for relu; ``leaky_relu`` (negative_slope,) for leaky_relu and
rrelu outside training; ``hardtanh`` (min_val, max_val) for hardtanh and relu6;
``general_relu`` (negative_slope, threshold, cap, capped) for general_relu
(:data:`relukit.kernels.gpu.FORMULAS`).

One program handles ``ROWS`` rows of ``8 // bits`` consecutive elements, one mask byte per
row, so the packing is a sum of shifted codes along the row: no second pass over memory, no
table. Per element the forward reads the input and writes the output and ``bits`` bits (8.125
bytes for float32 at one bit); the backward reads the gradient and the bits and writes the
result.

What each formula computes, as PyTorch does (its rules, :mod:`relukit.nn.rules`, are the oracle
in the tests):

- relu: ``y = x < 0 ? 0 : x`` (so relu(−0) = −0, NaN passes), code ``not x <= 0``;
  backward ``code ? g : +0``.
- leaky_relu: ``y = x > 0 ? x : x·slope``, code ``x > 0``; backward ``code ? g : g·slope``.
- hardtanh: ``y = x < lo ? lo : x > hi ? hi : x`` (NaN passes), with the bounds rounded to x's
  dtype; code ``lo < x < hi``; backward ``code ? g : +0``.
- general_relu: computed in float32 for 16-bit inputs; codes numbered as the registry numbers them
  (:mod:`relukit.kernels.mask`), one bit or two.

>>> import torch
>>> args = (0.5, 1.0, 3.0, 1.0)  # general_relu: slope 0.5, threshold 1, cap 3
>>> y, mask = forward_with_mask("general_relu", args, torch.tensor([0.0, 2.0, 5.0]))
>>> y.tolist(), mask.tolist()
([-0.5, 2.0, 3.0], [36])
>>> backward_from_mask("general_relu", args, torch.ones(3), mask).tolist()
[0.5, 1.0, 0.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import triton.language as tl
from torch import Tensor

from relukit.kernels.gpu.launch import EXACT, check_mask, constants, grid, jit, narrow, wide

RELU, LEAKY, CLIP, GENERAL = 0, 1, 2, 3
ZERO, PASS, SCALE = 0, 1, 2
"""What the backward gives on a code: +0, the gradient, or the gradient times a slope."""

ROWS = 256
"""Mask bytes per program: 2048 elements at one bit, 1024 at two."""


@dataclass(frozen=True)
class Plan:
    """A formula with its parameters bound, as the kernels take it.

    ``params`` are the forward's three float parameters; ``codes`` the general_relu piece codes
    (below, identity, capped); ``kinds`` and ``scales`` the backward on each code.
    """

    formula: int
    bits: int
    params: tuple[float, float, float]
    codes: tuple[int, int, int]
    capped: bool
    zero_slope: bool
    kinds: tuple[int, int, int, int]
    scales: tuple[float, float, float, float]
    round_bounds: bool


def _general(slope: float, threshold: float, cap: float, capped: float) -> Plan:
    capped = bool(capped)
    values = (slope, 1.0, 0.0) if capped else (slope, 1.0)
    derivatives = tuple(dict.fromkeys(values))
    codes = tuple(derivatives.index(v) for v in values) + (0,) * (3 - len(values))
    bits = 1 if len(derivatives) <= 2 else 2
    # The backward of each code, as the PyTorch rule forms it (relukit.nn.rules.GeneralRule).
    if bits == 2:
        kinds, scales = (SCALE, PASS, ZERO, ZERO), (slope, 1.0, 0.0, 0.0)
    elif len(derivatives) == 1:
        kinds, scales = (SCALE, SCALE, ZERO, ZERO), (1.0, 1.0, 0.0, 0.0)
    elif derivatives == (1.0, 0.0):
        kinds, scales = (PASS, ZERO, ZERO, ZERO), (0.0,) * 4
    elif derivatives[0] == 0.0:
        kinds, scales = (ZERO, PASS, ZERO, ZERO), (0.0,) * 4
    else:
        kinds, scales = (SCALE, PASS, ZERO, ZERO), (derivatives[0], 0.0, 0.0, 0.0)
    return Plan(
        GENERAL,
        bits,
        (slope, cap if capped else 0.0, threshold),
        codes,  # type: ignore[arg-type]
        capped,
        slope == 0,
        kinds,  # type: ignore[arg-type]
        scales,  # type: ignore[arg-type]
        False,
    )


@functools.lru_cache(maxsize=256)
def _plan_for(formula: str, args: tuple[tuple[float, bool], ...]) -> Plan:
    p = tuple(math.copysign(abs(v), -1.0 if negative else 1.0) for v, negative in args)
    none = (0, 0, 0)
    one_bit = (ZERO, PASS, ZERO, ZERO), (0.0,) * 4
    if formula == "relu" and not p:
        return Plan(RELU, 1, (0.0, 0.0, 0.0), none, False, False, *one_bit, False)
    if formula == "leaky_relu" and len(p) == 1:
        kinds = (SCALE, PASS, ZERO, ZERO)
        return Plan(LEAKY, 1, (p[0], 0.0, 0.0), none, False, False, kinds, (p[0], 0, 0, 0), False)
    if formula == "hardtanh" and len(p) == 2:
        return Plan(CLIP, 1, (p[0], p[1], 0.0), none, False, False, *one_bit, True)
    if formula == "general_relu" and len(p) == 4:
        return _general(*p)
    raise ValueError(
        f"relukit.kernels.gpu.piecewise: no kernel for formula {formula!r} with parameters {p}"
    )


def plan(formula: str, args: Sequence[float]) -> Plan:
    """The :class:`Plan` of ``formula`` with ``args`` (ValueError for an unknown formula)."""
    key = tuple((float(v), math.copysign(1.0, float(v)) < 0) for v in args)
    return _plan_for(formula, key)


def _bounds(p: Plan, dtype: torch.dtype) -> tuple[float, float, float]:
    """hardtanh's bounds rounded to x's dtype, as PyTorch's clamp and comparison round them."""
    if not p.round_bounds:
        return p.params
    lo, hi, c = p.params
    rounded = torch.tensor([lo, hi], dtype=torch.float64).to(dtype).to(torch.float64).tolist()
    return rounded[0], rounded[1], c


@jit
def _forward(
    x_ptr,
    y_ptr,
    mask_ptr,
    params_ptr,
    n,
    nbytes,
    FORMULA: tl.constexpr,
    BITS: tl.constexpr,
    CODE_BELOW: tl.constexpr,
    CODE_IDENTITY: tl.constexpr,
    CODE_CAPPED: tl.constexpr,
    CAPPED: tl.constexpr,
    ZERO_SLOPE: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    PER: tl.constexpr = 8 // BITS
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * PER + tl.arange(0, PER)[None, :]
    valid = offsets < n
    x = tl.load(x_ptr + offsets, mask=valid, other=0)
    w = x.to(WIDE)
    a = tl.load(params_ptr)
    b = tl.load(params_ptr + 1)
    c = tl.load(params_ptr + 2)
    zero = tl.zeros_like(w)
    if FORMULA == 0:  # relu
        y = tl.where(w < 0, zero, w)
        code = tl.where(w <= 0, 0, 1)
    elif FORMULA == 1:  # leaky
        y = tl.where(w > 0, w, w * a.to(WIDE))
        code = tl.where(w > 0, 1, 0)
    elif FORMULA == 2:  # clip: hardtanh, relu6
        lo = a.to(WIDE)
        hi = b.to(WIDE)
        y = tl.where(w < lo, lo, tl.where(w > hi, hi, w))
        code = tl.where((w > lo) & (w < hi), 1, 0)
    else:  # general (Keras's relu): a slope, b cap, c threshold
        threshold = c.to(WIDE)
        below = w <= threshold  # (NaN is not: it passes through)
        if ZERO_SLOPE:
            low = tl.where(w < threshold, zero, w - threshold)
        else:
            low = (w - threshold) * a.to(WIDE)
        code = tl.where(below, CODE_BELOW, CODE_IDENTITY)
        if CAPPED:
            # above the threshold, x clipped to [0, max_value]; flat where the clip holds
            cap = b.to(WIDE)
            upper = tl.where(w >= cap, cap, tl.where(w <= 0, zero, w))
            flat = ((w >= cap) | (w <= 0)) & (w > threshold)  # (w <= 0 only if threshold < 0)
            code = tl.where(flat, CODE_CAPPED, code)
        else:
            upper = w
        y = tl.where(below, low, upper)
    tl.store(y_ptr + offsets, narrow(y, y_ptr.dtype.element_ty), mask=valid)
    code = tl.where(valid, code, 0)
    packed = tl.sum(code << (tl.arange(0, PER) * BITS)[None, :], axis=1)
    tl.store(mask_ptr + rows, packed.to(tl.uint8), mask=rows < nbytes)


@jit
def _backward(
    g_ptr,
    mask_ptr,
    dx_ptr,
    scales_ptr,
    n,
    nbytes,
    BITS: tl.constexpr,
    K0: tl.constexpr,
    K1: tl.constexpr,
    K2: tl.constexpr,
    K3: tl.constexpr,
    WIDE: tl.constexpr,
    ROWS: tl.constexpr,
):
    PER: tl.constexpr = 8 // BITS
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offsets = rows[:, None] * PER + tl.arange(0, PER)[None, :]
    valid = offsets < n
    packed = tl.load(mask_ptr + rows, mask=rows < nbytes, other=0).to(tl.int32)
    code = (packed[:, None] >> (tl.arange(0, PER) * BITS)[None, :]) & ((1 << BITS) - 1)
    g = tl.load(g_ptr + offsets, mask=valid, other=0).to(WIDE)
    zero = tl.zeros_like(g)
    s0 = tl.load(scales_ptr)
    s1 = tl.load(scales_ptr + 1)
    s2 = tl.load(scales_ptr + 2)
    s3 = tl.load(scales_ptr + 3)
    # ZERO = 0, PASS = 1, SCALE = 2, unrolled over the (at most four) codes
    if K0 == 0:
        dx = zero
    elif K0 == 1:
        dx = g
    else:
        dx = g * s0.to(WIDE)
    if K1 == 0:
        dx = tl.where(code == 1, zero, dx)
    elif K1 == 1:
        dx = tl.where(code == 1, g, dx)
    else:
        dx = tl.where(code == 1, g * s1.to(WIDE), dx)
    if BITS == 2:
        if K2 == 0:
            dx = tl.where(code == 2, zero, dx)
        elif K2 == 1:
            dx = tl.where(code == 2, g, dx)
        else:
            dx = tl.where(code == 2, g * s2.to(WIDE), dx)
        if K3 == 0:
            dx = tl.where(code == 3, zero, dx)
        elif K3 == 1:
            dx = tl.where(code == 3, g, dx)
        else:
            dx = tl.where(code == 3, g * s3.to(WIDE), dx)
    tl.store(dx_ptr + offsets, narrow(dx, dx_ptr.dtype.element_ty), mask=valid)


def _flat(t: Tensor) -> Tensor:
    return t.detach().contiguous().view(-1)


def forward_with_mask(
    formula: str, args: Sequence[float], x: Tensor, *, out: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """``(f(x), mask)``: the forward (contiguous, x's shape) and the packed mask of ``x``.

    ``out`` (a contiguous tensor of x's shape and dtype, ``x`` itself for the in-place form)
    receives the forward; each element is read before it is written.
    """
    p = plan(formula, args)
    flat = _flat(x)
    n = flat.numel()
    y = torch.empty_like(flat) if out is None else out
    mask = torch.empty((n * p.bits + 7) // 8, dtype=torch.uint8, device=x.device)
    a, b, c = _bounds(p, x.dtype)
    below, identity, capped = p.codes
    if n == 0:
        return y.view(x.shape), mask
    _forward[grid(n, ROWS * 8 // p.bits)](
        flat,
        y,
        mask,
        constants((a, b, c), x.device),
        n,
        mask.numel(),
        FORMULA=p.formula,
        BITS=p.bits,
        CODE_BELOW=below,
        CODE_IDENTITY=identity,
        CODE_CAPPED=capped,
        CAPPED=p.capped,
        ZERO_SLOPE=p.zero_slope,
        WIDE=wide(x.dtype),
        ROWS=ROWS,
        **EXACT,
    )
    return y.view(x.shape), mask


def backward_from_mask(formula: str, args: Sequence[float], grad: Tensor, mask: Tensor) -> Tensor:
    """``grad·f'(x)`` from the packed mask of ``x`` (contiguous, grad's shape)."""
    p = plan(formula, args)
    check_mask("relukit.kernels.gpu.piecewise.backward_from_mask", mask, grad, p.bits)
    flat = _flat(grad)
    n = flat.numel()
    dx = torch.empty_like(flat)
    k0, k1, k2, k3 = p.kinds
    if n == 0:
        return dx.view(grad.shape)
    _backward[grid(n, ROWS * 8 // p.bits)](
        flat,
        mask.contiguous(),
        dx,
        constants(p.scales, grad.device),
        n,
        mask.numel(),
        BITS=p.bits,
        K0=k0,
        K1=k1,
        K2=k2,
        K3=k3,
        WIDE=wide(grad.dtype),
        ROWS=ROWS,
        **EXACT,
    )
    return dx.view(grad.shape)
