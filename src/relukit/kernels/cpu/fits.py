"""Fitted constants of the compiled kernels' float64 math (:mod:`relukit.kernels.cpu.mathlib`).

``ERFCX``: the scaled complementary error function ``erfcx(z) = e^{z²}·erfc(z)`` on
[:data:`ERFCX_LOW`, :data:`ERFCX_HIGH`] as a Chebyshev series in
``s = 2(w − w_low)/(w_high − w_low) − 1``, ``w = (z − K)/(z + K)``: the map makes the slowly
decaying ``erfcx`` nearly polynomial, so degree 14 reaches a relative error of 1.5e-13 (a
least-squares fit on 2,000 Chebyshev nodes against 40-digit mpmath values). The float32
kernels need no more: their results are rounded to 24 bits.

Regenerate with ``python -m relukit.kernels.cpu.fits`` (needs mpmath); the tests check the error.
"""

from __future__ import annotations

ERFCX_LOW = 0.84
ERFCX_HIGH = 12.0
ERFCX_K = 3.0
ERFCX_DEGREE = 14
ERFCX: tuple[float, ...] = (
    0.21607843070567478,
    -0.20667467377224957,
    0.044124048423390405,
    -0.007601094677503729,
    0.0010201025355806512,
    -9.756213129080985e-05,
    4.793098498462093e-06,
    2.3003972471881433e-07,
    -5.496258914050162e-08,
    1.3225539280343532e-09,
    4.675598034887691e-10,
    -3.0414101826076705e-11,
    -4.517116699083493e-12,
    4.261392320324624e-13,
    5.540020135881145e-14,
)


def generate(nodes: int = 2000) -> tuple[float, ...]:
    """The Chebyshev coefficients of ``ERFCX``, fitted with mpmath and NumPy."""
    import mpmath as mp
    import numpy as np
    from numpy.polynomial import chebyshev

    mp.mp.dps = 40
    k = ERFCX_K
    w_low, w_high = (ERFCX_LOW - k) / (ERFCX_LOW + k), (ERFCX_HIGH - k) / (ERFCX_HIGH + k)
    s = np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)
    w = w_low + (s + 1) / 2 * (w_high - w_low)
    z = k * (1 + w) / (1 - w)
    y = [float(mp.erfc(mp.mpf(v)) * mp.exp(mp.mpf(v) ** 2)) for v in z]
    return tuple(float(c) for c in chebyshev.chebfit(s, y, ERFCX_DEGREE))


if __name__ == "__main__":  # pragma: no cover
    print("ERFCX: tuple[float, ...] = (\n" + "".join(f"    {c!r},\n" for c in generate()) + ")")
