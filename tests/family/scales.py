"""The size of the terms each smooth member's formula adds, the unit its rounding is measured in.

Where a formula cancels (``1 + erf(x)`` near -1, ``1 - tanh(x)²`` near 0, ``s·(1 + x(1 - s))``
near silu's minimum) every float evaluation of it loses the same absolute precision, about an
ulp of its largest term; an error relative to the result alone would only measure the
cancellation. Errors are therefore counted in ulps of ``|exact result| + scale(x)``, with
``scale`` the size of the cancelling terms (0 where nothing cancels). Both the comparison with
PyTorch (``test_vs_torch``) and that of the compiled kernels with the registry's formula in
float64 (``tests/kernels/test_cpu.py``) use these.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Scale = Callable[[np.ndarray], np.ndarray]

TANH_BETA = math.sqrt(2 / math.pi)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x), accurate in float64 and without overflow."""
    return 0.5 * (1 + np.tanh(0.5 * x))


def zero(x: np.ndarray) -> np.ndarray:
    return np.zeros_like(x)


def one(x: np.ndarray) -> np.ndarray:
    return np.ones_like(x)


def half_abs(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.abs(x)


def gelu_tanh_derivative(x: np.ndarray) -> np.ndarray:
    # 0.5·x·(1 - t²)·β(1 + 3κx²): 1 - t² carries an absolute error of about eps.
    a = np.minimum(np.abs(x), 20.0)
    return 1 + 0.5 * a * TANH_BETA * (1 + 3 * 0.044715 * a * a)


def silu_derivative(x: np.ndarray) -> np.ndarray:
    return sigmoid(x) * (1 + np.minimum(np.abs(x), 1e6))


def mish_derivative(x: np.ndarray) -> np.ndarray:
    # t + x·σ(x)·(1 - t²), t = tanh(softplus(x)): 1 - t² carries an absolute error of eps
    return np.abs(np.tanh(np.logaddexp(0.0, x))) + np.minimum(np.abs(x), 1e6) * sigmoid(x)


# (member id, op) -> scale; members and ops not listed: nothing cancels (scale 0).
SCALES: dict[tuple[str, str], Scale] = {
    ("gelu", "forward"): half_abs,
    ("gelu", "derivative"): one,
    ("gelu-tanh", "forward"): half_abs,
    ("gelu-tanh", "derivative"): gelu_tanh_derivative,
    ("silu", "derivative"): silu_derivative,
    ("mish", "derivative"): mish_derivative,
    ("sigmoid", "derivative"): sigmoid,
    ("tanh", "derivative"): one,
}


def scale_for(member_id: str, op: str) -> Scale:
    """The scale of ``op`` ("forward" or "derivative") of a member (gelu with tanh: gelu-tanh)."""
    return SCALES.get((member_id, op), zero)
