"""scan(): exact per-unit counts and moments, compiled CPU loop and the PyTorch path alike."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from relukit.diagnostics.streaming import Moments, _scan_torch, merge, scan


def expected(t: torch.Tensor, dim: int, above: float) -> tuple[torch.Tensor, np.ndarray]:
    moved = t.movedim(dim, -1).reshape(-1, t.shape[dim]).double()
    counts = (moved > above).sum(0)
    values = moved.flatten().numpy()
    return counts, values[~np.isnan(values)]


def check(t: torch.Tensor, dim: int, above: float, shift: float, fired, acc) -> None:
    counts, values = expected(t, dim, above)
    assert torch.equal(fired, counts)
    m = Moments.from_sums(acc, shift)
    assert m.count == values.size and m.nan == int(torch.isnan(t).sum())
    assert m.nonzero == int((values != 0).sum())
    if values.size:
        assert m.max_abs == np.abs(values).max()
        assert m.mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
        assert m.std == pytest.approx(values.std(), rel=1e-8, abs=1e-12)
        if values.std() > 0:
            assert m.kurtosis == pytest.approx(scipy.stats.kurtosis(values), rel=1e-6, abs=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
    data=st.data(),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.int32]),
    layout=st.sampled_from(["contiguous", "channels_last", "transposed"]),
    nans=st.integers(0, 3),
)
def test_scan_equals_brute_force(shape, data, dtype, layout, nans):
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    t = (torch.randn(*shape, generator=g) * 3 + 1).to(dtype)
    if dtype.is_floating_point:
        flat = t.view(-1)
        for i in range(min(nans, flat.numel())):
            flat[(7 * i) % flat.numel()] = float("nan")
    if layout == "channels_last" and t.ndim == 4:
        t = t.to(memory_format=torch.channels_last)
    elif layout == "transposed" and t.ndim >= 2:
        t = t.transpose(0, -1)
    dim = data.draw(st.integers(0, t.ndim - 1))
    above = data.draw(st.sampled_from([0.0, -3.067, 1.5]))
    shift = data.draw(st.sampled_from([0.0, 1.0, -40.0]))
    fired, acc = scan(t, dim, above, True, shift)
    check(t.float() if not dtype.is_floating_point else t, dim, above, shift, fired, acc)
    fired_t, acc_t = _scan_torch(
        t.float() if not dtype.is_floating_point else t, dim, above, True, True, shift
    )
    check(t.float() if not dtype.is_floating_point else t, dim, above, shift, fired_t, acc_t)


@pytest.mark.parametrize("grain", [1 << 17, 64])
def test_split_scans_add_up_and_merge_keeps_the_maximum(grain, monkeypatch):
    monkeypatch.setattr("relukit.diagnostics.streaming._GRAIN", grain)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 8, 16, 16, generator=g)
    b = torch.randn(32, 8, 16, 16, generator=g) * 5
    fa, sa = scan(a, 1, 0.0, True, 0.5)
    fb, sb = scan(b, 1, 0.0, True, 0.5)
    check(torch.cat([a, b]), 1, 0.0, 0.5, fa + fb, merge(sa, sb))


def test_infinities_and_empty_tensors():
    t = torch.tensor([[1.0, float("inf")], [-float("inf"), 2.0]])
    fired, acc = scan(t, 1, 0.0, True, 0.0)
    assert fired.tolist() == [1, 2]
    m = Moments.from_sums(acc)
    assert m.max_abs == float("inf") and m.count == 4
    fired, acc = scan(torch.empty(0, 3), 1, 0.0, True, 0.0)
    assert fired.tolist() == [0, 0, 0]
    assert Moments.from_sums(acc).count == 0
    with pytest.raises(TypeError, match="complex"):
        scan(torch.zeros(2, dtype=torch.complex64), 0, 0.0, True)
