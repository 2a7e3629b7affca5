"""What autograd keeps for the backward pass of a model, in bytes, counted once per storage.

:func:`saved_bytes` runs a forward under ``torch.autograd.graph.saved_tensors_hooks`` and sees
every tensor autograd saves. Tensors that share a storage (a Linear's input that is also the
activation's output, kept by ``backward="output"``) are counted once, at the storage's size.
The parameters, which the linear and convolution layers save and which are alive anyway, are
left out. Each storage is attributed to the leaf modules that saved it, so that the count
splits into what the activations save and what only they save (what a memory mode can free).

Example:
    >>> import torch
    >>> from torch import nn
    >>> import relukit.nn as rn
    >>> model = nn.Sequential(nn.Linear(8, 32), rn.GELU(backward="output"), nn.Linear(32, 2))
    >>> x = torch.randn(16, 8)
    >>> kept = saved_bytes(model, lambda: model(x).sum())
    >>> kept.only_activation  # one bit per element of the 16×32 hidden tensor
    64
    >>> kept.total == 16 * 8 * 4 + 16 * 32 * 4 + 64  # x, GELU's output shared with Linear, bits
    True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Saved", "is_activation", "saved_bytes"]


@dataclass(frozen=True)
class Saved:
    """Bytes kept for the backward pass, parameters left out.

    Attributes:
        total: every storage saved, once each.
        activation: the storages an activation module saved (some may be shared with other
            layers: the output a following Linear keeps as its input).
        only_activation: the storages no other layer saved.
    """

    total: int
    activation: int
    only_activation: int


def is_activation(module: nn.Module) -> bool:
    """A relukit.nn module of a registry member, or a torch.nn activation that
    :func:`relukit.nn.convert` replaces."""
    from relukit.nn.convert import TO_RELUKIT

    return hasattr(module, "relukit_member") or type(module) in TO_RELUKIT


def saved_bytes(model: nn.Module, forward: Callable[[], object]) -> Saved:
    """Bytes autograd keeps while ``forward()`` runs: a forward pass of ``model``, which may
    run the backward too (``lambda: loss(model(x)).backward()``)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    stack: list[bool] = []
    storages: dict[int, int] = {}
    savers: dict[int, set[bool]] = {}

    def enter(flag: bool) -> Callable[..., None]:
        return lambda _module, _inputs: stack.append(flag)

    def leave(_module: nn.Module, _inputs: object, _output: object) -> None:
        stack.pop()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in params:
            storages[key] = storage.nbytes()
            savers.setdefault(key, set()).add(bool(stack and stack[-1]))
        return tensor

    hooks = []
    try:
        for module in model.modules():
            if next(module.children(), None) is None:
                hooks.append(module.register_forward_pre_hook(enter(is_activation(module))))
                hooks.append(module.register_forward_hook(leave))
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return Saved(
        total=sum(storages.values()),
        activation=sum(storages[k] for k, s in savers.items() if True in s),
        only_activation=sum(storages[k] for k, s in savers.items() if s == {True}),
    )
