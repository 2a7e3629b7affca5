"""The thread hand-off's grain: one per class of cost per element, each from its own
measurement (never timed here: only which class a call belongs to and what a grain sets)."""

from __future__ import annotations

import numpy as np
import pytest

from relukit.family import lookup
from relukit.kernels.cpu import host


@pytest.mark.parametrize(
    ("member", "params", "dtype", "cost"),
    [
        ("relu", {}, np.float32, host.LINEAR),
        ("relu", {}, np.float64, host.LINEAR),
        ("leaky_relu", {"negative_slope": 0.1}, np.float16, host.LINEAR),
        ("gelu", {"approximate": "none"}, np.float32, host.SMOOTH),
        ("silu", {}, np.float16, host.SMOOTH),
        ("gelu", {"approximate": "none"}, np.float64, host.SMOOTH_WIDE),
        ("softplus", {"beta": 1.0, "threshold": 20.0}, np.float64, host.SMOOTH_WIDE),
    ],
)
def test_a_members_calls_take_the_grain_of_their_cost_class(member, params, dtype, cost):
    if dtype == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    # float64 smooth kernels take 4-9x their float32 ones: a grain of their own
    assert host.Calls(lookup(member), params, dtype).cost == cost


@pytest.mark.parametrize("cost", [host.SMOOTH, host.LINEAR, host.SMOOTH_WIDE])
def test_each_class_measures_its_grain_and_the_size_below_which_calls_run_whole(cost, monkeypatch):
    monkeypatch.setattr(host, "_measured", {})
    monkeypatch.setattr(host, "_ufunc_measured", {})
    monkeypatch.setattr(host, "_ufunc_found", {False: (1e-6, 1e-10), True: (1e-6, 5e-11)})
    monkeypatch.setattr(host, "WHOLE_BELOW", [host.SMALL] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [host.SMALL] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [host.SMALL] * 3)
    grain = host.grain(cost)
    low, high = host.GRAIN_BOUNDS
    assert low <= grain <= high and grain % host.ALIGN == 0
    below = host.STREAM_FLOOR if host.STREAM_BYTES is None else host.STREAM_BYTES
    expected = max(host.SMALL, min(2 * grain, below // 8))  # (nothing below it streams)
    assert host.WHOLE_BELOW[cost] == expected
    others = [host.WHOLE_BELOW[c] for c in range(3) if c != cost]
    assert others == [host.SMALL, host.SMALL]


def test_the_pools_hand_off_is_measured_on_the_chunks_of_a_split_call(monkeypatch):
    # two empty tasks measured only the post (the caller ran both before the worker came):
    # the measurement hands over a split call's chunks, each with work, covering the array
    from relukit import threads

    handed = []
    run_all = threads.run_all

    def recording(tasks, wake=True):
        handed.append(len(tasks))
        return run_all(tasks, wake)

    monkeypatch.setattr(threads, "run_all", recording)
    assert host._pool_handoff(asleep=False) > 0
    assert handed and set(handed) == {2 * host.PIECES}


@pytest.fixture
def unmeasured(monkeypatch: pytest.MonkeyPatch) -> None:
    """No grain measured yet in this process (the planned route's or the split ufuncs'), and
    the planned route's threshold as if measured at 200,000 elements."""
    monkeypatch.setattr(host, "_measured", {})
    monkeypatch.setattr(host, "_ufunc_measured", {})
    monkeypatch.setattr(host, "WHOLE_BELOW", [200_000] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [200_000] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [200_000] * 3)


@pytest.fixture
def planned(unmeasured: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`unmeasured`, but for the planned route's grains, as if measured at 100,000."""
    for cost in range(3):
        monkeypatch.setitem(host._measured, (cost, False), 100_000)


def _bounded(elements: float) -> int:
    low, high = host.GRAIN_BOUNDS
    return int(min(max(elements, low), high)) // host.ALIGN * host.ALIGN


@pytest.mark.parametrize("cost", [host.SMOOTH, host.LINEAR, host.SMOOTH_WIDE])
def test_the_split_ufuncs_grain_is_measured_on_their_own_hand_off(cost, planned, monkeypatch):
    # 2·H/t, H and (for LINEAR) t measured on relu's ufuncs, in place and not apart; calls
    # split from twice each (in place, its own), at most where the planned route splits
    monkeypatch.setattr(host, "_ufunc_found", {False: (1e-6, 1e-10), True: (1.5e-6, 4e-11)})
    monkeypatch.setattr(host, "_per_element", lambda cost, large=False: 5e-10)
    out, inplace = host.ufunc_grain(cost, False), host.ufunc_grain(cost, True)
    if cost == host.LINEAR:
        assert (out, inplace) == (_bounded(2 * 1e-6 / 1e-10), _bounded(2 * 1.5e-6 / 4e-11))
    else:  # (t: the class's own kernel)
        assert (out, inplace) == (_bounded(2 * 1e-6 / 5e-10), _bounded(2 * 1.5e-6 / 5e-10))
    for grain, below in ((out, host.SPLIT_BELOW), (inplace, host.INPLACE_SPLIT_BELOW)):
        assert below[cost] == min(max(host.SMALL, min(2 * grain, _stream_cap())), 200_000)
        assert [below[c] for c in range(3) if c != cost] == [200_000] * 2
    assert host.WHOLE_BELOW == [200_000] * 3, "the planned route's own"


def test_the_split_ufuncs_threshold_is_never_above_the_planned_routes(planned, monkeypatch):
    # (a grain measured in place, or at a slow moment: the calls from WHOLE_BELOW still go to
    # the split ufunc, whose own grain decides)
    monkeypatch.setattr(host, "_ufunc_found", {True: (4e-6, 1e-11)})
    monkeypatch.setattr(host, "WHOLE_BELOW", [100_000] * 3)
    host.ufunc_grain(host.LINEAR, True)
    assert host._ufunc_measured[host.LINEAR, True] == 800_000  # (2·4 µs / 0.01 ns)
    assert host.INPLACE_SPLIT_BELOW[host.LINEAR] == 100_000


def _stream_cap() -> int:
    return (host.STREAM_FLOOR if host.STREAM_BYTES is None else host.STREAM_BYTES) // 8


def test_the_split_ufuncs_costs_are_measured_on_relus_ufuncs(monkeypatch):
    import torch  # noqa: F401  (the OpenMP team)

    from relukit.kernels.cpu import team

    if not (host.UFUNCS and team.available()):
        pytest.skip("needs the ufuncs and the OpenMP team")
    monkeypatch.setattr(host, "_ufunc_found", {})
    made = []
    ufunc = host._ufunc

    def recording(codes, p, aux, number, name, count=1, grain=0):
        made.append((codes, count, grain))
        return ufunc(codes, p, aux, number, name, count, grain)

    monkeypatch.setattr(host, "_ufunc", recording)
    k = host._module()
    handoff, per_element = host._ufunc_costs(True)
    # (bounds that only a wrong measurement breaks: on a machine loaded twice over its cores a
    # hand-off measured 11.7 ms, the other thread descheduled; 1 µs or so on a quiet one)
    assert 0 < handoff < 0.1 and 0 < per_element < 1e-8
    codes = [(k.RELU, k.FORWARD, 4, inplace) for inplace in (0, 1)]
    assert made == [(c, count, grain) for c in codes for count, grain in ((1, 0), (2, 64))]
    made.clear()
    assert host._ufunc_costs(False) and made == [], "both measured at once, once per process"


def test_without_the_ufuncs_the_planned_routes_grain_and_threshold_serve(unmeasured, monkeypatch):
    monkeypatch.setattr(host, "_ufunc_found", {})
    made = []
    monkeypatch.setattr(host, "_ufunc", lambda *args: made.append(1) and False)
    monkeypatch.setattr(host, "_handoff", lambda asleep=False: 3e-6)
    monkeypatch.setattr(host, "_per_element", lambda cost, large=False: 2e-10)
    assert host._ufunc_costs(False) is None
    tried = len(made)
    assert host._ufunc_costs(True) is None and len(made) == tried, "asked once"
    assert host.ufunc_grain(host.LINEAR) == host.grain(host.LINEAR) == _bounded(30_000)
    assert host._ufunc_measured == {}
    assert host.SPLIT_BELOW == host.INPLACE_SPLIT_BELOW == host.WHOLE_BELOW


@pytest.mark.parametrize("on_team", [False, True])
def test_the_planned_routes_grain_sets_both_thresholds_until_a_team_measures(
    on_team, unmeasured, monkeypatch
):
    from relukit.kernels.cpu import team

    monkeypatch.setattr(host, "_ufunc_found", {False: (1e-6, 1e-10), True: (1e-6, 5e-11)})
    monkeypatch.setattr(host, "_handoff", lambda asleep=False: 4e-6)
    monkeypatch.setattr(host, "_per_element", lambda cost, large=False: 1e-10)
    monkeypatch.setattr(host, "UFUNCS", True)
    monkeypatch.setattr(team, "available", lambda: on_team)
    host.grain(host.LINEAR)
    assert host.WHOLE_BELOW[host.LINEAR] == max(host.SMALL, min(2 * 80_000, _stream_cap()))
    if on_team:  # (measured with it: 2·1 µs / 0.1 ns, in place 2·1 µs / 0.05 ns)
        grains = {(host.LINEAR, False): 19_968, (host.LINEAR, True): 40_000}
        assert host._ufunc_measured == grains
        assert host.SPLIT_BELOW[host.LINEAR] == 2 * 19_968
        assert host.INPLACE_SPLIT_BELOW[host.LINEAR] == 2 * 40_000
    else:  # (no split ufuncs to be had yet: calls split where the planned route does)
        assert host._ufunc_measured == {}
        assert host.SPLIT_BELOW == host.INPLACE_SPLIT_BELOW == host.WHOLE_BELOW


def test_a_split_ufunc_made_first_measures_the_planned_routes_threshold_first(monkeypatch):
    # (a member's first calls small or on one thread, then one that takes the split ufunc:
    # WHOLE_BELOW, the cap, is measured then, not left at SMALL)
    from relukit.kernels.cpu import team

    monkeypatch.setattr(host, "_measured", {})
    monkeypatch.setattr(host, "_ufunc_measured", {})
    monkeypatch.setattr(host, "WHOLE_BELOW", [host.SMALL] * 3)
    monkeypatch.setattr(host, "SPLIT_BELOW", [host.SMALL] * 3)
    monkeypatch.setattr(host, "INPLACE_SPLIT_BELOW", [host.SMALL] * 3)
    monkeypatch.setattr(host, "_ufunc_found", {False: (1e-6, 1e-10), True: (1e-6, 5e-11)})
    monkeypatch.setattr(host, "_handoff", lambda asleep=False: 4e-6)
    monkeypatch.setattr(host, "_per_element", lambda cost, large=False: 1e-10)
    monkeypatch.setattr(host, "UFUNCS", True)
    monkeypatch.setattr(team, "available", lambda: True)
    assert host.ufunc_grain(host.LINEAR, True) == 40_000
    assert host._measured[host.LINEAR, False] == 80_000
    assert host.WHOLE_BELOW[host.LINEAR] == max(host.SMALL, min(160_000, _stream_cap()))
    assert host.SPLIT_BELOW[host.LINEAR] == 2 * 19_968
    assert host.INPLACE_SPLIT_BELOW[host.LINEAR] == min(80_000, host.WHOLE_BELOW[host.LINEAR])
