"""convert/revert swap activation modules anywhere in a model and back, keeping everything else;
a converted model trains to bit-identical parameters."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import relukit.nn as rn
from relukit.nn.convert import TO_RELUKIT


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.PReLU(6)])
        self.heads = nn.ModuleDict(
            {"a": nn.Sequential(nn.Linear(6, 6), nn.GELU()), "b": nn.LeakyReLU(0.2)}
        )
        self.act = nn.Hardtanh(-2.0, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        x = self.act(x)
        return self.heads["a"](x) + self.heads["b"](x)


def mixed_model() -> nn.Module:
    torch.manual_seed(0)
    shared = nn.ReLU6()
    return nn.Sequential(
        Block(),
        shared,
        nn.Linear(6, 6),
        shared,
        nn.Sequential(nn.SiLU(), nn.ELU(0.5), nn.RReLU(0.1, 0.3), nn.Softplus(2.0)),
        nn.Linear(6, 2),
    )


def activation_types(model: nn.Module) -> dict[str, type]:
    return {
        name: type(m)
        for name, m in model.named_modules()
        if type(m) in TO_RELUKIT or type(m).__module__ == "relukit.nn.modules"
    }


def test_convert_and_revert_round_trip_a_mixed_model():
    model = mixed_model().eval()
    original = copy.deepcopy(model)
    prelu_weight = model[0].layers[3].weight
    x = torch.randn(5, 6)
    expected = original(x)

    converted, report = rn.convert(model)
    assert converted is model and not model.training
    kinds = activation_types(model)
    assert kinds and all(cls.__module__ == "relukit.nn.modules" for cls in kinds.values())
    assert {r.name for r in report.replaced} == set(kinds) - {"3"}  # "3" is "1", shared
    assert model[1] is model[3]
    assert model[0].layers[3].weight is prelu_weight
    assert list(model.state_dict()) == list(original.state_dict())
    assert torch.equal(model(x), expected)
    assert report.skipped == [] and report.functional_calls == []

    reverted, back = rn.revert(model)
    assert activation_types(reverted) == activation_types(original)
    assert reverted[0].layers[3].weight is prelu_weight and reverted[1] is reverted[3]
    assert len(back.replaced) == len(report.replaced)
    for (k, a), (_, b) in zip(
        reverted.state_dict().items(), original.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    assert torch.equal(reverted(x), expected)


def test_modes_and_settings_carry_over():
    model = nn.Sequential(nn.LeakyReLU(0.3, inplace=True), nn.RReLU(0.2, 0.4), nn.GELU("tanh"))
    model[1].eval()
    rn.convert(model)
    assert (model[0].negative_slope, model[0].inplace) == (0.3, True)
    assert (model[1].lower, model[1].upper, model[1].training) == (0.2, 0.4, False)
    assert model[0].training and model[2].approximate == "tanh"


def test_root_activation_is_replaced_and_returned():
    converted, report = rn.convert(nn.ReLU())
    assert type(converted) is rn.ReLU and report.replaced[0].name == ""


def test_members_limits_the_swap_and_unknown_names_are_refused():
    model = nn.Sequential(nn.ReLU(), nn.GELU(), nn.Tanh())
    _, report = rn.convert(model, members=["relu"])
    assert type(model[0]) is rn.ReLU and type(model[1]) is nn.GELU
    assert [s.reason for s in report.skipped] == ["member 'gelu' not in members"]
    with pytest.raises(ValueError, match=r"relukit\.nn\.convert: members: unknown activation"):
        rn.convert(model, members=["swishy"])
    _, report = rn.convert(model, members="swish")  # alias of silu: nothing to do
    assert report.replaced == []


def test_subclasses_and_refused_values_are_left_and_reported():
    class MyReLU(nn.ReLU):
        def forward(self, x):
            return super().forward(x) * 2

    model = nn.Sequential(MyReLU(), nn.RReLU(0.5, 0.1))
    _, report = rn.convert(model)
    assert type(model[0]) is MyReLU and type(model[1]) is nn.RReLU
    assert "subclass of torch.nn.ReLU" in report.skipped[0].reason
    assert "lower=0.5" in report.skipped[1].reason
    assert "left 2 module(s)" in str(report)


def test_revert_keeps_relukit_only_members():
    model = nn.Sequential(rn.CReLU(), rn.Maxout(), rn.ReLU())
    _, report = rn.revert(model)
    assert [type(m) for m in model] == [rn.CReLU, rn.Maxout, nn.ReLU]
    assert {s.reason for s in report.skipped} == {"no torch.nn counterpart, kept"}


class Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        x = F.relu(self.fc(x))
        x = torch.nn.functional.gelu(x)
        return x.relu() + torch.sigmoid(x)


def test_functional_activations_are_found_and_reported():
    model = nn.Sequential(Functional(), nn.TransformerEncoderLayer(8, 2, 16, batch_first=True))
    _, report = rn.convert(model)
    calls = {c.call: c for c in report.functional_calls}
    assert {"F.relu(...)", "torch.nn.functional.gelu(...)", "tensor method .relu()"} <= set(calls)
    assert calls["F.relu(...)"].modules == ("0",)
    assert calls["F.relu(...)"].location.endswith(f"test_convert.py:{_line_of('F.relu(self')}")
    transformer = [c for c in report.functional_calls if "attribute activation" in c.call]
    assert transformer and transformer[0].modules == ("1",)
    assert "cannot be swapped" in str(report)


def _line_of(text: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        lines = source.read().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line and "_line_of" not in line)


def test_convert_refuses_what_is_not_a_module():
    with pytest.raises(TypeError, match=r"relukit\.nn\.convert: model must be"):
        rn.convert(lambda x: x)


# ---------------------------------------------------------------------------------------------
# 100 training steps


def piecewise_model() -> nn.Module:
    return nn.Sequential(
        nn.Linear(16, 64),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(64, 64),
        nn.LeakyReLU(0.1),
        nn.Dropout(0.1),
        nn.Linear(64, 64),
        nn.PReLU(64),
        nn.Linear(64, 64),
        nn.RReLU(0.1, 0.3),
        nn.Linear(64, 64),
        nn.Hardtanh(-1.5, 1.5),
        nn.Linear(64, 64),
        nn.ReLU6(inplace=True),
        nn.Linear(64, 4),
    )


def train(model: nn.Module, steps: int) -> None:
    data = torch.Generator().manual_seed(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    torch.manual_seed(123)  # dropout and rrelu draw from here
    for _ in range(steps):
        x = torch.randn(32, 16, generator=data) * 2
        target = torch.randn(32, 4, generator=data)
        loss = F.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_hundred_steps_give_bit_identical_parameters():
    torch.manual_seed(0)
    theirs = piecewise_model()
    ours = rn.convert(copy.deepcopy(theirs)).model
    assert sum(type(m).__module__ == "relukit.nn.modules" for m in ours.modules()) == 6
    train(theirs, 100)
    train(ours, 100)
    changed = False
    for (name, a), (_, b) in zip(theirs.named_parameters(), ours.named_parameters(), strict=True):
        assert torch.equal(a, b), name
        changed |= not torch.equal(a, piecewise_model_initial()[name])
    assert changed


def piecewise_model_initial() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return dict(piecewise_model().named_parameters())


# ---------------------------------------------------------------------------------------------
# channels_last


def channels_last_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 4),
    ).to(memory_format=torch.channels_last)


@pytest.mark.parametrize("native_below", [0, 1 << 30], ids=["one-bit", "native"])
def test_channels_last_cnn_trains_bit_identical(native_below):
    rn.set_native_below(native_below)
    torch.manual_seed(0)
    theirs = channels_last_cnn()
    ours = rn.convert(copy.deepcopy(theirs)).model
    data = torch.Generator().manual_seed(1)
    models = (theirs, ours)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9) for m in models]
    for _ in range(20):
        x = torch.randn(8, 3, 16, 16, generator=data).contiguous(memory_format=torch.channels_last)
        target = torch.randint(0, 4, (8,), generator=data)
        for model, optimizer in zip(models, optimizers, strict=True):
            optimizer.zero_grad()
            F.cross_entropy(model(x), target).backward()
            optimizer.step()
    for (name, a), (_, b) in zip(theirs.named_parameters(), ours.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_channels_last_in_gives_channels_last_output_and_gradient():
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    y = rn.ReLU()(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    y.backward(torch.ones_like(y))
    assert x.grad.is_contiguous(memory_format=torch.channels_last)
