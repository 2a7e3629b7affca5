"""The autograd formulas of relukit's operators, and the ``torch.autograd.Function`` classes.

Each formula (what the forward saves, how the backward runs) is written once and used twice:

- registered on the ``torch.library`` operator with ``register_autograd``: the form
  ``torch.compile`` traces (its backward calls the operators, :data:`COMPILED`);
- as a ``torch.autograd.Function`` around the operator's plain Python implementation: the form
  eager mode runs (:data:`EAGER`), which skips the dispatcher's per-call cost (tens of
  microseconds, more than the work itself on small tensors).

:func:`call` picks one of the two. The in-place variants are :class:`InplaceMasked` and
:class:`InplaceRReLU`, Functions that write into their input through a mutating operator and
mark it dirty, as PyTorch's own in-place activations do: the input's version counter moves (so
an operation that saved it fails at backward, as with PyTorch) and the gradient is the
functional one, bit for bit.

What each forward saves:

- ``masked``: the packed mask only (1 bit per element; 2 for general_relu with slope and cap).
- ``prelu``: the mask, the weight (a parameter, alive anyway) and, only if the weight needs a
  gradient, the inputs that were not positive.
- ``rrelu`` (training): the mask and one slope per input ≤ 0.
- ``crelu``: two bits per input. ``maxout``: the winner's index, log2(pieces) bits per output.

Double backward: the backward of every member but PReLU is linear in the incoming gradient
and depends on x only through the saved codes, so its own gradient is another of these
operators (the second derivative with respect to x is zero almost everywhere, as PyTorch's).
PReLU's weight gradient needs x itself, which the saved copy no longer tracks: asking for
its double backward raises an error that names the way out (``torch.nn.PReLU``).

Example:
    >>> import torch
    >>> x = torch.tensor([-1.0, 2.0], requires_grad=True)
    >>> y, mask = call("masked", x, "relu", [])
    >>> y.backward(torch.ones(2))
    >>> x.grad.tolist(), mask.tolist()
    ([0.0, 1.0], [2])
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from relukit.nn import ops

COMPILED = SimpleNamespace()
"""Operator name → the ``torch.ops.relukit`` operator (traced by torch.compile)."""

EAGER = SimpleNamespace()
"""Operator name → ``apply`` of its ``torch.autograd.Function`` (run in eager mode)."""

Setup = Callable[[Any, tuple[Any, ...], Any], None]
Backward = Callable[..., Any]


def call(name: str, *args: Any) -> Any:
    """Run operator ``name``: the registered operator under torch.compile, else its Function."""
    calls = COMPILED if torch.compiler.is_compiling() else EAGER
    return getattr(calls, name)(*args)


def _define(name: str, setup: Setup, make_backward: Callable[[SimpleNamespace], Backward]) -> None:
    """Register the formula on operator ``name`` and build its eager Function."""
    operator = getattr(ops, name)
    operator.register_autograd(make_backward(COMPILED), setup_context=setup)
    setattr(COMPILED, name, getattr(torch.ops.relukit, name).default)
    implementation = ops.IMPLEMENTATIONS[name]

    def forward(ctx: Any, *args: Any) -> Any:
        output = implementation(*args)
        setup(ctx, args, output)
        return output

    function = type(
        f"{name.title().replace('_', '')}Function",
        (torch.autograd.Function,),
        {
            "forward": staticmethod(forward),
            "backward": staticmethod(make_backward(EAGER)),
            "__doc__": f"The eager autograd Function of ``relukit::{name}``.",
        },
    )
    setattr(EAGER, name, function.apply)


# ---------------------------------------------------------------------------------------------
# masked


def _masked_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    _x, member, params = inputs
    ctx.save_for_backward(output[1])
    ctx.member, ctx.params = member, params


def _masked_grad(calls: SimpleNamespace) -> Backward:
    def backward(ctx: Any, grad: Tensor, _mask_grad: Any = None) -> tuple[Any, ...]:
        (mask,) = ctx.saved_tensors
        return calls.masked_backward(grad, mask, ctx.member, ctx.params), None, None

    return backward


def _masked_backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    _grad, mask, member, params = inputs
    ctx.save_for_backward(mask)
    ctx.member, ctx.params = member, params


def _masked_backward_grad(calls: SimpleNamespace) -> Backward:
    # The backward is diagonal and linear in grad: it is its own adjoint.
    def backward(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
        (mask,) = ctx.saved_tensors
        return calls.masked_backward(grad, mask, ctx.member, ctx.params), None, None, None

    return backward


_define("masked", _masked_setup, _masked_grad)
_define("masked_backward", _masked_backward_setup, _masked_backward_grad)

# ---------------------------------------------------------------------------------------------
# prelu

PRELU_DOUBLE_BACKWARD = (
    "relukit.nn.PReLU does not support double backward: its weight gradient is rebuilt from a "
    "detached copy of the non-positive inputs. For second derivatives use torch.nn.PReLU "
    "(relukit.nn.revert(model) swaps the modules back, keeping the weights)."
)


def _prelu_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    x, weight, keep_negatives = inputs
    _y, mask, negatives = output
    ctx.mark_non_differentiable(negatives)
    ctx.save_for_backward(mask, negatives, weight)
    ctx.keep_negatives = keep_negatives
    ctx.input_strides = ops.dense_strides(x)


def _prelu_grad(calls: SimpleNamespace) -> Backward:
    def backward(ctx: Any, grad: Tensor, _mask_grad: Any, _negatives_grad: Any) -> tuple[Any, ...]:
        mask, negatives, weight = ctx.saved_tensors
        weight_grad = bool(ctx.needs_input_grad[1])
        if weight_grad and not ctx.keep_negatives:
            raise RuntimeError(
                "relukit.nn.functional.prelu: the weight needs a gradient but the forward ran "
                "with keep_negatives=False"
            )
        grad_x, grad_w = calls.prelu_backward(
            grad, mask, negatives, weight, weight_grad, ctx.input_strides
        )
        return grad_x, grad_w if weight_grad else None, None

    return backward


def _prelu_backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    return None


def _prelu_backward_grad(calls: SimpleNamespace) -> Backward:
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError(PRELU_DOUBLE_BACKWARD)

    return backward


_define("prelu", _prelu_setup, _prelu_grad)
_define("prelu_backward", _prelu_backward_setup, _prelu_backward_grad)

# ---------------------------------------------------------------------------------------------
# rrelu (training)


def _rrelu_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    _y, mask, slopes = output
    ctx.mark_non_differentiable(slopes)
    ctx.save_for_backward(mask, slopes)


def _rrelu_grad(calls: SimpleNamespace) -> Backward:
    def backward(ctx: Any, grad: Tensor, *_unused: Any) -> tuple[Any, ...]:
        mask, slopes = ctx.saved_tensors
        return calls.rrelu_backward(grad, mask, slopes), None, None, None

    return backward


def _rrelu_backward_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    _grad, mask, slopes = inputs
    ctx.save_for_backward(mask, slopes)


def _rrelu_backward_grad(calls: SimpleNamespace) -> Backward:
    def backward(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
        mask, slopes = ctx.saved_tensors
        return calls.rrelu_backward(grad, mask, slopes), None, None

    return backward


_define("rrelu", _rrelu_setup, _rrelu_grad)
_define("rrelu_backward", _rrelu_backward_setup, _rrelu_backward_grad)

# ---------------------------------------------------------------------------------------------
# crelu and maxout: a backward and its adjoint (the Jacobian), each the other's gradient


def _crelu_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(output[1])
    ctx.dim = inputs[1]


def _crelu_pair_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.dim = inputs[2]


def _crelu_grad(name: str, trailing: int) -> Callable[[SimpleNamespace], Backward]:
    def make(calls: SimpleNamespace) -> Backward:
        def backward(ctx: Any, grad: Tensor, *_unused: Any) -> tuple[Any, ...]:
            (mask,) = ctx.saved_tensors
            return (getattr(calls, name)(grad, mask, ctx.dim), *([None] * trailing))

        return backward

    return make


_define("crelu", _crelu_setup, _crelu_grad("crelu_backward", 1))
_define("crelu_backward", _crelu_pair_setup, _crelu_grad("crelu_jvp", 2))
_define("crelu_jvp", _crelu_pair_setup, _crelu_grad("crelu_backward", 2))


def _maxout_setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, Tensor]) -> None:
    ctx.save_for_backward(output[1])
    ctx.pieces, ctx.dim = inputs[1], inputs[2]


def _maxout_pair_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.save_for_backward(inputs[1])
    ctx.pieces, ctx.dim = inputs[2], inputs[3]


def _maxout_grad(name: str, trailing: int) -> Callable[[SimpleNamespace], Backward]:
    def make(calls: SimpleNamespace) -> Backward:
        def backward(ctx: Any, grad: Tensor, *_unused: Any) -> tuple[Any, ...]:
            (index,) = ctx.saved_tensors
            result = getattr(calls, name)(grad, index, ctx.pieces, ctx.dim)
            return (result, *([None] * trailing))

        return backward

    return make


_define("maxout", _maxout_setup, _maxout_grad("maxout_backward", 2))
_define("maxout_backward", _maxout_pair_setup, _maxout_grad("maxout_jvp", 3))
_define("maxout_jvp", _maxout_pair_setup, _maxout_grad("maxout_backward", 3))

# ---------------------------------------------------------------------------------------------
# in place


def check_inplace(x: Tensor, where: str) -> None:
    """PyTorch's refusal, before anything is written: no in-place on a leaf that needs a grad."""
    if not torch.is_grad_enabled():
        return
    if x.is_leaf and x.requires_grad:
        raise RuntimeError(
            f"{where}: a leaf Variable that requires grad is being used in an in-place operation."
        )
    base = x._base
    if base is not None and base.is_leaf and base.requires_grad:
        raise RuntimeError(
            f"{where}: a view of a leaf Variable that requires grad is being used in an "
            "in-place operation."
        )


def _in_place(name: str) -> Callable[..., Any]:
    if torch.compiler.is_compiling():
        return getattr(torch.ops.relukit, name).default
    return ops.IMPLEMENTATIONS[name]


class InplaceMasked(torch.autograd.Function):
    """A mask member written into its input; the backward is ``masked``'s."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, member: str, params: list[float]) -> Tensor:
        mask = _in_place("masked_inplace")(x, member, params)
        ctx.mark_dirty(x)
        _masked_setup(ctx, (x, member, params), (x, mask))
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
        return _masked_grad(COMPILED if torch.compiler.is_compiling() else EAGER)(ctx, grad)


class InplaceRReLU(torch.autograd.Function):
    """RReLU in training written into its input; the backward is ``rrelu``'s."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, lower: float, upper: float, generator: torch.Generator | None
    ) -> Tensor:
        mask, slopes = _in_place("rrelu_inplace")(x, lower, upper, generator)
        ctx.mark_dirty(x)
        _rrelu_setup(ctx, (x, lower, upper, generator), (x, mask, slopes))
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Any, ...]:
        return _rrelu_grad(COMPILED if torch.compiler.is_compiling() else EAGER)(ctx, grad)


__all__ = [
    "COMPILED",
    "EAGER",
    "PRELU_DOUBLE_BACKWARD",
    "InplaceMasked",
    "InplaceRReLU",
    "call",
    "check_inplace",
]
