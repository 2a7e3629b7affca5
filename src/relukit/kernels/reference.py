"""The reference kernel: every member evaluated from its registry formula on any Array-API array.

This is the oracle every compiled kernel is tested against. It evaluates the formula in a working
dtype, then rounds once to the input's dtype:

- members whose derivative is piecewise constant (relu, leaky_relu, ...) work in the input's own
  dtype (float32 for 16-bit floats, as PyTorch's CPU kernels do), so that they equal PyTorch's
  bit for bit;
- the others (the smooth members, the exponential units, squared_relu) work in float64 wherever
  the array library has it on the array's device (NumPy, torch on the CPU): float32 and 16-bit
  inputs then get their formula's float64 value rounded once, within 1 ulp of the true value
  (see ``benchmarks/RESULTS.md``, Accuracy); elsewhere (a torch tensor on a GPU, …) they work
  in the input's dtype, with that dtype's rounding of every step.

It then applies, for every elementwise member, the conventions no formula has to repeat:
NaN in gives NaN out, ±inf give the limits the member declares, and (in a vector-Jacobian
product) a zero derivative of a piecewise-linear member blocks the incoming gradient.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

from relukit.errors import UserTypeError
from relukit.family.spec import Activation, Limit
from relukit.kernels.arrays import Input, default_float


class Math:
    """An array namespace plus what the Array API lacks: ``erf``, ``erfc``, ``erfcx``,
    ``device`` and ``uniform``.

    ``dtype`` is the working dtype: ``where`` gives it to the Python numbers it chooses between
    (``where(x > 0, 1, slope)``, which the namespace alone would make its default dtype:
    float32 for torch, losing the slope's float64 digits).
    """

    def __init__(self, xp: Any, dtype: Any = None) -> None:
        self._xp = xp
        self.dtype = dtype

    def __getattr__(self, name: str) -> Any:
        return getattr(self._xp, name)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        if self.dtype is not None and self._xp.isdtype(self.dtype, "real floating"):
            # a Python number rounded to the working float (one past its range to ±inf, as
            # NumPy rounds it; torch's where refuses a float that overflows the tensor's).
            # Integer inputs (relu, hardtanh: integers="same") keep NumPy's own rules.
            device = self.device(condition)
            if isinstance(a, (int, float)):
                a = self._xp.asarray(a, dtype=self.dtype, device=device)
            if isinstance(b, (int, float)):
                b = self._xp.asarray(b, dtype=self.dtype, device=device)
        return self._xp.where(condition, a, b)

    def device(self, x: Any) -> Any:
        return array_api_compat.device(x)

    def erf(self, x: Any) -> Any:
        return self._special("erf", x)

    def erfc(self, x: Any) -> Any:
        return self._special("erfc", x)

    def erfcx(self, x: Any) -> Any:
        """The scaled complementary error function e^{x²}·erfc(x)."""
        return self._special("erfcx", x)

    def _special(self, name: str, x: Any) -> Any:
        """SciPy's special function ``name`` from the array's own library (on the host through
        SciPy where it has none: JAX has no erfcx)."""
        if array_api_compat.is_torch_array(x):
            import torch

            return getattr(torch.special, name)(x)
        if array_api_compat.is_jax_array(x):
            import jax.scipy.special

            if hasattr(jax.scipy.special, name):
                return getattr(jax.scipy.special, name)(x)
        if array_api_compat.is_cupy_array(x):
            import cupyx.scipy.special

            return getattr(cupyx.scipy.special, name)(x)
        import scipy.special  # (on first use: its import takes ~0.2 s)

        if array_api_compat.is_numpy_array(x):
            if x.dtype.itemsize > 8:
                raise UserTypeError(
                    f"x has dtype {x.dtype} (long double), for which SciPy has no {name} "
                    "(it goes up to float64); cast x to float64"
                    + (", or use approximate='tanh'" if name == "erf" else "")
                )
            return getattr(scipy.special, name)(x)
        host = getattr(scipy.special, name)(np.asarray(x))
        return self._xp.asarray(host, dtype=x.dtype, device=self.device(x))

    def uniform(self, like: Any, low: float, high: float, seed: Any) -> Any:
        """Samples of U(low, high) shaped and typed like ``like``, from a seed or Generator."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        samples = rng.uniform(low, high, size=tuple(like.shape))
        return self._xp.asarray(samples, dtype=like.dtype, device=self.device(like))


def _special_values(m: Math, x: Any, y: Any, limits: Limit) -> Any:
    low, high = limits
    y = m.where(m.isnan(x), x, y)
    if low is not None:
        y = m.where(x == -np.inf, low, y)
    if high is not None:
        y = m.where(x == np.inf, high, y)
    return y


def _chain(m: Math, g: Any, d: Any, spec: Activation) -> Any:
    """``g * d``; for a piecewise-linear member a zero derivative blocks ``g`` entirely.

    The blocked gradient is ``+0`` even where ``g`` is negative, infinite or NaN, as PyTorch's
    mask-based backward of relu, relu6 and hardtanh gives (and a one-bit mask would).
    """
    if spec.piecewise_linear:
        return m.where(d == 0, m.zeros_like(d), g * d)
    return g * d


def _has_float64(x: Any) -> bool:
    """Whether ``x``'s array library computes float64 on ``x``'s device."""
    if array_api_compat.is_numpy_array(x):
        return True
    return array_api_compat.is_torch_array(x) and x.device.type == "cpu"


def _working(xp: Any, source: Input, spec: Activation, op: str, grad: Any) -> tuple[Any, Any]:
    """The array to compute on, and the dtype to give back.

    An integer input is promoted to floating point for ``"float"`` members, and for the
    derivative and vjp of every member, as NumPy promotes (``np.gradient`` of integers is
    float64): the derivative takes the namespace's default float (float64 for NumPy), the vjp
    the dtype ``x * grad_out`` has (grad_out's, if floating), so no gradient is truncated.
    """
    x = source.array
    # (long double stays: float64 would lose its range and digits)
    longer = getattr(x.dtype, "itemsize", 0) > 8
    wide = source.kind in ("float", "low") and x.dtype != xp.float64 and not longer
    if wide and spec.elementwise and not spec.piecewise_linear and _has_float64(x):
        return xp.astype(x, xp.float64), x.dtype
    if source.kind == "low":
        return xp.astype(x, xp.float32), x.dtype
    dtype = integer_promotion(source, spec, op, grad)
    if dtype is not None:
        return xp.astype(x, dtype), dtype
    return x, x.dtype


def integer_promotion(source: Input, spec: Activation, op: str, grad: Any = None) -> Any:
    """The floating dtype an integer input is computed in, or None when it is not promoted (a
    floating input, or the forward of a member that keeps integers): see :func:`_working`."""
    if source.kind not in ("int", "uint") or (spec.integers != "float" and op == "forward"):
        return None
    xp, x = source.xp, source.array
    dtype = default_float(xp, x)
    if op == "vjp" and grad is not None:
        promoted = xp.result_type(x.dtype, grad.dtype)
        if xp.isdtype(promoted, "real floating"):
            dtype = promoted
    return dtype


def _cast(xp: Any, y: Any, dtype: Any) -> Any:
    return y if y.dtype == dtype else xp.astype(y, dtype)


def evaluate(
    spec: Activation,
    op: str,
    source: Input,
    params: dict[str, Any],
    grad: Any = None,
    wrt: str = "x",
) -> Any:
    """``op`` (forward, derivative or vjp) of ``spec`` at ``source``, in its kind and dtype."""
    xp = source.xp
    x, result_dtype = _working(xp, source, spec, op, grad)
    m = Math(xp, x.dtype)
    floating = source.kind in ("float", "low")
    with np.errstate(all="ignore"):
        if op == "forward":
            y = spec.forward(m, x, **params)
            if floating and spec.limits is not None:
                y = _special_values(m, x, y, spec.limits.forward(params))
        elif op == "derivative" or (op == "vjp" and wrt == "x" and spec.elementwise):
            y = _cast(xp, spec.derivative(m, x, **params), x.dtype)
            if floating and spec.limits is not None:
                y = _special_values(m, x, y, spec.limits.derivative(params))
            if op == "vjp":
                y = _chain(m, _cast(xp, grad, x.dtype), y, spec)
        elif op == "vjp" and wrt == "x":
            y = spec.vjp(m, x, _cast(xp, grad, x.dtype), **params)
        else:
            y = spec.param_vjps[wrt](m, x, _cast(xp, grad, x.dtype), **params)
        y = _cast(xp, y, result_dtype)
    # NumPy arithmetic on 0-d arrays gives scalars; the caller gets a 0-d array. (Only those:
    # torch.asarray of a tensor that requires grad warns, and returns the same tensor.)
    return xp.asarray(y) if isinstance(y, np.generic) else y
