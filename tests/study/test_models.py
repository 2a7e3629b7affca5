"""The study's networks: relukit.nn modules, the same initial weights per seed wherever the shapes
allow, the inits and the bias shift."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import relukit.nn
from relukit.study.models import activation_module, build_model, hidden_layers

SHAPE = {"features": 12, "classes": 3, "depth": 3, "width": 8}


def _linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model if isinstance(m, nn.Linear)]


def test_family_members_come_from_relukit_nn_and_baselines_from_torch():
    assert isinstance(activation_module("relu"), relukit.nn.ReLU)
    assert activation_module("gelu").relukit_member == "gelu"
    assert type(activation_module("sigmoid")) is nn.Sigmoid
    with pytest.raises(ValueError, match="has no module"):
        activation_module("nope")


def test_same_seed_same_weights_across_activations():
    reference = _linears(build_model("relu", **SHAPE, seed=3))
    for name in ("prelu", "selu", "tanh", "squared_relu"):
        other = _linears(build_model(name, **SHAPE, seed=3))
        for a, b in zip(reference, other, strict=True):
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    different = _linears(build_model("relu", **SHAPE, seed=4))
    assert not torch.equal(reference[0].weight, different[0].weight)


def test_a_member_that_changes_widths_keeps_the_weights_whose_shapes_agree():
    reference = _linears(build_model("relu", **SHAPE, seed=0))
    crelu = _linears(build_model("crelu", **SHAPE, seed=0))
    assert crelu[1].in_features == 2 * SHAPE["width"]
    assert torch.equal(crelu[0].weight, reference[0].weight)
    maxout = _linears(build_model("maxout", **SHAPE, seed=0))
    assert maxout[1].in_features == SHAPE["width"] // 2
    output = build_model("maxout", **SHAPE, seed=0)(torch.zeros(5, SHAPE["features"]))
    assert output.shape == (5, SHAPE["classes"])


@pytest.mark.parametrize("init", ["he_normal", "he_uniform", "lecun_normal", "glorot_uniform"])
def test_symmetric_inits_start_with_zero_biases(init):
    model = build_model("relu", **SHAPE, seed=0, init=init)
    assert all(float(layer.bias.detach().abs().sum()) == 0 for layer in _linears(model))


def test_rai_draws_biases_and_the_shift_moves_every_hidden_bias():
    plain = build_model("relu", **SHAPE, seed=0, init="rai")
    assert any(float(layer.bias.detach().abs().sum()) > 0 for layer in hidden_layers(plain))
    shifted = build_model("relu", **SHAPE, seed=0, init="rai", bias_shift=-1.5)
    for a, b in zip(hidden_layers(plain), hidden_layers(shifted), strict=True):
        torch.testing.assert_close(b.bias, a.bias - 1.5)
    assert torch.equal(_linears(plain)[-1].bias, _linears(shifted)[-1].bias)


def test_torch_init_is_uniform_within_one_over_sqrt_fan_in():
    model = build_model("relu", **SHAPE, seed=0, init="torch")
    first = _linears(model)[0]
    bound = 1 / SHAPE["features"] ** 0.5
    assert (
        float(first.weight.detach().abs().max()) <= bound
        and float(first.bias.detach().abs().max()) <= bound
    )
