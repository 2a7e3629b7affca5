"""Tests of gradient_flow and its plot helper."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from relukit.diagnostics import GradientFlow, gradient_flow, plot_gradient_flow


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mlp(act: type[nn.Module], depth: int = 3, width: int = 8) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(4, width), act()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), act()]
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def test_norms_equal_a_manual_backward():
    torch.manual_seed(0)
    model = mlp(nn.ReLU)
    x, y = torch.randn(16, 4, generator=gen(0)), torch.randn(16, 1, generator=gen(1))
    flow = gradient_flow(model, (x, y), nn.MSELoss())
    assert all(p.grad is None for p in model.parameters())  # .grad left alone

    # the same quantities by hand
    outputs: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}
    h = x
    for i, layer in enumerate(model):
        if isinstance(layer, nn.ReLU):
            h.retain_grad()
            inputs[str(i)] = h
            h = layer(h)
            h.retain_grad()
            outputs[str(i)] = h
        else:
            h = layer(h)
    loss = nn.functional.mse_loss(h, y)
    loss.backward()
    assert flow.loss == pytest.approx(loss.item())
    assert [w.name for w in flow.weights] == ["0.weight", "2.weight", "4.weight", "6.weight"]
    for w in flow.weights:
        param = model.get_parameter(w.name)
        assert w.grad_norm == pytest.approx(param.grad.norm().item(), rel=1e-6)
        assert w.weight_norm == pytest.approx(param.norm().item(), rel=1e-6)
        assert w.shape == tuple(param.shape)
    assert [a.name for a in flow.activations] == ["1", "3", "5"]
    for a in flow.activations:
        assert a.member == "relu" and a.calls == 1 and a.numel == 16 * 8
        assert a.grad_output_norm == pytest.approx(outputs[a.name].grad.norm().item(), rel=1e-6)
        assert a.grad_input_norm == pytest.approx(inputs[a.name].grad.norm().item(), rel=1e-6)
        assert a.grad_output_rms == pytest.approx(a.grad_output_norm / math.sqrt(128))


def test_sigmoid_gradients_vanish_relu_gradients_do_not():
    depth = 8
    x, y = torch.randn(64, 4, generator=gen(0)), torch.randn(64, 1, generator=gen(1))

    def spread(act: type[nn.Module]) -> float:
        torch.manual_seed(1)
        model = mlp(act, depth=depth, width=16)
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, generator=gen(2))
                nn.init.zeros_(m.bias)
        flow = gradient_flow(model, (x, y), nn.MSELoss())
        first, last = flow.activations[0], flow.activations[-1]
        for a in flow.activations:
            if a.member == "sigmoid":
                assert a.attenuation <= 0.25
        return first.grad_output_norm / last.grad_output_norm

    assert spread(nn.Sigmoid) < 1e-3  # the gradient shrinks by orders of magnitude
    assert spread(nn.ReLU) > 1e-2


def test_single_tensor_batch_inplace_activation_and_shared_module():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.b(self.act(self.a(x))))

    torch.manual_seed(2)
    model = Shared()
    x = torch.randn(5, 3, generator=gen(0))
    with torch.no_grad():  # gradient_flow turns gradients back on
        flow = gradient_flow(model, x, lambda out: out.square().sum())
    act = flow.activations[0]
    assert act.calls == 2 and act.numel == 30
    h1 = model.a(x)
    h1.retain_grad()
    r1 = torch.relu(h1)
    r1.retain_grad()
    h2 = model.b(r1)
    h2.retain_grad()
    r2 = torch.relu(h2)
    r2.retain_grad()
    r2.square().sum().backward()
    expected_out = math.sqrt(r1.grad.square().sum().item() + r2.grad.square().sum().item())
    expected_in = math.sqrt(h1.grad.square().sum().item() + h2.grad.square().sum().item())
    assert act.grad_output_norm == pytest.approx(expected_out, rel=1e-6)
    assert act.grad_input_norm == pytest.approx(expected_in, rel=1e-6)


def test_modules_argument_and_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    x = torch.ones(3, 2)
    flow = gradient_flow(model, x, lambda out: out.sum(), modules=["0"])
    assert [(a.name, a.member) for a in flow.activations] == [("0", "custom")]
    with pytest.raises(TypeError, match="gradient_flow: model"):
        gradient_flow("m", x, lambda o: o.sum())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="gradient_flow: batch"):
        gradient_flow(model, (x, x, x), lambda o: o.sum())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loss_fn"):
        gradient_flow(model, x, "mse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scalar"):
        gradient_flow(model, x, lambda o: o)
    with pytest.raises(ValueError, match="'nope'"):
        gradient_flow(model, x, lambda o: o.sum(), modules=["nope"])
    assert not model[1]._forward_hooks and not model[1]._forward_pre_hooks


def test_to_dict_and_plot(tmp_path):
    torch.manual_seed(3)
    x, y = torch.randn(8, 4, generator=gen(0)), torch.randn(8, 1, generator=gen(1))
    flows = {
        name: gradient_flow(mlp(act), (x, y), nn.MSELoss())
        for name, act in (("relu", nn.ReLU), ("sigmoid", nn.Sigmoid))
    }
    data = flows["relu"].to_dict()
    assert data["weights"][0]["shape"] == [8, 4] and len(data["activations"]) == 3
    fig = plot_gradient_flow(flows, title="relu vs sigmoid")
    assert isinstance(fig, Figure)
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 2
    assert list(tmp_path.iterdir()) == []
    target = tmp_path / "flow.png"
    plot_gradient_flow(flows["relu"], path=target)
    assert target.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TypeError, match="plot_gradient_flow"):
        plot_gradient_flow({"x": 1})  # type: ignore[dict-item]
    assert isinstance(flows["relu"], GradientFlow)
