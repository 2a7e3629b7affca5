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

:data:`GELU_TABLE` is gelu's centre, ``|x| < 4``, as 32 float32 polynomials of degree
:data:`GELU_TABLE_DEGREE`, one per interval ``[j/8, (j + 1)/8)`` of ``a = |x|``: row ``j`` is
``(c, p₀, …, p₅, q_hi, q_lo)`` with ``Φ(−a) ≈ p(a − c)`` (relative error in the comment),
``c`` a float32 near the interval's middle chosen so that ``p₀ = Φ(−c)`` is a float32 within
1/500 ulp, and ``q_hi + q_lo = Φ(c)`` (:func:`relukit.kernels.cpu.vector32.gelu_centre_16`).

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
GELU_TABLE_STEP = 0.125
GELU_TABLE_ROWS = 32  # a = |x| < GELU_TABLE_STEP·GELU_TABLE_ROWS = 4
GELU_TABLE_DEGREE = 5
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


# (c, p0, …, p5, q_hi, q_lo) per row: see the module's docstring
GELU_TABLE = (  # 2^-27.4
    (
        0.06250050663948059,
        0.475082129240036,
        -0.3981638550758362,
        0.01244274340569973,
        0.06611219793558121,
        -0.003113779239356518,
        -0.011990956962108612,
        0.5249178409576416,
        2.9797131873010585e-08,
    ),
    (
        0.18749935925006866,
        0.42563456296920776,
        -0.3919909596443176,
        0.03674915060400963,
        0.06304797530174255,
        -0.009114530868828297,
        -0.011498892679810524,
        0.5743654370307922,
        -4.305127088155558e-11,
    ),
    (
        0.3125031590461731,
        0.3773290812969208,
        -0.3799302279949188,
        0.05936472862958908,
        0.05713508278131485,
        -0.01435871422290802,
        -0.0071717812679708,
        0.6226708889007568,
        2.978713453671844e-08,
    ),
    (
        0.43750321865081787,
        0.3308732211589813,
        -0.3625318109989166,
        0.07930445671081543,
        0.04886038601398468,
        -0.01856340281665325,
        -0.006360300350934267,
        0.6691267490386963,
        2.9784541055732916e-08,
    ),
    (
        0.5625022649765015,
        0.28688693046569824,
        -0.3405671715736389,
        0.09578482806682587,
        0.03881280869245529,
        -0.021389979869127274,
        -0.005719107575714588,
        0.7131130695343018,
        2.6439947453660295e-11,
    ),
    (
        0.6875022649765015,
        0.24588313698768616,
        -0.31497305631637573,
        0.10827230662107468,
        0.027694350108504295,
        -0.02278556115925312,
        -0.0032782605849206448,
        0.7541168928146362,
        -2.9787797117819537e-08,
    ),
    (
        0.8125054836273193,
        0.20825082063674927,
        -0.28678539395332336,
        0.1165074035525322,
        0.016246609389781952,
        -0.02272236905992031,
        0.0006781738484278321,
        0.7917491793632507,
        -2.3657993966641477e-11,
    ),
    (
        0.9375154376029968,
        0.17424674332141876,
        -0.2570701837539673,
        0.12050358206033707,
        0.005184173583984375,
        -0.021276142448186874,
        0.003752536838874221,
        0.8257532715797424,
        -1.4884080634658403e-08,
    ),
    (
        1.0624895095825195,
        0.14400675892829895,
        -0.22686944901943207,
        0.12052324414253235,
        -0.004879707936197519,
        -0.01879826933145523,
        0.0059644258581101894,
        0.8559932112693787,
        2.9786610511450817e-08,
    ),
    (
        1.187477469444275,
        0.11751966923475266,
        -0.19711068272590637,
        0.11703228205442429,
        -0.01346591766923666,
        -0.015516416169703007,
        0.004453334026038647,
        0.8824803233146667,
        7.438468951903587e-09,
    ),
    (
        1.3124940395355225,
        0.09467674791812897,
        -0.16859450936317444,
        0.11063965409994125,
        -0.020299823954701424,
        -0.011782440356910229,
        0.005030529573559761,
        0.9053232669830322,
        -1.4902292733154354e-08,
    ),
    (
        1.4375234842300415,
        0.07528465241193771,
        -0.1419648975133896,
        0.10203895717859268,
        -0.025238770991563797,
        -0.00794333778321743,
        0.007108858320862055,
        0.9247153401374817,
        7.442800153967255e-09,
    ),
    (
        1.562493920326233,
        0.05908583849668503,
        -0.11769813299179077,
        0.09195131063461304,
        -0.0282710213214159,
        -0.0042854961939156055,
        0.004822845570743084,
        0.9409141540527344,
        7.451768091470967e-09,
    ),
    (
        1.6875051259994507,
        0.04575313255190849,
        -0.09606067091226578,
        0.08105143904685974,
        -0.02958056703209877,
        -0.001033322885632515,
        0.004614806268364191,
        0.9542468786239624,
        -1.1176632064291425e-08,
    ),
    (
        1.8125113248825073,
        0.034953612834215164,
        -0.07718600332736969,
        0.06995026767253876,
        -0.029394321143627167,
        0.0016517230542376637,
        0.0031722041312605143,
        0.9650464057922363,
        -1.862911780392551e-08,
    ),
    (
        1.9374966621398926,
        0.026342330500483513,
        -0.06106080114841461,
        0.05915255472064018,
        -0.02802461013197899,
        0.0037097963504493237,
        0.002525425748899579,
        0.9736576676368713,
        1.862238030447827e-09,
    ),
    (
        2.062548875808716,
        0.01957775466144085,
        -0.04754909873008728,
        0.0490361712872982,
        -0.025787364691495895,
        0.005119919776916504,
        0.0015756554203107953,
        0.9804222583770752,
        -1.3037705137719513e-08,
    ),
    (
        2.1874818801879883,
        0.014353682287037373,
        -0.03646227717399597,
        0.039880283176898956,
        -0.023003116250038147,
        0.0059300935827195644,
        0.0010355731938034296,
        0.9856463074684143,
        1.024624740608715e-08,
    ),
    (
        2.3124351501464844,
        0.010376857593655586,
        -0.027526209130883217,
        0.03182629123330116,
        -0.019943656399846077,
        0.006221306510269642,
        -2.879668136301916e-05,
        0.9896231293678284,
        1.3037370294455286e-08,
    ),
    (
        2.43759822845459,
        0.007392598316073418,
        -0.020447777584195137,
        0.024921735748648643,
        -0.01684144139289856,
        0.0061068786308169365,
        -0.0005112210637889802,
        0.9926074147224426,
        -1.303928343077132e-08,
    ),
    (
        2.562476396560669,
        0.0051964325830340385,
        -0.014964400790631771,
        0.01917296275496483,
        -0.01388272549957037,
        0.0056963651441037655,
        -0.0008319142507389188,
        0.9948035478591919,
        1.955807071851723e-08,
    ),
    (
        2.6875,
        0.003599455114454031,
        -0.010777801275253296,
        0.014482670463621616,
        -0.01117814239114523,
        0.005095978267490864,
        -0.0009921813616529107,
        0.9964005351066589,
        9.77893144238351e-09,
    ),
    (
        2.812483310699463,
        0.0024580287281423807,
        -0.007642964366823435,
        0.010747854597866535,
        -0.00880240835249424,
        0.004397807642817497,
        -0.0011189754586666822,
        0.9975419640541077,
        7.217956898841749e-09,
    ),
    (
        2.9374582767486572,
        0.0016545734833925962,
        -0.005336052738130093,
        0.00783721636980772,
        -0.006784449797123671,
        0.003676210530102253,
        -0.0011480377288535237,
        0.9983454346656799,
        -8.149052099781784e-09,
    ),
    (
        3.0625603199005127,
        0.001097261207178235,
        -0.0036662849597632885,
        0.005614108871668577,
        -0.005120172165334225,
        0.002985162427648902,
        -0.001053241896443069,
        0.9989027380943298,
        6.986070610892625e-10,
    ),
    (
        3.187499523162842,
        0.0007175434730015695,
        -0.0024811946786940098,
        0.003954403102397919,
        -0.003787974826991558,
        0.002360195154324174,
        -0.0009426031610928476,
        0.9992824792861938,
        -2.2759163442742647e-08,
    ),
    (
        3.312530279159546,
        0.00046228058636188507,
        -0.0016526636900380254,
        0.0027372485492378473,
        -0.002746940590441227,
        0.0018195128068327904,
        -0.0007958331843838096,
        0.9995377063751221,
        1.3038465418446776e-08,
    ),
    (
        3.43748140335083,
        0.00029357551829889417,
        -0.0010840212926268578,
        0.001863150275312364,
        -0.0019541820511221886,
        0.0013698645634576678,
        -0.0006473397370427847,
        0.9997064471244812,
        -2.264275167362939e-08,
    ),
    (
        3.562396764755249,
        0.00018374221690464765,
        -0.0007001094636507332,
        0.0012470331275835633,
        -0.0013641156256198883,
        0.0010078465566039085,
        -0.0005137966945767403,
        0.9998162388801575,
        1.8902923670793825e-08,
    ),
    (
        3.6874842643737793,
        0.00011324104707455263,
        -0.00044487882405519485,
        0.0008202410535886884,
        -0.0009340618271380663,
        0.0007251139031723142,
        -0.00039401897811330855,
        0.9998867511749268,
        7.77800668316786e-09,
    ),
    (
        3.8125014305114746,
        6.87837164150551e-05,
        -0.00027838037931360304,
        0.0005306620732881129,
        -0.0006279883673414588,
        0.0005107367178425193,
        -0.0002945041633211076,
        0.9999312162399292,
        4.3651464387561845e-11,
    ),
    (
        3.9374969005584717,
        4.116799755138345e-05,
        -0.0001715082034934312,
        0.0003376559179741889,
        -0.0004145908751524985,
        0.00035233827657066286,
        -0.0002145258040400222,
        0.9999588131904602,
        1.8811991964184926e-08,
    ),
)


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


def _table_centre(j: int) -> tuple[float, float]:
    """(c, Φ(−c) rounded to float32): the float32 nearest the middle of row ``j``'s interval
    for which Φ(−c) is within 1/500 ulp of a float32 (so that p₀ is exact to that)."""
    import mpmath as mp
    import numpy as np

    f32 = np.float32
    middle = f32((j + 0.5) * GELU_TABLE_STEP)
    below = above = middle
    best = (math_inf(), float(middle), 0.0)
    for k in range(6001):
        if k % 2 == 0:
            candidate, below = below, np.nextafter(below, f32(-1))
        else:
            above = np.nextafter(above, f32(8))
            candidate = above
        exact = mp.ncdf(-mp.mpf(float(candidate)))
        rounded = float(f32(float(exact)))
        error = float(abs((exact - rounded) / exact)) / 2.0**-24
        if error < best[0]:
            best = (error, float(candidate), rounded)
        if error < 1 / 500:
            break
    return best[1], best[2]


def gelu_table() -> tuple[tuple[tuple[float, ...], ...], float]:
    """The rows of :data:`GELU_TABLE` and the largest relative error of their polynomials."""
    import mpmath as mp
    import numpy as np

    mp.mp.dps = 40
    f32 = np.float32
    rows = []
    worst = 0.0
    for j in range(GELU_TABLE_ROWS):
        c, p0 = _table_centre(j)
        t = _nodes(j * GELU_TABLE_STEP - c, (j + 1) * GELU_TABLE_STEP - c, 400)
        target = _values(lambda u, c=c: mp.ncdf(-(mp.mpf(c) + u)), t)
        weight = 1 / target
        fixed = [p0]
        for k in range(1, GELU_TABLE_DEGREE + 1):
            rest = target - sum(fixed[i] * t**i for i in range(k))
            fixed.append(float(f32(_lawson(t, rest, weight, GELU_TABLE_DEGREE, first=k)[0])))
        value = sum(fixed[i] * t**i for i in range(GELU_TABLE_DEGREE + 1))
        worst = max(worst, float(np.max(np.abs(value - target) * weight)))
        upper = mp.ncdf(mp.mpf(c))
        high = float(f32(float(upper)))
        rows.append((c, *fixed, high, float(f32(float(upper - high)))))
    return tuple(rows), worst


def math_inf() -> float:
    return float("inf")


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
    rows, error = gelu_table()
    print(f"GELU_TABLE = (  # 2^{math.log2(error):.1f}")
    for row in rows:
        print(f"    ({', '.join(repr(v) for v in row)}),")
    print(")")
