"""Compiled CPU kernels of the smooth members' memory modes (:mod:`relukit.memory`).

Each is one pass over contiguous float32 or float64 arrays (NumPy views of CPU tensors), in the
mask layout of :mod:`relukit.kernels.mask` (element ``i`` at bit ``i·bits`` of the
little-endian stream), split into chunks of a multiple of 8 elements that run on relukit's
thread pool (:mod:`relukit.threads`):

- :func:`below_bits`: the bit ``x < x*`` of the output mode, packed;
- :func:`inverse_backward`: ``g·f'`` from the output ``y`` and the bit ``x < x*``, by the
  piecewise polynomials of :class:`relukit.memory.output.InverseTable` (degree 3 or 7), the
  arithmetic of :func:`relukit.memory.output.invert` element by element, computing the
  logarithm only for the elements below the minimum;
- :func:`step_codes`: the ``bits``-bit code of each input among the borders (the number of
  borders below it; NaN: the last), packed;
- :func:`step_backward`: ``g·levels[code]`` from the packed codes.

The PyTorch-operation versions (:mod:`relukit.memory.output`, :mod:`relukit.nn.stepped`) are
the path on every other device, dtype and layout; ``tests/kernels/test_memory.py`` holds these
kernels to them.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from relukit import threads

_CHUNK = 1 << 16  # elements per task (a multiple of 8)


@numba.njit(nogil=True, cache=True)
def _inverse_backward(y, packed, g, out, coefficients, y_min, scale, right, left, start, stop):
    degree = coefficients.shape[1] - 1
    for i in range(start, stop):
        yi = y[i]
        below = (packed[i >> 3] >> (i & 7)) & 1
        z = -math.log(yi / y_min) if below else yi - y_min
        if z < 0:
            z = 0.0
        c = math.sqrt(z) * scale
        if below:
            if c > left:
                c = left
        elif c > right:
            c = right
        if c != c:
            c = 0.0
        k = int(c)
        t = c - k
        if below:
            k += right + 1
        d = coefficients[k, degree]
        for j in range(degree - 1, -1, -1):
            d = d * t + coefficients[k, j]
        if below:
            d = d * yi
        if yi != yi:
            d = yi
        out[i] = g[i] * d


@numba.njit(nogil=True, cache=True)
def _below_bits(x, threshold, packed, start, stop):
    for group in range(start // 8, (stop + 7) // 8):
        first = group * 8
        acc = 0
        for i in range(first, min(first + 8, stop)):
            acc |= (1 if x[i] < threshold else 0) << (i - first)
        packed[group] = acc


def _make_step_codes(bits: int) -> Any:
    nb = (1 << bits) - 1  # a compile-time constant: the border loop unrolls, the block vectorises

    @numba.njit(nogil=True)
    def step_codes(x, borders, packed, start, stop):
        codes = np.empty(64, dtype=np.uint8)
        for block in range(start, stop, 64):
            m = min(64, stop - block)
            for k in range(m):
                xi = x[block + k]
                c = 0
                for b in range(nb):
                    c += xi > borders[b]
                codes[k] = nb if xi != xi else c
            for group in range(0, m, 8):
                acc = 0
                last = min(group + 8, m)
                for k in range(group, last):
                    acc |= np.int64(codes[k]) << (bits * (k - group))
                base = (block + group) // 8 * bits
                for byte in range(((last - group) * bits + 7) // 8):
                    packed[base + byte] = (acc >> (8 * byte)) & 255

    return step_codes


def _make_step_backward(bits: int) -> Any:
    field = (1 << bits) - 1

    @numba.njit(nogil=True)
    def step_backward(g, packed, levels, out, start, stop):
        n = packed.shape[0]
        for group in range(start // 8, (stop + 7) // 8):
            acc = 0
            for byte in range(bits):
                index = group * bits + byte
                if index < n:
                    acc |= np.int64(packed[index]) << (8 * byte)
            first = group * 8
            for i in range(first, min(first + 8, stop)):
                out[i] = g[i] * levels[(acc >> (bits * (i - first))) & field]

    return step_backward


_STEP_CODES: dict[int, Any] = {}
_STEP_BACKWARD: dict[int, Any] = {}


def _chunks(n: int) -> list[tuple[int, int]]:
    parts = max(1, min(threads.get_num_threads(), -(-n // _CHUNK)))
    size = -(-n // parts)
    size += -size % 8
    return [(start, min(start + size, n)) for start in range(0, n, size)] or [(0, 0)]


def inverse_backward(table: Any, y: np.ndarray, packed: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g·f'`` from ``y`` and the packed bits by ``table`` (flat arrays of one dtype)."""
    out = np.empty_like(g)
    coefficients = table.coefficients.astype(y.dtype)
    args = (y.dtype.type(table.y_min), y.dtype.type(1 / table.step), table.right, table.left)
    threads.run_all(
        [
            lambda a=a, b=b: _inverse_backward(y, packed, g, out, coefficients, *args, a, b)
            for a, b in _chunks(y.size)
        ]
    )
    return out


def below_bits(x: np.ndarray, threshold: float) -> np.ndarray:
    """The packed bits ``x < threshold`` (the output mode's bit: below the minimum)."""
    packed = np.empty(-(-x.size // 8), dtype=np.uint8)
    t = x.dtype.type(threshold)
    threads.run_all(
        [lambda a=a, b=b: _below_bits(x, t, packed, a, b) for a, b in _chunks(x.size)]
    )
    return packed


def step_codes(x: np.ndarray, borders: np.ndarray, bits: int) -> np.ndarray:
    """The packed ``bits``-bit codes of ``x`` (flat) among ``borders`` (of x's dtype)."""
    packed = np.empty(-(-x.size * bits // 8), dtype=np.uint8)
    kernel = _STEP_CODES.get(bits) or _STEP_CODES.setdefault(bits, _make_step_codes(bits))
    threads.run_all(
        [lambda a=a, b=b: kernel(x, borders, packed, a, b) for a, b in _chunks(x.size)]
    )
    return packed


def step_backward(g: np.ndarray, packed: np.ndarray, levels: np.ndarray, bits: int) -> np.ndarray:
    """``g·levels[code]`` from the packed codes (``levels`` of g's dtype)."""
    out = np.empty_like(g)
    kernel = _STEP_BACKWARD.get(bits) or _STEP_BACKWARD.setdefault(
        bits, _make_step_backward(bits)
    )
    threads.run_all(
        [lambda a=a, b=b: kernel(g, packed, levels, out, a, b) for a, b in _chunks(g.size)]
    )
    return out
