"""The plain-loop helper: CSV rows and TensorBoard events of a hand-written training loop."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from relukit.diagnostics import firing_rule
from relukit.integrations.loop import ActivationMonitor


def test_loop_helper_logs_csv_and_tensorboard(tmp_path, recorder, brute_rates):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 10), nn.SiLU(), nn.Linear(10, 1))
    with torch.no_grad():
        model[0].bias[2] = -1e3
    seen = recorder(model[1])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    writer = SummaryWriter(tmp_path / "tb")
    monitor = ActivationMonitor(
        model, writer=writer, csv=tmp_path / "acts.csv", out_dir=tmp_path, every=2, log_every=4
    )
    g = torch.Generator().manual_seed(1)
    for step in range(10):
        with monitor.batch(step):
            loss = model(torch.randn(6, 5, generator=g)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():  # an evaluation forward between batches is not counted
            model(torch.randn(3, 5, generator=g))
    result = monitor.end(opt)
    writer.close()

    # windows: steps 0-3 (counted 0, 2), 4-7 (4, 6), and the last, closed by end(): 8-9 (8)
    assert [(w.step, w.batches) for w in monitor.windows] == [(3, 2), (7, 2), (9, 1)]
    assert result.window is monitor.windows[-1]
    above = firing_rule("silu")[1]
    for w, counted in zip(monitor.windows, ([0, 2], [4, 6], [8]), strict=True):
        assert torch.equal(w.rates["1"], brute_rates([seen.inputs[i] for i in counted], above))
    with open(tmp_path / "acts.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["3", "7", "9"]
    assert [float(r["activations/1/dead"]) for r in rows] == [1.0, 1.0, 1.0]
    assert [float(r["activations/1/firing_rate"]) for r in rows] == pytest.approx(
        [float(w.rates["1"].mean()) for w in monitor.windows]
    )
    events = event_accumulator.EventAccumulator(str(tmp_path / "tb"), {"histograms": 0})
    events.Reload()
    assert {"activations/1/kurtosis", "activations/dead_fraction"} <= set(events.Tags()["scalars"])
    assert "activations/1/firing_rates" in events.Tags()["histograms"]
    report = json.loads((tmp_path / "activation_stats.json").read_text())
    assert report["last_window"]["layers"][0]["firing_rates"][2] == 0.0


def test_loop_helper_checks_its_arguments(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(TypeError, match="writer must be a SummaryWriter"):
        ActivationMonitor(model, writer="tb")
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        ActivationMonitor(model, every=0)
    with pytest.raises(TypeError, match="revive must be a bool"):
        ActivationMonitor(model, revive="yes")
