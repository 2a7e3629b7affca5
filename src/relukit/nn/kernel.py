"""Which kernel runs a mask member's forward and backward, and the layout they run in.

One :class:`Masks` per (member, parameters, dtype) holds the choice, made once from the
registry: the member's compiled formula (``Activation.kernel``) and

- the compiled CPU kernels (:func:`relukit.kernels.dispatch.mask_kernels`, the one entry point
  from relukit.nn into relukit.kernels), where :meth:`Masks.compiled` says they take the tensor:
  a CPU float32/float64 tensor and a formula in :data:`EXACT`, whose compiled forward, mask
  and backward are PyTorch's bit for bit (``tests/nn/test_kernel.py`` holds them to that, NaN,
  ±0 and ±inf included). Forward and backward ask the same predicate;
- relukit's Triton kernels (:mod:`relukit.kernels.gpu`) where :func:`triton` says they take
  the tensor: a CUDA tensor of any float dtype, a formula they compute, and Triton importable
  (the ``relukit[gpu]`` extra). They give the PyTorch rule's outputs, masks and gradients bit
  for bit (``tests/kernels/gpu`` holds them to that, in Triton's interpreter);
- otherwise the PyTorch rule of the formula (:mod:`relukit.nn.rules`: any device and dtype);
- a formula without a PyTorch rule runs the registry's own mask path
  (:mod:`relukit.kernels.mask`), which works on tensors of any device too.

Layout: the work runs on the input's elements in memory order (:func:`memory_order`), so a
channels_last input gives a channels_last output and input gradient with no copy, and the mask
holds the codes in that order (C order for a contiguous input). A gradient of another layout
is first copied into the input's.

Example:
    >>> import torch
    >>> masks = entry("relu", [], torch.float32)
    >>> y, mask = masks.forward(torch.tensor([-1.0, 2.0]))
    >>> masks.backward(torch.tensor([5.0, 7.0]), mask).tolist()
    [0.0, 7.0]
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from relukit.family import lookup
from relukit.kernels import gpu
from relukit.kernels import mask as mask_path
from relukit.kernels.arrays import Input, as_input
from relukit.kernels.cpu.team import START, STOP, Part, Segments, one_bit_mask
from relukit.kernels.gpu import FORMULAS as GPU_FORMULAS
from relukit.kernels.pages import empty_tensor
from relukit.nn.rules import RULES, MaskRule, params_key, rule

KERNEL_DTYPES = (torch.float32, torch.float64)

EXACT = frozenset({"relu", "leaky_relu", "hardtanh"})
"""Formulas whose compiled forward, mask and backward are PyTorch's bit for bit (leaky with a
zero slope excepted: PyTorch gives 0·(−inf) = NaN and g·0 = −0 where the kernels give the
limit 0 and +0)."""


@functools.lru_cache(maxsize=1)
def kernels_available() -> bool:
    """Are relukit's compiled CPU kernels importable and working on this machine?"""
    try:
        from relukit.kernels import cpu
    except ImportError:
        return False
    return bool(cpu.available())


class ReferenceRule(MaskRule):
    """The registry's own mask path (:mod:`relukit.kernels.mask`) for a formula without a
    PyTorch rule: the member's formulas evaluated on tensors of any device."""

    def __init__(self, spec: Any, bound: dict[str, Any]) -> None:
        self.spec, self.bound = spec, bound
        self.bits = spec.derivative_bits(bound)

    def _input(self, t: Tensor) -> Input:
        return as_input(t, f"relukit.nn.functional.{self.spec.name}")

    def forward_with_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return mask_path.forward_with_mask(self.spec, self._input(x), self.bound, self.bits)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_mask(x)[0]

    def backward_from_mask(self, grad_out: Tensor, mask: Tensor) -> Tensor:
        source = self._input(grad_out)
        return mask_path.backward_from_mask(self.spec, source, mask, self.bound, self.bits)


class Masks:
    """The mask forward and backward of one bound member on tensors of one dtype."""

    def __init__(self, member: str, values: Sequence[float], dtype: torch.dtype) -> None:
        spec = lookup(member)
        bound = spec.bind(spec.decode(list(values)))
        self.bits = spec.derivative_bits(bound)
        formula, args = spec.kernel(bound) if spec.kernel is not None else ("", ())
        self.rule: MaskRule = (
            rule(formula, args) if formula in RULES else ReferenceRule(spec, bound)
        )
        self.gpu = (formula, tuple(args)) if formula in GPU_FORMULAS else None
        self.kernels: Any = None
        exact = formula in EXACT and not (formula == "leaky_relu" and args[0] == 0)
        if exact and dtype in KERNEL_DTYPES and kernels_available():
            from relukit.kernels import dispatch

            numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
            self.kernels = dispatch.mask_kernels(spec, bound, numpy_dtype)

    def compiled(self, t: Tensor) -> bool:
        """The one predicate: do the compiled kernels take ``t`` (forward or backward)?"""
        return self.kernels is not None and type(t) is Tensor and t.device.type == "cpu"

    def triton(self, t: Tensor) -> bool:
        """Do the Triton kernels take ``t`` (forward or backward)?"""
        return self.gpu is not None and triton(t)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), mask)``: y in x's layout, the codes in x's memory order."""
        if self.kernels is not None and _direct(x) and x.numel() and not self.triton(x):
            # the common case first, in as few PyTorch calls as it takes
            y = empty_tensor(x.shape, x.dtype)
            mask = torch.empty((x.numel() * self.bits + 7) // 8, dtype=torch.uint8)
            self.kernels.forward(_flat(x), _flat(y), mask.numpy())
            return y, mask
        order = memory_order(x)
        flat = in_order(x, order)
        n = flat.numel()
        if self.triton(flat):
            from relukit.kernels.gpu import piecewise

            y, mask = piecewise.forward_with_mask(*self.gpu, flat)
        elif n and self.kernels is not None and self.compiled(flat):
            y = empty_tensor(n, flat.dtype)
            mask = torch.empty((n * self.bits + 7) // 8, dtype=torch.uint8)
            self.kernels.forward(flat.numpy(), y.numpy(), mask.numpy())
        else:
            y, mask = self.rule.forward_with_mask(flat)
        return from_order(y, x, order), mask

    def forward_(self, x: Tensor) -> Tensor:
        """The forward written into ``x``; returns the mask of x's old values."""
        flat = in_order(x, memory_order(x))
        n = flat.numel()
        if self.triton(flat) and _shares(flat, x):
            from relukit.kernels.gpu import piecewise

            return piecewise.forward_with_mask(*self.gpu, flat, out=flat)[1]
        if n and self.kernels is not None and self.compiled(flat) and _shares(flat, x):
            mask = torch.empty((n * self.bits + 7) // 8, dtype=torch.uint8)
            view = flat.numpy()
            self.kernels.forward(view, view, mask.numpy())
            return mask
        y, mask = self.forward(x)
        x.copy_(y)
        return mask

    def backward(self, grad: Tensor, mask: Tensor, order: Sequence[int] = ()) -> Tensor:
        """``grad·f'(x)`` from the mask; ``order`` is x's memory order (empty: C order)."""
        direct = self.kernels is not None and _direct(grad) and mask.is_contiguous()
        if not order and direct and grad.numel() and not self.triton(grad):
            dx = empty_tensor(grad.shape, grad.dtype)
            self.kernels.backward(_flat(grad), mask.numpy(), _flat(dx))
            return dx
        flat = in_order(grad, order)
        n = flat.numel()
        if self.triton(flat):
            from relukit.kernels.gpu import piecewise

            dx = piecewise.backward_from_mask(*self.gpu, flat, mask)
        elif n and self.kernels is not None and self.compiled(flat) and mask.is_contiguous():
            dx = empty_tensor(n, flat.dtype)
            self.kernels.backward(flat.numpy(), mask.numpy(), dx.numpy())
        else:
            dx = self.rule.backward_from_mask(flat, mask)
        return from_order(dx, grad, order)


def _direct(t: Tensor) -> bool:
    """A C-contiguous plain CPU tensor (of the dtype its :class:`Masks` was made for)."""
    return type(t) is Tensor and t.is_cpu and t.is_contiguous()


def _flat(t: Tensor) -> Any:
    """A C-contiguous tensor's elements as a 1-D NumPy view."""
    return t.detach().numpy().reshape(-1)


def triton(t: Tensor) -> bool:
    """The one predicate for relukit's Triton kernels (masks, PReLU, RReLU): is ``t`` a plain
    tensor they take (CUDA, a float dtype, Triton importable)?"""
    return type(t) is Tensor and gpu.takes(t)


def _shares(flat: Tensor, x: Tensor) -> bool:
    return flat.data_ptr() == x.data_ptr()


@functools.lru_cache(maxsize=512)
def _entry(member: str, key: tuple[tuple[float, bool], ...], dtype: torch.dtype) -> Masks:
    return Masks(member, [value for value, _ in key], dtype)


def entry(member: str, values: Sequence[float], dtype: torch.dtype) -> Masks:
    """The :class:`Masks` of ``member`` with its parameters encoded by ``Activation.encode``
    (cached: -0.0 and 0.0 are told apart)."""
    return _entry(member, params_key(values), dtype)


# ---------------------------------------------------------------------------------------------
# prelu's and rrelu's per-element slopes: split by a mask, expanded back


def _plain(t: Tensor) -> bool:
    """Do the compiled kernels take this 1-D contiguous tensor?"""
    return (
        type(t) is Tensor
        and t.device.type == "cpu"
        and t.dtype in KERNEL_DTYPES
        and t.is_contiguous()
        and kernels_available()
    )


def split(flat: Tensor, nan_passes: bool, keep: bool) -> tuple[Tensor, Tensor, int]:
    """``(mask, rest, count)`` of 1-D ``flat``: the packed codes ``x > 0`` (``not x <= 0``
    with ``nan_passes``), the elements of code 0 in order (empty unless ``keep``), their count."""
    n = flat.numel()
    if _plain(flat):
        from relukit.kernels import cpu

        mask = torch.empty((n + 7) // 8, dtype=torch.uint8)
        rest = torch.empty(n if keep else 0, dtype=flat.dtype)
        count = cpu.split(flat.detach().numpy(), mask.numpy(), rest.numpy(), nan_passes, keep)
        # a copy of exactly ``count`` elements: a view would keep all n alive with it
        return mask, rest[:count].clone() if keep else rest, count
    passes = torch.le(flat, 0).logical_not_() if nan_passes else flat > 0
    rest = torch.masked_select(flat, ~passes) if keep else flat.new_empty(0)
    count = rest.numel() if keep else int(n - passes.sum())
    return mask_path.pack_bits(passes, scratch=True), rest, count


def _pieces(n: int) -> list[tuple[int, int]]:
    """The chunks one call splits into on relukit's threads (multiples of 64 elements). The
    fused kernels take 0.4-2 ns an element, as the smooth members' do, not a copy's 0.1: they
    split at the grain measured for those in float32 (:data:`~relukit.kernels.cpu.host.SMOOTH`),
    so that calls from :data:`relukit.nn.functional.NATIVE_SLOPES` elements up use every
    thread, as PyTorch's operations do."""
    from relukit.kernels.cpu.host import _chunks

    return _chunks(n, False)


def _run(
    kernel: Any, args: tuple[Any, ...], chunks: list[tuple[int, int]], counts: bool = False
) -> list[int]:
    """``kernel`` over the chunks at once on relukit's threads (see
    :func:`relukit.kernels.cpu.host.run_chunks`); with ``counts``, the count each call
    returned, in order."""
    from relukit.kernels.cpu.host import run_chunks

    return run_chunks(kernel, args, chunks, returns=counts)


def _offsets(counts: list[int]) -> np.ndarray:
    """Where each chunk's compressed elements start in the array of all of them, and the end."""
    return np.concatenate((np.zeros(1, np.int64), np.cumsum(counts, dtype=np.int64)))


def fused_slopes(x: Tensor, weight: Tensor | None = None) -> bool:
    """Do the fused kernels of prelu (with ``weight``: one slope, or one per channel on axis 1)
    and rrelu take ``x`` (a C-contiguous CPU float32/float64 tensor)?"""
    if not (x.is_contiguous() and _plain(x.detach().view(-1))):
        return False
    return weight is None or (
        weight.dtype == x.dtype
        and weight.device.type == "cpu"
        and (weight.numel() == 1 or (x.dim() >= 2 and weight.numel() == x.shape[1]))
    )


def _prelu_slopes(weight: Tensor, shape: Sequence[int]) -> tuple[Any, int, Any, int]:
    """``(w, inner, pattern, period)`` as :mod:`relukit.kernels.cpu.slopes` takes them."""
    from relukit.kernels.cpu.host import slope_layout

    return slope_layout(weight.detach().contiguous().view(-1).numpy(), tuple(shape), 1)


def prelu_forward(x: Tensor, weight: Tensor, keep: bool) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, mask, negatives)`` of PReLU on a C-contiguous CPU tensor (:func:`fused_slopes`):
    the mask ``x > 0``, and with ``keep`` the other inputs in order (else an empty tensor)."""
    from relukit.kernels.cpu import slopes

    xs = x.detach().view(-1).numpy()
    n = xs.size
    mask = torch.empty((n + 7) // 8, dtype=torch.uint8)
    chunks = _pieces(n)
    counts = _run(slopes.count_off, (Part(xs), True), chunks, True) if keep else [0] * len(chunks)
    offsets = _offsets(counts)
    rest = torch.empty(int(offsets[-1]), dtype=x.dtype)
    y = empty_tensor(n, x.dtype)
    w, inner, pattern, period = _prelu_slopes(weight, x.shape)
    part, words = one_bit_mask(mask.numpy(), n)
    args = (
        Part(xs), START, w, inner, pattern, period, Part(y.numpy()), words, part,
        Segments(rest.numpy(), offsets), keep,
    )  # fmt: skip
    _run(slopes.prelu_forward, args, chunks)
    return y.view(x.shape), mask, rest


def _zero_bits(mask: Tensor, chunks: list[tuple[int, int]]) -> list[int]:
    from relukit.kernels.cpu import slopes

    m = mask.numpy()
    words = m[: m.size // 8 * 8].view(np.uint64)
    return _run(slopes.zero_bits, (words, m, START, STOP), chunks, True)


def prelu_backward(
    grad: Tensor, mask: Tensor, negatives: Tensor, weight: Tensor, keep: bool
) -> tuple[Tensor, Tensor]:
    """``(grad_x, grad_w)`` of PReLU element by element (``grad_w`` of grad's shape, for
    PyTorch's sum; empty without ``keep``) from the mask and the saved ``negatives``; grad is
    C-contiguous (:func:`fused_slopes`)."""
    from relukit.kernels.cpu import slopes

    gs = grad.view(-1).numpy()
    n = gs.size
    chunks = _pieces(n)
    counts = _zero_bits(mask, chunks) if keep else [0] * len(chunks)
    gx = empty_tensor(n, grad.dtype)
    gw = empty_tensor(n if keep else 0, grad.dtype)
    ws = gw.numpy()
    w, inner, pattern, period = _prelu_slopes(weight, grad.shape)
    part, words = one_bit_mask(mask.numpy(), n)
    args = (
        Part(gs), START, w, inner, pattern, period, words, part,
        Segments(negatives.numpy(), _offsets(counts)), Part(gx.numpy()),
        Part(ws) if keep else ws, keep,
    )  # fmt: skip
    _run(slopes.prelu_backward, args, chunks)
    return gx.view(grad.shape), gw.view(grad.shape) if keep else gw


def rrelu_forward(
    x: Tensor, low: float, high: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``(y, mask, slopes)`` of RReLU in training on a C-contiguous CPU tensor
    (:func:`fused_slopes`): one uniform double per element ``x <= 0`` drawn in C order as
    PyTorch draws them, ``low``/``high`` already rounded to the working precision."""
    from relukit.kernels.cpu import slopes

    xs = x.detach().view(-1).numpy()
    n = xs.size
    mask = torch.empty((n + 7) // 8, dtype=torch.uint8)
    chunks = _pieces(n)
    offsets = _offsets(_run(slopes.count_off, (Part(xs), False), chunks, True))
    u = torch.empty(int(offsets[-1]), dtype=torch.float64).uniform_(0, 1, generator=generator)
    kept = torch.empty(u.numel(), dtype=x.dtype)
    y = empty_tensor(n, x.dtype)
    part, words = one_bit_mask(mask.numpy(), n)
    args = (
        Part(xs), Segments(u.numpy(), offsets), low, high, Part(y.numpy()), words, part,
        Segments(kept.numpy(), offsets),
    )  # fmt: skip
    _run(slopes.rrelu_forward, args, chunks)
    return y.view(x.shape), mask, kept


def rrelu_backward(grad: Tensor, mask: Tensor, kept: Tensor) -> Tensor:
    """``grad·noise`` from the mask and the saved slopes; grad is C-contiguous."""
    from relukit.kernels.cpu import slopes

    gs = grad.view(-1).numpy()
    n = gs.size
    chunks = _pieces(n)
    offsets = _offsets(_zero_bits(mask, chunks))
    gx = empty_tensor(n, grad.dtype)
    part, words = one_bit_mask(mask.numpy(), n)
    args = (Part(gs), words, part, Segments(kept.numpy(), offsets), Part(gx.numpy()))
    _run(slopes.rrelu_backward, args, chunks)
    return gx.view(grad.shape)


def expand(mask: Tensor, values: Tensor, fill: float, n: int) -> Tensor:
    """A 1-D tensor of ``n`` elements: ``fill`` where the mask's bit is 1, the next of
    ``values`` where it is 0 (the inverse of :func:`split`)."""
    out = torch.empty(n, dtype=values.dtype, device=values.device)
    if _plain(values) and mask.is_contiguous() and mask.device.type == "cpu":
        from relukit.kernels import cpu

        cpu.expand(mask.numpy(), values.detach().numpy(), fill, out.numpy())
        return out
    out.fill_(fill)
    return out.masked_scatter_(~mask_path.unpack_bits(mask, n), values)


def scale(src: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
    """1-D ``src`` where the mask's bit is 1, ``src·`` the next slope where it is 0 (one
    rounding in src's dtype): rrelu's forward and backward."""
    n = src.numel()
    if _plain(src) and _plain(slopes) and slopes.dtype == src.dtype and mask.is_contiguous():
        from relukit.kernels import cpu

        out = torch.empty_like(src)
        cpu.scale(src.detach().numpy(), mask.numpy(), slopes.detach().numpy(), out.numpy())
        return out
    off = ~mask_path.unpack_bits(mask, n)
    out = src.clone()
    out[off] = src[off] * slopes
    return out


# ---------------------------------------------------------------------------------------------
# layout


def memory_order(t: Tensor) -> tuple[int, ...]:
    """t's dims from the slowest-varying in memory to the fastest; ``()`` when t is
    C-contiguous (the common case, which then costs nothing more)."""
    if t.is_contiguous():
        return ()
    strides = t.stride()
    order = tuple(sorted(range(t.dim()), key=lambda d: -strides[d]))
    return () if order == tuple(range(t.dim())) else order


def in_order(t: Tensor, order: Sequence[int]) -> Tensor:
    """``t``'s elements as a contiguous 1-D tensor in ``order`` (``()``: C order), detached: a
    view when t is dense in that order, else a copy."""
    t = t.detach()
    if order:
        t = t.permute(*order)
    if t.is_contiguous():
        return t.view(-1)
    return t.reshape(-1).contiguous()


def from_order(flat: Tensor, like: Tensor, order: Sequence[int]) -> Tensor:
    """The inverse of :func:`in_order`: ``flat`` shaped as ``like``, laid out in ``order``."""
    if not order:
        return flat.view(like.shape)
    shape = [like.shape[d] for d in order]
    inverse = sorted(range(len(order)), key=lambda i: order[i])
    return flat.view(shape).permute(*inverse)


def order_strides(shape: Sequence[int], order: Sequence[int]) -> list[int]:
    """The strides of a tensor of ``shape`` dense in ``order`` (what the fakes promise)."""
    order = order or range(len(shape))
    strides = [0] * len(shape)
    step = 1
    for d in reversed(order):
        strides[d] = step
        step *= max(shape[d], 1)
    return strides
