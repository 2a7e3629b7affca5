"""The Lightning callback on a real Trainer: what it logs to TensorBoard and CSV."""

from __future__ import annotations

import csv
import json

import lightning.pytorch as pl
import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator
from torch import nn

from relukit.diagnostics import firing_rule
from relukit.integrations.lightning import ActivationMonitor


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 12), nn.GELU(), nn.Linear(12, 1)
        )
        with torch.no_grad():
            self.net[0].bias[3] = -1e3  # planted dead ReLU unit: no gradient ever reaches it
            self.net[2].bias[5] = -1e3  # planted dead GELU unit, deep in the flat tail

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def loader(seed: int) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    data = torch.utils.data.TensorDataset(torch.randn(96, 6, generator=g), torch.randn(96, 1))
    return torch.utils.data.DataLoader(data, batch_size=8)  # 12 batches, in order


def test_lightning_logs_dead_units_exact_rates_and_tensorboard_tags(
    tmp_path, recorder, brute_rates
):
    model = Net()
    relu_seen, gelu_seen = recorder(model.net[1]), recorder(model.net[3])
    callback = ActivationMonitor(every=3, log_every=6, figures=True)
    tb = pl.loggers.TensorBoardLogger(tmp_path, name="tb")
    csv_logger = pl.loggers.CSVLogger(tmp_path, name="csv")
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[callback],
        logger=[tb, csv_logger],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=1,  # a validation forward that must not be counted
        accelerator="cpu",
    )
    trainer.fit(model, loader(0), loader(1))
    assert len(relu_seen.outputs) == 12  # training forwards only (grad enabled)

    # Windows: batches 1-6 and 7-12; counted batches 0, 3 | 6, 9 (one in three).
    assert [(w.step, w.batches) for w in callback.windows] == [(6, 2), (12, 2)]
    gelu_above = firing_rule("gelu")[1]
    for w, batches in zip(callback.windows, ([0, 3], [6, 9]), strict=True):
        relu_rates = torch.stack([relu_seen.outputs[i] for i in batches]).reshape(-1, 16)
        gelu_inputs = [gelu_seen.inputs[i] for i in batches]
        assert torch.equal(w.rates["net.1"], (relu_rates > 0).double().mean(0))
        assert torch.equal(w.rates["net.3"], brute_rates(gelu_inputs, gelu_above))
        assert w.metrics["activations/net.1/dead"] == 1 and w.metrics["activations/net.3/dead"] == 1
        assert w.metrics["activations/net.3/firing_rate"] == pytest.approx(
            float(brute_rates(gelu_inputs, gelu_above).mean())
        )

    # CSV: one row per window with the planted dead units and the exact mean firing rates.
    with open(tmp_path / "csv" / "version_0" / "metrics.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    logged = [r for r in rows if r.get("activations/net.1/dead")]
    assert [int(r["step"]) for r in logged] == [6, 12]
    assert [float(r["activations/net.1/dead"]) for r in logged] == [1.0, 1.0]
    assert [float(r["activations/net.3/firing_rate"]) for r in logged] == pytest.approx(
        [w.metrics["activations/net.3/firing_rate"] for w in callback.windows]
    )

    # TensorBoard, read back through tensorboard's own reader.
    events = event_accumulator.EventAccumulator(str(tb.log_dir), size_guidance={"histograms": 0})
    events.Reload()
    tags = events.Tags()
    for layer in ("net.1", "net.3"):
        for stat in ("dead", "dead_fraction", "rare", "firing_rate", "mean", "std", "max_abs"):
            assert f"activations/{layer}/{stat}" in tags["scalars"]
        assert f"activations/{layer}/firing_rates" in tags["histograms"]
    dead = events.Scalars("activations/net.1/dead")
    assert [(e.step, e.value) for e in dead] == [(6, 1.0), (12, 1.0)]

    # End of training: the report (per-unit rates of the last window) and the figure.
    report = json.loads((tmp_path / "tb" / "version_0" / "activation_stats.json").read_text())
    last = {row["name"]: row for row in report["last_window"]["layers"]}
    assert last["net.1"]["dead"] == 1 and last["net.1"]["firing_rates"][3] == 0.0
    assert last["net.3"]["firing_rates"] == callback.windows[-1].rates["net.3"].tolist()
    assert (tmp_path / "tb" / "version_0" / "activation_stats.png").stat().st_size > 0


def test_lightning_revives_dead_units_at_the_end(tmp_path):
    model = Net()
    callback = ActivationMonitor(every=1, revive=True, report=False)
    trainer = pl.Trainer(
        max_steps=4,
        callbacks=[callback],
        logger=False,
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=2,
    )
    trainer.fit(model, loader(0))
    revival = callback.end_of_training.revival
    assert revival.touched == {"net.1": 1, "net.3": 1}
    assert model.net[0].bias[3].item() == 0.0 and model.net[2].bias[5].item() == 0.0
    assert not any(m._forward_hooks for m in model.modules())  # hooks gone after fit
