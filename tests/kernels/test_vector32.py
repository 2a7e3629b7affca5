"""The float32 centres of gelu (both forms), silu, sigmoid and tanh and of the derivatives of
gelu (both forms) and silu as 16-lane vectors (:mod:`relukit.kernels.cpu.vector32`): which
lanes each writes, the places it hands back, its values against the true function, and the
same bits whether a lane's table row comes from an AVX-512 permute or from an element read, and
its places from a compress or lane by lane."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit
from scipy.special import erfc, expit

from relukit.kernels.cpu import vector32

sys.path.insert(0, str(Path(__file__).parents[1]))  # (tests/: the oracle's package, family)
from family.truth import truth


def _derivative(member: str):
    return lambda x: truth(member, "derivative", x, {})


# name: (table, centre's end, the true function in float64, the bound in ulp, x·F(x)): every
# float32 on the centre measured 1.044 (gelu, at 1.2180767e-4), 1.217 (silu), 0.801
# (sigmoid), 1.0 (tanh, at 1.1755203e-38, where x·(t·P) is subnormal; 0.655 from 2^-100 up, at
# 0.5139466); every float32 of 2^-12 ≤ |x| < end 1.287 (gelu′, at −0.62372744) and 1.588
# (silu′, at −1.033301); gelu's tanh form 1.238 (at −3.7423103), its derivative 1.177 (at
# −0.83009833; below 2^-12 0.631). tanh's table is odd: tanh(x) = x·F(|x|) (ODD).
ODD = {"tanh"}
CENTRES = {
    "gelu": ("GELU", 4.0, lambda x: x * 0.5 * erfc(-x / np.sqrt(2)), 1.1, True),
    "silu": ("SIGMOID", 16.0, lambda x: x * expit(x), 1.25, True),
    "sigmoid": ("SIGMOID", 16.0, expit, 0.85, False),
    "gelu-derivative": ("GELU_DERIVATIVE", 4.0, _derivative("gelu"), 1.3, False),
    "silu-derivative": ("SILU_DERIVATIVE", 16.0, _derivative("silu"), 1.6, False),
    "tanh": ("TANH", 8.0, np.tanh, 1.0, True),
    "gelu_tanh": ("GELU_TANH", 4.0, lambda x: truth("gelu-tanh", "forward", x, {}), 1.3, True),
    "gelu_tanh-derivative": (
        "GELU_TANH_DERIVATIVE",
        4.0,
        lambda x: truth("gelu-tanh", "derivative", x, {}),
        1.25,
        False,
    ),
}


def public(name: str):
    """The member's public function, or its derivative, for a CENTRES name."""
    import relukit

    member, _, op = name.partition("-")
    f = relukit.get("gelu", approximate="tanh") if member == "gelu_tanh" else relukit.get(member)
    return f.derivative if op else f


def _far_key(name: str) -> str:
    return name.replace("-", "_")


def far_lanes(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where a centre writes the member's constant (or x) off its table (vector32.FAR), and
    those values."""
    right, right_value, left, left_value = vector32.FAR[_far_key(name)]
    on_right = x >= np.float32(right)  # (+inf too: its convention is the same value)
    on_left = x <= np.float32(left)
    if left_value == 0.0 and np.signbit(left_value):  # (at −inf the registry gives +0)
        on_left &= np.isfinite(x)
    values = np.where(on_right, x if right_value is None else np.float32(right_value), 0)
    values = np.where(on_left, np.float32(left_value), values).astype(np.float32)
    return on_right | on_left, values


def centre_calls(name: str, often: int = 0):
    """A compiled caller of a member's centre (its lookups and compress as vector32.AVX512
    and vector32.AVX2 say now, ``often`` passed to each call). The caller returns the places
    each call hands back, per 16-lane block (-1 after its last), after checking that the
    values it hands back with them are those of x at those places. One per member, ``often``
    and build (a fresh one per call was compiled 176 times in a run of this file, 56 s)."""
    return _centre_calls(name, often, vector32.AVX512, vector32.AVX2)


@functools.cache
def _centre_calls(name: str, often: int, avx512: bool, avx2: bool):
    """:func:`centre_calls` for the build that ``avx512`` and ``avx2`` name (those flags as
    the intrinsic reads them when the caller is compiled: at its first call, made at once)."""
    table, _, _, _, times_x = CENTRES[name]
    centre = vector32._centre_16(table, times_x=times_x, odd=name in ODD, far=_far_key(name))

    @njit
    def calls(x, y, count):
        out = np.full((x.size // 16, 16), -1, dtype=np.int64)
        rest = np.zeros(32, dtype=np.uint32)
        values = np.zeros(32, dtype=np.float32)
        for b in range(x.size // 16):
            n = centre(x, 16 * b, count, y, rest, values, 3, often)
            for k in range(n):
                out[b, k] = rest[3 + k]
                same = values[3 + k] == x[rest[3 + k]] or np.isnan(x[rest[3 + k]])
                if not same or np.isnan(values[3 + k]) != np.isnan(x[rest[3 + k]]):
                    out[b, k] = -2  # (a value that is not x's: fails the caller's compare)
        return out

    return calls


def sample(end: float) -> np.ndarray:
    from relukit.family.numerics import ZEROS

    rng = np.random.default_rng(7)
    edges = np.arange(0, 33) * (end / 32)  # every row's ends, and just inside them
    # ±64 float32 around the zeros of gelu′ and silu′ (the derivative tables' rows there)
    steps = np.arange(-64, 65, dtype=np.int32)
    near = [(np.float32(-ZEROS[m][0]).view(np.int32) + steps).view(np.float32)
            for m in ("gelu", "silu", "gelu-tanh")]  # fmt: skip
    # every member's far bounds (vector32.FAR) and the float32 just inside each
    bounds = np.array([b for f in vector32.FAR.values() for b in (f[0], f[2])], np.float32)
    values = np.concatenate([
        edges, np.nextafter(edges.astype(np.float32), np.float32(0)), *near,
        rng.uniform(-1.1 * end, 1.1 * end, 4000),
        bounds, np.nextafter(bounds, np.float32(0)), rng.uniform(-120, 120, 400),
        [0.0, -0.0, 1e-40, -1e-40, np.inf, -np.inf, np.nan, 3e38, -3e38],
    ]).astype(np.float32)  # fmt: skip
    values = np.concatenate([values, -values])
    return np.resize(values, -(-values.size // 16) * 16)


@pytest.mark.parametrize("name", sorted(CENTRES))
@pytest.mark.parametrize("often", [0, 1])
def test_writes_the_centre_lanes_within_their_bound_and_returns_the_others(name, often):
    _, end, true, bound, times_x = CENTRES[name]
    x = sample(end)
    y = np.full_like(x, 7.0)
    places = centre_calls(name, often)(x, y, 16)
    centre = np.abs(x) < end
    far, far_values = far_lanes(name, x)
    assert not np.any(centre & far)
    written = centre | far
    assert np.array_equal(places[places >= 0], np.flatnonzero(~written)), "in order, all"
    # (a whole vector is stored whole: the places handed back hold interim values, which the
    # block overwrites; a partial vector leaves them unwritten, the test below)
    assert np.array_equal(y[far].view(np.uint32), far_values[far].view(np.uint32))
    if times_x:
        assert np.array_equal(np.signbit(y[x == 0]), np.signbit(x[x == 0])), "±0 kept"
    exact = true(x[centre].astype(np.float64))
    normal = np.abs(exact) >= 2.0**-126
    ulp = 2.0 ** (np.floor(np.log2(np.abs(exact[normal]))) - 23)
    assert np.max(np.abs(y[centre][normal] - exact[normal]) / ulp) <= bound


@pytest.mark.parametrize("name", sorted(CENTRES))
@pytest.mark.parametrize("count", [0, 1, 9, 15])
@pytest.mark.parametrize("often", [0, 1])
def test_a_partial_vector_reads_and_writes_only_its_lanes(name, count, often):
    end = CENTRES[name][1]
    x = sample(end)[-32:]
    y = np.full_like(x, 7.0)
    full = np.full_like(x, 7.0)
    centre_calls(name)(x, full, 16)
    places = centre_calls(name, often)(x, y, count)
    far = far_lanes(name, x)[0]
    for b in range(2):
        block = slice(16 * b, 16 * b + 16)
        inside = np.arange(16) < count
        written = (np.abs(x[block]) < end) | far[block]
        done = inside & written
        assert np.array_equal(y[block][done], full[block][done])
        assert np.all(y[block][~done] == 7.0)
        others = 16 * b + np.flatnonzero(inside & ~written)
        assert np.array_equal(places[b][places[b] >= 0], others)


FORMULAS = {
    "gelu": "gelu_f32",
    "silu": "silu_f32",
    "sigmoid": "sigmoid_f32",
    "gelu-derivative": "gelu_d32",
    "silu-derivative": "silu_d32",
    "tanh": "tanh_f32",
    "gelu_tanh": "gelu_tanh_f32",
    "gelu_tanh-derivative": "gelu_tanh_d32",
}


def _formula_differs(name: str):
    """``differs(bits, ...)``: how many of the float32 with the given bit patterns the
    member's float32 formula (the one the elements off the centre take) gives other bits
    than ``want`` (None: x itself) for."""
    from relukit.kernels.cpu import math32
    from relukit.kernels.cpu.intrinsics import f32_as_i32, i32_as_f32

    formula = getattr(math32, FORMULAS[name])

    @njit
    def differs(start, stop, step, want, same_as_x):
        count = 0
        for bits in range(start, stop, step):
            x = i32_as_f32(bits)
            expected = x if same_as_x else want
            count += f32_as_i32(formula(x)) != f32_as_i32(expected)
        return count

    return differs


@pytest.mark.parametrize("name", sorted(CENTRES))
def test_the_far_values_are_the_formulas_own_from_the_least_bound_on(name):
    """Every centre writes the member's constant (or x) itself from its far bounds on: there
    the float32 formula the others take gives exactly that, on every float32 of the 2^20 from
    each bound out and on every 997th from there to the largest, and not on the float32 just
    inside each bound (so each bound is the least: a change to a formula shows here)."""
    right, right_value, left, left_value = vector32.FAR[_far_key(name)]
    differs = _formula_differs(name)
    top = int(np.array([np.finfo(np.float32).max], np.float32).view(np.int32)[0])
    for bound, value in ((right, right_value), (left, left_value)):
        magnitude = int(np.array([abs(bound)], np.float32).view(np.int32)[0])
        sign = 0 if bound > 0 else -(2**31)
        want = np.float32(0.0 if value is None else value)
        for start, stop, step in ((magnitude, magnitude + 2**20, 1), (magnitude, top + 1, 997)):
            assert differs(start + sign, stop + sign, step, want, value is None) == 0
        inside = magnitude - 1 + sign
        assert differs(inside, inside + 1, 1, want, value is None) == 1


@pytest.mark.skipif(
    not (vector32.AVX512 or vector32.AVX2), reason="every build would be the lane-by-lane one"
)
@pytest.mark.parametrize("name", sorted(CENTRES))
@pytest.mark.parametrize("avx2", [True, False], ids=["avx2", "lane-by-lane"])
def test_without_avx512_the_same_bits_and_places(monkeypatch, name, avx2):
    """The lookups and compresses an AVX2 host gets (8-lane permutes, a table of masks), and
    those of a host with neither (a lane at a time), give the values and places of the host's
    own build: AVX-512's where it has it (the AVX2 build runs on such a core too), else the
    lane-by-lane build is the one the AVX2 build is compared with."""
    if avx2 and not vector32.AVX2:
        pytest.skip("the host has no AVX2")
    if not avx2 and not vector32.AVX512:
        pytest.skip("the lane-by-lane build is this host's baseline")
    x = sample(CENTRES[name][1])
    if not vector32.AVX512:
        monkeypatch.setattr(vector32, "AVX2", False)
    with_host = np.zeros_like(x)
    places = centre_calls(name)(x, with_host, 16)
    monkeypatch.setattr(vector32, "AVX512", False)
    monkeypatch.setattr(vector32, "AVX2", avx2)
    generic = np.zeros_like(x)
    assert np.array_equal(centre_calls(name)(x, generic, 16), places)
    kept = np.ones(x.size, dtype=bool)  # (the places handed back hold interim values)
    kept[places[places >= 0]] = False
    assert np.array_equal(with_host.view(np.uint32)[kept], generic.view(np.uint32)[kept])


def test_the_compress_table_lists_each_mask_s_lanes_in_order():
    for mask in range(256):
        word = vector32.COMPRESS_8[mask]
        lanes = [word >> (4 * k) & 15 for k in range(bin(mask).count("1"))]
        assert lanes == [lane for lane in range(8) if mask >> lane & 1]
        assert word >> (4 * len(lanes)) == 0


@pytest.mark.parametrize("name", sorted(CENTRES))
def test_the_kernels_give_each_element_its_own_value_in_every_block(name):
    """Through the public function: lengths 1–300 at several offsets (partial vectors, a block's
    padding of the others, their scatter) give each element the bits it has alone."""
    f = public(name)
    x = sample(CENTRES[name][1])
    alone = np.concatenate([f(x[k : k + 1]) for k in range(x.size)])
    for n in (1, 15, 17, 33, 255, 256, 257, 300):
        for offset in (0, 3, 1001):
            part = x[offset : offset + n]
            assert np.array_equal(
                f(part).view(np.uint32), alone[offset : offset + n].view(np.uint32)
            )
    assert np.array_equal(f(x).view(np.uint32), alone.view(np.uint32))


@pytest.mark.parametrize("name", sorted(CENTRES))
@pytest.mark.parametrize("off", [0.01, 0.6])
def test_a_whole_chunk_gathers_its_others_across_blocks_and_gives_each_its_own_bits(name, off):
    """A float32 call straight into y takes its whole chunk at once; the elements off the
    centre fill the scratch (272 places) many times over, in place too."""
    f = public(name)
    end = CENTRES[name][1]
    rng = np.random.default_rng(3)
    x = rng.uniform(-end, end, 20_000).astype(np.float32)
    far = rng.random(x.size) < off
    x[far] = rng.uniform(end, 3 * end, far.sum()) * rng.choice([-1, 1], far.sum())
    alone = np.concatenate([f(x[k : k + 1]) for k in range(x.size)])
    assert np.array_equal(f(x).view(np.uint32), alone.view(np.uint32))
    y = x.copy()
    f(y, out=y)
    assert np.array_equal(y.view(np.uint32), alone.view(np.uint32))


@pytest.mark.parametrize("name", sorted(CENTRES))
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16_bit_inputs_get_the_float32_path_rounded_once(name, dtype):
    """Every 16-bit input, as a host without F16C computes float16 (widened into a float32
    array first). (Before the 16-bit kernels took the centres too, 1–5 inputs per member and
    dtype rounded the other way.)"""
    import ml_dtypes

    kind = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    f = public(name)
    x = np.arange(1 << 16, dtype=np.uint16).view(kind)
    with np.errstate(invalid="ignore"):
        rounded = f(x.astype(np.float32)).astype(kind)
    y = f(x)
    nan = np.isnan(x.astype(np.float32))
    assert np.array_equal(np.isnan(y.astype(np.float32)), nan)
    assert np.array_equal(y.view(np.uint16)[~nan], rounded.view(np.uint16)[~nan])


# float64 blocks: (public name: element formula in relukit.kernels.cpu.smooth, the zero whose
# expansion it takes within 1/4, the bounds of gelu's centre where it has them)
WIDE_BLOCKS = {
    "gelu": ("gelu_f_wide", None, (1.0, -1.0)),
    "gelu-derivative": ("gelu_d_wide", "gelu", (1.0, -1.0)),
    "silu-derivative": ("silu_d_wide", "silu", ()),
    "gelu_tanh-derivative": ("gelu_tanh_d_wide", "gelu-tanh", ()),
    "mish-derivative": ("mish_d_wide", "mish", ()),
}


def _edges(points) -> np.ndarray:
    """40 float64 either side of each point, the point itself among them."""
    found = []
    for point in points:
        for way in (np.inf, -np.inf):
            x = np.float64(point)
            for _ in range(40):
                found.append(x)
                x = np.nextafter(x, way)
    return np.array(found)


@pytest.mark.parametrize("name", sorted(WIDE_BLOCKS))
def test_float64_blocks_give_each_element_its_own_formula_s_bits(name):
    """A float64 block (one formula on every element, the others compacted and put through the
    whole one: gelu's tails; a derivative's expansion at its zero, within 1/4 of it) gives the
    bits of the element formula at the bounds (and 2^-20 beyond, where the block hands back
    more than it must), across blocks, at the ends (NaN and ±inf by the conventions), where
    the others are few (the split) and where they are most of a block (the whole formula on
    every element), and g·f′ rounded once for the vjp."""
    from relukit.family.numerics import ZEROS
    from relukit.kernels.cpu import smooth

    formula_name, zero_name, bounds = WIDE_BLOCKS[name]
    formula = getattr(smooth, formula_name)

    @njit
    def by_element(x):
        out = np.empty_like(x)
        for j in range(x.size):
            out[j] = formula(x[j], x[j])
        return out

    rng = np.random.default_rng(3)
    dense = np.empty(0)
    if zero_name is not None:
        zero = ZEROS[zero_name][0]
        window = (zero - 0.25, zero + 0.25, zero - 0.25 - 2.0**-20, zero + 0.25 + 2.0**-20)
        bounds = (*bounds, *window)
        dense = zero + rng.uniform(-0.3, 0.3, 3000)  # (blocks of others, after the rest)
    specials = [0.0, -0.0, 39.0, -39.0, 41.0, -41.0, 1e-310, -1e-310, 710.0, -710.0, -750.0]
    mixed = np.concatenate([_edges(bounds), rng.standard_normal(5000) * 3, specials])
    rng.shuffle(mixed)
    # (gelu′'s blocks above are most of them off its centre, so they take the whole formula;
    # here a third are: they split)
    x = np.concatenate([mixed, rng.uniform(-1.2, 1.2, 2048), dense])
    f = public(name)
    assert np.array_equal(f(x).view(np.int64), by_element(x).view(np.int64))
    ends = f(np.array([np.nan, np.inf, -np.inf]))
    limits = [np.inf, 0.0] if name == "gelu" else [1.0, 0.0]  # (the registry's, at ±inf)
    assert np.isnan(ends[0]) and np.array_equal(ends[1:], limits)
    if name != "gelu":  # (a derivative: its vjp, through the same block, g·f′ rounded once)
        x = np.concatenate([x, [np.nan, np.inf, -np.inf]])
        g = rng.standard_normal(x.size)
        vjp = f.__self__.vjp(x, g)
        assert np.array_equal(vjp.view(np.int64), (g * f(x)).view(np.int64))


@pytest.mark.parametrize("zero_name", ["gelu", "silu", "gelu-tanh", "mish"])
def test_the_blocks_hand_back_every_element_whose_derivative_takes_the_expansion(zero_name):
    """``*_d_may_be_near`` holds wherever the derivative's ``near`` takes its expansion (asked
    with a NaN general value, which it returns elsewhere), on 4,000 float64 around each edge of
    the window, and not far outside it."""
    from relukit.family.numerics import ZEROS
    from relukit.kernels.cpu import smooth

    stem = zero_name.replace("-", "_")
    near, may = getattr(smooth, f"{stem}_near_zero"), getattr(smooth, f"{stem}_d_may_be_near")

    @njit
    def both(x):
        takes = np.empty(x.size, np.bool_)
        handed = np.empty(x.size, np.bool_)
        for j in range(x.size):
            takes[j] = not np.isnan(near(x[j], np.nan))
            handed[j] = may(x[j])
        return takes, handed

    zero = ZEROS[zero_name][0]
    edges = []
    for edge in (zero - 0.25, zero + 0.25):
        for way in (np.inf, -np.inf):
            x = np.float64(edge)
            for _ in range(1000):
                edges.append(x)
                x = np.nextafter(x, way)
    x = np.concatenate([edges, zero + np.linspace(-0.4, 0.4, 2001)])
    takes, handed = both(x)
    assert takes.any() and not takes.all()
    assert not (takes & ~handed).any()
    assert not (handed & (np.abs(x - zero) > 0.2501)).any()


@pytest.mark.parametrize("name", [*sorted(CENTRES), "mish-derivative"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_in_place_gives_the_bits_of_a_separate_output(name, dtype):
    """A centre writes straight into y, in place too, as a float64 block does (those of
    WIDE_BLOCKS); where the block declines (other float64; every other dtype of
    mish′, which has no table) the element loop goes through the buffer as before. Either way,
    in place, out= and a new array give each element the same bits, at sizes from a partial
    vector to several blocks."""
    import ml_dtypes

    kind = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
    f = public(name)
    x = sample(CENTRES[name][1] if name in CENTRES else 16.0).astype(kind)
    for n in (5, 16, 257, 3000, x.size):
        part = x[:n]
        fresh = f(part)
        out = np.empty_like(part)
        f(part, out=out)
        same = part.copy()
        assert f(same, out=same) is same
        for got in (out, same):
            assert np.array_equal(got.view(np.uint8), fresh.view(np.uint8)), (n, dtype)


@pytest.mark.parametrize("member", ["gelu", "silu"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_the_vjp_through_a_derivative_centre_is_g_times_f_prime_rounded_once(member, dtype):
    """float32: ``g·f′(x)`` in float32, as the element loop forms it; 16-bit: the float32 product
    of the widened g and the float32 path's f′, rounded once, on every 16-bit input."""
    import ml_dtypes

    import relukit

    f = relukit.get(member)
    if dtype == "float32":
        x = sample(16.0)
        g = np.random.default_rng(5).standard_normal(x.size).astype(np.float32)
        want = g * f.derivative(x)
        assert np.array_equal(f.vjp(x, g).view(np.uint32), want.view(np.uint32))
        return
    kind = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(np.float16)
    x = np.arange(1 << 16, dtype=np.uint16).view(kind)
    g = np.random.default_rng(5).standard_normal(x.size).astype(kind)
    with np.errstate(invalid="ignore", over="ignore"):
        want = (g.astype(np.float32) * f.derivative(x.astype(np.float32))).astype(kind)
    got = f.vjp(x, g)
    nan = np.isnan(want.astype(np.float32))
    assert np.array_equal(np.isnan(got.astype(np.float32)), nan)
    assert np.array_equal(got.view(np.uint16)[~nan], want.view(np.uint16)[~nan])
