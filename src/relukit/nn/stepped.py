"""The bits mode of the smooth members (``backward="bits", bits=b``): Few-Bit's backward.

The forward is PyTorch's own operation (values bit for bit); autograd keeps a ``b``-bit code
per element, the interval of the input among the borders of the member's optimal step
derivative (:mod:`relukit.memory.steps`), packed by the one packer
(:mod:`relukit.kernels.mask`, 3 bits straddling bytes). The backward multiplies the incoming
gradient by the level of each code. 16-bit inputs are placed among the borders in float32.

========================  ==================================================================
``stepped``               ``(y, mask)``: the forward and the packed codes
``stepped_backward``      ``grad·q(x)`` from the codes alone
========================  ==================================================================

Example:
    >>> import torch
    >>> from relukit.nn.from_output import key
    >>> x = torch.tensor([-3.0, 0.1, 3.0], requires_grad=True)
    >>> y, mask = forward(x, "gelu", key("gelu", {}), 1)
    >>> y.sum().backward()
    >>> [round(v, 4) for v in x.grad.tolist()], mask.numel()
    ([0.0908, 0.9092, 0.9092], 1)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from relukit.kernels.mask import nbytes, pack_codes, unpack_codes
from relukit.memory import steps as memory_steps
from relukit.nn.from_output import compiled, member_of, torch_forward
from relukit.nn.kernel import triton
from relukit.nn.library import compiling, operator

_TENSORS: dict[tuple[str, str, int, torch.dtype, str], tuple[Tensor, Tensor]] = {}


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def tables(
    member: str, params: str, bits: int, dtype: torch.dtype, device: Any
) -> tuple[Tensor, Tensor]:
    """The borders (in the working dtype of ``dtype``) and levels (``dtype``) as tensors."""
    cache = (member, params, bits, dtype, str(device))
    found = _TENSORS.get(cache)
    if found is None:
        spec, bound = member_of(member, params)
        q = memory_steps.steps_for(spec, bits, bound)
        found = (
            torch.tensor(q.borders, dtype=_work_dtype(dtype), device=device),
            torch.tensor(q.levels, dtype=dtype, device=device),
        )
        _TENSORS[cache] = found
    return found


def _steps(member: str, params: str, bits: int) -> memory_steps.StepDerivative:
    spec, bound = member_of(member, params)
    return memory_steps.steps_for(spec, bits, bound)


# ---------------------------------------------------------------------------------------------
# operators


def stepped_impl(x: Tensor, member: str, params: str, bits: int) -> tuple[Tensor, Tensor]:
    """The forward and the packed codes of ``x`` among the borders."""
    spec, bound = member_of(member, params)
    if triton(x):
        from relukit.kernels.gpu import steps as kernels

        q = _steps(member, params, bits)
        return torch_forward(spec, bound, x), kernels.encode(x, q.borders, bits)
    borders, _levels = tables(member, params, bits, x.dtype, x.device)
    if compiled(x):
        from relukit.kernels.cpu import memory as kernels

        packed = kernels.step_codes(x.detach().numpy().reshape(-1), borders.numpy(), bits)
        return torch_forward(spec, bound, x), torch.from_numpy(packed)
    codes = torch.bucketize(x.to(borders.dtype), borders, out_int32=True)
    return torch_forward(spec, bound, x), pack_codes(codes, bits)


stepped = operator("stepped")(stepped_impl)


@stepped.register_fake
def _(x: Tensor, member: str, params: str, bits: int) -> tuple[Tensor, Tensor]:
    return torch.empty_like(x), x.new_empty(nbytes(x.numel(), bits), dtype=torch.uint8)


def stepped_backward_impl(
    grad: Tensor, mask: Tensor, member: str, params: str, bits: int
) -> Tensor:
    """``grad·q(x)``: the level of each element's code."""
    if triton(grad):
        from relukit.kernels.gpu import steps as kernels

        return kernels.backward(grad, mask, _steps(member, params, bits).levels, bits)
    _borders, levels = tables(member, params, bits, grad.dtype, grad.device)
    if compiled(grad):
        from relukit.kernels.cpu import memory as kernels

        out = kernels.step_backward(grad.numpy().reshape(-1), mask.numpy(), levels.numpy(), bits)
        return torch.from_numpy(out).view(grad.shape)
    codes = unpack_codes(mask, grad.numel(), bits)
    return grad * levels.take(codes.to(torch.int64)).view(grad.shape)


stepped_backward = operator("stepped_backward")(stepped_backward_impl)


@stepped_backward.register_fake
def _(grad: Tensor, mask: Tensor, member: str, params: str, bits: int) -> Tensor:
    return torch.empty_like(grad)


# ---------------------------------------------------------------------------------------------
# the autograd formula, registered on the operator and as the eager Function


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    _x, member, params, bits = inputs
    ctx.save_for_backward(output[1])
    ctx.member, ctx.params, ctx.bits = member, params, bits


def _registered_gradient(ctx: Any, grad: Tensor, _mask_grad: Any = None) -> tuple[Any, ...]:
    (mask,) = ctx.saved_tensors
    args = (grad, mask, ctx.member, ctx.params, ctx.bits)
    return torch.ops.relukit.stepped_backward.default(*args), None, None, None


stepped.register_autograd(_registered_gradient, setup_context=_setup)


class Stepped(torch.autograd.Function):
    """The eager form of ``relukit::stepped`` (its forward takes ``ctx``, as
    :class:`relukit.nn.from_output.FromOutput`'s does, for the same reason)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, member: str, params: str, bits: int) -> tuple[Tensor, Tensor]:
        output = stepped_impl(x, member, params, bits)
        _setup(ctx, (x, member, params, bits), output)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, _mask_grad: Any = None) -> tuple[Any, ...]:
        (mask,) = ctx.saved_tensors
        return stepped_backward_impl(grad, mask, ctx.member, ctx.params, ctx.bits), None, None, None


def forward(x: Tensor, member: str, params: str, bits: int) -> tuple[Tensor, Tensor]:
    """``(y, mask)`` with autograd: the operator under torch.compile, the Function otherwise."""
    if compiling():
        return torch.ops.relukit.stepped.default(x, member, params, bits)
    return Stepped.apply(x, member, params, bits)
