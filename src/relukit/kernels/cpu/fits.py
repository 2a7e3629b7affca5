"""Fitted constants of the compiled kernels' float64 math (:mod:`relukit.kernels.cpu.mathlib`).

``ERFCX``: the scaled complementary error function ``erfcx(z) = e^{z²}·erfc(z)`` on
[:data:`ERFCX_LOW`, :data:`ERFCX_HIGH`] as a Chebyshev series in
``s = 2(w − w_low)/(w_high − w_low) − 1``, ``w = (z − K)/(z + K)``: the map makes the slowly
decaying ``erfcx`` nearly polynomial, so degree 14 reaches a relative error of 1.5e-13 (a
least-squares fit on 2,000 Chebyshev nodes against 40-digit mpmath values). The float32
kernels need no more: their results are rounded to 24 bits.

``MILLS``: ``g(t) = t·R(t)`` on [:data:`MILLS_LOW`, :data:`MILLS_HIGH`], R the Mills ratio
``(1 − Φ(t))/φ(t)``, as a Chebyshev series in ``s = MILLS_A·w + MILLS_B``,
``w = (t − MILLS_K)/(t + MILLS_K)`` (the float64 kernels' Φ: ``Φ(−t) = φ(t)·g(t)/t``). g lies
in [0.65, 1), and degree 23 reaches a relative error of 1e-19; the coefficients are the exact
Chebyshev coefficients of g (mpmath, 40 digits, 48 nodes; the map uses the float64 values of
``MILLS_A`` and ``MILLS_B``), the first four as double-doubles (``MILLS_LOW_PARTS``).

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


MILLS_LOW = 1.0
MILLS_HIGH = 40.0
MILLS_K = 5.0
MILLS_DEGREE = 23
_W_LOW = (MILLS_LOW - MILLS_K) / (MILLS_LOW + MILLS_K)
_W_HIGH = (MILLS_HIGH - MILLS_K) / (MILLS_HIGH + MILLS_K)
MILLS_A = 2 / (_W_HIGH - _W_LOW)
MILLS_B = -(_W_HIGH + _W_LOW) / (_W_HIGH - _W_LOW)
MILLS: tuple[float, ...] = (
    0.9058413905673278,
    0.14555072696564103,
    -0.07130759813093633,
    0.024794656609186908,
    -0.006750967576771872,
    0.001470882369550532,
    -0.0002525876895719144,
    3.2091804155287046e-05,
    -2.4178444014495902e-06,
    -4.16459505493382e-08,
    3.623925081271849e-08,
    -3.2671906320762013e-09,
    -2.404554546149337e-10,
    7.080920819179615e-11,
    -6.964140958306414e-13,
    -1.2101683612577473e-12,
    6.7337945365243e-14,
    2.095508051813548e-14,
    -1.8902228625022763e-15,
    -4.03617922332874e-16,
    4.412840922015228e-17,
    8.94064677329858e-18,
    -9.475501469089237e-19,
    -2.241840909497359e-19,
)
MILLS_LOW_PARTS: tuple[float, ...] = (
    -2.821261155525435e-17,
    7.623454393624282e-18,
    2.2499736360857255e-18,
    8.841238618782648e-20,
)


def generate_mills(nodes: int = 48) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``MILLS`` and ``MILLS_LOW_PARTS``, with mpmath."""
    import mpmath as mp

    with mp.workdps(40):
        a, b, k = mp.mpf(MILLS_A), mp.mpf(MILLS_B), mp.mpf(MILLS_K)
        angles = [mp.pi * (j + mp.mpf(1) / 2) / nodes for j in range(nodes)]
        values = []
        for angle in angles:
            w = (mp.cos(angle) - b) / a
            t = k * (1 + w) / (1 - w)
            values.append(t * mp.sqrt(mp.pi / 2) * mp.exp(t * t / 2) * mp.erfc(t / mp.sqrt(2)))
        cs = []
        for n in range(MILLS_DEGREE + 1):
            c = (
                2
                * mp.fsum(v * mp.cos(n * angle) for v, angle in zip(values, angles, strict=True))
                / nodes
            )
            cs.append(c / 2 if n == 0 else c)
        return tuple(float(c) for c in cs), tuple(float(c - float(c)) for c in cs[:4])


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
    mills, low_parts = generate_mills()
    print("MILLS: tuple[float, ...] = (\n" + "".join(f"    {c!r},\n" for c in mills) + ")")
    print(f"MILLS_LOW_PARTS: tuple[float, ...] = {low_parts!r}")
