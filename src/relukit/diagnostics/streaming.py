r"""Streaming per-unit firing counts and per-layer moments of activations, without keeping them.

:func:`scan` reads one tensor once and returns what the monitors add up: per unit, how many of
its elements lie above a threshold (exact integers), and for the whole tensor the counts and
power sums from which :class:`Moments` gives mean, standard deviation, largest magnitude and
excess kurtosis. Nothing of the tensor is kept. Sums are taken about a ``shift`` (the monitors
use the mean of the first batch they see), which keeps the power sums free of cancellation
when activations sit far from zero: with :math:`d = x - s`,

.. math::

    m_2 = \tfrac{S_2}{n} - \bar d^2,\quad
    m_4 = \tfrac{S_4}{n} - 4\bar d\tfrac{S_3}{n} + 6\bar d^2\tfrac{S_2}{n} - 3\bar d^4,\quad
    \text{kurtosis} = m_4 / m_2^2 - 3,

the population (``ddof=0``) definitions that :func:`scipy.stats.kurtosis` uses by default.
A NaN element is counted apart and left out of every other statistic (it never fires); ±inf
enters them as it is. The unit axis ``dim`` is any axis: the tensor is read as
``(outer, units, inner)`` in its own memory order when that is possible (contiguous, or
channels-last with the unit axis innermost), otherwise from one contiguous copy.

On the CPU the work is one compiled loop (Numba, cached on disk after the first compile; the
loop vectorises, and the largest magnitude is taken on the float's bit pattern, which orders
like the value once the sign bit is cleared), split over :mod:`relukit.threads` for large
tensors. On other devices the same numbers come from PyTorch reductions, and stay on the
device: nothing here synchronises with the host.

Example:
    >>> import torch
    >>> from relukit.diagnostics.streaming import Moments, scan
    >>> x = torch.tensor([[1.0, -2.0], [3.0, 0.0], [float("nan"), 5.0]])
    >>> fired, acc = scan(x, dim=1, above=0.0, moments=True, shift=0.0)
    >>> fired.tolist()
    [2, 1]
    >>> m = Moments.from_sums(acc)
    >>> m.count, m.nan, m.mean, m.max_abs, m.nonzero
    (5, 1, 1.4, 5.0, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from relukit import threads

__all__ = ["ACC", "Moments", "merge", "scan"]

ACC = 8
"""Length of the sums vector: count, S1, S2, S3, S4 (of x − shift), max |x|, non-zero, NaN."""

_GRAIN = 1 << 17  # elements per thread before a scan is split (a hand-off costs ~20 µs)
_kernels: dict[Any, Any] = {}


def _make_fast(fire: bool, mom: bool, zeros: bool) -> Any:
    """The vectorising loop for one combination of what to count (constants to Numba, so the
    branches not taken are pruned before compiling)."""
    import numba

    fm = {"reassoc", "contract", "nsz", "arcp"}  # not nnan/ninf: NaN and inf stay honest

    @numba.njit(cache=True, nogil=True, fastmath=fm)
    def fast(x, bits, mask, above, shift, fired, acc):  # pragma: no cover - compiled
        # No NaN test inside the loop: a NaN shows as bits above +inf's, and then the caller
        # runs ``careful`` instead. (v > above is False for NaN either way.) The zeros are
        # counted in a loop of their own: a second integer sum stops the main loop vectorising.
        outer, units, inner = x.shape
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        top = bits[0, 0, 0] & 0
        nz = 0
        if inner == 1:  # units innermost: the loop runs along the units
            for o in range(outer):
                for u in range(units):
                    v = x[o, u, 0]
                    if fire:
                        fired[u] += v > above
                    if mom:
                        d = np.float64(v) - shift
                        d2 = d * d
                        s1 += d
                        s2 += d2
                        s3 += d2 * d
                        s4 += d2 * d2
                        b = bits[o, u, 0] & mask
                        top = b if b > top else top
                if zeros:
                    for u in range(units):
                        nz += x[o, u, 0] != 0
        else:
            for o in range(outer):
                for u in range(units):
                    f = 0
                    for i in range(inner):
                        v = x[o, u, i]
                        if fire:
                            f += v > above
                        if mom:
                            d = np.float64(v) - shift
                            d2 = d * d
                            s1 += d
                            s2 += d2
                            s3 += d2 * d
                            s4 += d2 * d2
                            b = bits[o, u, i] & mask
                            top = b if b > top else top
                    fired[u] += f
                    if zeros:
                        z = 0
                        for i in range(inner):
                            z += x[o, u, i] != 0
                        nz += z
        acc[0] += outer * units * inner
        acc[1] += s1
        acc[2] += s2
        acc[3] += s3
        acc[4] += s4
        acc[6] += nz
        return top

    return fast


def _compile(fire: bool, mom: bool, zeros: bool) -> dict[str, Any]:
    """The Numba loops (compiled on first use; on-disk cache afterwards)."""
    key = ("fast", fire, mom, zeros)
    if key not in _kernels:
        _kernels[key] = _make_fast(fire, mom, zeros)
    if "careful" in _kernels:
        return {"fast": _kernels[key], "careful": _kernels["careful"]}
    import numba

    @numba.njit(cache=True, nogil=True)
    def careful(x, above, fire, mom, shift, fired, acc):  # pragma: no cover - compiled
        outer, units, inner = x.shape
        n = 0
        nan = 0
        nz = 0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        top = 0.0
        for o in range(outer):
            for u in range(units):
                f = 0
                for i in range(inner):
                    v = x[o, u, i]
                    if fire and v > above:
                        f += 1
                    if mom:
                        if v != v:
                            nan += 1
                            continue
                        n += 1
                        d = np.float64(v) - shift
                        d2 = d * d
                        s1 += d
                        s2 += d2
                        s3 += d2 * d
                        s4 += d2 * d2
                        a = abs(np.float64(v))
                        if a > top:
                            top = a
                        if v != 0:
                            nz += 1
                fired[u] += f
        acc[0] += n
        acc[1] += s1
        acc[2] += s2
        acc[3] += s3
        acc[4] += s4
        acc[5] = max(acc[5], top)
        acc[6] += nz
        acc[7] += nan

    _kernels["careful"] = careful
    return {"fast": _kernels[key], "careful": careful}


def _as_3d(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` as ``(outer, units, inner)``: a view when the memory order allows, else a copy."""
    units = t.shape[dim]
    if t.is_contiguous():
        return t.reshape(math.prod(t.shape[:dim]), units, math.prod(t.shape[dim + 1 :]))
    moved = t.movedim(dim, -1)
    if moved.is_contiguous():  # channels-last, or a transposed (N, C, T) sequence
        return moved.reshape(-1, units, 1)
    return t.contiguous().reshape(math.prod(t.shape[:dim]), units, -1)


def _scan_cpu(
    x: torch.Tensor, above: float, fire: bool, mom: bool, shift: float, zeros: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    k = _compile(fire, mom, zeros and mom)
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(torch.float32)
    a = x.detach().numpy()
    if not a.flags.c_contiguous:  # a view with a zero-stride axis, say
        a = np.ascontiguousarray(a)
    if a.dtype == np.float32:
        bits, mask, inf_bits = a.view(np.int32), np.int32(0x7FFFFFFF), 0x7F800000
    else:
        bits, mask, inf_bits = a.view(np.int64), np.int64(0x7FFFFFFFFFFFFFFF), 0x7FF0000000000000
    outer, units, _inner = a.shape
    parts = 1
    if a.size >= 2 * _GRAIN and outer > 1:
        parts = min(threads.get_num_threads(), outer, a.size // _GRAIN)
    fired = np.zeros((parts, units), np.int64)
    acc = np.zeros((parts, ACC), np.float64)
    tops = [0] * parts
    bounds = np.linspace(0, outer, parts + 1).astype(np.int64)
    empty = a.size == 0

    def task(p: int) -> None:
        lo, hi = int(bounds[p]), int(bounds[p + 1])
        if not empty:
            tops[p] = int(k["fast"](a[lo:hi], bits[lo:hi], mask, above, shift, fired[p], acc[p]))

    threads.run_all([lambda p=p: task(p) for p in range(parts)])
    out_fired, out_acc = fired.sum(0), acc.sum(0)
    if mom:
        top = max(tops)
        if top > inf_bits:  # a NaN: recount its part carefully
            out_fired[:] = 0
            out_acc[:] = 0
            k["careful"](a, above, fire, mom, shift, out_fired, out_acc)
        else:
            out_acc[5] = abs(float(np.array([top], bits.dtype).view(a.dtype)[0]))
    return out_fired, out_acc


def _scan_torch(
    x: torch.Tensor, dim: int, above: float, fire: bool, mom: bool, shift: float
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    fired = acc = None
    if fire:
        dims = [d for d in range(x.ndim) if d != dim]
        fired = (x > above).sum(dim=dims, dtype=torch.int64) if dims else (x > above).long()
    if mom:
        ok = ~torch.isnan(x)
        d = torch.where(ok, x.double() - shift, 0.0)
        d2 = d * d
        acc = torch.stack(
            [
                ok.sum(dtype=torch.float64),
                d.sum(),
                d2.sum(),
                (d2 * d).sum(),
                (d2 * d2).sum(),
                torch.where(ok, x.abs(), 0).amax().double()
                if x.numel()
                else torch.zeros((), dtype=torch.float64, device=x.device),
                ((x != 0) & ok).sum(dtype=torch.float64),
                (~ok).sum(dtype=torch.float64),
            ]
        )
    return fired, acc


def scan(
    t: torch.Tensor,
    dim: int,
    above: float | None,
    moments: bool,
    shift: float = 0.0,
    zeros: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-unit counts of ``t > above`` along axis ``dim``, and the sums vector (:data:`ACC`).

    Args:
        t: any real tensor (integers and 16-bit floats are read as float32).
        dim: the unit axis, ``0 <= dim < t.ndim``.
        above: the firing threshold, or ``None`` to count nothing per unit.
        moments: whether to return the sums vector.
        shift: the value the power sums are taken about.
        zeros: count the non-zero elements (the sums vector's entry 6); ``False`` leaves it 0
            on the CPU, for callers that know it already (on a never-negative output whose
            threshold is 0, the non-zeros are the firings).

    Returns:
        ``(fired, acc)``: an int64 tensor of one count per unit (or ``None``) and a float64
        tensor of :data:`ACC` sums (or ``None``), on ``t``'s device.
    """
    if t.is_complex():
        raise TypeError(f"scan: complex activations have no firing rule, got {t.dtype}")
    fire = above is not None
    if t.ndim == 0:
        t, dim = t.reshape(1), 0
    if t.device.type != "cpu":
        return _scan_torch(t, dim, float(above or 0.0), fire, moments, shift)
    if not t.is_floating_point():
        t = t.to(torch.float32)
    fired, acc = _scan_cpu(_as_3d(t, dim), float(above or 0.0), fire, moments, shift, zeros)
    return (
        torch.from_numpy(fired) if fire else None,
        torch.from_numpy(acc) if moments else None,
    )


def merge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Two sums vectors (same shift) as one: sums add, the largest magnitude is the larger."""
    out = a + b.to(a.device)
    out[5] = torch.maximum(a[5], b[5].to(a.device))
    return out


@dataclass(frozen=True)
class Moments:
    """Mean, standard deviation, largest magnitude and excess kurtosis from a sums vector.

    Attributes:
        count: elements counted (NaN left out).
        nan: NaN elements seen.
        nonzero: non-zero elements (NaN left out).
        mean, std: population mean and standard deviation (``nan`` without elements).
        max_abs: the largest magnitude (0 without elements).
        kurtosis: excess kurtosis, ``m4/m2² − 3`` (0 for a normal distribution; ``nan`` when
            the elements are all equal).
    """

    count: int
    nan: int
    nonzero: int
    mean: float
    std: float
    max_abs: float
    kurtosis: float

    @classmethod
    def from_sums(cls, acc: torch.Tensor | np.ndarray, shift: float = 0.0) -> Moments:
        """Finish the statistics from a sums vector taken about ``shift``."""
        a = [float(v) for v in (acc.tolist() if isinstance(acc, torch.Tensor) else acc)]
        n, s1, s2, s3, s4, top, nz, nan = a
        if n == 0:
            return cls(0, int(nan), int(nz), math.nan, math.nan, 0.0, math.nan)
        d = s1 / n
        m2 = s2 / n - d * d
        m4 = s4 / n - 4 * d * (s3 / n) + 6 * d * d * (s2 / n) - 3 * d**4
        m2 = max(m2, 0.0)
        with np.errstate(all="ignore"):
            kurt = m4 / (m2 * m2) - 3 if m2 > 0 else math.nan
        return cls(int(n), int(nan), int(nz), shift + d, math.sqrt(m2), top, float(kurt))
