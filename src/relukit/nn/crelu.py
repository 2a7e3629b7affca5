"""CReLU's op: ``cat(relu(x), relu(−x))`` along a dim, saving two bits per input.

``relukit::crelu`` returns ``(y, mask)``, the mask holding where each half passes a gradient;
``relukit::crelu_backward`` sums PyTorch's ``relu(x)`` and ``−relu(−x)`` gradients and
``relukit::crelu_jvp`` is its adjoint (the Jacobian applied to a tangent): each is the other's
gradient, so double backward works.

Example:
    >>> import torch
    >>> x = torch.tensor([-2.0, 0.5], requires_grad=True)
    >>> y = forward(x, 0)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([0.0, 0.5, 2.0, 0.0], [-1.0, 1.0])
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from relukit.kernels.mask import nbytes, pack_bits, unpack_bits_as
from relukit.nn.library import compiling, operator

_aten = torch.ops.aten


def _halves(mask: Tensor, n: int, dtype: torch.dtype, shape: list[int]) -> tuple[Tensor, Tensor]:
    half = nbytes(n, 1)
    positive = unpack_bits_as(mask[:half], n, dtype).view(shape)
    negative = unpack_bits_as(mask[half:], n, dtype).view(shape)
    return positive, negative


def crelu_impl(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``cat(relu(x), relu(−x))`` along dim, and two masks: where each half passes a gradient."""
    y = torch.cat([torch.relu(x), torch.relu(torch.neg(x))], dim)
    passes = (torch.le(x, 0).logical_not_(), torch.ge(x, 0).logical_not_())
    return y, torch.cat([pack_bits(flags, scratch=True) for flags in passes])


crelu = operator("crelu")(crelu_impl)


@crelu.register_fake
def _(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    shape = list(x.shape)
    shape[dim] *= 2
    return x.new_empty(shape), x.new_empty(2 * nbytes(x.numel(), 1), dtype=torch.uint8)


def _input_shape(grad: Tensor, dim: int) -> list[int]:
    shape = list(grad.shape)
    shape[dim] //= 2
    return shape


def crelu_backward_impl(grad: Tensor, mask: Tensor, dim: int) -> Tensor:
    """The gradient of crelu: PyTorch's ``relu(x)`` and ``−relu(−x)`` gradients, summed."""
    shape = _input_shape(grad, dim)
    size = shape[dim]
    n = grad.numel() // 2
    positive, negative = _halves(mask, n, grad.dtype, shape)
    first = _aten.threshold_backward(grad.narrow(dim, 0, size), positive, 0)
    second = _aten.threshold_backward(grad.narrow(dim, size, size), negative, 0)
    return first + second.neg()


crelu_backward = operator("crelu_backward")(crelu_backward_impl)


@crelu_backward.register_fake
def _(grad: Tensor, mask: Tensor, dim: int) -> Tensor:
    return grad.new_empty(_input_shape(grad, dim))


def crelu_jvp_impl(tangent: Tensor, mask: Tensor, dim: int) -> Tensor:
    """The Jacobian of crelu applied to ``tangent`` (the adjoint of crelu_backward)."""
    positive, negative = _halves(mask, tangent.numel(), tangent.dtype, list(tangent.shape))
    first = _aten.threshold_backward(tangent, positive, 0)
    second = _aten.threshold_backward(tangent.neg(), negative, 0)
    return torch.cat([first, second], dim)


crelu_jvp = operator("crelu_jvp")(crelu_jvp_impl)


@crelu_jvp.register_fake
def _(tangent: Tensor, mask: Tensor, dim: int) -> Tensor:
    shape = list(tangent.shape)
    shape[dim] *= 2
    return tangent.new_empty(shape)


# ---------------------------------------------------------------------------------------------
# the autograd formulas: a backward and its adjoint, each the other's gradient


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.set_materialize_grads(False)  # no zeros made for the mask's (never used) gradient
    ctx.save_for_backward(output[1])
    ctx.dim = inputs[1]


def _pair_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.dim = inputs[2]


def _backward(ctx: Any, grad: Tensor, registered: bool) -> Tensor:
    (mask,) = ctx.saved_tensors
    if registered:
        return torch.ops.relukit.crelu_backward.default(grad, mask, ctx.dim)
    return CReLUBackward.apply(grad, mask, ctx.dim)


def _jvp(ctx: Any, grad: Tensor, registered: bool) -> Tensor:
    (mask,) = ctx.saved_tensors
    if registered:
        return torch.ops.relukit.crelu_jvp.default(grad, mask, ctx.dim)
    return CReLUJvp.apply(grad, mask, ctx.dim)


def _gradient(
    ctx: Any, grad: Tensor, _mask_grad: Any = None, registered: bool = False
) -> tuple[Any, ...]:
    if grad is None:
        return None, None
    return _backward(ctx, grad, registered), None


def _backward_gradient(ctx: Any, grad: Tensor, registered: bool = False) -> tuple[Any, ...]:
    return _jvp(ctx, grad, registered), None, None


def _jvp_gradient(ctx: Any, grad: Tensor, registered: bool = False) -> tuple[Any, ...]:
    return _backward(ctx, grad, registered), None, None


crelu.register_autograd(functools.partial(_gradient, registered=True), setup_context=_setup)
crelu_backward.register_autograd(
    functools.partial(_backward_gradient, registered=True), setup_context=_pair_setup
)
crelu_jvp.register_autograd(
    functools.partial(_jvp_gradient, registered=True), setup_context=_pair_setup
)


class CReLUFunction(torch.autograd.Function):
    """The eager form of ``relukit::crelu``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        output = crelu_impl(x, dim)
        _setup(ctx, (x, dim), output)
        return output

    backward = staticmethod(_gradient)


class CReLUBackward(torch.autograd.Function):
    """The eager form of ``relukit::crelu_backward``."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, mask: Tensor, dim: int) -> Tensor:
        output = crelu_backward_impl(grad, mask, dim)
        _pair_setup(ctx, (grad, mask, dim), output)
        return output

    backward = staticmethod(_backward_gradient)


class CReLUJvp(torch.autograd.Function):
    """The eager form of ``relukit::crelu_jvp``."""

    @staticmethod
    def forward(ctx: Any, tangent: Tensor, mask: Tensor, dim: int) -> Tensor:
        output = crelu_jvp_impl(tangent, mask, dim)
        _pair_setup(ctx, (tangent, mask, dim), output)
        return output

    backward = staticmethod(_jvp_gradient)


def forward(x: Tensor, dim: int) -> Tensor:
    """CReLU with autograd (``dim`` ≥ 0)."""
    if compiling():
        return torch.ops.relukit.crelu.default(x, dim)[0]
    return CReLUFunction.apply(x, dim)[0]
