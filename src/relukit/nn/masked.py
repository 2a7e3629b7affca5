"""The mask members' op: forward with a packed code per element, backward from the codes.

relu, leaky_relu, relu6, hardtanh, general_relu and rrelu outside training (and any member
the registry gives ``mask_code``) run through these operators (namespace ``relukit``):

========================  ==================================================================
``masked``                ``(y, mask)``: the forward and the packed codes, 1 bit per element
                          (2 for general_relu with both a slope and a cap)
``masked_backward``       ``grad·f'(x)`` from the mask alone (its own adjoint: the double
                          backward is another ``masked_backward``)
``masked_inplace``        the forward written into x; returns the mask of x's old values
========================  ==================================================================

The kernel is chosen by :mod:`relukit.nn.kernel`; members are named by their registry name and
carry their parameters as ``Activation.encode`` gives them. Gradients are PyTorch's bit for bit.

Example:
    >>> import torch
    >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
    >>> y, mask = forward(x, "relu", [])
    >>> y.backward(torch.ones(2))
    >>> x.grad.tolist(), mask.tolist()
    ([0.0, 1.0], [2])
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from relukit.family import lookup
from relukit.kernels.mask import nbytes
from relukit.nn.kernel import entry, memory_order, order_strides
from relukit.nn.library import check_inplace, compiling, operator


@functools.lru_cache(maxsize=512)
def _bits(member: str, values: tuple[float, ...]) -> int:
    spec = lookup(member)
    return spec.derivative_bits(spec.bind(spec.decode(list(values))))


def _empty_in_order(like: Tensor, order: list[int] | tuple[int, ...]) -> Tensor:
    shape = list(like.shape)
    return like.new_empty_strided(shape, order_strides(shape, order))


# ---------------------------------------------------------------------------------------------
# operators


def masked_impl(x: Tensor, member: str, params: list[float]) -> tuple[Tensor, Tensor]:
    """The forward of a mask member and its packed mask (codes in x's memory order)."""
    return entry(member, params, x.dtype).forward(x)


masked = operator("masked")(masked_impl)


@masked.register_fake
def _(x: Tensor, member: str, params: list[float]) -> tuple[Tensor, Tensor]:
    bits = _bits(member, tuple(params))
    mask = x.new_empty(nbytes(x.numel(), bits), dtype=torch.uint8)
    return _empty_in_order(x, memory_order(x)), mask


def masked_backward_impl(
    grad: Tensor, mask: Tensor, member: str, params: list[float], order: list[int]
) -> Tensor:
    """``grad·f'(x)`` from the packed mask; ``order`` is x's memory order (the result's)."""
    return entry(member, params, grad.dtype).backward(grad, mask, order)


masked_backward = operator("masked_backward")(masked_backward_impl)


@masked_backward.register_fake
def _(grad: Tensor, mask: Tensor, member: str, params: list[float], order: list[int]) -> Tensor:
    return _empty_in_order(grad, order)


def masked_inplace_impl(x: Tensor, member: str, params: list[float]) -> Tensor:
    """The forward written into ``x``; returns the packed mask of x's old values."""
    return entry(member, params, x.dtype).forward_(x)


masked_inplace = operator("masked_inplace", mutates_args=("x",))(masked_inplace_impl)


@masked_inplace.register_fake
def _(x: Tensor, member: str, params: list[float]) -> Tensor:
    return x.new_empty(nbytes(x.numel(), _bits(member, tuple(params))), dtype=torch.uint8)


# ---------------------------------------------------------------------------------------------
# the autograd formula, registered on the operators and as the eager Functions


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.set_materialize_grads(False)  # no zeros made for the mask's (never used) gradient
    x, member, params = inputs
    ctx.save_for_backward(output[1])
    ctx.member, ctx.params, ctx.order = member, params, list(memory_order(x))


def _gradient(ctx: Any, grad: Tensor, registered: bool) -> Tensor:
    """The formula: ``masked_backward`` of the saved mask (the operator in the registered
    formula, which torch.compile and AOT tracing see; the eager Function otherwise)."""
    (mask,) = ctx.saved_tensors
    args = (grad, mask, ctx.member, ctx.params, ctx.order)
    if registered:
        return torch.ops.relukit.masked_backward.default(*args)
    if torch.is_grad_enabled():  # create_graph: the result needs its own backward
        return MaskedBackward.apply(*args)
    return masked_backward_impl(*args)


def _backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    _grad, mask, member, params, order = inputs
    ctx.save_for_backward(mask)
    ctx.member, ctx.params, ctx.order = member, params, order


def _forward_gradient(
    ctx: Any, grad: Tensor | None, _mask_grad: Any = None, registered: bool = False
) -> tuple[Any, ...]:
    if grad is None:
        return None, None, None
    return _gradient(ctx, grad, registered), None, None


def _backward_gradient(ctx: Any, grad: Tensor, registered: bool = False) -> tuple[Any, ...]:
    # diagonal and linear in the incoming gradient: the backward is its own adjoint
    return _gradient(ctx, grad, registered), None, None, None, None


masked.register_autograd(
    functools.partial(_forward_gradient, registered=True), setup_context=_setup
)
masked_backward.register_autograd(
    functools.partial(_backward_gradient, registered=True), setup_context=_backward_setup
)


class Masked(torch.autograd.Function):
    """The eager form of ``relukit::masked`` (the registered formula, without the dispatcher)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, member: str, params: list[float]) -> tuple[Tensor, Tensor]:
        output = masked_impl(x, member, params)
        _setup(ctx, (x, member, params), output)
        return output

    backward = staticmethod(_forward_gradient)


class MaskedBackward(torch.autograd.Function):
    """The eager form of ``relukit::masked_backward``."""

    @staticmethod
    def forward(
        ctx: Any, grad: Tensor, mask: Tensor, member: str, params: list[float], order: list[int]
    ) -> Tensor:
        output = masked_backward_impl(grad, mask, member, params, order)
        _backward_setup(ctx, (grad, mask, member, params, order), output)
        return output

    backward = staticmethod(_backward_gradient)


class MaskedInplace(torch.autograd.Function):
    """A mask member written into its input, marked dirty as PyTorch's in-place activations
    are (the input's version counter moves); the backward is ``masked``'s."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, member: str, params: list[float]) -> Tensor:
        if compiling():
            mask = torch.ops.relukit.masked_inplace.default(x, member, params)
        else:
            mask = masked_inplace_impl(x, member, params)
        ctx.mark_dirty(x)
        _setup(ctx, (x, member, params), (x, mask))
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
        return _forward_gradient(ctx, grad, registered=compiling())


def forward(x: Tensor, member: str, params: list[float]) -> tuple[Tensor, Tensor]:
    """``(y, mask)`` with autograd: the operator under torch.compile, the Function otherwise."""
    if compiling():
        return torch.ops.relukit.masked.default(x, member, params)
    return Masked.apply(x, member, params)


def forward_inplace(x: Tensor, member: str, params: list[float], where: str) -> Tensor:
    """The forward written into ``x`` with autograd (PyTorch's in-place refusals first)."""
    check_inplace(x, where)
    return MaskedInplace.apply(x, member, params)
