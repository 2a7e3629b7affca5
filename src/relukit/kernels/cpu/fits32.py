"""Fitted constants of the float32 kernels' math (:mod:`relukit.kernels.math32`).

Each is a polynomial ``c₀ + v·(c₁ + c₂v + …)`` in a variable ``v`` that the kernels form
exactly or as a pair, fitted for the least maximum relative error (Lawson's iteratively
reweighted least squares on Chebyshev nodes, against 40-digit mpmath values). ``c₀`` is kept
as a float32 pair (``hi``, ``lo``), the others are rounded to float32 one at a time, lowest
first, the rest refitted after each. The error after rounding is the comment beside each.

- ``EXP_Q``: ``(e^r − 1 − r)/r²`` on ``|r| ≤ ln2/2`` (v = r).
- ``TANH_T``: ``(tanh x − x)/x³`` on ``|x| ≤ 0.625`` (v = x²).
- ``GELU_D``: ``(gelu′(x) − ½)/x`` on ``|x| ≤ 1.25`` (v = x²).
- ``GELU_V``: ``V(a) = 1/√(2π) − Y(a)/a²`` on ``1.25 ≤ a ≤ 13.3`` (v = (a − 1)/(a + 1) − ½), so
  that ``gelu′(−a) = −e^{−a²/2}·a·V(a)`` and ``gelu′(a) = 1 + e^{−a²/2}·a·V(a)``, with
  ``Y(a) = a·e^{a²/2}·Φ(−a)``.
- ``LOG1P_P``: ``(log1p(w) − w + w²/2)/w³`` on ``0 ≤ w ≤ 1`` (v = w − ½), relative to
  ``log1p(w)``, so that ``log1p(w) = w − w²/2 + w³·P(w)``.
- ``ZERO_<member>``: ``f′(r + h)/h`` on ``|h| ≤ 0.5``, r the zero of the derivative (v = h).

:data:`WIDE_FITS` are float64 polynomials for the few float32 paths that compute in float64
(where that is cheaper than pairs: no compensation at all), fitted the same way with the
coefficients kept in float64:

- ``EXP_E``: ``e^r`` on ``|r| ≤ ln2/2`` (v = r).
- ``GELU_M``: ``M(a) = e^{a²/2}·Φ(−a)`` on ``0 ≤ a ≤ 14`` (v = (a − 4)/(a + 4)), so that
  ``Φ(−a) = e^{−a²/2}·M(a)``: gelu.

Regenerate with ``python -m relukit.kernels.cpu.fits32`` (needs mpmath); the tests check the
members' errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

GELU_V_K = 1.0
GELU_V_CENTRE = 0.5
GELU_V_LOW = 1.25
GELU_HIGH = 13.3
GELU_D_HIGH = 1.25
GELU_M_K = 4.0
GELU_M_END = 14.0
ZERO_WIDTH = 0.5

# (c0_hi, c0_lo, c1, ..., cn)
FITS: dict[str, tuple[float, ...]] = {
    "EXP_Q": (  # 2^-28.3
        0.4999999403953552,
        -5.880673281666304e-09,
        0.1666652113199234,
        0.04166839271783829,
        0.00836866907775402,
        0.0013814117992296815,
    ),
    "TANH_T": (  # 2^-27.8
        -0.3333328068256378,
        -1.2584943753779498e-08,
        0.13331441581249237,
        -0.05373964458703995,
        0.020638830959796906,
        -0.005704688839614391,
    ),
    "GELU_D": (  # 2^-31.5
        0.7978845834732056,
        -2.270859233988176e-08,
        -0.26596152782440186,
        0.059841424226760864,
        -0.009498902596533298,
        0.0011547186877578497,
        -0.00011346724932081997,
        9.17777288123034e-06,
        -5.130050908519479e-07,
    ),
    "GELU_V": (  # 2^-27.9
        0.3584376275539398,
        2.723344438848585e-09,
        0.19974692165851593,
        -0.3284991979598999,
        0.22265034914016724,
        -0.1119099035859108,
        0.08956629782915115,
        -0.06693960726261139,
        0.02948587015271187,
        -0.03008590079843998,
        0.02842031978070736,
    ),
    "LOG1P_P": (  # 2^-27.0
        0.2437208890914917,
        -2.5484205856685094e-09,
        -0.12899215519428253,
        0.07152015715837479,
        -0.04085254669189453,
        0.02389194630086422,
        -0.014601080678403378,
        0.009001550264656544,
        -0.003675732295960188,
    ),
    "ZERO_GELU": (  # 2^-31.2
        0.43149399757385254,
        -5.116004508920469e-09,
        0.38828498125076294,
        -0.018199704587459564,
        -0.11400814354419708,
        -0.014770583249628544,
        0.01942034810781479,
        0.004528366029262543,
        -0.0022317408584058285,
        -0.000693611626047641,
        0.0001683464797679335,
    ),
    "ZERO_GELU_TANH": (  # 2^-29.4
        0.4304001033306122,
        -1.2107954638906904e-08,
        0.38751843571662903,
        -0.015782896429300308,
        -0.1139439195394516,
        -0.0166179072111845,
        0.019674032926559448,
        0.005244900938123465,
        -0.002376651158556342,
        -0.0008527289028279483,
        0.00017010643205139786,
    ),
    "ZERO_SILU": (  # 2^-30.4
        0.2178117036819458,
        2.0340742423741176e-09,
        0.14664879441261292,
        0.018874812871217728,
        -0.01522253081202507,
        -0.006606542505323887,
        0.00012501998571678996,
        0.0007982159149833024,
        0.00019333112868480384,
        -4.098297722521238e-05,
        -4.120068842894398e-05,
    ),
    "ZERO_MISH": (  # 2^-29.4
        0.2669479250907898,
        -1.1142323508295249e-08,
        0.2047312706708908,
        0.041907843202352524,
        -0.020272163674235344,
        -0.015821846202015877,
        -0.0033559768926352262,
        0.0011003908002749085,
        0.0009663701057434082,
        0.00021839220426045358,
        -7.44738053981564e-06,
    ),
}


# (c0, c1, ..., cn) in float64
WIDE_FITS: dict[str, tuple[float, ...]] = {
    "EXP_E": (  # 2^-34.5
        0.999999999961681,
        1.0000000002431062,
        0.5000000104539203,
        0.16666665126088767,
        0.04166622541713155,
        0.008333561095210353,
        0.0013948183889513968,
        0.0001977517070126818,
    ),
    "GELU_M": (  # 2^-32.0
        0.09441064130333822,
        -0.17039772191515917,
        0.12437925569843283,
        -0.07170739009680556,
        0.03086479221721414,
        -0.008492327809681906,
        0.0005076130916729615,
        0.0006401587683107862,
        -0.0001868210796966227,
        -4.91063718083346e-05,
        2.603896173684695e-05,
        7.907503843752997e-06,
    ),
}


def _lawson(v: Any, target: Any, weight: Any, degree: int, first: int = 0) -> Any:
    import numpy as np

    basis = np.stack([v**k for k in range(first, degree + 1)], 1)
    w = np.full(v.size, 1.0 / v.size)
    c = None
    for _ in range(150):
        sw = np.sqrt(w)
        c = np.linalg.lstsq(basis * (sw * weight)[:, None], target * sw * weight, rcond=None)[0]
        error = np.abs((basis @ c - target) * weight)
        w = w * error
        w /= w.sum()
    return c


def fit(v: Any, target: Any, weight: Any, degree: int) -> tuple[tuple[float, ...], float]:
    """(c0_hi, c0_lo, c1, …, c_degree), and the maximum of ``|p(v) − target|·weight``."""
    import numpy as np

    f32 = np.float32
    c = _lawson(v, target, weight, degree)
    fixed = [float(c[0])]
    for k in range(1, degree + 1):
        rest = target - sum(fixed[j] * v**j for j in range(k))
        refit = _lawson(v, rest, weight, degree, first=k)
        fixed.append(float(f32(refit[0])))
    value = sum(fixed[j] * v**j for j in range(degree + 1))
    error = float(np.max(np.abs(value - target) * weight))
    hi = float(f32(fixed[0]))
    lo = float(f32(fixed[0] - hi))
    return (hi, lo, *fixed[1:]), error


def fit_wide(v: Any, target: Any, weight: Any, degree: int) -> tuple[tuple[float, ...], float]:
    """(c0, c1, …, c_degree) in float64, and the maximum of ``|p(v) − target|·weight``."""
    import numpy as np

    c = _lawson(v, target, weight, degree)
    value = sum(float(c[j]) * v**j for j in range(degree + 1))
    return tuple(float(x) for x in c), float(np.max(np.abs(value - target) * weight))


def _wide_targets() -> dict[str, tuple[Any, Any, Any, int]]:
    import mpmath as mp
    import numpy as np

    mp.mp.dps = 40
    out: dict[str, tuple[Any, Any, Any, int]] = {}
    r = _nodes(-0.5 * math_log2(), 0.5 * math_log2())
    e = _values(mp.exp, r)
    out["EXP_E"] = (r, e, 1 / e, 7)
    k = GELU_M_K
    w = _nodes(-1.0, (GELU_M_END - k) / (GELU_M_END + k))
    m = _values(lambda t: mp.exp(t * t / 2) * mp.ncdf(-t), k * (1 + w) / (1 - w))
    out["GELU_M"] = (w, m, 1 / np.abs(m), 11)
    return out


def _nodes(low: float, high: float, n: int = 1200) -> Any:
    import numpy as np

    return (np.cos(np.linspace(0, np.pi, n)) * (high - low) + (high + low)) / 2


def _values(f: Callable[[Any], Any], xs: Any) -> Any:
    import mpmath as mp
    import numpy as np

    return np.array([float(f(mp.mpf(float(x)))) for x in xs])


def _targets() -> dict[str, tuple[Any, Any, Any, int]]:
    import mpmath as mp
    import numpy as np

    from relukit.family.numerics import ZEROS

    mp.mp.dps = 40
    nodes = _nodes
    values = _values
    out: dict[str, tuple[Any, Any, Any, int]] = {}
    r = nodes(-0.5 * math_log2(), 0.5 * math_log2())
    r = r[np.abs(r) > 1e-7]
    e = values(lambda t: (mp.expm1(t) - t) / t**2, r)
    out["EXP_Q"] = (r, e, r * r / values(mp.exp, r), 4)
    x = nodes(1e-4, 0.625)
    out["TANH_T"] = (x * x, values(lambda t: (mp.tanh(t) - t) / t**3, x),
                     x**3 / values(mp.tanh, x), 4)  # fmt: skip
    x = nodes(1e-4, GELU_D_HIGH)
    d = values(lambda t: (mp.ncdf(t) + t * mp.npdf(t) - 0.5) / t, x)
    out["GELU_D"] = (x * x, d, 1 / d, 7)
    w = nodes(1e-6, 1.0, 1500)
    lp = values(mp.log1p, w)
    p = values(lambda t: (mp.log1p(t) - t + t * t / 2) / t**3, w)
    out["LOG1P_P"] = (w - 0.5, p, w**3 / lp, 7)

    def y(t: Any) -> Any:
        return t * mp.exp(t * t / 2) * mp.ncdf(-t)

    k = GELU_V_K
    w = nodes((GELU_V_LOW - k) / (GELU_V_LOW + k), (GELU_HIGH - k) / (GELU_HIGH + k))
    g = values(lambda t: 1 / mp.sqrt(2 * mp.pi) - y(t) / t**2, k * (1 + w) / (1 - w))
    out["GELU_V"] = (w - GELU_V_CENTRE, g, 1 / g, 9)
    beta = mp.sqrt(2 / mp.pi)
    kappa = mp.mpf("0.044715")

    def sig(z: Any) -> Any:
        return 1 / (1 + mp.exp(-z))

    def gelu_tanh_d(t: Any) -> Any:
        z = 2 * beta * (t + kappa * t**3)
        return sig(z) + t * sig(z) * sig(-z) * 2 * beta * (1 + 3 * kappa * t * t)

    def mish_d(t: Any) -> Any:
        u = mp.tanh(mp.log1p(mp.exp(t)))
        return u + t * sig(t) * (1 - u * u)

    derivatives = {
        "gelu": lambda t: mp.ncdf(t) + t * mp.npdf(t),
        "gelu-tanh": gelu_tanh_d,
        "silu": lambda t: sig(t) * (1 + t * sig(-t)),
        "mish": mish_d,
    }
    h = nodes(-ZERO_WIDTH, ZERO_WIDTH)
    h = h[np.abs(h) > 1e-9]
    for name, f in derivatives.items():
        root = mp.mpf(ZEROS[name][0]) + mp.mpf(ZEROS[name][1])
        g = values(lambda t, f=f, root=root: f(root + t) / t, h)
        out["ZERO_" + name.upper().replace("-", "_")] = (h, g, 1 / np.abs(g), 9)
    return out


def math_log2() -> float:
    import math

    return math.log(2)


def generate() -> dict[str, tuple[tuple[float, ...], float]]:
    """Every fit of :data:`FITS` and its error."""
    return {name: fit(*args) for name, args in _targets().items()}


def generate_wide() -> dict[str, tuple[tuple[float, ...], float]]:
    """Every fit of :data:`WIDE_FITS` and its error."""
    return {name: fit_wide(*args) for name, args in _wide_targets().items()}


if __name__ == "__main__":  # pragma: no cover
    import math

    for table, fits in (("FITS", generate()), ("WIDE_FITS", generate_wide())):
        print(f"{table}:")
        for name, (coefficients, error) in fits.items():
            body = "".join(f"        {c!r},\n" for c in coefficients)
            print(f'    "{name}": (  # 2^{math.log2(error):.1f}\n{body}    ),')
