"""Well-conditioned pieces shared by the smooth members' formulas (any Array-API namespace).

- :func:`sigmoid`: σ(x), exact to the rounding of exp, a sum and a quotient for every x;
  ``1 − σ(x)`` is taken as ``σ(−x)``, never by the subtraction.
- :func:`two_product`, :func:`two_sum`: ``a·b`` and ``a + b`` as ``hi + lo`` exactly (Dekker,
  Knuth), for arguments whose rounding a steep function would magnify (``exp(−x²/2)``, σ of
  gelu-tanh's argument, ``beta·x`` in softplus, ``x/alpha`` in celu, far in the tails): the
  ``lo`` part is put back to first order, ``f(hi + lo) ≈ f(hi) + f′(hi)·lo``.
- :func:`near_zero`: a derivative near its zero, by its Taylor expansion (below).

The zeros of the smooth members' derivatives, and their Taylor expansions there:

gelu′ (both forms), silu′ and mish′ each cross zero once, on the negative axis. Near such a
zero every formula for the derivative subtracts two terms of about the same size, so it loses
as many digits as the result is smaller than the terms: 1 ulp of the terms is 10^7 ulp of a
result of 1e-9, which is where the float32 input nearest mish′'s zero lands. There the members
evaluate instead ``f′(r + h) = h·(c₁ + c₂h + … + c_N h^{N−1})``, with ``h = (x − r_hi) − r_lo``
computed exactly (``r = r_hi + r_lo`` to 106 bits; ``x − r_hi`` is exact by Sterbenz's lemma
for ``x`` within a factor of 2 of ``r``) and the Taylor coefficients ``c_k`` from mpmath at 50
digits. Over ``|h| ≤`` :data:`WIDTH` the neglected terms are below 1e-17 of the result
(the compiled float32 kernels, which need less, take the first terms over a narrower interval).

Regenerate the tables (needs mpmath) with ``python -m relukit.family.numerics``; the tests check
them against mpmath.
"""

from __future__ import annotations

from typing import Any

WIDTH = 0.75
DEGREE = 44

# name: (r_hi, r_lo, (c_1, ..., c_DEGREE))
ZEROS: dict[str, tuple[float, float, tuple[float, ...]]] = {
    "gelu": (
        -0.7517915246935645,
        1.4956759177009883e-17,
        (
            0.4314939923140469,
            0.388284982990552,
            -0.018199676398671087,
            -0.1140082332972217,
            -0.014771522148244337,
            0.019421679838189067,
            0.004539228379125415,
            -0.002239538068073497,
            -0.0007448268386746817,
            0.00018633974623233514,
            8.615947861116571e-05,
            -1.121438018842664e-05,
            -7.74846130700372e-06,
            4.3284506257392273e-07,
            5.702764979242107e-07,
            -1.6044265494246427e-09,
            -3.5459866461783865e-08,
            -1.396942086426202e-09,
            1.90319840501314e-09,
            1.4506418938779426e-10,
            -8.950037692726255e-11,
            -9.950340824808053e-12,
            3.725967039270119e-12,
            5.482292964742324e-13,
            -1.3820118240601056e-13,
            -2.5871508475507507e-14,
            4.578167824271334e-15,
            1.0789662518230159e-15,
            -1.3507094681149317e-16,
            -4.0514385281601486e-17,
            3.508210778008599e-18,
            1.386912168501325e-18,
            -7.777150045686552e-20,
            -4.367664669884747e-20,
            1.3438717003142014e-21,
            1.2740623848157477e-21,
            -1.1348386773760813e-23,
            -3.4610681792369005e-23,
            -3.698362293649062e-25,
            8.793713799733721e-25,
            2.5378939225179607e-26,
            -2.0968693244856466e-26,
            -9.706126391716018e-28,
            4.7053342891867815e-28,
        ),
    ),
    "gelu-tanh": (
        -0.7524614220710163,
        3.635560509207687e-17,
        (
            0.4304000910248585,
            0.38751844613578895,
            -0.01578285352184803,
            -0.11394448308095899,
            -0.01661932834305256,
            0.019682309459833118,
            0.005261059254921912,
            -0.0024227318458750974,
            -0.0009274420230205449,
            0.00026392764052681053,
            0.00012425227802639782,
            -3.4956171694436116e-05,
            -1.5950896871645105e-05,
            5.918611710894005e-06,
            2.4335516344299543e-06,
            -9.898647747433667e-07,
            -4.3102482988029016e-07,
            1.4157556987729473e-07,
            7.520740909289922e-08,
            -1.6978217459781023e-08,
            -1.196180847972441e-08,
            1.7637802707907564e-09,
            1.744987137846621e-09,
            -1.708811216951738e-10,
            -2.433873557833449e-10,
            1.687283177355558e-11,
            3.393384490409003e-11,
            -1.6704708256434772e-12,
            -4.827778412316251e-12,
            1.2486727012407477e-13,
            6.939761437601454e-13,
            3.5144509347290215e-15,
            -9.865467716880927e-14,
            -4.0424099628443715e-15,
            1.3689635953428314e-14,
            1.0670712209669226e-15,
            -1.8550779636696272e-15,
            -2.1115707405860734e-16,
            2.4762252206615437e-16,
            3.678760822956425e-17,
            -3.284110461653973e-17,
            -6.0309047917836144e-18,
            4.339430603651584e-18,
            9.600240297111338e-19,
        ),
    ),
    "silu": (
        -1.2784645427610737,
        -1.0946994183093437e-16,
        (
            0.2178117057198001,
            0.1466487969969469,
            0.018874814223782312,
            -0.015222655223188032,
            -0.006606589138356696,
            0.000126627410081122,
            0.0007985218818397998,
            0.00018570724361186496,
            -4.090534237428612e-05,
            -2.9733542213263917e-05,
            -2.942631888842464e-06,
            2.346029682463866e-06,
            8.599695028268575e-07,
            -3.051244750055421e-08,
            -9.266646309267441e-08,
            -1.8877622907727957e-08,
            4.619379769031606e-09,
            2.9177603026903803e-09,
            2.3648315053103244e-10,
            -2.251366201881081e-10,
            -7.50344609385287e-11,
            3.998547874723996e-12,
            8.04274075537398e-12,
            1.4842855116792256e-12,
            -4.1428341124873365e-13,
            -2.3496573817834053e-13,
            -1.5376365106809265e-14,
            1.8397842645887054e-14,
            5.662235988802348e-15,
            -4.0908332256286805e-16,
            -6.188638949724368e-16,
            -1.0399488154756224e-16,
            3.334275149650013e-17,
            1.721651999171468e-17,
            8.67091436667646e-19,
            -1.3840002418608729e-18,
            -3.954856214750199e-19,
            3.6593212392469714e-20,
            4.452909024606121e-20,
            6.800579363820848e-21,
            -2.5158764110529482e-21,
            -1.1924814502010266e-21,
            -4.209982064400547e-23,
            9.890867751146305e-23,
        ),
    ),
    "mish": (
        -1.1924312145154952,
        -4.8484829848031044e-17,
        (
            0.2669479140495345,
            0.20473126408010586,
            0.04190782104360987,
            -0.020271822716684245,
            -0.01582112656173338,
            -0.0033606849270232685,
            0.0010924055409445854,
            0.0009898181021289196,
            0.00025412936386191073,
            -4.1961496031696126e-05,
            -5.582891567360688e-05,
            -1.72992708103044e-05,
            9.427361327376651e-07,
            2.9088199364912223e-06,
            1.071676702702074e-06,
            2.6879417855557728e-08,
            -1.4117255919499382e-07,
            -6.174424363104907e-08,
            -5.460186173028381e-09,
            6.3895954615089855e-09,
            3.3604012383661332e-09,
            4.817646300218697e-10,
            -2.6751871594311224e-10,
            -1.7442209713382678e-10,
            -3.3904729895707114e-11,
            1.0101727316036154e-11,
            8.681382594457511e-12,
            2.124385967466607e-12,
            -3.20344479568135e-13,
            -4.153673469447499e-13,
            -1.2348725029307754e-13,
            6.337359322280651e-15,
            1.9103418630556258e-14,
            6.79383226720695e-15,
            1.6183924412509285e-16,
            -8.421603581894615e-16,
            -3.577018575431464e-16,
            -3.059285498528877e-17,
            3.534620906867835e-17,
            1.8140677609631626e-17,
            2.535993308788154e-18,
            -1.3931390485019807e-18,
            -8.894451932354624e-19,
            -1.6944112412937898e-19,
        ),
    ),
}


# c_1 − float(c_1) and c_2 − float(c_2): the float64 kernels sum the first terms of the
# expansion in double-double (rounded to float64, c_1 alone would cost up to 0.5 ulp where the
# terms of the expansion cancel)
ZEROS_LOW: dict[str, tuple[float, float]] = {
    "gelu": (2.7308688141129613e-17, 2.3344842362524718e-17),
    "gelu-tanh": (2.028254970529195e-17, -2.562359819429644e-17),
    "silu": (-3.974332795880862e-18, -1.1662011480926915e-17),
    "mish": (1.5332816617135587e-17, 3.823755128643401e-18),
}


SPLITTER = 134217729.0  # 2^27 + 1: Veltkamp's split of a float64 into two 26-bit halves


def sigmoid(m: Any, x: Any) -> Any:
    """σ(x) = 1/(1 + e^−x), as e^x/(1 + e^x) for x < 0 (where e^−x would overflow while σ is
    still a normal float64)."""
    e = m.exp(-m.abs(x))
    return m.where(x < 0, e, 1 + 0 * e) / (1 + e)


def _split(x: Any) -> tuple[Any, Any]:
    c = SPLITTER * x
    hi = c - (c - x)
    return hi, x - hi


def two_product(a: Any, b: Any) -> tuple[Any, Any]:
    """``(p, e)`` with ``p`` the rounded ``a·b`` and ``p + e = a·b`` exactly (for |a·b| below
    about 1e300, where the split does not overflow; elsewhere ``e`` may be NaN)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """``(s, e)`` with ``s`` the rounded ``a + b`` and ``s + e = a + b`` exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def finite(m: Any, value: Any, where: Any) -> Any:
    """``value`` where ``where`` holds, else 0 (a correction term that overflowed)."""
    return m.where(where, value, m.zeros_like(value))


# 32·ln 2 = SHIFT_HI + SHIFT_LO, SHIFT_HI a multiple of 2^-43, so that a + SHIFT_HI is exact
# for a on that grid below 1,024 in size (−x²/2 and gelu-tanh's 2u far in the tails)
SHIFT_HI = 22.180709777918196
SHIFT_LO = 5.403280016243833e-14
UNSHIFT = 2.0**-32


def exp_shifted(m: Any, a: Any) -> Any:
    """e^a·2^32: normal wherever a product e^a·c with |c| ≥ 1 is; multiply the product by
    :data:`UNSHIFT` last."""
    return m.exp(a + SHIFT_HI) * (1 + SHIFT_LO)


# Below FAR, e^x is formed scaled by 2^32 (exp_shifted): alone it is subnormal below x = −708.4,
# where x·e^x, (1 + x)·e^x or alpha·e^x is not yet (down to about −715)
FAR = -700.0


def exp_times(m: Any, x: Any, factor: Any, general: Any) -> Any:
    """``general`` (a member's value, ≈ e^x·factor far left), and below :data:`FAR` e^x·factor
    formed scaled, ``(exp_shifted(x)·factor)·UNSHIFT``."""
    far = x < FAR
    xc = m.where(far, x, m.zeros_like(x) + FAR)
    return m.where(far, (exp_shifted(m, xc) * factor) * UNSHIFT, general)


def near_zero(m: Any, x: Any, name: str, general: Any) -> Any:
    """``general`` (the derivative of ``name`` at ``x``), or where ``x`` is within
    :data:`WIDTH` of the derivative's zero, its Taylor expansion there."""
    hi, lo, coefficients = ZEROS[name]
    h = (x - hi) - lo
    p = coefficients[-1]
    for c in reversed(coefficients[:-1]):
        p = p * h + c
    return m.where(m.abs(h) <= WIDTH, h * p, general)


def generate(
    digits: int = 50,
) -> tuple[dict[str, tuple[float, float, tuple[float, ...]]], dict[str, tuple[float, float]]]:
    """The tables (:data:`ZEROS`, :data:`ZEROS_LOW`), computed with mpmath."""
    import mpmath as mp

    mp.mp.dps = digits
    beta = mp.sqrt(2 / mp.pi)
    kappa = mp.mpf("0.044715")

    def sigmoid(x: mp.mpf) -> mp.mpf:
        return 1 / (1 + mp.exp(-x))

    def gelu_tanh(x: mp.mpf) -> mp.mpf:
        t = mp.tanh(beta * (x + kappa * x**3))
        return (1 + t) / 2 + x / 2 * (1 - t * t) * beta * (1 + 3 * kappa * x * x)

    def mish(x: mp.mpf) -> mp.mpf:
        t = mp.tanh(mp.log1p(mp.exp(x)))
        return t + x * sigmoid(x) * (1 - t * t)

    functions = {
        "gelu": (lambda x: mp.ncdf(x) + x * mp.npdf(x), -0.75),
        "gelu-tanh": (gelu_tanh, -0.75),
        "silu": (lambda x: sigmoid(x) * (1 + x * (1 - sigmoid(x))), -1.28),
        "mish": (mish, -1.19),
    }
    tables, lows = {}, {}
    for name, (f, guess) in functions.items():
        r = mp.findroot(f, guess)
        hi = float(r)
        coefficients = mp.taylor(f, r, DEGREE)[1:]
        tables[name] = (hi, float(r - hi), tuple(float(c) for c in coefficients))
        lows[name] = (float(coefficients[0] - float(coefficients[0])),
                      float(coefficients[1] - float(coefficients[1])))  # fmt: skip
    return tables, lows


if __name__ == "__main__":  # pragma: no cover
    zeros, low_parts = generate()
    for key, (hi, lo, cs) in zeros.items():
        print(f'    "{key}": (\n        {hi!r},\n        {lo!r},')
        print("        (\n" + "".join(f"            {c!r},\n" for c in cs) + "        ),\n    ),")
    for key, (c1, c2) in low_parts.items():
        print(f'    "{key}": ({c1!r}, {c2!r}),')
