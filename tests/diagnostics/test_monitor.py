"""Tests of DeadUnitMonitor: exact counts and moments against brute force on stored tensors."""

from __future__ import annotations

import gc
import json
import math
import weakref
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
import torch
from rich.table import Table
from torch import nn

from relukit.diagnostics import DeadUnitMonitor, Gate, find_activations, firing_rule, member_of
from relukit.diagnostics.monitor import firing_markdown, torch_classes

# Which member each torch.nn class computes, written out independently of the registry.
EXPECTED_MEMBER = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.LeakyReLU: "leaky_relu",
    nn.PReLU: "prelu",
    nn.RReLU: "rrelu",
    nn.ELU: "elu",
    nn.SELU: "selu",
    nn.CELU: "celu",
    nn.GELU: "gelu",
    nn.SiLU: "silu",
    nn.Mish: "mish",
    nn.Hardtanh: "hardtanh",
    nn.Softplus: "softplus",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Recorder:
    """Stores every input and output of a module (the brute-force reference)."""

    def __init__(self, module: nn.Module) -> None:
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []
        self._pre = module.register_forward_pre_hook(
            lambda _m, args: self.inputs.append(args[0].detach().clone())
        )
        self._post = module.register_forward_hook(
            lambda _m, _a, out: self.outputs.append(out.detach().clone())
        )

    def close(self) -> None:
        self._pre.remove()
        self._post.remove()


def brute_force(
    recorder: Recorder, rule: str, dim: int, above: float = 0.0
) -> tuple[torch.Tensor, int, float]:
    """Per-unit fire counts, inputs per unit and sparsity from stored tensors, by loops."""
    source = recorder.outputs if rule == "output" else recorder.inputs
    counts = None
    positions = 0
    for t in source:
        moved = t.movedim(dim, -1).reshape(-1, t.shape[dim])
        c = torch.zeros(moved.shape[1], dtype=torch.int64)
        for row in moved:
            c += (row > above).to(torch.int64)
        counts = c if counts is None else counts + c
        positions += moved.shape[0]
    zeros = sum(int((o == 0).sum()) for o in recorder.outputs)
    total = sum(o.numel() for o in recorder.outputs)
    assert counts is not None
    return counts, positions, zeros / total


def test_torch_classes_come_from_the_registry_torch_names():
    assert torch_classes() == EXPECTED_MEMBER
    assert member_of(nn.ReLU6()) == "relu6"  # not its base class Hardtanh
    assert member_of(nn.Linear(1, 1)) is None


def rule_of(module: nn.Module) -> tuple[str, float]:
    return firing_rule(EXPECTED_MEMBER[type(module)])


@pytest.mark.parametrize("cls", list(EXPECTED_MEMBER), ids=lambda c: c.__name__)
def test_planted_dead_unit_is_found_exactly(cls):
    torch.manual_seed(0)  # only nn.Linear's default init; the monitor itself draws nothing
    model = nn.Sequential(nn.Linear(6, 32), cls(), nn.Linear(32, 2))
    with torch.no_grad():
        model[0].bias.zero_()  # on symmetric inputs every other unit fires about half the time
        model[0].bias[7] = -1e3
    with DeadUnitMonitor(model) as monitor, torch.no_grad():
        for seed in range(3):
            model(torch.randn(128, 6, generator=gen(seed)))
    assert monitor.dead_units() == {"1": [7]}
    stats = monitor.report()[0]
    assert (stats.units, stats.dead, stats.rare) == (32, 1, 0)
    rates = monitor.firing_rates()["1"]
    assert rates[7] == 0 and bool(torch.all(rates[torch.arange(32) != 7] > 0.1))


@pytest.mark.parametrize("cls", list(EXPECTED_MEMBER), ids=lambda c: c.__name__)
def test_firing_counts_and_moments_equal_brute_force(cls):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), cls(), nn.Linear(7, 3))
    model.train()  # RRReLU draws its slopes in training mode; the rule must still hold
    recorder = Recorder(model[1])
    with DeadUnitMonitor(model) as monitor:
        for seed in range(4):
            model(torch.randn(9, 5, generator=gen(seed)) * 2)
    recorder.close()
    on, above = rule_of(model[1])
    counts, positions, sparsity = brute_force(recorder, on, dim=1, above=above)
    stats = monitor.report()[0]
    assert torch.equal(monitor.firing_rates()["1"], counts.double() / positions)
    assert stats.inputs_per_unit == positions == 36
    assert stats.sparsity == pytest.approx(sparsity, abs=0)
    assert stats.mean_firing_rate == pytest.approx(float(counts.double().mean() / positions))
    assert stats.calls == 4
    assert_moments(stats, recorder.outputs)


def assert_moments(stats, outputs: list[torch.Tensor]) -> None:
    """Mean, std, max |x| and kurtosis against NumPy/SciPy over every stored output."""
    values = np.concatenate([o.double().numpy().ravel() for o in outputs])
    values = values[~np.isnan(values)]
    assert stats.mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-12)
    assert stats.std == pytest.approx(values.std(), rel=1e-9)
    assert stats.max_abs == np.abs(values).max()
    assert stats.kurtosis == pytest.approx(scipy.stats.kurtosis(values), rel=1e-7, abs=1e-9)


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, padding=1),
        nn.LeakyReLU(0.1),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 4),
    )


def test_conv_net_counts_per_channel():
    torch.manual_seed(2)
    model = small_cnn()
    recorders = {"2": Recorder(model[2]), "5": Recorder(model[5])}
    with DeadUnitMonitor(model) as monitor:
        for seed in range(2):
            model(torch.randn(4, 3, 8, 8, generator=gen(seed)))
    rates = monitor.firing_rates()
    for name, rule in (("2", "output"), ("5", "input")):
        recorders[name].close()
        counts, positions, sparsity = brute_force(recorders[name], rule, dim=1)
        assert_moments(next(r for r in monitor.report() if r.name == name), recorders[name].outputs)
        assert torch.equal(rates[name], counts.double() / positions)
        row = next(r for r in monitor.report() if r.name == name)
        assert row.units == counts.numel()
        assert row.sparsity == pytest.approx(sparsity, abs=0)
    assert [r.inputs_per_unit for r in monitor.report()] == [2 * 4 * 8 * 8, 2 * 4 * 4 * 4]


class SequenceModel(nn.Module):
    """Embedding → (N, T, C) → Linear → GELU → Conv1d over time (N, C, T) → ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.proj = nn.Linear(8, 6)
        self.act = nn.GELU()
        self.conv = nn.Conv1d(6, 4, 3, padding=1)
        self.conv_act = nn.ReLU()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.act(self.proj(self.embed(tokens)))  # (N, T, 6)
        return self.conv_act(self.conv(h.transpose(1, 2)))  # (N, 4, T)


def test_sequence_model_units_are_the_feature_axis():
    torch.manual_seed(3)
    model = SequenceModel()
    recorders = {"act": Recorder(model.act), "conv_act": Recorder(model.conv_act)}
    with DeadUnitMonitor(model, channel_dim={"conv_act": 1}) as monitor:
        model(torch.randint(0, 20, (5, 11), generator=gen(0)))
        model(torch.randint(0, 20, (3, 7), generator=gen(1)))
    rates = monitor.firing_rates()
    for name, rule, dim, above in (
        ("act", "input", 2, firing_rule("gelu")[1]),
        ("conv_act", "output", 1, 0.0),
    ):
        recorders[name].close()
        counts, positions, _ = brute_force(recorders[name], rule, dim, above)
        assert torch.equal(rates[name], counts.double() / positions)
    units = {r.name: (r.units, r.inputs_per_unit) for r in monitor.report()}
    assert units == {"act": (6, 5 * 11 + 3 * 7), "conv_act": (4, 5 * 11 + 3 * 7)}


def test_training_step_is_unchanged_and_no_grad_works():
    torch.manual_seed(4)
    model = small_cnn()
    x = torch.randn(4, 3, 8, 8, generator=gen(0))
    y = torch.randint(0, 4, (4,), generator=gen(1))
    reference = [p.grad for p in model.parameters()]
    assert all(g is None for g in reference)
    nn.functional.cross_entropy(model(x), y).backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    with DeadUnitMonitor(model) as monitor:
        nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            model(x)
    for p, g in zip(model.parameters(), expected, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
    assert [r.calls for r in monitor.report()] == [2, 2]


def test_shared_module_called_twice():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 5)
            self.b = nn.Linear(5, 5)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.b(self.act(self.a(x))))

    torch.manual_seed(5)
    model = Shared()
    with torch.no_grad():
        model.b.bias[2] = -1e3
    recorder = Recorder(model.act)
    x = torch.randn(16, 4, generator=gen(0))
    with DeadUnitMonitor(model) as merged, DeadUnitMonitor(model, per_call=True) as split:
        model(x)
        model(x)
    recorder.close()
    counts, positions, _ = brute_force(recorder, "output", 1)
    assert torch.equal(merged.firing_rates()["act"], counts.double() / positions)
    assert merged.report()[0].calls == 4
    assert [r.name for r in split.report()] == ["act[0]", "act[1]"]
    first_calls = Recorder.__new__(Recorder)
    first_calls.inputs, first_calls.outputs = recorder.inputs[0::2], recorder.outputs[0::2]
    c0, p0, _ = brute_force(first_calls, "output", 1)
    assert torch.equal(split.firing_rates()["act[0]"], c0.double() / p0)
    assert split.dead_units()["act[1]"] == [2]
    assert 2 not in split.dead_units()["act[0]"]
    # reviving a shared module needs explicit producers
    revival = merged.reinitialize_dead()
    assert revival.touched == {}
    revival = split.reinitialize_dead(producers={"act[1]": "b"}, seed=1)
    assert revival.touched == {"act[1]": 1}
    assert revival.skipped == {}
    assert model.b.bias[2].item() == 0.0


def test_inplace_modules_see_the_input_before_it_is_overwritten():
    # Negative slope: negative inputs become positive outputs, yet must not count as firing.
    model = nn.Sequential(nn.Identity(), nn.LeakyReLU(-0.5, inplace=True), nn.ReLU(inplace=True))
    x = torch.tensor([[-1.0, 2.0, -3.0], [-1.0, 0.0, 4.0]])
    with DeadUnitMonitor(model) as monitor:
        model(x.clone())
    assert monitor.firing_rates()["1"].tolist() == [0.0, 0.5, 0.5]
    # LeakyReLU(-0.5) turns the -1s into 0.5 > 0, so the ReLU after it fires there.
    assert monitor.firing_rates()["2"].tolist() == [1.0, 0.5, 1.0]
    assert monitor.report()[1].sparsity == pytest.approx(1 / 6)


def test_dead_rare_sparsity_and_threshold_exactly():
    # Identity monitored as a ReLU-like "output" layer: hand-made activations.
    model = nn.Sequential(nn.Identity())
    x = torch.zeros(200, 4)
    x[3, 0] = 1.0  # unit 0: fires once in 200 → rare at 1 %
    x[:, 2] = 1.0  # unit 2: always
    x[:100, 3] = -1.0  # unit 3: fires never but is not exactly zero half the time
    with DeadUnitMonitor(model, modules={"0": "output"}) as monitor:
        model(x)
    stats = monitor.report()[0]
    assert monitor.dead_units() == {"0": [1, 3]}
    assert (stats.units, stats.dead, stats.rare) == (4, 2, 1)
    assert stats.member == "custom"
    assert stats.mean_firing_rate == pytest.approx((1 / 200 + 1.0) / 4)
    assert stats.sparsity == pytest.approx((800 - 1 - 200 - 100) / 800)
    loose = DeadUnitMonitor(model, modules={"0": "output"}, rare_threshold=0.001).start()
    model(x)
    assert loose.report()[0].rare == 0
    loose.close()


def test_hooks_removed_on_exit_and_stats_kept():
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(4, 3, generator=gen(0)))
    assert not model._forward_hooks and not model[1]._forward_hooks
    assert not model._forward_pre_hooks and not model[1]._forward_pre_hooks
    before = monitor.report()
    model(torch.randn(4, 3, generator=gen(1)))
    assert monitor.report() == before
    monitor.reset()
    assert monitor.report()[0].units == 0 and monitor.dead_units() == {}
    with monitor:  # re-entering re-attaches
        model(torch.randn(2, 3, generator=gen(2)))
    assert monitor.report()[0].inputs_per_unit == 2


def test_no_activation_is_kept_alive():
    model = nn.Sequential(nn.Linear(3, 64), nn.ReLU())
    refs = []
    with DeadUnitMonitor(model) as monitor, torch.no_grad():
        for seed in range(3):
            out = model(torch.randn(32, 3, generator=gen(seed)))
            refs.append(weakref.ref(out))
            del out
    gc.collect()
    assert all(r() is None for r in refs)
    site = next(iter(monitor._sites.values()))
    assert site.fired is not None and site.fired.shape == (64,)


def test_relukit_member_attribute_and_custom_modules():
    class SquaredReLU(nn.Module):
        relukit_member = "squared_relu"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x) ** 2

    class Unknown(nn.Module):
        relukit_member = "not_a_member"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    model = nn.Sequential(nn.Linear(2, 3), SquaredReLU())
    assert find_activations(model) == {"1": "squared_relu"}
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(4, 2, generator=gen(0)))
    assert monitor.report()[0].rule == "input > 0"
    with pytest.raises(ValueError, match="not_a_member"):
        DeadUnitMonitor(nn.Sequential(Unknown()))
    explicit = DeadUnitMonitor(nn.Sequential(Unknown()), modules={"0": "relu"})
    assert explicit.report()[0].rule == "output > 0"


def test_table_and_json():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Tanh())
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(5, 2, generator=gen(0)))
    text = monitor.table("text")
    assert text.splitlines()[0].split() == [
        "layer", "member", "units", "dead", "rare", "sparsity", "mean", "rate", "mean", "std",
        "max", "|x|", "kurtosis", "calls",
    ]  # fmt: skip
    assert len(text.splitlines()) == 3
    assert isinstance(monitor.table(), Table)
    data = json.loads(monitor.to_json())
    assert [layer["name"] for layer in data["layers"]] == ["1", "3"]
    assert data["layers"][1]["member"] == "tanh"
    unseen = DeadUnitMonitor(model)
    assert json.loads(unseen.to_json())["layers"][0]["sparsity"] is None
    unseen.close()
    with pytest.raises(ValueError, match="kind"):
        monitor.table("html")  # type: ignore[arg-type]


def test_argument_errors_name_function_parameter_and_value():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    with pytest.raises(TypeError, match="DeadUnitMonitor: model"):
        DeadUnitMonitor("model")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rare_threshold must be in \[0, 1\], got 2"):
        DeadUnitMonitor(model, rare_threshold=2)
    with pytest.raises(ValueError, match="'nope'"):
        DeadUnitMonitor(model, modules=["nope"])
    with pytest.raises(ValueError, match="not a known activation"):
        DeadUnitMonitor(model, modules=["0"])
    with pytest.raises(TypeError, match="channel_dim"):
        DeadUnitMonitor(model, channel_dim=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channel_dim names 'x'"):
        DeadUnitMonitor(model, channel_dim={"x": 1})
    with (
        DeadUnitMonitor(model, channel_dim=5),
        pytest.raises(ValueError, match="channel_dim=5 is out of range"),
    ):
        model(torch.ones(1, 2))
    mon = DeadUnitMonitor(nn.Sequential(nn.ReLU())).start()
    mon.model(torch.ones(2, 3))
    with pytest.raises(ValueError, match="had 3 units and now has 4"):
        mon.model(torch.ones(2, 4))
    mon.close()


def test_reinitialize_dead_linear_with_adam_state():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randn(64, 4, generator=gen(0))
    model(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        model[0].bias[[1, 6]] = -1e3
    monitor = DeadUnitMonitor(model).start()
    model(x)
    assert monitor.dead_units() == {"1": [1, 6]}
    untouched = model[0].weight[0].detach().clone()
    revival = monitor.reinitialize_dead(optimizer, init="he_normal", seed=3)
    assert revival.touched == {"1": 2} and revival.total == 2 and revival.skipped == {}
    assert monitor.report()[0].units == 0  # counts were reset
    state = optimizer.state[model[0].weight]
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.all(state[key][[1, 6]] == 0)
        assert torch.any(state[key][0] != 0)
    assert torch.equal(model[0].weight[0], untouched)
    assert torch.all(model[0].bias[[1, 6]] == 0)
    model(x)
    assert monitor.dead_units() == {"1": []}
    monitor.close()


def test_reinitialize_dead_through_batchnorm_and_pooling():
    torch.manual_seed(7)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.MaxPool2d(2), nn.ReLU()
    )
    with torch.no_grad():
        model[1].bias[2] = -1e3
    x = torch.randn(8, 3, 6, 6, generator=gen(0))
    monitor = DeadUnitMonitor(model).start()
    model(x)
    assert monitor.dead_units() == {"3": [2]}
    revival = monitor.reinitialize_dead(init="rai", seed=0)
    assert revival.touched == {"3": 1}
    assert model[1].bias[2].item() == 0.0 and model[1].weight[2].item() == 1.0
    assert model[1].running_var[2].item() == 1.0
    model(x)
    assert monitor.dead_units() == {"3": []}
    monitor.close()


def test_reinitialize_dead_skips_what_it_cannot_revive():
    model = nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.ReLU())
    with torch.no_grad():
        model[0].bias.fill_(-1e3)
    monitor = DeadUnitMonitor(model, modules=["2"]).start()
    model(torch.ones(2, 2))
    revival = monitor.reinitialize_dead()
    assert revival.touched == {} and "no Linear/Conv" in revival.skipped["2"]
    with pytest.raises(ValueError, match="init must be one of"):
        monitor.reinitialize_dead(init="xavier")
    with pytest.raises(TypeError, match="optimizer"):
        monitor.reinitialize_dead(optimizer="adam")  # type: ignore[arg-type]
    monitor.close()


def test_root_module_and_1d_outputs():
    relu = nn.ReLU()
    with DeadUnitMonitor(relu) as monitor:
        relu(torch.tensor([1.0, -1.0, 0.0]))
    assert monitor.dead_units() == {"": [1, 2]}
    assert monitor.table("text").splitlines()[1].startswith("(model)")


@pytest.mark.parametrize("grain", [7, 50, 1 << 20])
def test_empty_batches_low_precision_and_split_counting_are_exact(grain, monkeypatch):
    # a small grain splits the scan of the (outer, unit, inner) view over threads
    monkeypatch.setattr("relukit.diagnostics.streaming._GRAIN", grain)
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.ELU()).to(torch.bfloat16)
    recorders = {"1": Recorder(model[1]), "2": Recorder(model[2])}
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(0, 2, 5, 5).to(torch.bfloat16))
        model(torch.randn(4, 2, 9, 7, generator=gen(0)).to(torch.bfloat16))
    for name, rule, above in (("1", "output", 0.0), ("2", "input", firing_rule("elu")[1])):
        recorders[name].close()
        source = recorders[name].outputs if rule == "output" else recorders[name].inputs
        counts = (source[1].float() > above).sum(dim=(0, 2, 3))
        assert torch.equal(monitor.firing_rates()[name], counts.double() / (4 * 9 * 7))
        row = next(r for r in monitor.report() if r.name == name)
        assert row.calls == 2 and row.inputs_per_unit == 4 * 9 * 7
        zeros = int((recorders[name].outputs[1] == 0).sum())
        assert row.sparsity == zeros / recorders[name].outputs[1].numel()


def test_every_registry_member_has_a_firing_rule_and_the_docs_show_it():
    import relukit

    assert all(spec.firing is not None for spec in relukit.family())
    docs = Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md"
    assert firing_markdown() in docs.read_text(encoding="utf-8"), (
        "docs/diagnostics.md lacks the current firing table: paste "
        "relukit.diagnostics.monitor.firing_markdown() into it"
    )


def test_relukit_modules_are_recognised_by_their_member_name():
    rnn = pytest.importorskip("relukit.nn")
    modules = getattr(rnn, "MODULES", {})
    assert modules, "relukit.nn.MODULES is empty"
    for member, cls in modules.items():
        assert cls.relukit_member == member
        assert firing_rule(member)
    torch.manual_seed(9)
    model = nn.Sequential(nn.Linear(4, 8), rnn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        model[0].bias.zero_()
        model[0].bias[3] = -1e3
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(64, 4, generator=gen(0)))
    assert monitor.dead_units() == {"1": [3]}


def test_nan_counts_as_not_firing_and_as_zero_in_the_sparsity():
    model = nn.Sequential(nn.Identity(), nn.ReLU())
    x = torch.tensor([[float("nan"), 1.0], [2.0, float("nan")], [0.0, -1.0]])
    with DeadUnitMonitor(model, modules={"0": "output", "1": "relu"}) as monitor:
        model(x)
    assert monitor.firing_rates()["0"].tolist() == [1 / 3, 1 / 3]
    assert monitor.report()[0].sparsity == pytest.approx(3 / 6)  # 0.0 and the two NaNs


def test_relu_rule_equals_the_bare_output_rule():
    relu, identity = nn.ReLU(), nn.Identity()
    model = nn.Sequential(nn.Conv2d(2, 4, 3), relu, identity)
    with DeadUnitMonitor(model, modules={relu: "relu", identity: "output"}) as monitor:
        model(torch.randn(3, 2, 6, 6, generator=gen(0)))
    member, bare = monitor.report()
    assert (member.units, member.dead, member.sparsity, member.mean_firing_rate) == (
        bare.units,
        bare.dead,
        bare.sparsity,
        bare.mean_firing_rate,
    )
    assert torch.equal(monitor.firing_rates()["1"], monitor.firing_rates()["2"])


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_monitors_never_entered_leave_no_hooks():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.GELU())
    monitors = [DeadUnitMonitor(model) for _ in range(50)]
    assert hook_count(model) == 0
    assert not any(m.attached for m in monitors)
    model(torch.ones(2, 3))
    assert all(m.report()[0].units == 0 for m in monitors)  # nothing counted either
    first = monitors[0].start()
    assert first.attached and hook_count(model) > 0
    first.start()  # a second start attaches nothing more
    attached = hook_count(model)
    assert attached == 1 + 1 + 2  # the batch hook, relu's output hook, gelu's input+output
    first.close()
    assert hook_count(model) == 0
    with monitors[1]:
        assert hook_count(model) == attached
    assert hook_count(model) == 0


def test_every_k_th_batch_is_counted_exactly():
    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(4, 6), nn.SiLU())
    batches = [torch.randn(5, 4, generator=gen(i)) * 4 for i in range(7)]
    recorder = Recorder(model[1])
    with DeadUnitMonitor(model, every=3) as monitor:
        for x in batches:
            model(x)
    recorder.close()
    counted = Recorder.__new__(Recorder)
    counted.inputs, counted.outputs = recorder.inputs[0::3], recorder.outputs[0::3]  # 0, 3, 6
    counts, positions, _ = brute_force(counted, "input", 1, firing_rule("silu")[1])
    assert monitor.batches_counted == 3 and positions == 15
    assert torch.equal(monitor.firing_rates()["1"], counts.double() / positions)
    assert_moments(monitor.report()[0], counted.outputs)


def test_manual_batches_and_pause():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    with DeadUnitMonitor(model, batches="manual", every=2) as monitor:
        model(torch.ones(4, 2))  # before any next_batch: not counted
        assert monitor.next_batch() is True
        model(torch.ones(4, 2))
        monitor.pause()
        model(torch.ones(4, 2))  # paused (a validation forward, say)
        assert monitor.next_batch() is False
        model(torch.ones(4, 2))
        assert monitor.next_batch() is True
        model(torch.ones(1, 2))
    assert monitor.batches_counted == 2
    assert monitor.report()[0].inputs_per_unit == 5
    with pytest.raises(ValueError, match="every must be >= 1, got 0"):
        DeadUnitMonitor(model, every=0)
    with pytest.raises(ValueError, match="batches must be 'forward' or 'manual'"):
        DeadUnitMonitor(model, batches="epoch")  # type: ignore[arg-type]


def test_thresholds_follow_the_module_parameters():
    model = nn.Sequential(
        nn.Linear(2, 4), nn.Hardtanh(-2.0, 2.0), nn.ELU(alpha=2.0), nn.Softplus(beta=2.0)
    )
    rules = {r.name: r.rule for r in DeadUnitMonitor(model).report()}
    assert rules == {
        "1": "input > -2",
        "2": f"input > {math.log(0.01 / 2):.4g}",
        "3": f"input > {math.log(0.01 / 0.99) / 2:.4g}",
    }
    x = torch.tensor([[-2.5, -1.5, 0.0, 3.0]])
    with DeadUnitMonitor(nn.Sequential(nn.Hardtanh(-2.0, 2.0))) as monitor:
        monitor.model(x)
    assert monitor.dead_units() == {"0": [0]}


class SwiGLU(nn.Module):
    """A gated MLP whose activation is a function call, and a fused gate/up variant."""

    def __init__(self, fused: bool) -> None:
        super().__init__()
        self.fused = fused
        self.gate = nn.Linear(4, 16 if fused else 8)
        self.up = nn.Linear(4, 8)
        self.down = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            g, u = self.gate(x).chunk(2, dim=-1)
        else:
            g, u = self.gate(x), self.up(x)
        return self.down(nn.functional.silu(g) * u)


@pytest.mark.parametrize("fused", [False, True])
def test_gate_of_a_gated_unit(fused):
    torch.manual_seed(11)
    model = SwiGLU(fused)
    with torch.no_grad():
        model.gate.bias[5] = -1e3  # a dead gate unit
    recorder = Recorder(model.gate)
    spec = Gate("silu", half=0) if fused else Gate("silu")
    with DeadUnitMonitor(model, modules={"gate": spec}) as monitor:
        for seed in range(3):
            model(torch.randn(2, 5, 4, generator=gen(seed)))
    recorder.close()
    gates = Recorder.__new__(Recorder)
    gates.outputs = [o.chunk(2, dim=-1)[0] if fused else o for o in recorder.outputs]
    counts, positions, _ = brute_force(gates, "output", 2, firing_rule("silu")[1])
    row = monitor.report()[0]
    assert (row.member, row.units, row.dead) == ("silu", 8, 1)
    assert monitor.dead_units() == {"gate": [5]}
    assert torch.equal(monitor.firing_rates()["gate"], counts.double() / positions)
    assert_moments(row, gates.outputs)
    with pytest.raises(ValueError, match="not elementwise"):
        DeadUnitMonitor(model, modules={"gate": Gate("maxout")})
    with pytest.raises(ValueError, match=r"Gate\.half must be None, 0 or 1"):
        DeadUnitMonitor(model, modules={"gate": Gate("silu", half=2)})


def test_moments_leave_nan_out_and_follow_far_from_zero_data():
    model = nn.Sequential(nn.Identity())
    x = torch.randn(300, 5, generator=gen(12), dtype=torch.float64) * 1e-3 + 1e4
    y = x.clone()
    y[7, 2] = float("nan")
    with DeadUnitMonitor(model, modules={"0": "output"}) as monitor:
        model(x)
        model(y)
    row = monitor.report()[0]
    assert row.nan == 1
    assert_moments(row, [x, y])
    assert monitor.to_dict(units=True)["layers"][0]["firing_rates"] == [1, 1, 599 / 600, 1, 1]


def test_a_model_without_activation_modules_warns_once_and_monitors_nothing():
    import warnings

    class Functional(nn.Module):  # (torch.relu in forward: no module to hook)
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(2, 3)

        def forward(self, x):
            return torch.relu(self.linear(x))

    model = Functional()
    with pytest.warns(UserWarning, match=r"no activation module to monitor .* modules="):
        monitor = DeadUnitMonitor(model)
    with monitor:
        model(torch.randn(4, 2))
    assert monitor.report() == []
    with warnings.catch_warnings():  # (modules named, or some found: no warning)
        warnings.simplefilter("error")
        DeadUnitMonitor(model, modules={"linear": "relu"})
        DeadUnitMonitor(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_an_integration_whose_extra_classes_find_nothing_warns_as_the_monitor_does():
    # (the framework callbacks' engine with an `extra` finder, as transformers' callback has)
    from relukit.integrations.core import TrainingMonitor

    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    engine = TrainingMonitor()
    with pytest.warns(UserWarning, match="no activation module to monitor"):
        engine.begin(model, extra=lambda module: None)
    engine.close()
