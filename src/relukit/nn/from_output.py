"""The output mode of the smooth members (``backward="output"``): the backward from the output.

The forward is PyTorch's own operation (values bit for bit); autograd keeps its output, which
a following Linear or Conv keeps anyway (one storage, counted once), plus, for gelu, silu and
mish, one bit per element saying whether the input lay below the member's minimum. The
backward recovers f'(x) from them (:mod:`relukit.memory.output`: closed forms for elu, selu,
celu, softplus, squared_relu, sigmoid and tanh; a table-driven inverse for the others).

========================  ==================================================================
``from_output``           ``(y, mask)``: the forward and the packed bits (0 bytes where the
                          member needs none)
``from_output_backward``  ``grad·f'(x)`` from ``y`` and the mask
========================  ==================================================================

Members are named by registry name with their bound parameters as a JSON key (gelu's
``approximate`` is a string). The gradient is exact up to the rounding of ``y`` (see
:mod:`relukit.memory.output` and ``benchmarks/RESULTS.md``); a double backward is refused.

Example:
    >>> import torch
    >>> x = torch.tensor([-3.0, -0.5, 1.0], dtype=torch.float64, requires_grad=True)
    >>> y, mask = forward(x, "gelu", key("gelu", {}))
    >>> y.sum().backward()
    >>> [round(v, 6) for v in x.grad.tolist()]
    [-0.011946, 0.132505, 1.083315]
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from relukit.family import Activation, lookup
from relukit.kernels.mask import nbytes, pack_bits, unpack_bits
from relukit.memory import output as memory_output
from relukit.nn.kernel import KERNEL_DTYPES, kernels_available, triton
from relukit.nn.library import compiling, operator


def key(member: str, params: dict[str, Any]) -> str:
    """The bound parameters of ``member`` as the operators carry them (sorted JSON)."""
    return json.dumps(dict(sorted(lookup(member).bind(params).items())))


@functools.lru_cache(maxsize=512)
def member_of(member: str, params_key: str) -> tuple[Activation, dict[str, Any]]:
    """The registry record and bound parameters of an operator call."""
    spec = lookup(member)
    return spec, spec.bind(json.loads(params_key))


def torch_forward(spec: Activation, params: dict[str, Any], x: Tensor) -> Tensor:
    """The member computed by PyTorch's own operation (the ``input`` mode's values)."""
    if spec.name == "squared_relu":
        return torch.square(torch.relu(x))
    if spec.name in ("sigmoid", "tanh"):
        return getattr(torch, spec.name)(x)
    return getattr(F, spec.torch_name)(x, **params)


@functools.lru_cache(maxsize=512)
def _minimum(member: str, params_key: str) -> float | None:
    spec, params = member_of(member, params_key)
    if not memory_output.needs_bit(spec):
        return None
    return memory_output.minimum(spec, params).x


# ---------------------------------------------------------------------------------------------
# operators


def from_output_impl(x: Tensor, member: str, params: str) -> tuple[Tensor, Tensor]:
    """The forward and the packed bits ``x < x*`` (empty where the member needs none)."""
    spec, bound = member_of(member, params)
    y = torch_forward(spec, bound, x)
    x_min = _minimum(member, params)
    if x_min is None:
        return y, x.new_empty(0, dtype=torch.uint8)
    if compiled(x):
        from relukit.kernels.cpu import memory as kernels

        return y, torch.from_numpy(kernels.below_bits(x.detach().numpy().reshape(-1), x_min))
    return y, pack_bits(x < x_min, scratch=True)


from_output = operator("from_output")(from_output_impl)


@from_output.register_fake
def _(x: Tensor, member: str, params: str) -> tuple[Tensor, Tensor]:
    n = 0 if _minimum(member, params) is None else nbytes(x.numel(), 1)
    return torch.empty_like(x), x.new_empty(n, dtype=torch.uint8)


def compiled(*tensors: Tensor) -> bool:
    """Do relukit's compiled CPU kernels take these tensors (CPU, contiguous, float32/64)?"""
    first = tensors[0]
    return (
        first.device.type == "cpu"
        and first.dtype in KERNEL_DTYPES
        and all(t.dtype == first.dtype and t.is_contiguous() for t in tensors)
        and kernels_available()
    )


def from_output_backward_impl(
    grad: Tensor, y: Tensor, mask: Tensor, member: str, params: str
) -> Tensor:
    """``grad·f'(x)`` with f' recovered from the output ``y`` and the bits."""
    spec, bound = member_of(member, params)
    if _minimum(member, params) is None:
        return grad * memory_output.derivative_from_output(spec, bound, y)
    if triton(grad) and y.dtype == grad.dtype and y.shape == grad.shape:
        from relukit.kernels.gpu import output as kernels

        table = memory_output.inverse_table(spec, bound, wide=y.dtype == torch.float64)
        return kernels.backward(table, y, mask, grad)
    if compiled(grad, y):
        from relukit.kernels.cpu import memory as kernels

        table = memory_output.inverse_table(spec, bound, wide=y.dtype == torch.float64)
        out = kernels.inverse_backward(
            table, y.detach().numpy().reshape(-1), mask.numpy(), grad.numpy().reshape(-1)
        )
        return torch.from_numpy(out).view(grad.shape)
    below = unpack_bits(mask, y.numel()).view(y.shape)
    return grad * memory_output.derivative_from_output(spec, bound, y, below)


from_output_backward = operator("from_output_backward")(from_output_backward_impl)


@from_output_backward.register_fake
def _(grad: Tensor, y: Tensor, mask: Tensor, member: str, params: str) -> Tensor:
    return torch.empty_like(grad)


# ---------------------------------------------------------------------------------------------
# the autograd formula, registered on the operator and as the eager Function


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    _x, member, params = inputs
    ctx.save_for_backward(*output)
    ctx.member, ctx.params = member, params


def _registered_gradient(ctx: Any, grad: Tensor, _mask_grad: Any = None) -> tuple[Any, ...]:
    y, mask = ctx.saved_tensors
    args = (grad, y, mask, ctx.member, ctx.params)
    return torch.ops.relukit.from_output_backward.default(*args), None, None


from_output.register_autograd(_registered_gradient, setup_context=_setup)


class FromOutput(torch.autograd.Function):
    """The eager form of ``relukit::from_output`` (one backward: f'' is not kept). Its forward
    takes ``ctx`` itself rather than a ``setup_context``: PyTorch binds a separate
    ``setup_context``'s arguments through ``inspect.signature`` at every call, tens of
    microseconds that a small tensor's whole forward does not take."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, member: str, params: str) -> tuple[Tensor, Tensor]:
        output = from_output_impl(x, member, params)
        _setup(ctx, (x, member, params), output)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor, _mask_grad: Any = None) -> tuple[Any, ...]:
        y, mask = ctx.saved_tensors
        return from_output_backward_impl(grad, y, mask, ctx.member, ctx.params), None, None


def forward(x: Tensor, member: str, params: str) -> tuple[Tensor, Tensor]:
    """``(y, mask)`` with autograd: the operator under torch.compile, the Function otherwise."""
    if compiling():
        return torch.ops.relukit.from_output.default(x, member, params)
    return FromOutput.apply(x, member, params)
