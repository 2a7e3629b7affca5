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
from relukit.kernels import dispatch, reference
from relukit.kernels.arrays import Input, dtype_kind

OPS = ("forward", "derivative", "vjp")


@dataclass(eq=False)
class _Call:
    """What the backward needs of a call besides its saved tensors: the call (``source``
    without its array), its value, and ``graph(x, grad)``, the reference path's value whose
    autograd graph gives the gradients; ``function``, the bound member whose NumPy route
    computes the forward's vjp (:func:`through_numpy`), or None."""

    spec: Activation
    op: str
    source: Input
    params: dict[str, Any]
    value: Any
    graph: Callable[[Any, Any], Any]
    function: Any = None


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
    if not tracked or _declined(x, grad, params):
        return None
    value = _kernels(spec, op, source, params, grad)
    if value is None or not torch.is_grad_enabled():
        return value
    template = replace(source, array=None)  # (the node holds x as saved alone)
    graph = _reference_graph(spec, op, template, params)
    return _function().apply(_Call(spec, op, template, params, value, graph), x, grad)


def _declined(x: Any, grad: Any, params: dict[str, Any]) -> bool:
    """Does the reference path take this tracked call (see the module's docstring)?"""
    from relukit.kernels.cpu import host

    # (a tangent, a trace or torch.compile)
    if host.outside_autograd(x) or (grad is not None and host.outside_autograd(grad)):
        return True
    return bool(params.get("training")) and isinstance(params.get("seed"), np.random.Generator)


def through_numpy(method: Any, function: Any, x: Any, op: str) -> Any:
    """``op`` (forward or derivative) of a bound member, ``function``, called with no other
    parameters on a CPU tensor that requires grad: :func:`run`'s call, with its value from
    ``method``'s NumPy route on the detached tensor
    (:func:`relukit.kernels.dispatch._through_numpy`, the same kernels, so the same bits)
    instead of the general path, which plans each call in Python, and the forward's vjp in
    the backward likewise (:func:`_vjp_through_numpy`). None where that route does not take
    x (a bound parameter that requires grad among others) or run declines. relu on 1,024
    float32 elements, AMD EPYC, µs, forward / forward and backward: 57-62 / 167 by the general
    path, 18-25 / 77-80 this way."""
    params = function.params
    if _declined(x, None, params):
        return None
    value = dispatch._through_numpy(method, function, x.detach(), None)
    if value is None or not sys.modules["torch"].is_grad_enabled():
        return value
    spec, template = function.spec, _template(x)
    graph = _reference_graph(spec, op, template, params)
    return _function().apply(_Call(spec, op, template, params, value, graph, function), x, None)


_templates: dict[Any, Input] = {}


def _template(x: Any) -> Input:
    """The :class:`Input` of a float tensor like ``x``, without its array (one per dtype)."""
    found = _templates.get(x.dtype)
    if found is None:
        import array_api_compat

        xp = array_api_compat.array_namespace(x)
        found = _templates[x.dtype] = Input(None, xp, dtype_kind(xp, x.dtype), False)
    return found


def _vjp_through_numpy(function: Any, x: Any, g: Any) -> Any:
    """``function.vjp(x, g)`` of tensors by the NumPy route: the bound member's
    :meth:`relukit.kernels.dispatch.Fast.vjp` on NumPy views of the detached tensors, into a
    new tensor; None where that route does not take them."""
    try:
        x, g = x.detach(), g.detach()
    except RuntimeError:  # (a batched gradient, is_grads_batched: no detach under vmap)
        return None
    view = dispatch.small_view(x)
    if view is None:
        return None
    grad = dispatch._plain_view(g)
    if grad is None or grad.dtype is not view.dtype or grad.shape != view.shape:
        return None
    y, into = dispatch.new_like(x)
    fast = function._fast or function._make_fast()
    return None if fast.vjp(view, grad, into) is None else y


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
            # (not the output it makes: a cycle through C++ that the collector cannot free;
            # each call is made for one apply)
            value, call.value = call.value, None
            ctx.call = call
            ctx.save_for_backward(x, grad)
            return value

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
    if call.op == "forward" and needed[0]:
        value = None if call.function is None else _vjp_through_numpy(call.function, x, g)
        if value is None:
            source = replace(call.source, array=x)
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
        value = call.graph(*inputs)
        if value.requires_grad:
            found = torch.autograd.grad(value, wrt, g, create_graph=create, materialize_grads=True)
        else:  # (a value constant in them: the gradient of a piecewise linear member's gradient)
            found = tuple(torch.zeros_like(t) for t in wrt)
        if create:
            # a gradient constant in them (a piecewise linear member's, whose own gradient is
            # zero) connected to them with a zero derivative, as torch.relu's double backward
            # is, so that a further derivative is zero, not refused
            found = tuple(
                f if f.requires_grad else torch.where(torch.zeros_like(t, dtype=torch.bool), t, f)
                for t, f in zip(wrt, found, strict=True)
            )
    taken = iter(found)
    return [(next(taken) if need else None) for need in needed]
