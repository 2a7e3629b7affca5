r"""Intervals and verdicts: how the study decides whether a claim holds.

Runs of the same seed share their initial weights and their batches, so two activations are
compared **paired by seed**: one effect per seed (a ratio such as relu's speed-up over tanh,
or a difference), then a Student *t* interval over the seeds (:func:`scipy.stats.t`), 95 %
by default. Ratios are averaged on a log scale (their interval is that of the geometric
mean), differences and single quantities on their own scale.

A verdict compares the interval with the claim's threshold:

* **holds** — the whole interval lies on the claimed side of the threshold;
* **does not hold** — the whole interval lies on the other side, or at the threshold;
* **inconclusive at N seeds** — the interval straddles the threshold (or N < 2: no interval).

Example:
    >>> effect = Interval.of([1.5, 2.0, 2.5, 2.0], ratio=True)
    >>> round(effect.estimate, 3), effect.n
    (1.968, 4)
    >>> verdict(effect, 1.0)
    'holds'
    >>> verdict(Interval.of([0.9, 1.4, 1.1]), 1.0)
    'inconclusive at 3 seeds'
    >>> verdict(Interval.of([1.0, 1.0]), 1.0)
    'does not hold'
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LEVEL", "Interval", "verdict"]

LEVEL = 0.95
"""Confidence level of every interval of the study."""


@dataclass(frozen=True)
class Interval:
    """An effect over seeds: its estimate, its interval at :data:`LEVEL`, and the per-seed
    values it comes from (``low``/``high`` are NaN when ``n < 2``)."""

    estimate: float
    low: float
    high: float
    values: tuple[float, ...]
    ratio: bool = False

    @property
    def n(self) -> int:
        """Number of seeds (values) behind the effect."""
        return len(self.values)

    @classmethod
    def of(cls, values: Iterable[float], *, ratio: bool = False) -> Interval:
        """The t interval of the mean of ``values`` (of their log when ``ratio``; the values
        must then be positive). Non-finite values are left out."""
        from scipy import stats

        kept = tuple(float(v) for v in values if v is not None and math.isfinite(v))
        if ratio:
            kept = tuple(v for v in kept if v > 0)
        if not kept:
            return cls(math.nan, math.nan, math.nan, (), ratio)
        scale = np.log(kept) if ratio else np.asarray(kept)
        mean = float(np.mean(scale))
        if len(kept) < 2:
            low = high = math.nan
        else:
            spread = float(np.std(scale, ddof=1)) / math.sqrt(len(kept))
            half = float(stats.t.ppf(0.5 + LEVEL / 2, len(kept) - 1)) * spread
            low, high = mean - half, mean + half
        if ratio:
            return cls(math.exp(mean), math.exp(low), math.exp(high), kept, True)
        return cls(mean, low, high, kept, False)

    def text(self, digits: int = 2, unit: str = "", scale: float = 1.0) -> str:
        """``"2.1× [1.6, 2.8]"``: the estimate and, when there is one, the interval."""
        if not self.values:
            return "n/a"
        mark = "×" if self.ratio else unit

        def number(value: float) -> str:
            return f"{value * scale:.{digits}g}" if self.ratio else f"{value * scale:.{digits}f}"

        text = f"{number(self.estimate)}{mark}"
        if math.isnan(self.low):
            return text
        return f"{text} [{number(self.low)}, {number(self.high)}]"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""

        def clean(value: float) -> float | None:
            return value if math.isfinite(value) else None

        return {
            "estimate": clean(self.estimate),
            "low": clean(self.low),
            "high": clean(self.high),
            "level": LEVEL,
            "n": self.n,
            "values": list(self.values),
            "scale": "log (geometric mean)" if self.ratio else "linear",
        }


def verdict(effect: Interval, threshold: float, above: bool = True) -> str:
    """``"holds"``, ``"does not hold"`` or ``"inconclusive at N seeds"`` for a claim that the
    effect lies above ``threshold`` (below it when ``above`` is False)."""
    if effect.n < 2 or math.isnan(effect.low):
        return f"inconclusive at {effect.n} seed" + ("" if effect.n == 1 else "s")
    low, high = (effect.low, effect.high) if above else (-effect.high, -effect.low)
    bar = threshold if above else -threshold
    if low > bar:
        return "holds"
    if high <= bar:
        return "does not hold"
    return f"inconclusive at {effect.n} seeds"
