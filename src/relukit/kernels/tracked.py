"""CPU tensors that autograd tracks: the kernels' values, with autograd's gradients.

The kernels read a tensor's memory through NumPy, outside autograd's graph, so a CPU tensor
that requires grad used to take the reference path (torch operations, which build the graph).
There an element could get other bits than the same tensor detached gets from the kernels
(float32 ``silu(0.5)``: 0.31122968 against 0.31122965), so a value depended on whether its
tensor required grad. :func:`run` computes it with the kernels on the detached tensors, and
hands it to autograd through a ``torch.autograd.Function`` whose backward is:

- for the forward, the kernels' vjp at x: the bits of ``f.vjp(x.detach(), g)``; with
  ``create_graph``, a node of its own, whose gradients are those of the reference path's
  forward gradient (so a second derivative has the values it had before);
- for the derivative and the vjp, whose gradients need a second derivative, which no kernel
  computes: the reference path's own graph, the op evaluated again with torch operations on the
  saved inputs and differentiated by autograd (connected to those inputs, so that a third
  derivative works too).

The reference path takes the call as before (:func:`run` returns None):

- under ``torch.compile``'s tracing, which follows torch operations, not NumPy, and
  ``torch.jit.trace``'s, and for dual tensors of forward-mode AD (their tangents);
- for rrelu in training with a NumPy Generator for its seed (each draw moves it on, so the
  backward could not draw the forward's slopes again);
- wherever the kernels decline the detached call: tensors without storage (under
  ``torch.func``'s transforms), other devices, the structural members.

>>> import torch, relukit
>>> x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
>>> y = relukit.silu(x)
>>> torch.equal(y.detach(), relukit.silu(x.detach()))
True
>>> y.backward(torch.ones(3))
>>> torch.equal(x.grad, relukit.silu.vjp(x.detach(), torch.ones(3)))
True
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from relukit.family.spec import Activation
from relukit.kernels import reference
from relukit.kernels.arrays import Input

OPS = ("forward", "derivative", "vjp")


@dataclass(frozen=True)
class _Call:
    """What the backward needs of a call besides its saved tensors: the call (``source``
    without its array), its value, and ``graph(x, grad)``, the reference path's value whose
    autograd graph gives the gradients."""

    spec: Activation
    op: str
    source: Input
    params: dict[str, Any]
    value: Any
    graph: Callable[[Any, Any], Any]


def run(spec: Activation, op: str, source: Input, params: dict[str, Any], grad: Any = None) -> Any:
    """``op`` (forward, derivative or vjp with respect to x) of ``spec`` at a torch tensor
    that autograd tracks (x or ``grad`` requires grad, grad mode on): the kernels' value on the
    detached tensors, in autograd's graph; None where the reference path takes the call (see
    the module's docstring) or nothing requires grad."""
    torch = sys.modules.get("torch")
    x = source.array
    if torch is None or not isinstance(x, torch.Tensor) or op not in OPS:
        return None
    tracked = x.requires_grad or bool(getattr(grad, "requires_grad", False))
    if not tracked:
        return None
    from relukit.kernels.cpu.host import outside_autograd

    # (a tangent, a trace or torch.compile: the reference path)
    if any(t is not None and outside_autograd(t) for t in (x, grad)):
        return None
    if params.get("training") and isinstance(params.get("seed"), np.random.Generator):
        return None
    value = _kernels(spec, op, source, params, grad)
    if value is None or not torch.is_grad_enabled():
        return value
    template = replace(source, array=None)  # (the node holds x as saved alone)
    graph = _reference_graph(spec, op, template, params)
    return _function().apply(_Call(spec, op, template, params, value, graph), x, grad)


def _kernels(spec: Activation, op: str, source: Input, params: dict[str, Any], grad: Any) -> Any:
    """The kernels' value of the call on the detached tensors (None where they decline)."""
    from relukit.kernels import cpu

    try:
        x = source.array.detach()
        detached = None if grad is None else grad.detach()
    except RuntimeError:  # (a batched gradient, is_grads_batched: no detach under vmap)
        return None
    return cpu.run(spec, op, replace(source, array=x), params, grad=detached)


def _reference_graph(
    spec: Activation, op: str, source: Input, params: dict[str, Any]
) -> Callable[[Any, Any], Any]:
    """The reference path's value of the call, as a function of x and grad."""

    def graph(x: Any, grad: Any) -> Any:
        return reference.evaluate(spec, op, replace(source, array=x), params, grad=grad)

    return graph


def _forward_gradient(
    spec: Activation, source: Input, params: dict[str, Any]
) -> Callable[[Any, Any], Any]:
    """The gradient of the reference path's forward at x for ``g``, as a function of x and g
    (with its own graph: what a double backward differentiated before)."""

    def graph(x: Any, g: Any) -> Any:
        import torch

        # (x is an alias made by _gradients: a gradient taken at it runs no hook of the input)
        y = reference.evaluate(spec, "forward", replace(source, array=x), params)
        (found,) = torch.autograd.grad(y, x, g, create_graph=True)
        return found

    return graph


@functools.cache
def _function() -> Any:
    """The ``torch.autograd.Function`` (made at the first call: torch is imported then)."""
    import torch

    class KernelValue(torch.autograd.Function):
        """The kernels' value of a call (computed before, on the detached tensors), and its
        gradients (:func:`_gradients`)."""

        @staticmethod
        def forward(ctx: Any, call: _Call, x: Any, grad: Any) -> Any:
            # (not the output it makes: a cycle through C++ that the collector cannot free)
            ctx.call = replace(call, value=None)
            ctx.save_for_backward(x, grad)
            return call.value

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            x, grad = ctx.saved_tensors
            return (None, *_gradients(ctx.call, x, grad, g, ctx.needs_input_grad[1:]))

    return KernelValue


def _gradients(call: _Call, x: Any, grad: Any, g: Any, needed: tuple[bool, ...]) -> list[Any]:
    """The gradients of a call with respect to x and ``grad`` (None where not ``needed``),
    for the incoming gradient ``g``: the forward's the kernels' vjp (a call of its own in the
    graph where ``create_graph`` asks for one, differentiated as the reference path's forward
    gradient), the others' from ``call.graph``."""
    import torch

    create = torch.is_grad_enabled()
    source = replace(call.source, array=x)
    if call.op == "forward" and needed[0]:
        value = _kernels(call.spec, "vjp", source, call.params, g)
        if value is not None and not create:
            return [value, None]
        if value is not None:
            graph = _forward_gradient(call.spec, call.source, call.params)
            vjp = _Call(call.spec, "vjp", call.source, call.params, value, graph)
            return [_function().apply(vjp, x, g), None]
    # the reference path's graph, on aliases of the saved inputs (connected to them, so that
    # create_graph connects the result to them; a gradient taken at an input itself would run
    # its hooks, which the outer backward runs too)
    with torch.enable_grad():
        inputs = [t.view_as(t) if need else t for t, need in zip((x, grad), needed, strict=True)]
        wrt = [t for t, need in zip(inputs, needed, strict=True) if need]
        found = torch.autograd.grad(
            call.graph(*inputs), wrt, g, create_graph=create, materialize_grads=True
        )
    taken = iter(found)
    return [(next(taken) if need else None) for need in needed]
