"""Tests of the initialisations, RAI in particular."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats
from torch import nn

import relukit.init
from relukit.diagnostics import init as dinit
from relukit.diagnostics.init import (
    RAI_SIGMA_SCALE,
    glorot_uniform_,
    he_normal_,
    he_uniform_,
    lecun_normal_,
    randomized_asymmetric_,
    sample_layer,
)


def test_public_module_reexports():
    assert relukit.init.randomized_asymmetric_ is randomized_asymmetric_
    assert set(relukit.init.__all__) <= set(dir(dinit))


@pytest.mark.parametrize(
    ("fill", "variance"),
    [
        (he_normal_, lambda fi, fo: 2 / fi),
        (lecun_normal_, lambda fi, fo: 1 / fi),
        (he_uniform_, lambda fi, fo: 2 / fi),  # U(±a) has variance a²/3 = 2/fan_in
        (glorot_uniform_, lambda fi, fo: 2 / (fi + fo)),
    ],
)
def test_symmetric_inits_have_their_variance_and_fans(fill, variance):
    w = fill(torch.empty(300, 20, 3, 3), generator=0)  # fan_in 180, fan_out 2700
    assert abs(float(w.mean())) < 0.01 * math.sqrt(variance(180, 2700))
    assert float(w.var()) == pytest.approx(variance(180, 2700), rel=0.02)
    if fill in (he_uniform_, glorot_uniform_):
        bound = math.sqrt(3 * variance(180, 2700))
        assert float(w.abs().max()) <= bound
        assert float(w.abs().max()) > 0.99 * bound


def test_generator_is_explicit_and_deterministic():
    a = he_normal_(torch.empty(4, 4), generator=5)
    b = he_normal_(torch.empty(4, 4), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(5)
    assert not torch.equal(
        he_normal_(torch.empty(4, 4), generator=g), he_normal_(torch.empty(4, 4), generator=g)
    )
    with pytest.raises(TypeError):
        he_normal_(torch.empty(2, 2))  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="he_normal_: generator must be"):
        he_normal_(torch.empty(2, 2), generator=True)
    with pytest.raises(ValueError, match="seed must be >= 0, got -3"):
        he_normal_(torch.empty(2, 2), generator=-3)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        he_normal_(torch.empty(3), generator=0)
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        he_normal_([1.0, 2.0], generator=0)  # type: ignore[arg-type]


def rows_of(layer: nn.Module) -> torch.Tensor:
    w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    if layer.bias is None:
        return w
    return torch.cat([w, layer.bias.detach()[:, None]], dim=1)


def test_rai_structure_one_beta_entry_per_row_at_a_uniform_position():
    layer = nn.Linear(4, 6000)
    randomized_asymmetric_(layer, generator=0, sigma=0.0)  # isolate the asymmetric entries
    v = rows_of(layer)
    nonzero = v != 0
    assert torch.all(nonzero.sum(dim=1) == 1)
    values = v[nonzero]
    assert bool(torch.all((values > 0) & (values <= 1)))
    assert stats.kstest(values.numpy(), stats.beta(2, 1).cdf).pvalue > 0.01
    positions = nonzero.float().argmax(dim=1)
    counts = torch.bincount(positions, minlength=5).numpy()
    assert stats.chisquare(counts).pvalue > 0.01  # uniform over the 4 weights and the bias


def test_rai_default_sigma_matches_the_second_moment():
    fan_in = 400
    layer = nn.Linear(fan_in, 3000)
    randomized_asymmetric_(layer, generator=1)
    v = rows_of(layer).double()
    sigma2 = RAI_SIGMA_SCALE**2 / fan_in
    expected = (fan_in * sigma2 + 0.5) / (fan_in + 1)  # E[Beta(2,1)^2] = 1/2
    assert float(v.square().mean()) == pytest.approx(expected, rel=0.02)
    # drop each row's largest entry (almost always the Beta one): the rest is N(0, sigma^2)
    rest = v.sort(dim=1).values[:, :-1]
    assert float(rest.std()) == pytest.approx(math.sqrt(sigma2), rel=0.02)


def test_rai_on_conv_without_bias_and_on_other_parameters():
    conv = nn.Conv2d(3, 500, 3, bias=False)
    randomized_asymmetric_(conv, generator=2, sigma=0.0)
    assert torch.all((rows_of(conv) != 0).sum(dim=1) == 1)  # fan_in = 27, no bias column
    layer = nn.Linear(3, 200)
    randomized_asymmetric_(layer, generator=3, alpha=5.0, beta=1.0, sigma=0.0)
    assert float(rows_of(layer).sum(dim=1).mean()) == pytest.approx(5 / 6, abs=0.03)
    with pytest.raises(ValueError, match="sigma must be given"):
        randomized_asymmetric_(layer, generator=0, alpha=3.0)
    with pytest.raises(ValueError, match="alpha must be finite and > 0, got -1"):
        randomized_asymmetric_(layer, generator=0, alpha=-1.0, sigma=0.1)
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        randomized_asymmetric_(layer, generator=0, sigma=-0.1)
    with pytest.raises(TypeError, match="randomized_asymmetric_: layer"):
        randomized_asymmetric_(torch.empty(3, 3), generator=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tensor 'weight'"):
        randomized_asymmetric_(nn.ReLU(), generator=0)
    with pytest.raises(TypeError, match="transposed"):
        randomized_asymmetric_(nn.ConvTranspose2d(2, 2, 3), generator=0)


def test_rai_keeps_dtype_and_is_deterministic():
    a = randomized_asymmetric_(nn.Linear(5, 5).double(), generator=9)
    b = randomized_asymmetric_(nn.Linear(5, 5).double(), generator=9)
    assert a.weight.dtype == torch.float64
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)


def test_sample_layer_shapes_and_bias_modes():
    w, b = sample_layer("glorot_uniform", 3, 7, generator=0, fan_out=100, batch=(2, 5))
    assert w.shape == (2, 5, 3, 7) and b.shape == (2, 5, 3) and torch.all(b == 0)
    assert float(w.abs().max()) <= math.sqrt(6 / 107)
    _, b = sample_layer("lecun_normal", 3, 7, generator=0, bias="same", batch=(1000,))
    assert float(b.var()) == pytest.approx(1 / 7, rel=0.1)
    w, b = sample_layer("rai", 2, 3, generator=0, bias=None)
    assert b is None and w.shape == (2, 3)
    w, b = sample_layer("rai", 1000, 3, generator=0, dtype=torch.float64)
    assert w.dtype == b.dtype == torch.float64
    assert torch.all(torch.cat([w, b[:, None]], 1).max(dim=1).values > 0)
    with pytest.raises(ValueError, match="sample_layer: init must be one of"):
        sample_layer("orthogonal", 2, 2, generator=0)
    with pytest.raises(ValueError, match="rows must be >= 1, got 0"):
        sample_layer("he_normal", 0, 2, generator=0)
    with pytest.raises(ValueError, match="bias must be"):
        sample_layer("he_normal", 2, 2, generator=0, bias="ones")  # type: ignore[arg-type]
