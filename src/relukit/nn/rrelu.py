"""RReLU's op in training: 1 bit per element plus the random slope of each input ≤ 0.

``relukit::rrelu`` draws one slope per input ≤ 0, in C order, exactly as PyTorch's CPU kernel
draws: ``r = lower + u·(upper − lower)`` in double precision from one double ``u ~ U[0, 1)``,
with lower and upper first rounded to the working precision (float32 for 16- and 32-bit
inputs), and ``y = x·r`` in that precision. It returns ``(y, mask, slopes)``: the slopes kept in
x's dtype (as PyTorch's noise tensor keeps them), the mask saying which inputs took one (NaN
does not: its gradient passes through). ``relukit::rrelu_backward`` is ``grad·noise`` (the
saved slope where the input was ≤ 0, 1 elsewhere), PyTorch's product; it is its own adjoint.
``relukit::rrelu_inplace`` writes y into x and returns the mask and slopes. Outside training
rrelu is the mask op's leaky formula (:mod:`relukit.nn.masked`).

Example:
    >>> import torch
    >>> x = torch.tensor([-2.0, 3.0], requires_grad=True)
    >>> y = forward(x, 0.5, 0.5, None)
    >>> y.sum().backward()
    >>> y.tolist(), x.grad.tolist()
    ([-1.0, 3.0], [0.5, 1.0])
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor

from relukit.kernels.mask import nbytes, unpack_bits
from relukit.nn import kernel
from relukit.nn.kernel import scale, split, triton
from relukit.nn.library import check_inplace, compiling, operator

_SCHEMA = "(Tensor x, float lower, float upper, Generator? generator=None)"


def _opmath(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _draw(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    flat = x.reshape(-1)
    work = _opmath(x.dtype)
    low = torch.tensor(lower, dtype=work).item()
    high = torch.tensor(upper, dtype=work).item()
    if kernel.fused_slopes(x):
        return kernel.rrelu_forward(x, low, high, generator)
    mask, _, count = split(flat, nan_passes=True, keep=False)
    u = torch.empty(count, dtype=torch.float64, device=x.device)
    u.uniform_(0, 1, generator=generator)
    slopes = (low + u * (high - low)).to(work)
    if work == x.dtype:
        y = scale(flat, mask, slopes)
    else:  # 16-bit: the product in float32, rounded once
        takes_slope = ~unpack_bits(mask, flat.numel())
        y = flat.clone()
        y[takes_slope] = (flat[takes_slope].to(work) * slopes).to(x.dtype)
    return y.view(x.shape), mask, slopes.to(x.dtype)


def rrelu_impl(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """RReLU in training: ``(y, mask, slopes)`` (see the module docstring)."""
    return _draw(x, lower, upper, generator)


rrelu = operator("rrelu", schema=f"{_SCHEMA} -> (Tensor, Tensor, Tensor)")(rrelu_impl)


@rrelu.register_fake
def _(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    count = torch.library.get_ctx().new_dynamic_size()
    mask = x.new_empty(nbytes(x.numel(), 1), dtype=torch.uint8)
    return x.new_empty(x.shape), mask, x.new_empty(count)


def rrelu_inplace_impl(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`rrelu_impl` written into ``x``; returns the mask and the slopes."""
    y, mask, slopes = _draw(x, lower, upper, generator)
    x.copy_(y)
    return mask, slopes


rrelu_inplace = operator(
    "rrelu_inplace",
    mutates_args=("x",),
    schema="(Tensor(a!) x, float lower, float upper, Generator? generator=None) "
    "-> (Tensor, Tensor)",
)(rrelu_inplace_impl)


@rrelu_inplace.register_fake
def _(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    count = torch.library.get_ctx().new_dynamic_size()
    return x.new_empty(nbytes(x.numel(), 1), dtype=torch.uint8), x.new_empty(count)


def rrelu_backward_impl(grad: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
    """``grad·noise``: the saved slope where the input was ≤ 0, 1 elsewhere."""
    if triton(grad) and slopes.dtype == grad.dtype:
        from relukit.kernels.gpu import prelu as kernels

        return kernels.rrelu_backward(grad, mask, slopes)
    if kernel.fused_slopes(grad) and slopes.dtype == grad.dtype:
        return kernel.rrelu_backward(grad, mask, slopes)
    return scale(grad.reshape(-1), mask, slopes).view(grad.shape)


rrelu_backward = operator("rrelu_backward")(rrelu_backward_impl)


@rrelu_backward.register_fake
def _(grad: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
    return grad.new_empty(grad.shape)


# ---------------------------------------------------------------------------------------------
# the autograd formula


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    ctx.set_materialize_grads(False)  # no zeros made for the mask's (never used) gradient
    _y, mask, slopes = output
    ctx.mark_non_differentiable(slopes)
    ctx.save_for_backward(mask, slopes)


def _apply_backward(ctx: Any, grad: Tensor, registered: bool) -> Tensor:
    mask, slopes = ctx.saved_tensors
    if registered:
        return torch.ops.relukit.rrelu_backward.default(grad, mask, slopes)
    return RReLUBackward.apply(grad, mask, slopes)


def _gradient(ctx: Any, grad: Tensor, *_unused: Any, registered: bool = False) -> tuple[Any, ...]:
    if grad is None:
        return None, None, None, None
    return _apply_backward(ctx, grad, registered), None, None, None


def _backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    _grad, mask, slopes = inputs
    ctx.save_for_backward(mask, slopes)


def _backward_gradient(ctx: Any, grad: Tensor, registered: bool = False) -> tuple[Any, ...]:
    return _apply_backward(ctx, grad, registered), None, None


rrelu.register_autograd(functools.partial(_gradient, registered=True), setup_context=_setup)
rrelu_backward.register_autograd(
    functools.partial(_backward_gradient, registered=True), setup_context=_backward_setup
)


class RReLUFunction(torch.autograd.Function):
    """The eager form of ``relukit::rrelu``."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, lower: float, upper: float, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        output = rrelu_impl(x, lower, upper, generator)
        _setup(ctx, (x, lower, upper, generator), output)
        return output

    backward = staticmethod(_gradient)


class RReLUBackward(torch.autograd.Function):
    """The eager form of ``relukit::rrelu_backward``."""

    @staticmethod
    def forward(ctx: Any, grad: Tensor, mask: Tensor, slopes: Tensor) -> Tensor:
        output = rrelu_backward_impl(grad, mask, slopes)
        _backward_setup(ctx, (grad, mask, slopes), output)
        return output

    backward = staticmethod(_backward_gradient)


class RReLUInplace(torch.autograd.Function):
    """RReLU in training written into its input (marked dirty); the backward is ``rrelu``'s."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, lower: float, upper: float, generator: torch.Generator | None
    ) -> Tensor:
        if compiling():
            mask, slopes = torch.ops.relukit.rrelu_inplace.default(x, lower, upper, generator)
        else:
            mask, slopes = rrelu_inplace_impl(x, lower, upper, generator)
        ctx.mark_dirty(x)
        _setup(ctx, (x, lower, upper, generator), (x, mask, slopes))
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
        return _gradient(ctx, grad, registered=compiling())


def forward(x: Tensor, lower: float, upper: float, generator: torch.Generator | None) -> Tensor:
    """RReLU in training with autograd."""
    if compiling():
        return torch.ops.relukit.rrelu.default(x, lower, upper, generator)[0]
    return RReLUFunction.apply(x, lower, upper, generator)[0]


def forward_inplace(
    x: Tensor, lower: float, upper: float, generator: torch.Generator | None, where: str
) -> Tensor:
    """RReLU in training written into ``x``, with autograd."""
    check_inplace(x, where)
    return RReLUInplace.apply(x, lower, upper, generator)
