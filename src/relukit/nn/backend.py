"""Where the mask work of the piecewise-linear members runs.

For a CPU tensor of a float dtype, the compiled kernels of :mod:`relukit.kernels` (one pass
for the forward and its mask, through a zero-copy view of the tensor) take the members listed
in :data:`KERNEL_FORWARD` and :data:`KERNEL_BACKWARD`: those whose kernel gives exactly the
PyTorch rule's output, mask and gradient (``tests/nn/test_backend.py`` holds each listed
member to that, NaN, ±0 and ±inf included). Everything else — other members, other devices,
other dtypes — runs the PyTorch rules of :mod:`relukit.nn.rules`, with the same masks.

Example:
    >>> import torch
    >>> y, mask = forward_with_mask("relu", [], torch.tensor([-1.0, 2.0]))
    >>> backward_from_mask("relu", [], torch.tensor([5.0, 7.0]), mask).tolist()
    [0.0, 7.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from relukit.nn.rules import params_key, rule

KERNEL_FORWARD: frozenset[str] = frozenset({"relu", "leaky_relu"})
"""Members whose compiled forward (value and mask) is the PyTorch rule's, bit for bit."""

KERNEL_BACKWARD: frozenset[str] = frozenset(
    {"relu", "leaky_relu", "relu6", "hardtanh", "general_relu"}
)
"""Members whose compiled backward from the mask is the PyTorch rule's, bit for bit."""

KERNEL_DTYPES = (torch.float32, torch.float64)


@functools.lru_cache(maxsize=1)
def kernels_available() -> bool:
    """Are relukit's compiled CPU kernels importable and working on this machine?"""
    try:
        from relukit.kernels import cpu
    except ImportError:
        return False
    return bool(cpu.available())


_NAMES = {
    "relu": (),
    "leaky_relu": ("negative_slope",),
    "relu6": (),
    "hardtanh": ("min_val", "max_val"),
    "general_relu": ("negative_slope", "max_value", "threshold"),
}


def _function(member: str, params: Sequence[float]) -> Any:
    return _function_for(member, params_key(params))


@functools.lru_cache(maxsize=256)
def _function_for(member: str, key: tuple[tuple[float, bool], ...]) -> Any:
    import relukit

    params = tuple(value for value, _ in key)
    bound = dict(zip(_NAMES[member], params, strict=True))
    if member == "general_relu" and math.isinf(bound["max_value"]):
        bound["max_value"] = None
    return relukit.get(member, **bound)


def _compiled(members: frozenset[str], member: str, params: Sequence[float], t: Tensor) -> bool:
    if member not in members or t.device.type != "cpu" or t.dtype not in KERNEL_DTYPES:
        return False
    if member == "leaky_relu" and params[0] == 0:
        # PyTorch's forward gives 0·(-inf) = NaN there, the kernels the registry's limit 0.
        return False
    return kernels_available()


@functools.lru_cache(maxsize=256)
def _direct(member: str, key: tuple[tuple[float, bool], ...], dtype: torch.dtype) -> Any:
    from relukit.kernels import dispatch

    function = _function_for(member, key)
    numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    return dispatch.direct_mask(function.spec, function.params, numpy_dtype)


def _small(member: str, params: Sequence[float], t: Tensor) -> Any:
    """The direct kernels when ``t`` is small, contiguous and CPU float32/float64, else None.

    A general call costs tens of microseconds of checks and dispatch, more than the kernel
    itself below about 10^5 elements; the direct kernels are the same compiled code.
    """
    direct = _direct(member, params_key(params), t.dtype)
    if direct is None or t.numel() >= direct.limit or not t.is_contiguous():
        return None
    return direct


def forward_with_mask(member: str, params: Sequence[float], x: Tensor) -> tuple[Tensor, Tensor]:
    """The forward of ``member`` at ``x`` and its packed mask."""
    if _compiled(KERNEL_FORWARD, member, params, x):
        x = x.detach()
        direct = _small(member, params, x)
        if direct is not None and x.numel() > 0:
            y = torch.empty_like(x, memory_format=torch.contiguous_format)
            mask = torch.empty(-(-x.numel() * direct.bits // 8), dtype=torch.uint8)
            direct.forward(x.numpy().reshape(-1), y.numpy().reshape(-1), mask.numpy())
            return y, mask
        return _function(member, tuple(params)).forward_with_mask(x)
    return rule(member, params).forward_with_mask(x)


def backward_from_mask(
    member: str, params: Sequence[float], grad_out: Tensor, mask: Tensor
) -> Tensor:
    """``grad_out·f'(x)`` from the packed mask of x."""
    if _compiled(KERNEL_BACKWARD, member, params, grad_out):
        grad_out = grad_out.detach()
        direct = _small(member, params, grad_out)
        if direct is not None and grad_out.numel() > 0 and mask.is_contiguous():
            dx = torch.empty_like(grad_out, memory_format=torch.contiguous_format)
            direct.backward(grad_out.numpy().reshape(-1), mask.numpy(), dx.numpy().reshape(-1))
            return dx
        return _function(member, tuple(params)).backward_from_mask(grad_out, mask)
    return rule(member, params).backward_from_mask(grad_out, mask)
