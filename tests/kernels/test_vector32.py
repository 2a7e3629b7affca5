"""gelu's float32 centre as 16-lane vectors (:mod:`relukit.kernels.cpu.vector32`): which lanes
it writes, the places it hands back, and the same bits whether a lane's table row comes from an
AVX-512 permute or from an element read, and its places from a compress or lane by lane."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from relukit.kernels.cpu import vector32
from relukit.kernels.cpu.math32 import gelu_f32


def centre_calls():
    """A fresh compiled caller of gelu_centre_16 (its lookups as vector32.AVX512 says now)."""

    @njit
    def calls(x, y, count):
        """The places each call hands back, per 16-lane block (-1 after its last)."""
        out = np.full((x.size // 16, 16), -1, dtype=np.int64)
        rest = np.zeros(32, dtype=np.uint32)
        for b in range(x.size // 16):
            n = vector32.gelu_centre_16(x, 16 * b, count, y, rest, 3)
            for k in range(n):
                out[b, k] = rest[3 + k]
        return out

    return calls


def sample() -> np.ndarray:
    rng = np.random.default_rng(7)
    edges = np.arange(0, 33) / 8  # every row's ends, and just inside them
    values = np.concatenate([
        edges, np.nextafter(edges.astype(np.float32), np.float32(0)), rng.uniform(-4.5, 4.5, 4000),
        [0.0, -0.0, 1e-40, -1e-40, 3.9999998, -3.9999998, 4.0, -4.0, np.inf, -np.inf, np.nan],
    ]).astype(np.float32)  # fmt: skip
    values = np.concatenate([values, -values])
    return np.resize(values, -(-values.size // 16) * 16)


def test_writes_the_centre_lanes_and_returns_the_others():
    x = sample()
    y = np.full_like(x, 7.0)
    places = centre_calls()(x, y, 16)
    centre = np.abs(x) < 4
    assert np.array_equal(places[places >= 0], np.flatnonzero(~centre)), "in order, all"
    assert np.all(y[~centre] == 7.0), "lanes outside the centre are left unwritten"
    assert np.array_equal(np.signbit(y[x == 0]), np.signbit(x[x == 0])), "±0 kept"
    truth = np.array([gelu_f32(v) for v in x[centre]], dtype=np.float32)
    # the float64 formula is within 0.51 ulp, the table within 0.91: never more than 1 apart
    ulp = np.spacing(np.abs(truth))
    assert np.max(np.abs(y[centre] - truth) / ulp) <= 1.0


@pytest.mark.parametrize("count", [0, 1, 9, 15])
def test_a_partial_vector_reads_and_writes_only_its_lanes(count):
    x = sample()[:32]
    y = np.full_like(x, 7.0)
    full = np.full_like(x, 7.0)
    centre_calls()(x, full, 16)
    places = centre_calls()(x, y, count)
    for b in range(2):
        block = slice(16 * b, 16 * b + 16)
        inside = np.arange(16) < count
        done = inside & (np.abs(x[block]) < 4)
        assert np.array_equal(y[block][done], full[block][done])
        assert np.all(y[block][~done] == 7.0)
        others = 16 * b + np.flatnonzero(inside & ~(np.abs(x[block]) < 4))
        assert np.array_equal(places[b][places[b] >= 0], others)


def test_the_lookup_without_avx512_gives_the_same_bits(monkeypatch):
    x = sample()
    with_host = np.zeros_like(x)
    places = centre_calls()(x, with_host, 16)
    monkeypatch.setattr(vector32, "AVX512", False)
    generic = np.zeros_like(x)
    assert np.array_equal(centre_calls()(x, generic, 16), places)
    assert np.array_equal(with_host.view(np.uint32), generic.view(np.uint32))
