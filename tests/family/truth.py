"""The true value of each smooth member and its derivative: the tests' oracle.

``truth(member_id, op, x, params)`` gives, for float64 ``x``, the exact result rounded to
float64 to within about 1e-15 relative: accurate enough to count the ulps of float32 and 16-bit
results (2^-24 and coarser), not those of float64 results, for which :func:`exact` evaluates
mpmath at 40 digits. It is built from SciPy's special functions in forms that do not cancel,
independent of relukit's own formulas (``ndtr`` for Φ, ``expit`` for σ, ``logaddexp`` for
softplus, ``1/cosh²`` for 1 − tanh²), and from mpmath within ``NEAR`` of the zeros of the
derivatives, where every float64 formula cancels. ``tests/family/test_accuracy.py`` checks it
against mpmath on a sample.

Member ids: the registry name, and ``gelu-tanh`` for gelu with ``approximate='tanh'``.
"""

from __future__ import annotations

import math
from typing import Any

import mpmath as mp
import numpy as np
import scipy.special as sp

from relukit.family.numerics import ZEROS

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SELU_DIGITS = ("1.6732632423543772848170429916717", "1.0507009873554804934193349852946")
BETA = math.sqrt(2 / math.pi)
KAPPA = 0.044715
NEAR = 1e-3  # around the zeros of the derivatives: mpmath

# Bounds on the reference path's float64 error on the dense sample, where it misses the bar of
# 2 ulp (the compiled kernels, which NumPy arrays and CPU tensors get, meet it everywhere: they
# compute in double-double). The reference path is the Array-API oracle for other array kinds,
# evaluated in float64 through the namespace's own functions: several rounded steps in a row,
# and cancellation just beyond the Taylor intervals (see RESULTS.md, Accuracy).
FLOAT64_REFERENCE_ULPS: dict[tuple[str, str], float] = {
    # measured on 8,000 inputs, then rounded up by about half
    ("gelu", "forward"): 8.0,  # SciPy's erfcx and erfc, 2-4 ulp themselves
    ("gelu", "derivative"): 6.0,  # x ≈ −1.6, just beyond the Taylor interval
    ("gelu-tanh", "forward"): 4.0,
    ("gelu-tanh", "derivative"): 8.0,  # x ≈ −1.6, the same
    ("silu", "derivative"): 6.0,
    ("mish", "forward"): 4.0,
    ("mish", "derivative"): 10.0,  # x ≈ −2.3, the same
    ("selu", "forward"): 4.0,
    ("selu", "derivative"): 4.0,
    ("sigmoid", "derivative"): 4.0,
    ("tanh", "derivative"): 6.0,
}

SMOOTH_CASES: list[tuple[str, dict[str, Any]]] = [
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("mish", {}),
    ("softplus", {}),
    ("softplus", {"beta": 1.7, "threshold": 15.0}),
    ("softplus", {"beta": 0.3, "threshold": 5.0}),
    ("elu", {}),
    ("elu", {"alpha": 1.3}),
    ("selu", {}),
    ("celu", {"alpha": 0.7}),
    ("sigmoid", {}),
    ("tanh", {}),
]


def member_id(name: str, params: dict[str, Any]) -> str:
    return "gelu-tanh" if name == "gelu" and params.get("approximate") == "tanh" else name


def _gelu_tanh_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = 2 * BETA * (x + KAPPA * x**3)
    return z, 2 * BETA * (1 + 3 * KAPPA * x * x)


def _mish_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    softplus = np.logaddexp(0.0, x)
    return np.tanh(softplus), 1 / np.cosh(softplus) ** 2


def _fast(mid: str, op: str, x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    d = op == "derivative"
    if mid == "gelu":
        return sp.ndtr(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi) if d else x * sp.ndtr(x)
    if mid == "gelu-tanh":
        z, slope = _gelu_tanh_parts(x)
        if d:
            rest = np.where(sp.expit(-z) == 0, 0.0, x * slope * sp.expit(-z))
            return np.where(sp.expit(z) == 0, 0.0, sp.expit(z) * (1 + rest))
        return x * sp.expit(z)
    if mid == "silu":
        rest = np.where(sp.expit(-x) == 0, 0.0, x * sp.expit(-x))
        return sp.expit(x) * (1 + rest) if d else x * sp.expit(x)
    if mid == "mish":
        t, sech2 = _mish_parts(x)
        return t + np.where(sech2 == 0, 0.0, x * sp.expit(x) * sech2) if d else x * t
    if mid == "softplus":
        beta, threshold = p.get("beta", 1.0), p.get("threshold", 20.0)
        z = x * beta
        if d:
            return np.where(z > threshold, 1.0, sp.expit(z))
        return np.where(z > threshold, x, np.logaddexp(0.0, z) / beta)
    if mid in ("elu", "selu", "celu"):
        alpha = {"selu": SELU_ALPHA}.get(mid, p.get("alpha", 1.0))
        scale = SELU_SCALE if mid == "selu" else 1.0
        q = x / alpha if mid == "celu" else x
        if d:
            inner = np.exp(q) * (1.0 if mid == "celu" else alpha)
            return scale * np.where(x > 0, 1.0, inner)
        return scale * np.where(x > 0, x, alpha * np.expm1(q))
    if mid == "sigmoid":
        return sp.expit(x) * sp.expit(-x) if d else sp.expit(x)
    if mid == "tanh":
        return 1 / np.cosh(x) ** 2 if d else np.tanh(x)
    raise KeyError(mid)


def exact(mid: str, op: str, v: float, p: dict[str, Any], digits: int = 50) -> float:
    """The exact result at ``v`` rounded to float64, by mpmath (in forms that do not cancel, so
    that ``digits`` stay significant far into the tails). Beyond |v| = 1e6, where every member
    has saturated (to 0, v, 1, or a limit), the SciPy forms, which are exact there."""
    if not abs(v) <= 1e6:
        with np.errstate(all="ignore"):
            return float(_fast(mid, op, np.array([v]), p)[0])
    with mp.workdps(digits):
        x = mp.mpf(v)
        d = op == "derivative"

        def sigma(z: Any) -> Any:
            return 1 / (1 + mp.exp(-z))

        if mid == "gelu":
            return float(mp.ncdf(x) + x * mp.npdf(x) if d else x * mp.ncdf(x))
        if mid == "gelu-tanh":
            z = 2 * mp.sqrt(2 / mp.pi) * (x + mp.mpf("0.044715") * x**3)
            if d:
                slope = 2 * mp.sqrt(2 / mp.pi) * (1 + 3 * mp.mpf("0.044715") * x * x)
                return float(sigma(z) * (1 + x * slope * sigma(-z)))
            return float(x * sigma(z))
        if mid == "silu":
            return float(sigma(x) * (1 + x * sigma(-x)) if d else x * sigma(x))
        if mid == "mish":
            softplus = mp.log1p(mp.exp(x))
            t = mp.tanh(softplus)
            return float(t + x * sigma(x) / mp.cosh(softplus) ** 2 if d else x * t)
        if mid == "softplus":
            beta, threshold = mp.mpf(p.get("beta", 1.0)), p.get("threshold", 20.0)
            z = x * beta
            if z > threshold:
                return 1.0 if d else v
            return float(sigma(z) if d else mp.log1p(mp.exp(z)) / beta)
        if mid in ("elu", "selu", "celu"):
            selu = mid == "selu"
            alpha = mp.mpf(SELU_DIGITS[0]) if selu else mp.mpf(p.get("alpha", 1.0))
            scale = mp.mpf(SELU_DIGITS[1]) if selu else 1
            q = x / alpha if mid == "celu" else x
            if x > 0:
                return float(scale if d else scale * x)
            if d:
                return float(scale * mp.exp(q) * (1 if mid == "celu" else alpha))
            return float(scale * alpha * mp.expm1(q))
        if mid == "sigmoid":
            return float(sigma(x) * sigma(-x) if d else sigma(x))
        if mid == "tanh":
            return float(1 / mp.cosh(x) ** 2 if d else mp.tanh(x))
    raise KeyError(mid)


def truth(mid: str, op: str, x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """The true values at finite ``x`` (float64), to within about 1e-15 relative."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        y = np.asarray(_fast(mid, op, x, p), dtype=np.float64)
    if op == "derivative" and mid in ZEROS:
        root = ZEROS[mid][0]
        near = np.flatnonzero(np.abs(x - root) < NEAR)
        y[near] = [exact(mid, op, float(v), p, digits=30) for v in x[near]]
    return y
