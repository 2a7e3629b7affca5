"""Triton kernels for CUDA tensors: the mask path of the piecewise-linear members.

What is here, one module per op kind (Liger-Kernel's habit):

- :mod:`relukit.kernels.gpu.piecewise`: forward with a packed mask and backward from the mask
  for relu, leaky_relu, relu6, hardtanh and general_relu (one or two bits per element);
- :mod:`relukit.kernels.gpu.prelu`: PReLU's forward with its mask and the non-positive inputs,
  its backward (input and weight gradients), and RReLU's backward from mask and saved slopes;
- :mod:`relukit.kernels.gpu.steps`: few-bit codes (an input's interval among a step
  derivative's borders) and the backward from them;
- :mod:`relukit.kernels.gpu.output`: the output-mode backward of gelu, silu and mish (f' from
  the output and one branch bit, by :mod:`relukit.memory.output`'s table).

Every kernel writes and reads masks in the one layout :mod:`relukit.kernels.mask` documents
(C order, ``bits`` per element, little-endian in each byte, zero padding), so a mask made on
the GPU is read by the CPU kernels after ``.to("cpu")`` and the other way round. Values,
masks and gradients are the PyTorch rules' (:mod:`relukit.nn.rules`) bit for bit: 16-bit
inputs are computed in float32 and rounded once, as PyTorch's kernels do.

Where the kernels run: on a CUDA tensor, compiled by Triton. With ``TRITON_INTERPRET=1`` in
the environment before Triton is imported, the same kernels run in Triton's interpreter and
take CPU tensors: that is how the tests check them on machines without a GPU
(:mod:`relukit.kernels.gpu.launch`). relukit itself sends only CUDA tensors here.
:func:`available` says whether Triton imports.

Example (a CPU tensor, so it runs in Triton's interpreter, as under the test suite):

>>> import torch
>>> from relukit.kernels.gpu import piecewise
>>> y, mask = piecewise.forward_with_mask("relu", (), torch.tensor([-1.0, 2.0, 0.0, 3.0]))
>>> y.tolist(), mask.tolist()
([0.0, 2.0, 0.0, 3.0], [10])
"""

from __future__ import annotations

import functools
import importlib.util

import torch

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
"""The dtypes the kernels take."""

FORMULAS = frozenset({"relu", "leaky_relu", "hardtanh", "general_relu"})
"""The registry's compiled formulas (``Activation.kernel``) :mod:`.piecewise` computes."""

DEVICES = frozenset({"cuda"})
"""Device types whose tensors :func:`takes` sends here (the tests add "cpu" while Triton runs
in its interpreter, to drive relukit.nn through these kernels without a GPU)."""


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """Does Triton import here (the ``relukit[gpu]`` extra)?"""
    if importlib.util.find_spec("triton") is None:
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def takes(t: torch.Tensor) -> bool:
    """Do the Triton kernels take tensor ``t`` (a CUDA tensor of a float dtype, Triton present)?"""
    return t.device.type in DEVICES and t.dtype in DTYPES and available()
