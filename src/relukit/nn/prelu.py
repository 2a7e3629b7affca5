"""PReLU's op: 1 bit per element, plus the non-positive inputs when the weight needs a gradient.

``relukit::prelu`` returns ``(y, mask, negatives)``: the forward (``torch.prelu``'s values), the
mask ``x > 0`` and, only if asked, the inputs that were not positive (NaN included), which the
weight's gradient needs. ``relukit::prelu_backward`` rebuilds a stand-in for x from those (1
where x > 0, the saved x elsewhere), laid out as x was, and hands it to PyTorch's own backward
kernel, so both gradients are PyTorch's bit for bit (the weight's sum runs in the same order).

Double backward is refused: the weight gradient is rebuilt from a detached copy of the inputs,
which no longer tracks them (:data:`PRELU_DOUBLE_BACKWARD` names the way out).

Example:
    >>> import torch
    >>> x = torch.tensor([[-2.0, 3.0]], requires_grad=True)
    >>> w = torch.tensor([0.5], requires_grad=True)
    >>> forward(x, w).sum().backward()
    >>> x.grad.tolist(), w.grad.tolist()
    ([[0.5, 1.0]], [-2.0])
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from relukit.kernels.mask import nbytes, unpack_bits_as
from relukit.nn import kernel
from relukit.nn.kernel import expand, split, triton
from relukit.nn.library import compiling, dense_strides, like, operator

_aten = torch.ops.aten

PRELU_DOUBLE_BACKWARD = (
    "relukit.nn.PReLU does not support double backward: its weight gradient is rebuilt from a "
    "detached copy of the non-positive inputs. For second derivatives use torch.nn.PReLU "
    "(relukit.nn.revert(model) swaps the modules back, keeping the weights)."
)


def broadcast_weight(weight: Tensor, ndim: int) -> Tensor:
    """PReLU's weight shaped as ``torch.prelu`` shapes it: its slopes along axis 1."""
    if weight.dim() == ndim:
        return weight
    shape = [1] * ndim
    if ndim > 1:
        shape[1] = weight.numel()
    return weight.reshape(shape)


def _on_triton(t: Tensor, weight: Tensor) -> bool:
    """The Triton kernels take PReLU on ``t`` (relukit.nn.kernel.triton) when the weight is one
    slope or one per channel, as torch.nn.PReLU's is."""
    if not triton(t) or weight.dtype != t.dtype or weight.device != t.device:
        return False
    from relukit.kernels.gpu import prelu as kernels

    return kernels.channel_layout(t, weight) is not None


def prelu_impl(x: Tensor, weight: Tensor, keep_negatives: bool) -> tuple[Tensor, Tensor, Tensor]:
    """PReLU's forward, the mask ``x > 0`` and, if asked, the other inputs (for the weight)."""
    if _on_triton(x, weight):
        from relukit.kernels.gpu import prelu as kernels

        y, mask, negatives = kernels.forward(x, weight, keep_negatives)
        return like(y, x), mask, negatives
    if kernel.fused_slopes(x, weight):
        return kernel.prelu_forward(x, weight, keep_negatives)
    mask, negatives, _ = split(x.reshape(-1), nan_passes=False, keep=keep_negatives)
    return like(torch.prelu(x, weight), x), mask, negatives


prelu = operator("prelu")(prelu_impl)


@prelu.register_fake
def _(x: Tensor, weight: Tensor, keep_negatives: bool) -> tuple[Tensor, Tensor, Tensor]:
    count = torch.library.get_ctx().new_dynamic_size() if keep_negatives else 0
    mask = x.new_empty(nbytes(x.numel(), 1), dtype=torch.uint8)
    return torch.empty_like(x), mask, x.new_empty(count)


def prelu_backward_impl(
    grad: Tensor,
    mask: Tensor,
    negatives: Tensor,
    weight: Tensor,
    weight_grad: bool,
    input_strides: list[int],
) -> tuple[Tensor, Tensor]:
    """Gradients of PReLU for the input and (if ``weight_grad``) the weight."""
    if _on_triton(grad, weight):
        from relukit.kernels.gpu import prelu as kernels

        grad_x, grad_w = kernels.backward(grad, mask, negatives, weight, weight_grad, input_strides)
        return like(grad_x, grad), grad_w
    w = broadcast_weight(weight, grad.dim())
    if kernel.fused_slopes(grad, weight) and list(grad.stride()) == input_strides:
        grad_x, grad_w = kernel.prelu_backward(grad, mask, negatives, weight, weight_grad)
        if weight_grad:  # PyTorch's sum of PyTorch's elementwise products
            return grad_x, grad_w.sum_to_size(w.shape).reshape(weight.shape)
        return grad_x, torch.zeros_like(weight)
    n = grad.numel()
    if weight_grad:
        stand_in = expand(mask, negatives.to(grad.dtype), 1.0, n)
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
    return like(grad_x, grad), grad_w


prelu_backward = operator("prelu_backward")(prelu_backward_impl)


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
# the autograd formula


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    ctx.set_materialize_grads(False)  # no zeros made for the mask's (never used) gradient
    x, weight, keep_negatives = inputs
    _y, mask, negatives = output
    ctx.mark_non_differentiable(negatives)
    ctx.save_for_backward(mask, negatives, weight)
    ctx.keep_negatives = keep_negatives
    ctx.input_strides = dense_strides(x)


def _gradient(
    ctx: Any, grad: Tensor, _mask_grad: Any, _negatives_grad: Any, registered: bool = False
) -> tuple[Any, ...]:
    if grad is None:
        return None, None, None
    mask, negatives, weight = ctx.saved_tensors
    weight_grad = bool(ctx.needs_input_grad[1])
    if weight_grad and not ctx.keep_negatives:
        raise RuntimeError(
            "relukit.nn.functional.prelu: the weight needs a gradient but the forward ran "
            "with keep_negatives=False"
        )
    args = (grad, mask, negatives, weight, weight_grad, ctx.input_strides)
    if registered:
        grad_x, grad_w = torch.ops.relukit.prelu_backward.default(*args)
    else:
        grad_x, grad_w = PReLUBackward.apply(*args)
    return grad_x, grad_w if weight_grad else None, None


def _backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    return None


def _no_double_backward(ctx: Any, *grads: Any) -> Any:
    raise RuntimeError(PRELU_DOUBLE_BACKWARD)


prelu.register_autograd(functools.partial(_gradient, registered=True), setup_context=_setup)
prelu_backward.register_autograd(_no_double_backward, setup_context=_backward_setup)


class PReLUFunction(torch.autograd.Function):
    """The eager form of ``relukit::prelu``."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, keep_negatives: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        output = prelu_impl(x, weight, keep_negatives)
        _setup(ctx, (x, weight, keep_negatives), output)
        return output

    backward = staticmethod(_gradient)


class PReLUBackward(torch.autograd.Function):
    """The eager form of ``relukit::prelu_backward`` (no double backward)."""

    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[Tensor, Tensor]:
        output = prelu_backward_impl(*args)
        _backward_setup(ctx, args, output)
        return output

    backward = staticmethod(_no_double_backward)


def forward(x: Tensor, weight: Tensor) -> Tensor:
    """PReLU with autograd, keeping the non-positive inputs only if the weight needs a grad."""
    keep_negatives = torch.is_grad_enabled() and weight.requires_grad
    if compiling():
        return torch.ops.relukit.prelu.default(x, weight, keep_negatives)[0]
    return PReLUFunction.apply(x, weight, keep_negatives)[0]
