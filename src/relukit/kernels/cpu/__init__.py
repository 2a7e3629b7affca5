"""The compiled CPU kernels (Numba), laid out by concern.

================  =============================================================================
``host``          the host side: plans a call from the registry's ``kernel`` field (formula and
                  parameters), takes NumPy arrays and CPU tensors apart, splits the work into
                  chunks on :mod:`relukit.threads`' pool; the public functions below
``kernels``       the compiled kernels (elementwise map, mask forward and backward, the helpers
                  of :mod:`relukit.nn`), made by factories from small integer codes
``loops``         what the kernels share: the one block loop (``blocks``), a block's output
                  (streamed or not), the conventions at NaN and ±inf, the chain rule, the
                  one-pass select
``masks``         mask words: packing codes, 64 elements per compare
``rectifiers``    the piecewise-linear members' formulas (``leaky_relu_f``, ``prelu_f``, …)
``smooth``        the smooth members' and exponential units' formulas (``gelu_f``, ``elu_d``, …)
``vector32``      float32 formulas as 16-lane LLVM vectors with a table row per lane (the
                  centres of gelu and gelu′, |x| < 4, and of silu, sigmoid and silu′,
                  |x| < 16)
``mathlib``       the float64 math library of the float32 kernels (exp, expm1, log1p, tanh, Φ)
                  and its choice against the C library's for float64 inputs; ``fits`` its
                  fitted constants
``dtypes``        16-bit floats as raw bits; ``widen`` / ``narrow`` / ``const`` / ``single``
``intrinsics``    LLVM intrinsics: bit casts, fused multiply-add, streaming stores, vector
                  compares and selects
``compile``       Numba's options, the disk cache and the source stamp
================  =============================================================================

A member's formula is named by its registry name, so that one grep finds it: ``leaky_relu_f``
and ``leaky_relu_d`` are leaky_relu's forward and derivative. Nothing here imports Numba until a
kernel is first needed (``host`` loads ``kernels`` lazily).
"""

from relukit.kernels.cpu.host import (
    Calls,
    available,
    backward_from_mask,
    channel_slopes,
    channels_backward,
    channels_forward,
    channels_map,
    expand,
    forward_with_mask,
    math_function,
    per_element_slopes,
    plan,
    run,
    scale,
    split,
    stream_copy,
    warm_up,
)

__all__ = [
    "Calls",
    "available",
    "backward_from_mask",
    "channel_slopes",
    "channels_backward",
    "channels_forward",
    "channels_map",
    "expand",
    "forward_with_mask",
    "math_function",
    "per_element_slopes",
    "plan",
    "run",
    "scale",
    "split",
    "stream_copy",
    "warm_up",
]
