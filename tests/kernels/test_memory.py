"""The compiled kernels of the memory modes against their PyTorch-operation versions."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import relukit
from relukit import threads
from relukit.kernels import mask as packer
from relukit.kernels.cpu import memory as kernels
from relukit.kernels.cpu.team import START, STOP
from relukit.memory.output import branch_bit, inverse_table, invert, minimum
from relukit.memory.steps import steps_for


def _inputs(n: int, dtype: np.dtype) -> np.ndarray:
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 3).astype(dtype)
    x[: min(n, 6)] = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 40.0])[: min(n, 6)]
    return x


@pytest.mark.parametrize("name", ["gelu", "silu", "mish"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 8, 1001, 70_001])
def test_inverse_backward_is_the_tensor_inverse(name, dtype, n):
    spec = relukit.get(name).spec
    x = _inputs(n, dtype)
    y = np.asarray(relukit.get(name)(x.astype(np.float64))).astype(dtype)
    bit = branch_bit(spec, {}, torch.from_numpy(x))
    g = np.random.default_rng(1).standard_normal(n).astype(dtype)
    table = inverse_table(spec, {}, wide=dtype == np.float64)
    got = kernels.inverse_backward(table, y, packer.pack_bits(bit).numpy(), g)
    expected = (torch.from_numpy(g) * invert(table, torch.from_numpy(y), bit)).numpy()
    if dtype == np.float64:
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12)
        return
    # float32: the kernel works in float64 (the tensor version in float32). Away from the
    # minimum both agree to float32 rounding; near it, where f' is ill-conditioned in y, they
    # differ by up to ~1e-4: there the kernel is held to the bound the data allow,
    # sqrt(f''·ulp(y*)) (half an ulp of rounding in y moves f' by sqrt(2·f''·δy)), doubled.
    low = minimum(spec, {})
    far = np.abs(x - low.x) >= 0.5
    np.testing.assert_allclose(got[far], expected[far], rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    d = np.asarray(relukit.get(name).derivative(x.astype(np.float64)))
    bound = 2 * np.sqrt(low.curvature * np.spacing(np.float32(abs(low.y))))
    finite = np.isfinite(d)
    error = np.abs(got - g * d)[finite]
    assert np.all(error <= np.abs(g[finite]) * (bound + 1e-6 * np.abs(d[finite])) + 1e-30)


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5, 8, 63, 64, 65, 1000, 70_003])
def test_step_codes_and_backward_are_bucketize_and_the_packer(bits, dtype, n):
    q = steps_for("silu", bits)
    x = _inputs(n, dtype)
    borders = np.asarray(q.borders, dtype=dtype)
    codes = torch.bucketize(torch.from_numpy(x), torch.from_numpy(borders))
    packed = kernels.step_codes(x, borders, bits)
    assert packed.tolist() == packer.pack_codes(codes, bits).tolist()
    levels = np.asarray(q.levels, dtype=dtype)
    g = np.random.default_rng(2).standard_normal(n).astype(dtype)
    got = kernels.step_backward(g, packed, levels, bits)
    np.testing.assert_array_equal(got, g * levels[codes.numpy()])


def test_chunks_split_on_mask_words_and_cover_the_array_once(monkeypatch):
    # (the grain pinned: measured on a loaded machine it may keep 10^6 elements whole)
    from relukit.kernels.cpu import host

    monkeypatch.setattr(host, "GRAIN_SMOOTH", 4096)
    parts: list[tuple[int, int]] = []
    with threads.limit(2):
        kernels.spread(1_000_003, lambda a, b: parts.append((a, b)), START, STOP)
    parts.sort()
    assert len(parts) > 1 and parts[0][0] == 0 and parts[-1][1] == 1_000_003
    assert all(a % 64 == 0 for a, _ in parts)
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(parts))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_split_call_gives_the_bits_of_one_thread(dtype):
    x = _inputs(1_000_003, dtype)
    spec = relukit.get("gelu").spec
    y = np.asarray(relukit.get("gelu")(x.astype(np.float64))).astype(dtype)
    g = np.random.default_rng(3).standard_normal(x.size).astype(dtype)
    table = inverse_table(spec, {}, wide=dtype == np.float64)
    q = steps_for("gelu", 3)
    borders, levels = np.asarray(q.borders, dtype=dtype), np.asarray(q.levels, dtype=dtype)

    def every() -> list[np.ndarray]:
        packed = kernels.below_bits(x, -0.75)
        codes = kernels.step_codes(x, borders, 3)
        return [
            packed,
            kernels.inverse_backward(table, y, packed, g),
            codes,
            kernels.step_backward(g, codes, levels, 3),
        ]

    with threads.limit(1):
        one = every()
    with threads.limit(2):
        two = every()
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 8, 9, 1000, 70_001])
def test_below_bits_is_the_packed_comparison(dtype, n):
    x = _inputs(n, dtype)
    expected = packer.pack_bits(torch.from_numpy(x) < -0.75).numpy()
    assert kernels.below_bits(x, -0.75).tolist() == expected.tolist()


def test_the_deposit_without_bmi2_is_pdep():
    # the software loop that replaces BMI2's pdep where the host lacks it gives its bits
    from numba import njit

    from relukit.kernels.cpu import intrinsics

    loop = njit(intrinsics._deposit_loop)
    compiled = njit(lambda v, m: intrinsics.deposit(v, m))
    rng = np.random.default_rng(5)
    for value, mask in rng.integers(0, 2**63, size=(200, 2), dtype=np.uint64):
        mask = np.uint64(mask) | np.uint64(1 << 63) if value & 1 else np.uint64(mask)
        want = 0
        k = 0
        for bit in range(64):
            if int(mask) >> bit & 1:
                want |= ((int(value) >> k) & 1) << bit
                k += 1
        assert int(loop(np.uint64(value), mask)) == want
        assert int(compiled(np.uint64(value), mask)) == want
