"""What the Triton kernels share: the precision they compute in, and how they run on a CPU.

Scalar parameters reach a kernel as a float64 tensor on the device (:func:`constants`, made
once per value and device) and are rounded inside the kernel to the precision PyTorch computes
in (:func:`wide`), so a slope of 0.1 becomes the same float32 that PyTorch's own kernel uses.
(A Python float argument would not do: Triton's interpreter passes it on unconverted, and the
compiler takes it as float32, which would round a float64 parameter.)

On a machine without a GPU the kernels run in Triton's interpreter, on CPU tensors, when the
environment has ``TRITON_INTERPRET=1`` before Triton is first imported (Triton reads it then,
for its own library functions too). The test suite sets it (the ``conftest.py`` at the
repository root) unless the environment already says otherwise; :func:`interpreted` tells
which mode this process is in.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import triton
import triton.language as tl

jit = triton.jit

EXACT = {"enable_fp_fusion": False}
"""Launch options: no multiply-add contracted into an FMA (PyTorch rounds each operation)."""


def interpreted() -> bool:
    """Do Triton kernels run in the interpreter in this process (``TRITON_INTERPRET=1``)?"""
    return bool(triton.knobs.runtime.interpret)


def wide(dtype: torch.dtype) -> tl.dtype:
    """The precision PyTorch computes ``dtype`` in: float64 for float64, float32 for the rest."""
    return tl.float64 if dtype == torch.float64 else tl.float32


def grid(n: int, per_program: int) -> tuple[int]:
    """Programs that cover ``n`` items at ``per_program`` each."""
    return (-(-n // per_program),)


@functools.lru_cache(maxsize=512)
def _constants(key: tuple[tuple[float, bool], ...], device: torch.device) -> torch.Tensor:
    values = [math.copysign(abs(v), -1.0 if negative else 1.0) for v, negative in key]
    return torch.tensor(values, dtype=torch.float64, device=device)


def constants(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """``values`` as a float64 tensor on ``device``, cached (do not write into it)."""
    key = tuple((float(v), math.copysign(1.0, float(v)) < 0) for v in values)
    return _constants(key, device)


@jit
def narrow(v, out_dtype: tl.constexpr):
    """``v`` (float32 or float64) rounded to ``out_dtype``, to nearest, ties to even.

    bfloat16 is rounded with integer operations on the bits, as PyTorch's c10 does, the same on
    the GPU and in Triton's interpreter (whose own float32 → bfloat16 cast truncates).
    """
    if out_dtype == tl.bfloat16:
        bits = v.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        rounded = tl.where(v != v, (bits >> 16) | 0x40, rounded)
        return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return v.to(out_dtype)


def check_mask(where: str, mask: torch.Tensor, like: torch.Tensor, bits: int = 1) -> None:
    """ValueError unless ``mask`` is a uint8 tensor on ``like``'s device holding the
    ``ceil(n·bits/8)`` bytes of ``like``'s ``n`` elements (a kernel would read past it)."""
    expected = (like.numel() * bits + 7) // 8
    if mask.dtype != torch.uint8 or mask.device != like.device or mask.numel() != expected:
        raise ValueError(
            f"{where}: mask is {mask.dtype} of {mask.numel()} elements on {mask.device}; "
            f"{like.numel()} elements at {bits} bit(s) on {like.device} need {expected} uint8"
        )
