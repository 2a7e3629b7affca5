r"""Gradient flow: how large the gradients are, layer by layer, after one backward pass.

For a loss :math:`L` on one batch, :func:`gradient_flow` returns

* for every weight matrix or kernel :math:`W_\ell` (every parameter with two or more
  dimensions), :math:`\lVert \partial L/\partial W_\ell \rVert_2` and :math:`\lVert W_\ell\rVert_2`;
* for every activation module :math:`y = f(x)`, the norm of the gradient reaching it,
  :math:`\lVert \partial L/\partial y \rVert_2`, and of the gradient it passes on,
  :math:`\lVert \partial L/\partial x \rVert_2 = \lVert f'(x) \odot \partial L/\partial y \rVert_2`.

Their ratio is the activation's attenuation: at most 1/4 for the sigmoid, whose derivative
never exceeds 1/4, so deep sigmoid stacks show the geometric decay known as the vanishing
gradient, while ReLU family members pass the gradient of their active units unchanged.
Norms are Frobenius norms over the whole tensor (all samples of the batch); ``*_rms`` divide by
the square root of the element count, which makes layers of different sizes comparable.

The model runs once in its current mode (in training mode BatchNorm updates its running
statistics, as in any training step). Gradients are taken with :func:`torch.autograd.grad`, so
the parameters' ``.grad`` fields are left as they were.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from relukit.diagnostics import gradient_flow
    >>> g = torch.Generator().manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 1))
    >>> x, y = torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)
    >>> flow = gradient_flow(model, (x, y), nn.MSELoss())
    >>> [w.name for w in flow.weights]
    ['0.weight', '2.weight']
    >>> act = flow.activations[0]
    >>> act.member, act.grad_input_norm <= 0.25 * act.grad_output_norm
    ('sigmoid', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from relukit.diagnostics.monitor import find_activations, member_of

__all__ = ["ActivationGrad", "GradientFlow", "WeightGrad", "gradient_flow"]

_FN = "gradient_flow"


@dataclass(frozen=True)
class WeightGrad:
    """Gradient of one weight matrix or kernel.

    Attributes:
        name: parameter name, as in ``model.named_parameters()``.
        shape: parameter shape.
        grad_norm: :math:`\\lVert \\partial L/\\partial W \\rVert_2` (0 if unused by the loss).
        weight_norm: :math:`\\lVert W \\rVert_2`.
    """

    name: str
    shape: tuple[int, ...]
    grad_norm: float
    weight_norm: float

    @property
    def grad_rms(self) -> float:
        """``grad_norm / sqrt(numel)``."""
        return self.grad_norm / math.sqrt(max(math.prod(self.shape), 1))


@dataclass(frozen=True)
class ActivationGrad:
    """Gradient at one activation module.

    Attributes:
        name: qualified module name.
        member: registry member name (``"custom"`` if named explicitly without one).
        grad_output_norm: norm of the gradient reaching the module's output.
        grad_input_norm: norm of the gradient it passes to its input.
        numel: elements of its output, summed over calls.
        calls: forward calls (a module called twice contributes both gradients).
    """

    name: str
    member: str
    grad_output_norm: float
    grad_input_norm: float
    numel: int
    calls: int

    @property
    def grad_output_rms(self) -> float:
        """``grad_output_norm / sqrt(numel)``."""
        return self.grad_output_norm / math.sqrt(max(self.numel, 1))

    @property
    def attenuation(self) -> float:
        """``grad_input_norm / grad_output_norm`` (``nan`` when nothing reached it)."""
        if self.grad_output_norm == 0:
            return math.nan
        return self.grad_input_norm / self.grad_output_norm


@dataclass(frozen=True)
class GradientFlow:
    """Result of :func:`gradient_flow`: the loss and per-layer gradient norms in model order."""

    loss: float
    weights: tuple[WeightGrad, ...]
    activations: tuple[ActivationGrad, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (shapes become lists)."""
        return {
            "loss": self.loss,
            "weights": [{**asdict(w), "shape": list(w.shape)} for w in self.weights],
            "activations": [asdict(a) for a in self.activations],
        }


def _split_batch(batch: object) -> tuple[Any, Any, bool]:
    if isinstance(batch, torch.Tensor):
        return batch, None, False
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1], True
    raise TypeError(
        f"{_FN}: batch must be a tensor or an (inputs, targets) pair, got "
        f"{type(batch).__name__} of length {len(batch) if hasattr(batch, '__len__') else '?'}"
    )


def _norm(squares: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float(s) for s in squares))


def gradient_flow(
    model: nn.Module,
    batch: torch.Tensor | tuple[Any, Any],
    loss_fn: Callable[..., torch.Tensor],
    *,
    modules: Iterable[str] | None = None,
) -> GradientFlow:
    r"""Per-layer norms of the weight gradients and of the gradients at each activation.

    Args:
        model: any ``torch.nn.Module``.
        batch: ``(inputs, targets)``, giving ``loss = loss_fn(model(inputs), targets)``, or a
            single tensor, giving ``loss = loss_fn(model(batch))``.
        loss_fn: returns a scalar tensor.
        modules: names of the activation modules to follow (default: every activation
            :func:`~relukit.diagnostics.monitor.find_activations` finds).

    Returns:
        A :class:`GradientFlow`; plot it with :func:`~relukit.diagnostics.plot_gradient_flow`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
        >>> flow = gradient_flow(model, torch.ones(2, 3), lambda out: out.sum())
        >>> len(flow.weights), len(flow.activations), model[0].weight.grad is None
        (2, 1, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{_FN}: model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"{_FN}: loss_fn must be callable, got {type(loss_fn).__name__}")
    inputs, targets, paired = _split_batch(batch)
    named = dict(model.named_modules())
    if modules is None:
        followed = find_activations(model)
    else:
        if isinstance(modules, str):
            raise TypeError(f"{_FN}: modules must be an iterable of names, got str {modules!r}")
        followed = {}
        for name in modules:
            if name not in named:
                raise ValueError(f"{_FN}: modules names {name!r}, not a module of model")
            followed[name] = member_of(named[name]) or "custom"

    numel = dict.fromkeys(followed, 0)
    calls = dict.fromkeys(followed, 0)
    out_sums: dict[str, list[torch.Tensor]] = {n: [] for n in followed}
    in_sums: dict[str, list[torch.Tensor]] = {n: [] for n in followed}

    def grad_hook(store: dict[str, list[torch.Tensor]], name: str):
        def hook(grad: torch.Tensor) -> None:
            store[name].append(grad.detach().double().square().sum())

        return hook

    def pre_hook(name: str):
        def hook(_module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
                args[0].register_hook(grad_hook(in_sums, name))

        return hook

    def fwd_hook(name: str):
        def hook(_module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            if isinstance(output, torch.Tensor):
                calls[name] += 1
                numel[name] += output.numel()
                if output.requires_grad:
                    output.register_hook(grad_hook(out_sums, name))

        return hook

    handles = []
    try:
        for name in followed:
            handles.append(named[name].register_forward_pre_hook(pre_hook(name)))
            handles.append(named[name].register_forward_hook(fwd_hook(name)))
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
        with torch.enable_grad():
            output = model(inputs)
            loss = loss_fn(output, targets) if paired else loss_fn(output)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(
                    f"{_FN}: loss_fn must return a scalar tensor, got "
                    f"{type(loss).__name__} {getattr(loss, 'shape', loss)!r}"
                )
            if not loss.requires_grad:
                raise ValueError(f"{_FN}: the loss does not depend on any trainable parameter")
            grads = torch.autograd.grad(
                loss, [p for _, p in params], allow_unused=True, retain_graph=False
            )
    finally:
        for handle in handles:
            handle.remove()

    weights = tuple(
        WeightGrad(
            name=n,
            shape=tuple(p.shape),
            grad_norm=0.0 if g is None else float(g.detach().double().norm()),
            weight_norm=float(p.detach().double().norm()),
        )
        for (n, p), g in zip(params, grads, strict=True)
    )
    activations = tuple(
        ActivationGrad(
            name=n,
            member=member,
            grad_output_norm=_norm(out_sums[n]),
            grad_input_norm=_norm(in_sums[n]),
            numel=numel[n],
            calls=calls[n],
        )
        for n, member in followed.items()
    )
    return GradientFlow(float(loss.detach()), weights, activations)
