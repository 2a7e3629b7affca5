"""benchmarks/memory_error.py: its one-pass error summary, its chunks of every float32, and the
candidates from which the bits rows take their maxima over every float32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import relukit
from relukit.memory import steps


@pytest.fixture(scope="module")
def script(benchmark_script):
    return benchmark_script("memory_error")


def _numpy_summary(x, got, d, centre):
    """The passes the one-pass summary replaced (NumPy's nan-aware maxima)."""
    err = np.abs(got - d)
    err[np.isnan(got) & np.isnan(d)] = 0
    i = int(np.nanargmax(err))
    big = np.abs(d) >= 2.0**-10
    rel = np.where(big, err / np.where(big, np.abs(d), 1), 0)
    j = int(np.nanargmax(rel))
    away = np.abs(x - centre) >= 0.5
    return err[i], x[i], rel[j], x[j], err[away].max()


def test_the_one_pass_summary_is_numpys(script):
    rng = np.random.default_rng(4)
    x = rng.uniform(-3, 3, 10_000)
    d = np.tanh(x) * 0.01
    got = d + rng.normal(0, 1e-4, x.size)
    got[::97] = np.nan  # NaN against a number: skipped
    d[::89] = np.nan
    got[::89] = np.nan  # NaN against NaN: no error
    found = script.summarise(x, got, d, -0.75)
    expected = _numpy_summary(x, got, d, -0.75)
    assert (found["max_abs"], found["at"], found["max_rel"], found["rel_at"]) == expected[:4]
    assert np.isnan(found["max_abs_away"]) == np.isnan(expected[4])


def test_every_float32_comes_in_chunks_of_finite_values(script, monkeypatch):
    monkeypatch.setattr(script, "ALL_FLOAT32", [True])
    chunks = script.inputs("float32", -0.75, False)
    first = next(chunks)
    assert first.size == script.CHUNK and first[0] == 0.0
    assert np.all(np.diff(first) > 0) and np.all(np.isfinite(first))


@pytest.mark.parametrize(("name", "bits"), [("gelu", 3), ("silu", 2), ("selu", 3)])
@pytest.mark.parametrize("window", [(1.0, 1.25), (-2.0, -1.75), (-8.0, -7.0), (0.375, 0.625)])
def test_the_candidates_hold_the_maxima_over_every_float32(script, name, bits, window):
    f = relukit.get(name)
    q = steps.steps_for(f.spec, bits, f.params)
    borders = torch.tensor(q.borders, dtype=torch.float32)
    levels = torch.tensor(q.levels, dtype=torch.float32)
    candidates = script.bits_candidates(f, borders.double().numpy())
    a, b = (np.float32(abs(v)).view(np.int32) for v in window)
    every = np.arange(min(a, b), max(a, b), dtype=np.int32).view(np.float32).astype(np.float64)
    every = -every if window[0] < 0 else every
    lo, hi = every.min(), every.max()
    inside = candidates[(candidates >= lo) & (candidates <= hi)]
    found = []
    for x in (every, np.concatenate([inside, [lo, hi]])):
        d = np.asarray(f.derivative(x))
        got = levels[torch.bucketize(torch.from_numpy(x).float(), borders)].double().numpy()
        s = script.summarise(x, got, d, 0.0)
        found.append((s["max_abs"], s["max_rel"], s["max_abs_away"]))
    assert found[0] == found[1]
