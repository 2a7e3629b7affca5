"""The Hugging Face callback on a real Trainer, with a 2-layer BERT built from its config."""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing import event_accumulator
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from relukit.diagnostics import firing_rule
from relukit.integrations.transformers import ActivationMonitor


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=48,
        max_position_embeddings=16,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)  # randomly initialised, nothing downloaded
    with torch.no_grad():  # planted dead unit: deep in GELU's flat tail, so no gradient
        model.bert.encoder.layer[0].intermediate.dense.bias[7] = -1e3
    return model


def dataset(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 64, (n, 12), generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    return [{"input_ids": i, "labels": y} for i, y in zip(ids, labels, strict=True)]


def test_hf_trainer_logs_dead_unit_exact_rates_and_tensorboard_tags(
    tmp_path, recorder, brute_rates
):
    model = tiny_bert()
    acts = [layer.intermediate.intermediate_act_fn for layer in model.bert.encoder.layer]
    assert type(acts[0]).__name__ == "GELUActivation"  # transformers' own class
    seen = [recorder(a) for a in acts]
    callback = ActivationMonitor(every=2, figures=True)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=3,
        report_to=["tensorboard"],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset(24), callbacks=[callback])
    trainer.train()
    assert len(seen[0].inputs) == 6

    # Windows at steps 3 and 6; counted steps 1, 3 | 5 (one in two).
    assert [(w.step, w.batches) for w in callback.windows] == [(3, 2), (6, 1)]
    above = firing_rule("gelu")[1]
    names = [f"bert.encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(2)]
    for w, counted in zip(callback.windows, ([0, 2], [4]), strict=True):
        for name, rec in zip(names, seen, strict=True):
            expected = brute_rates([rec.inputs[i] for i in counted], above)
            assert torch.equal(w.rates[name], expected)
        assert w.metrics[f"activations/{names[0]}/dead"] == 1
        assert w.rates[names[0]][7] == 0

    events = event_accumulator.EventAccumulator(
        str(tmp_path / "runs" / "relukit"), size_guidance={"histograms": 0}
    )
    events.Reload()
    tags = events.Tags()
    for name in names:
        for stat in ("dead", "rare", "firing_rate", "mean", "std", "max_abs", "kurtosis"):
            assert f"activations/{name}/{stat}" in tags["scalars"]
        assert f"activations/{name}/firing_rates" in tags["histograms"]
    assert [(e.step, e.value) for e in events.Scalars(f"activations/{names[0]}/dead")] == [
        (3, 1.0),
        (6, 1.0),
    ]
    firing = events.Scalars(f"activations/{names[1]}/firing_rate")
    assert [e.value for e in firing] == pytest.approx(
        [float(w.rates[names[1]].mean()) for w in callback.windows], rel=1e-6
    )

    report = json.loads((tmp_path / "activation_stats.json").read_text())
    rows = {r["name"]: r for r in report["last_window"]["layers"]}
    assert rows[names[0]]["dead"] == 1 and rows[names[0]]["member"] == "gelu"
    assert (tmp_path / "activation_stats.png").stat().st_size > 0
    for rec in seen:
        rec.close()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
