r"""The study's networks: one factory from activation name to module, one from spec to network.

Every network is a fully connected stack ``Linear → activation`` repeated ``depth`` times, then a
``Linear`` to the class scores. For a given seed every activation gets the same initial weights
wherever the shapes agree: layer :math:`\ell` draws from its own generator, seeded by
``(seed, ℓ)``, so a member that changes a layer's width (crelu doubles it, maxout divides it)
changes only the layers whose shapes it changes.

Initialisation: the hidden layers use the chosen init (:data:`~relukit.study.config.INITS`);
the symmetric ones start with zero biases, ``rai`` draws each neuron's weights and bias jointly
(:func:`relukit.diagnostics.init.randomized_asymmetric_`), ``torch`` is PyTorch's default
(uniform in :math:`\pm 1/\sqrt{\text{fan\_in}}`, bias too). The output layer is always
``lecun_normal`` with a zero bias, the same for every activation and init. ``bias_shift`` is
then added to every hidden bias (the dying scenario's push towards dead units).

Example:
    >>> model = build_model("relu", features=64, classes=10, depth=2, width=16, seed=0)
    >>> model
    Sequential(
      (0): Linear(in_features=64, out_features=16, bias=True)
      (1): ReLU()
      (2): Linear(in_features=16, out_features=16, bias=True)
      (3): ReLU()
      (4): Linear(in_features=16, out_features=10, bias=True)
    )
    >>> other = build_model("tanh", features=64, classes=10, depth=2, width=16, seed=0)
    >>> all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    True
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from relukit.diagnostics import init as inits
from relukit.family import MEMBERS

__all__ = ["activation_module", "build_model", "check_activation", "hidden_layers"]

# members without a relukit.nn module (the baselines) run torch.nn's, by the registry's name
_BASELINES: dict[str, type[nn.Module]] = {
    spec.name: getattr(nn, spec.torch_module)
    for spec in MEMBERS
    if spec.module is None and spec.torch_module is not None
}


def activation_module(name: str) -> nn.Module:
    """A fresh module computing the registry member ``name`` with its default parameters:
    :mod:`relukit.nn`'s module for a member of the family, ``torch.nn``'s for the baselines.

    Example:
        >>> activation_module("leaky_relu")
        LeakyReLU(negative_slope=0.01)
        >>> type(activation_module("relu")).__module__, type(activation_module("tanh")).__module__
        ('relukit.nn.modules', 'torch.nn.modules.activation')
    """
    from relukit.nn import MODULES

    cls = MODULES.get(name) or _BASELINES.get(name)
    if cls is None:
        available = ", ".join([*MODULES, *_BASELINES])
        raise ValueError(
            f"study: activation {name!r} has no module to build a network with "
            f"(available: {available})"
        )
    return cls()


def check_activation(name: str) -> None:
    """ValueError unless a network can be built with ``name``."""
    activation_module(name)


def _output_width(module: nn.Module, width: int) -> int:
    """Features ``module`` gives for ``width`` inputs (crelu doubles, maxout divides)."""
    with torch.no_grad():
        return int(module(torch.zeros(1, width)).shape[-1])


def _generator(seed: int, layer: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, layer]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def _initialise(linear: nn.Linear, init: str, generator: torch.Generator) -> None:
    if init == "rai":
        inits.randomized_asymmetric_(linear, generator=generator)
        return
    with torch.no_grad():
        if init == "torch":
            bound = 1.0 / math.sqrt(linear.in_features)
            draw = torch.rand(linear.weight.shape, generator=generator) * 2 - 1
            linear.weight.copy_(draw * bound)
            linear.bias.copy_((torch.rand(linear.bias.shape, generator=generator) * 2 - 1) * bound)
            return
        getattr(inits, f"{init}_")(linear.weight, generator=generator)
        linear.bias.zero_()


def build_model(
    activation: str,
    *,
    features: int,
    classes: int,
    depth: int,
    width: int,
    seed: int,
    init: str = "he_normal",
    bias_shift: float = 0.0,
) -> nn.Sequential:
    """The fully connected network of the study (see the module's docstring)."""
    layers: list[nn.Module] = []
    fan_in = features
    for index in range(depth):
        linear = nn.Linear(fan_in, width)
        _initialise(linear, init, _generator(seed, index))
        if bias_shift:
            with torch.no_grad():
                linear.bias.add_(bias_shift)
        module = activation_module(activation)
        layers += [linear, module]
        fan_in = _output_width(module, width)
    head = nn.Linear(fan_in, classes)
    _initialise(head, "lecun_normal", _generator(seed, depth))
    layers.append(head)
    return nn.Sequential(*layers)


def hidden_layers(model: nn.Sequential) -> list[nn.Linear]:
    """The hidden ``Linear`` layers (every one followed by an activation), in order."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return linears[:-1]
