"""Shared helpers: record what an activation module saw, and count firings by brute force."""

from __future__ import annotations

import pytest
import torch
from torch import nn


class Recorder:
    """Stores the input and output of every call of a module (training forwards only)."""

    def __init__(self, module: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self._pre = module.register_forward_pre_hook(self._pre_hook)
        self._post = module.register_forward_hook(self._post_hook)

    def _pre_hook(self, module: nn.Module, args: tuple) -> None:
        if torch.is_grad_enabled():
            self.inputs.append(args[0].detach().clone())

    def _post_hook(self, module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if torch.is_grad_enabled():
            self.outputs.append(out.detach().clone())

    def close(self) -> None:
        self._pre.remove()
        self._post.remove()


def _brute_rates(tensors: list[torch.Tensor], above: float) -> torch.Tensor:
    """Per-unit (last axis) fraction of elements above ``above``, by a loop over rows."""
    counts = None
    rows = 0
    for t in tensors:
        flat = t.reshape(-1, t.shape[-1])
        c = torch.zeros(flat.shape[1], dtype=torch.int64)
        for row in flat:
            c += (row > above).long()
        counts = c if counts is None else counts + c
        rows += flat.shape[0]
    assert counts is not None
    return counts.double() / rows


@pytest.fixture
def brute_rates():
    return _brute_rates


@pytest.fixture
def recorder():
    made: list[Recorder] = []

    def make(module: nn.Module) -> Recorder:
        made.append(Recorder(module))
        return made[-1]

    yield make
    for r in made:
        r.close()
