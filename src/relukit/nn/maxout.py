"""Maxout's op: the maximum of each group of ``pieces`` entries, saving the winner's index in
``log2(pieces)`` bits (rounded up to 1, 2, 4 or 8) where ``torch.max`` keeps an int64.

Ties and NaN as ``torch.max(dim)``: the first maximal entry (or the first NaN) wins.
``relukit::maxout_backward`` scatters the gradient to each group's winner (PyTorch's max(dim)
backward) and ``relukit::maxout_jvp`` picks each group's winner from a tangent: each is the
other's gradient, so double backward works.

Example:
    >>> import torch
    >>> x = torch.tensor([1.0, 3.0, -2.0, -5.0], requires_grad=True)
    >>> y = forward(x, 2, 0)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([3.0, -2.0], [0.0, 1.0, 1.0, 0.0])
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from relukit.kernels.mask import code_bits, nbytes, pack_codes, unpack_codes
from relukit.nn.library import compiling, operator


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


def maxout_impl(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    """The maximum of each group of ``pieces`` consecutive entries along ``dim`` (dim ≥ 0)."""
    grouped = x.unflatten(dim, (x.shape[dim] // pieces, pieces))
    values, index = grouped.max(dim + 1)
    return values, _index_store(index, pieces)


maxout = operator("maxout")(maxout_impl)


@maxout.register_fake
def _(x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
    shape = list(x.shape)
    shape[dim] //= pieces
    n = x.numel() // pieces
    bits = code_bits(pieces)
    if bits:
        return x.new_empty(shape), x.new_empty(nbytes(n, bits), dtype=torch.uint8)
    return x.new_empty(shape), x.new_empty(n, dtype=_index_dtype(pieces))


def maxout_backward_impl(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """The gradient scattered to each group's winner (PyTorch's max(dim) backward)."""
    shape = list(grad.shape)
    winners = _index_load(index, pieces, shape).unsqueeze(dim + 1)
    spread = grad.new_zeros(_grouped_shape(shape, pieces, dim))
    return spread.scatter_(dim + 1, winners, grad.unsqueeze(dim + 1)).flatten(dim, dim + 1)


maxout_backward = operator("maxout_backward")(maxout_backward_impl)


@maxout_backward.register_fake
def _(grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    shape = list(grad.shape)
    shape[dim] *= pieces
    return grad.new_empty(shape)


def maxout_jvp_impl(tangent: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    """The Jacobian of maxout applied to ``tangent``: each group's winner picked."""
    shape = list(tangent.shape)
    shape[dim] //= pieces
    winners = _index_load(index, pieces, shape).unsqueeze(dim + 1)
    grouped = tangent.unflatten(dim, (shape[dim], pieces))
    return grouped.gather(dim + 1, winners).squeeze(dim + 1)


maxout_jvp = operator("maxout_jvp")(maxout_jvp_impl)


@maxout_jvp.register_fake
def _(tangent: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
    shape = list(tangent.shape)
    shape[dim] //= pieces
    return tangent.new_empty(shape)


# ---------------------------------------------------------------------------------------------
# the autograd formulas: a backward and its adjoint, each the other's gradient


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.set_materialize_grads(False)  # no zeros made for the mask's (never used) gradient
    ctx.save_for_backward(output[1])
    ctx.pieces, ctx.dim = inputs[1], inputs[2]


def _pair_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.pieces, ctx.dim = inputs[2], inputs[3]


def _backward(ctx: Any, grad: Tensor, registered: bool) -> Tensor:
    (index,) = ctx.saved_tensors
    if registered:
        return torch.ops.relukit.maxout_backward.default(grad, index, ctx.pieces, ctx.dim)
    return MaxoutBackward.apply(grad, index, ctx.pieces, ctx.dim)


def _jvp(ctx: Any, grad: Tensor, registered: bool) -> Tensor:
    (index,) = ctx.saved_tensors
    if registered:
        return torch.ops.relukit.maxout_jvp.default(grad, index, ctx.pieces, ctx.dim)
    return MaxoutJvp.apply(grad, index, ctx.pieces, ctx.dim)


def _gradient(
    ctx: Any, grad: Tensor, _index_grad: Any = None, registered: bool = False
) -> tuple[Any, ...]:
    if grad is None:
        return None, None, None
    return _backward(ctx, grad, registered), None, None


def _backward_gradient(ctx: Any, grad: Tensor, registered: bool = False) -> tuple[Any, ...]:
    return _jvp(ctx, grad, registered), None, None, None


def _jvp_gradient(ctx: Any, grad: Tensor, registered: bool = False) -> tuple[Any, ...]:
    return _backward(ctx, grad, registered), None, None, None


maxout.register_autograd(functools.partial(_gradient, registered=True), setup_context=_setup)
maxout_backward.register_autograd(
    functools.partial(_backward_gradient, registered=True), setup_context=_pair_setup
)
maxout_jvp.register_autograd(
    functools.partial(_jvp_gradient, registered=True), setup_context=_pair_setup
)


class MaxoutFunction(torch.autograd.Function):
    """The eager form of ``relukit::maxout``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, pieces: int, dim: int) -> tuple[Tensor, Tensor]:
        output = maxout_impl(x, pieces, dim)
        _setup(ctx, (x, pieces, dim), output)
        return output

    backward = staticmethod(_gradient)


class MaxoutBackward(torch.autograd.Function):
    """The eager form of ``relukit::maxout_backward``."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
        output = maxout_backward_impl(grad, index, pieces, dim)
        _pair_setup(ctx, (grad, index, pieces, dim), output)
        return output

    backward = staticmethod(_backward_gradient)


class MaxoutJvp(torch.autograd.Function):
    """The eager form of ``relukit::maxout_jvp``."""

    @staticmethod
    def forward(ctx: Any, tangent: Tensor, index: Tensor, pieces: int, dim: int) -> Tensor:
        output = maxout_jvp_impl(tangent, index, pieces, dim)
        _pair_setup(ctx, (tangent, index, pieces, dim), output)
        return output

    backward = staticmethod(_jvp_gradient)


def forward(x: Tensor, pieces: int, dim: int) -> Tensor:
    """Maxout with autograd (``dim`` ≥ 0)."""
    if compiling():
        return torch.ops.relukit.maxout.default(x, pieces, dim)[0]
    return MaxoutFunction.apply(x, pieces, dim)[0]
