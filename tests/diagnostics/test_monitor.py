"""Tests of DeadUnitMonitor: exact counts against brute force on stored activations."""

from __future__ import annotations

import gc
import json
import weakref

import pytest
import torch
from rich.table import Table
from torch import nn

from relukit.diagnostics import FIRING_RULES, DeadUnitMonitor, find_activations, member_of
from relukit.diagnostics.monitor import TORCH_MEMBERS

# The firing rule the issue specifies, written out independently of the library's table.
EXPECTED_RULE = {
    nn.ReLU: "output",
    nn.ReLU6: "output",
    nn.LeakyReLU: "input",
    nn.PReLU: "input",
    nn.RReLU: "input",
    nn.ELU: "input",
    nn.SELU: "input",
    nn.CELU: "input",
    nn.GELU: "input",
    nn.SiLU: "input",
    nn.Mish: "input",
    nn.Hardtanh: "input",
    nn.Softplus: "input",
    nn.Sigmoid: "input",
    nn.Tanh: "input",
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


def brute_force(recorder: Recorder, rule: str, dim: int) -> tuple[torch.Tensor, int, float]:
    """Per-unit fire counts, inputs per unit and sparsity from stored tensors, by loops."""
    source = recorder.outputs if rule == "output" else recorder.inputs
    counts = None
    positions = 0
    for t in source:
        moved = t.movedim(dim, -1).reshape(-1, t.shape[dim])
        c = torch.zeros(moved.shape[1], dtype=torch.int64)
        for row in moved:
            c += (row > 0).to(torch.int64)
        counts = c if counts is None else counts + c
        positions += moved.shape[0]
    zeros = sum(int((o == 0).sum()) for o in recorder.outputs)
    total = sum(o.numel() for o in recorder.outputs)
    assert counts is not None
    return counts, positions, zeros / total


def test_rule_table_covers_every_torch_class_with_the_specified_rule():
    assert set(TORCH_MEMBERS) == set(EXPECTED_RULE)
    for cls, rule in EXPECTED_RULE.items():
        assert FIRING_RULES[TORCH_MEMBERS[cls]] == rule, cls
    assert member_of(nn.ReLU6()) == "relu6"  # not its base class Hardtanh
    assert member_of(nn.Linear(1, 1)) is None


@pytest.mark.parametrize("cls", list(EXPECTED_RULE), ids=lambda c: c.__name__)
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


@pytest.mark.parametrize("cls", list(EXPECTED_RULE), ids=lambda c: c.__name__)
def test_firing_counts_equal_brute_force(cls):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 7), cls(), nn.Linear(7, 3))
    model.train()  # RRReLU draws its slopes in training mode; the rule must still hold
    recorder = Recorder(model[1])
    with DeadUnitMonitor(model) as monitor:
        for seed in range(4):
            model(torch.randn(9, 5, generator=gen(seed)) * 2)
    recorder.close()
    counts, positions, sparsity = brute_force(recorder, EXPECTED_RULE[cls], dim=1)
    stats = monitor.report()[0]
    assert torch.equal(monitor.firing_rates()["1"], counts.double() / positions)
    assert stats.inputs_per_unit == positions == 36
    assert stats.sparsity == pytest.approx(sparsity, abs=0)
    assert stats.mean_firing_rate == pytest.approx(float(counts.double().mean() / positions))
    assert stats.calls == 4


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
    for name, rule, dim in (("act", "input", 2), ("conv_act", "output", 1)):
        recorders[name].close()
        counts, positions, _ = brute_force(recorders[name], rule, dim)
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
    loose = DeadUnitMonitor(model, modules={"0": "output"}, rare_threshold=0.001)
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
    assert monitor.report()[0].rule == "output"
    with pytest.raises(ValueError, match="not_a_member"):
        DeadUnitMonitor(nn.Sequential(Unknown()))
    explicit = DeadUnitMonitor(nn.Sequential(Unknown()), modules={"0": "relu"})
    assert explicit.report()[0].rule == "output"


def test_table_and_json():
    model = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 3), nn.Tanh())
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(5, 2, generator=gen(0)))
    text = monitor.table("text")
    assert text.splitlines()[0].split() == [
        "layer", "member", "units", "dead", "rare", "sparsity", "mean", "rate", "calls"
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
    mon = DeadUnitMonitor(nn.Sequential(nn.ReLU()))
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
    monitor = DeadUnitMonitor(model)
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
    monitor = DeadUnitMonitor(model)
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
    monitor = DeadUnitMonitor(model, modules=["2"])
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


@pytest.mark.parametrize("chunk", [7, 50, 1 << 20])
def test_empty_batches_low_precision_and_blockwise_counting_are_exact(chunk, monkeypatch):
    # small blocks force the counting to split rows and columns of the (outer, unit, inner) view
    monkeypatch.setattr("relukit.diagnostics.monitor._CHUNK", chunk)
    torch.manual_seed(8)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.ELU()).to(torch.bfloat16)
    recorders = {"1": Recorder(model[1]), "2": Recorder(model[2])}
    with DeadUnitMonitor(model) as monitor:
        model(torch.randn(0, 2, 5, 5).to(torch.bfloat16))
        model(torch.randn(4, 2, 9, 7, generator=gen(0)).to(torch.bfloat16))
    for name, rule in (("1", "output"), ("2", "input")):
        recorders[name].close()
        source = recorders[name].outputs if rule == "output" else recorders[name].inputs
        counts = (source[1].float() > 0).sum(dim=(0, 2, 3))
        assert torch.equal(monitor.firing_rates()[name], counts.double() / (4 * 9 * 7))
        row = next(r for r in monitor.report() if r.name == name)
        assert row.calls == 2 and row.inputs_per_unit == 4 * 9 * 7
        zeros = int((recorders[name].outputs[1] == 0).sum())
        assert row.sparsity == zeros / recorders[name].outputs[1].numel()


def test_every_registry_member_has_a_firing_rule():
    import relukit

    assert {spec.name for spec in relukit.family()} == set(FIRING_RULES)


def test_relukit_modules_are_recognised_by_their_member_name():
    rnn = pytest.importorskip("relukit.nn")
    modules = getattr(rnn, "MODULES", {})
    assert modules, "relukit.nn.MODULES is empty"
    for member, cls in modules.items():
        assert cls.relukit_member == member
        assert member in FIRING_RULES
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


def test_nonnegative_shortcut_matches_the_registry_and_the_general_path():
    import relukit
    from relukit.diagnostics.monitor import _NONNEGATIVE

    ranges = {spec.name: spec.output_range for spec in relukit.family()}
    assert {m for m in _NONNEGATIVE if FIRING_RULES[m] == "output"} == _NONNEGATIVE
    assert all(ranges[m].startswith("[0") for m in _NONNEGATIVE)
    relu, identity = nn.ReLU(), nn.Identity()
    model = nn.Sequential(nn.Conv2d(2, 4, 3), relu, identity)
    with DeadUnitMonitor(model, modules={relu: "relu", identity: "output"}) as monitor:
        model(torch.randn(3, 2, 6, 6, generator=gen(0)))
    shortcut, general = monitor.report()
    assert (shortcut.units, shortcut.dead, shortcut.sparsity, shortcut.mean_firing_rate) == (
        general.units,
        general.dead,
        general.sparsity,
        general.mean_firing_rate,
    )
    assert torch.equal(monitor.firing_rates()["1"], monitor.firing_rates()["2"])
