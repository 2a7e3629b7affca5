"""What every operator file of :mod:`relukit.nn` shares.

Each kind of op lives in one file (:mod:`~relukit.nn.masked`, :mod:`~relukit.nn.prelu`,
:mod:`~relukit.nn.rrelu`, :mod:`~relukit.nn.crelu`, :mod:`~relukit.nn.maxout`) holding its
``torch.library`` operators, their fakes, the autograd formula and the choice of kernel. The
formula is written once and used twice: registered on the operator (``register_autograd``:
what ``torch.compile`` traces) and as an ordinary ``torch.autograd.Function`` around the
operator's plain implementation (what eager mode runs, skipping the dispatcher's tens of
microseconds per call). Each file's ``forward`` picks the operator under torch.compile and
the Function otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from torch.library import CustomOpDef, custom_op

IMPLEMENTATIONS: dict[str, Callable[..., Any]] = {}
"""Operator name → its plain Python implementation."""


def operator(
    name: str, *, mutates_args: Iterable[str] = (), schema: str | None = None
) -> Callable[[Callable[..., Any]], CustomOpDef]:
    """Register ``relukit::name`` with the decorated function as its implementation."""

    def register(fn: Callable[..., Any]) -> CustomOpDef:
        IMPLEMENTATIONS[name] = fn
        return custom_op(f"relukit::{name}", fn, mutates_args=tuple(mutates_args), schema=schema)

    return register


def compiling() -> bool:
    """Is torch.compile tracing (run the registered operators), or is this eager mode?"""
    return torch.compiler.is_compiling()


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


def like(result: Tensor, reference: Tensor) -> Tensor:
    """``result`` with the strides ``torch.empty_like(reference)`` has (what the fakes promise)."""
    if reference.is_contiguous() and result.is_contiguous():
        return result
    expected = torch.empty_like(reference, device="meta").stride()
    if result.stride() == expected:
        return result
    return torch.empty_like(reference).copy_(result)


def dense_strides(x: Tensor) -> list[int]:
    """The strides ``torch.empty_like(x)`` would have: x's layout, made dense."""
    if x.is_contiguous():
        return list(x.stride())
    return list(torch.empty_like(x, device="meta").stride())
