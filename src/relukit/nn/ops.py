"""relukit's PyTorch operators, registered with ``torch.library`` so ``torch.compile`` sees them.

Each forward operator returns the activation and what its backward needs (a packed mask, and
for prelu and rrelu the few values the mask cannot hold); each backward operator rebuilds the
gradient from those alone. Every operator has a fake implementation (shapes and dtypes only) so
a model that uses them compiles with ``fullgraph=True``; their autograd formulas are registered
in :mod:`relukit.nn.autograd`, which also holds the ``torch.autograd.Function`` objects of the
in-place variants ``masked_inplace`` and ``rrelu_inplace`` (a mutating operator takes no
registered autograd formula).

Operators (namespace ``relukit``):

==================  ===================================================  =================
operator            returns                                              saved per element
==================  ===================================================  =================
``masked``          (y, mask) for relu, leaky_relu, relu6, hardtanh,     1 bit (2 bits for
                    general_relu                                         general_relu with
                                                                         slope and cap)
``prelu``           (y, mask, negatives): the inputs ≤ 0 (or NaN) kept   1 bit + the inputs
                    only when the weight needs a gradient                ≤ 0
``rrelu``           (y, mask, slopes): the random slopes of the inputs   1 bit + a slope per
                    ≤ 0, drawn from torch's generator as PyTorch does    input ≤ 0
``crelu``           (y, mask): two bits per input                        2 bits
``maxout``          (y, index): the winner's index in its group          log2(pieces) bits
                                                                         per output
==================  ===================================================  =================

Example:
    >>> import torch, relukit.nn
    >>> y, mask = torch.ops.relukit.masked(torch.tensor([-1.0, 2.0, 0.0]), "relu", [])
    >>> y.tolist(), mask.tolist()
    ([0.0, 2.0, 0.0], [2])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.library import CustomOpDef, custom_op

from relukit.nn import backend
from relukit.nn.bits import (
    code_bits,
    pack_bits,
    pack_codes,
    packed_size,
    unpack_bits,
    unpack_bits_as,
    unpack_codes,
)
from relukit.nn.rules import rule

_aten = torch.ops.aten

IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}
"""Operator name → its plain Python implementation (what eager mode calls, skipping dispatch)."""


def _operator(
    name: str, *, mutates_args: Iterable[str] = (), schema: str | None = None
) -> Callable[[Callable[..., Any]], CustomOpDef]:
    def register(fn: Callable[..., Any]) -> CustomOpDef:
        IMPLEMENTATIONS[name] = fn
        return custom_op(f"relukit::{name}", fn, mutates_args=tuple(mutates_args), schema=schema)

    return register


def _like(result: Tensor, reference: Tensor) -> Tensor:
    """``result`` with the strides ``torch.empty_like(reference)`` has (what the fakes promise)."""
    if reference.is_contiguous() and result.is_contiguous():
        return result
    expected = torch.empty_like(reference, device="meta").stride()
    if result.stride() == expected:
        return result
    return torch.empty_like(reference).copy_(result)


# ---------------------------------------------------------------------------------------------
# masked: the one-mask members


@_operator("masked")
def masked(x: Tensor, member: str, params: list[float]) -> tuple[Tensor, Tensor]:
    """The forward of a piecewise-linear member and its packed mask (see relukit.nn.rules)."""
    y, mask = backend.forward_with_mask(member, params, x)
    return _like(y, x), mask


@masked.register_fake
def _(x: Tensor, member: str, params: list[float]) -> tuple[Tensor, Tensor]:
    bits = rule(member, params).bits
    return torch.empty_like(x), x.new_empty(packed_size(x.numel(), bits), dtype=torch.uint8)


@_operator("masked_backward")
def masked_backward(grad: Tensor, mask: Tensor, member: str, params: list[float]) -> Tensor:
    """``grad·f'(x)`` from the packed mask alone."""
    return _like(backend.backward_from_mask(member, params, grad, mask), grad)


@masked_backward.register_fake
def _(grad: Tensor, mask: Tensor, member: str, params: list[float]) -> Tensor:
    return torch.empty_like(grad)


@_operator("masked_inplace", mutates_args=("x",))
def masked_inplace(x: Tensor, member: str, params: list[float]) -> Tensor:
    """The forward written into ``x``; returns the packed mask of x's old values."""
    r = rule(member, params)
    codes = r.codes(x)
    mask = pack_bits(codes, scratch=True) if r.bits == 1 else pack_codes(codes, r.bits)
    r.forward_(x)
    return mask


@masked_inplace.register_fake
def _(x: Tensor, member: str, params: list[float]) -> Tensor:
    return x.new_empty(packed_size(x.numel(), rule(member, params).bits), dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------
# prelu


def dense_strides(x: Tensor) -> list[int]:
    """The strides ``torch.empty_like(x)`` would have: x's layout, made dense."""
    if x.is_contiguous():
        return list(x.stride())
    return list(torch.empty_like(x, device="meta").stride())


def broadcast_weight(weight: Tensor, ndim: int) -> Tensor:
    """PReLU's weight shaped as ``torch.prelu`` shapes it: its slopes along axis 1."""
    if weight.dim() == ndim:
        return weight
    shape = [1] * ndim
    if ndim > 1:
        shape[1] = weight.numel()
    return weight.reshape(shape)


@_operator("prelu")
def prelu(x: Tensor, weight: Tensor, keep_negatives: bool) -> tuple[Tensor, Tensor, Tensor]:
    """PReLU's forward, the mask ``x > 0`` and, if asked, the other inputs (for the weight)."""
    positive = x > 0
    if keep_negatives:
        negatives = torch.masked_select(x.reshape(-1), ~positive.reshape(-1))
    else:
        negatives = x.new_empty(0)
    return _like(torch.prelu(x, weight), x), pack_bits(positive, scratch=True), negatives


@prelu.register_fake
def _(x: Tensor, weight: Tensor, keep_negatives: bool) -> tuple[Tensor, Tensor, Tensor]:
    count = torch.library.get_ctx().new_dynamic_size() if keep_negatives else 0
    mask = x.new_empty(packed_size(x.numel()), dtype=torch.uint8)
    return torch.empty_like(x), mask, x.new_empty(count)


@_operator("prelu_backward")
def prelu_backward(
    grad: Tensor,
    mask: Tensor,
    negatives: Tensor,
    weight: Tensor,
    weight_grad: bool,
    input_strides: list[int],
) -> tuple[Tensor, Tensor]:
    """Gradients of PReLU for the input and (if ``weight_grad``) the weight.

    A stand-in for x is rebuilt (1 where x > 0, the saved x elsewhere), laid out with x's
    ``input_strides``, and given to PyTorch's own backward kernel, so both gradients are
    PyTorch's bit for bit (the weight's sum runs in the same order).
    """
    n = grad.numel()
    w = broadcast_weight(weight, grad.dim())
    if weight_grad:
        positive = unpack_bits(mask, n)
        stand_in = torch.ones(n, dtype=grad.dtype, device=grad.device)
        stand_in.masked_scatter_(~positive, negatives)
    else:
        stand_in = unpack_bits_as(mask, n, grad.dtype)
    stand_in = stand_in.view(grad.shape)
    if stand_in.stride() != tuple(input_strides):
        layout = torch.empty_strided(
            grad.shape, input_strides, dtype=grad.dtype, device=grad.device
        )
        stand_in = layout.copy_(stand_in)
    grad_x, grad_w = _aten._prelu_kernel_backward(grad, stand_in, w)
    if weight_grad:
        grad_w = grad_w.sum_to_size(w.shape).reshape(weight.shape)
    else:
        grad_w = torch.zeros_like(weight)
    return _like(grad_x, grad), grad_w


@prelu_backward.register_fake
def _(
    grad: Tensor,
    mask: Tensor,
    negatives: Tensor,
    weight: Tensor,
    weight_grad: bool,
    input_strides: list[int],
) -> tuple[Tensor, Tensor]:
    return torch.empty_like(grad), torch.empty_like(weight)


# ---------------------------------------------------------------------------------------------
# rrelu in training


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _draw_rrelu(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    flat = x.reshape(-1)
    work = _opmath(x.dtype)
    low = torch.tensor(lower, dtype=work).item()
    high = torch.tensor(upper, dtype=work).item()
    takes_slope = flat <= 0
    count = int(takes_slope.sum())
    u = torch.empty(count, dtype=torch.float64, device=x.device)
    u.uniform_(0, 1, generator=generator)
    slopes = (low + u * (high - low)).to(work)
    y = flat.clone()
    y[takes_slope] = (flat[takes_slope].to(work) * slopes).to(x.dtype)
    return y.view(x.shape), pack_bits(takes_slope.logical_not_(), scratch=True), slopes.to(x.dtype)


@_operator(
    "rrelu",
    schema="(Tensor x, float lower, float upper, Generator? generator=None) "
    "-> (Tensor, Tensor, Tensor)",
)
def rrelu(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """RReLU in training: one slope drawn per input ≤ 0, in C order, exactly as PyTorch draws.

    PyTorch (CPU) takes ``r = lower + u·(upper − lower)`` in double precision from one double
    ``u ~ U[0, 1)`` per input ≤ 0, with lower and upper first rounded to the working precision
    (float32 for 16- and 32-bit inputs); ``y = x·r`` in that precision. The slopes are kept in
    x's dtype (as PyTorch's noise tensor keeps them) for the backward; the mask says which
    inputs took one (NaN does not: its gradient passes through).
    """
    return _draw_rrelu(x, lower, upper, generator)


@rrelu.register_fake
def _(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    count = torch.library.get_ctx().new_dynamic_size()
    mask = x.new_empty(packed_size(x.numel()), dtype=torch.uint8)
    return x.new_empty(x.shape), mask, x.new_empty(count)


@_operator(
    "rrelu_inplace",
    mutates_args=("x",),
    schema="(Tensor(a!) x, float lower, float upper, Generator? generator=None) "
    "-> (Tensor, Tensor)",
)
def rrelu_inplace(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`rrelu` written into ``x``; returns the mask and the slopes."""
    y, mask, slopes = _draw_rrelu(x, lower, upper, generator)
    x.copy_(y)
    return mask, slopes


@rrelu_inplace.register_fake
def _(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    count = torch.library.get_ctx().new_dynamic_size()
    return x.new_empty(packed_size(x.numel()), dtype=torch.uint8), x.new_empty(count)


@_operator("rrelu_backward")
def rrelu_backward(grad: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
    """``grad·noise``: the saved slope where the input was ≤ 0, 1 elsewhere (PyTorch's product)."""
    flat = grad.reshape(-1)
    took_slope = ~unpack_bits(mask, flat.numel())
    result = flat.clone()
    result[took_slope] = flat[took_slope] * slopes
    return result.view(grad.shape)


@rrelu_backward.register_fake
def _(grad: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
    return grad.new_empty(grad.shape)


# ---------------------------------------------------------------------------------------------
# crelu


def _halves(mask: Tensor, n: int, dtype: torch.dtype, shape: list[int]) -> tuple[Tensor, Tensor]:
    half = packed_size(n)
    positive = unpack_bits_as(mask[:half], n, dtype).view(shape)
    negative = unpack_bits_as(mask[half:], n, dtype).view(shape)
    return positive, negative


@_operator("crelu")
def crelu(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``cat(relu(x), relu(−x))`` along dim, and two masks: where each half passes a gradient."""
    y = torch.cat([torch.relu(x), torch.relu(torch.neg(x))], dim)
    passes = (torch.le(x, 0).logical_not_(), torch.ge(x, 0).logical_not_())
    return y, torch.cat([pack_bits(flags, scratch=True) for flags in passes])


@crelu.register_fake
def _(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    shape = list(x.shape)
    shape[dim] *= 2
    return x.new_empty(shape), x.new_empty(2 * packed_size(x.numel()), dtype=torch.uint8)


def _crelu_input_shape(grad: Tensor, dim: int) -> list[int]:
    shape = list(grad.shape)
    shape[dim] //= 2
    return shape


@_operator("crelu_backward")
def crelu_backward(grad: Tensor, mask: Tensor, dim: int) -> Tensor:
    """The gradient of crelu: PyTorch's ``relu(x)`` and ``−relu(−x)`` gradients, summed."""
    shape = _crelu_input_shape(grad, dim)
    size = shape[dim]
    n = grad.numel() // 2
    positive, negative = _halves(mask, n, grad.dtype, shape)
    first = _aten.threshold_backward(grad.narrow(dim, 0, size), positive, 0)
    second = _aten.threshold_backward(grad.narrow(dim, size, size), negative, 0)
    return first + second.neg()


@crelu_backward.register_fake
def _(grad: Tensor, mask: Tensor, dim: int) -> Tensor:
    return grad.new_empty(_crelu_input_shape(grad, dim))


@_operator("crelu_jvp")
def crelu_jvp(tangent: Tensor, mask: Tensor, dim: int) -> Tensor:
    """The Jacobian of crelu applied to ``tangent`` (the adjoint of crelu_backward)."""
    positive, negative = _halves(mask, tangent.numel(), tangent.dtype, list(tangent.shape))
    first = _aten.threshold_backward(tangent, positive, 0)
    second = _aten.threshold_backward(tangent.neg(), negative, 0)
    return torch.cat([first, second], dim)


@crelu_jvp.register_fake
def _(tangent: Tensor, mask: Tensor, dim: int) -> Tensor:
    shape = list(tangent.shape)
    shape[dim] *= 2
    return tangent.new_empty(shape)


# ---------------------------------------------------------------------------------------------
# maxout


def _index_dtype(pieces: int) -> torch.dtype:
    return torch.int16 if pieces <= 1 << 15 else torch.int32


def _index_store(index: Tensor, pieces: int) -> Tensor:
    bits = code_bits(pieces)
    if bits:
        return pack_codes(index, bits)
    return index.reshape(-1).to(_index_dtype(pieces))


def _index_load(stored: Tensor, pieces: int, shape: list[int]) -> Tensor:
    bits = code_bits(pieces)
    n = 1
    for size in shape:
        n *= size
    flat = unpack_codes(stored, n, bits) if bits else stored
    return flat.to(torch.int64).view(shape)


def _grouped_shape(shape: list[int], pieces: int, dim: int) -> list[int]:
    grouped = list(shape)
    grouped[dim : dim + 1] = [shape[dim], pieces]
    return grouped


@_operator("maxout")
def maxout(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    """The maximum of each group of ``pieces`` consecutive entries along ``dim`` (dim ≥ 0).

    Ties and NaN as ``torch.max(dim)``: the first maximal entry (or the first NaN) wins; its
    index in the group is kept in ``log2(pieces)`` bits (rounded up to 1, 2, 4 or 8).
    """
    grouped = x.unflatten(dim, (x.shape[dim] // pieces, pieces))
    values, index = grouped.max(dim + 1)
    return values, _index_store(index, pieces)


@maxout.register_fake
def _(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    shape = list(x.shape)
    shape[dim] //= pieces
    n = x.numel() // pieces
    bits = code_bits(pieces)
    if bits:
        return x.new_empty(shape), x.new_empty(packed_size(n, bits), dtype=torch.uint8)
    return x.new_empty(shape), x.new_empty(n, dtype=_index_dtype(pieces))


@_operator("maxout_backward")
def maxout_backward(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """The gradient scattered to each group's winner (PyTorch's max(dim) backward)."""
    shape = list(grad.shape)
    winners = _index_load(index, pieces, shape).unsqueeze(dim + 1)
    spread = grad.new_zeros(_grouped_shape(shape, pieces, dim))
    return spread.scatter_(dim + 1, winners, grad.unsqueeze(dim + 1)).flatten(dim, dim + 1)


@maxout_backward.register_fake
def _(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    shape = list(grad.shape)
    shape[dim] *= pieces
    return grad.new_empty(shape)


@_operator("maxout_jvp")
def maxout_jvp(tangent: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """The Jacobian of maxout applied to ``tangent``: each group's winner picked."""
    shape = list(tangent.shape)
    shape[dim] //= pieces
    winners = _index_load(index, pieces, shape).unsqueeze(dim + 1)
    grouped = tangent.unflatten(dim, (shape[dim], pieces))
    return grouped.gather(dim + 1, winners).squeeze(dim + 1)


@maxout_jvp.register_fake
def _(tangent: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    shape = list(tangent.shape)
    shape[dim] //= pieces
    return tangent.new_empty(shape)
