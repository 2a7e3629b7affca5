r"""The study's networks: one factory from activation name to module, one from spec to network.

The MLP (scenarios compare, dying, depth) is a fully connected stack ``Linear → activation``
repeated ``depth`` times, then a ``Linear`` to the class scores. The CNN (scenario cnn, after
the four-layer network of Krizhevsky et al. 2012, Figure 1) is ``depth`` blocks
``Conv2d 3×3 → activation``, each followed by a 2×2 max-pool while the image is at least 4
pixels on a side, then a ``Linear`` to the class scores (:func:`build_cnn`).

For a given seed every activation gets the same initial weights wherever the shapes agree:
layer :math:`\ell` draws from its own generator, seeded by ``(seed, ℓ)``, so a member that
changes a layer's width (crelu doubles it, maxout divides it) changes only the layers whose
shapes it changes.

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
from relukit.errors import UserValueError
from relukit.family import MEMBERS

__all__ = [
    "activation_module",
    "backward_modes",
    "build_cnn",
    "build_model",
    "check_activation",
    "has_torch_module",
    "hidden_layers",
]

# members without a relukit.nn module (the baselines) run torch.nn's, by the registry's name
_BASELINES: dict[str, type[nn.Module]] = {
    spec.name: getattr(nn, spec.torch_module)
    for spec in MEMBERS
    if spec.module is None and spec.torch_module is not None
}


# every member's torch.nn module, by the registry's torch_module field
_TORCH: dict[str, type[nn.Module]] = {
    spec.name: getattr(nn, spec.torch_module) for spec in MEMBERS if spec.torch_module is not None
}


def has_torch_module(name: str) -> bool:
    """Whether ``torch.nn`` has a module for the member ``name`` (relu yes, crelu no)."""
    return name in _TORCH


def activation_module(name: str, modules: str = "relukit", backward: str = "input") -> nn.Module:
    """A fresh module computing the registry member ``name`` with its default parameters:
    :mod:`relukit.nn`'s module for a member of the family (``torch.nn``'s of the same name when
    ``modules`` is ``"torch"``), ``torch.nn``'s for the baselines. ``backward``: what the
    backward keeps, a mode of :data:`~relukit.study.config.BACKWARDS` (``"bits=2"``…), for
    the smooth members' relukit.nn modules.

    Example:
        >>> activation_module("leaky_relu")
        LeakyReLU(negative_slope=0.01)
        >>> type(activation_module("relu")).__module__, type(activation_module("tanh")).__module__
        ('relukit.nn.modules', 'torch.nn.modules.activation')
        >>> type(activation_module("relu", "torch")).__module__
        'torch.nn.modules.activation'
        >>> activation_module("gelu", backward="bits=2")
        GELU(approximate='none', backward='bits', bits=2)
    """
    from relukit.nn import MODULES

    cls = MODULES.get(name) or _BASELINES.get(name)
    if cls is None:
        available = ", ".join([*MODULES, *_BASELINES])
        raise UserValueError(
            f"study: activation {name!r} has no module to build a network with "
            f"(available: {available})"
        )
    if modules == "torch":
        if name not in _TORCH:
            raise UserValueError(f"study: activation {name!r} has no torch.nn module")
        cls = _TORCH[name]
    if backward == "input":
        return cls()
    from relukit.study.config import backward_mode

    mode, bits = backward_mode(backward)
    return cls(backward=mode, bits=bits)


def backward_modes(name: str, modes: tuple[str, ...]) -> tuple[str, ...]:
    """The modes of ``modes`` the memory scenario trains ``name`` with: all of them for a
    smooth member (a :class:`relukit.nn.modules.Smooth` module; ValueError naming the module,
    the mode and the member where one cannot work), ``("input",)`` for the others, trained for
    reference (relu and the piecewise-linear members keep one bit already; crelu, maxout and
    the baselines have no memory modes).

    Example:
        >>> backward_modes("silu", ("input", "bits=3")), backward_modes("relu", ("output",))
        (('input', 'bits=3'), ('input',))
    """
    from relukit.nn import MODULES
    from relukit.nn.modules import Smooth

    if not issubclass(MODULES.get(name, nn.Identity), Smooth):
        return ("input",)
    for mode in modes:
        activation_module(name, backward=mode)
    return modes


def check_activation(name: str, *, elementwise: bool = False) -> None:
    """ValueError unless a network can be built with ``name`` (with ``elementwise``: a CNN,
    whose activations must keep their input's shape)."""
    module = activation_module(name)
    if elementwise:
        with torch.no_grad():
            shape = tuple(module(torch.zeros(1, 2, 2, 2)).shape)
        if shape != (1, 2, 2, 2):
            raise UserValueError(
                f"study: activation {name!r} changes the shape of its input; the cnn scenario "
                "takes elementwise activations only"
            )


def _output_width(module: nn.Module, width: int) -> int:
    """Features ``module`` gives for ``width`` inputs (crelu doubles, maxout divides)."""
    with torch.no_grad():
        return int(module(torch.zeros(1, width)).shape[-1])


def _generator(seed: int, layer: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, layer]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def _initialise(linear: nn.Linear | nn.Conv2d, init: str, generator: torch.Generator) -> None:
    if init == "rai":
        inits.randomized_asymmetric_(linear, generator=generator)
        return
    with torch.no_grad():
        if init == "torch":
            bound = 1.0 / math.sqrt(linear.weight[0].numel())
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
    modules: str = "relukit",
    backward: str = "input",
) -> nn.Sequential:
    """The fully connected network of the study (see the module's docstring); ``backward``:
    the activations' memory mode (:func:`activation_module`)."""
    layers: list[nn.Module] = []
    fan_in = features
    for index in range(depth):
        linear = nn.Linear(fan_in, width)
        _initialise(linear, init, _generator(seed, index))
        if bias_shift:
            with torch.no_grad():
                linear.bias.add_(bias_shift)
        module = activation_module(activation, modules, backward)
        layers += [linear, module]
        fan_in = _output_width(module, width)
    head = nn.Linear(fan_in, classes)
    _initialise(head, "lecun_normal", _generator(seed, depth))
    layers.append(head)
    return nn.Sequential(*layers)


def build_cnn(
    activation: str,
    *,
    shape: tuple[int, ...],
    classes: int,
    depth: int,
    width: int,
    seed: int,
    init: str = "he_normal",
    bias_shift: float = 0.0,
    modules: str = "relukit",
    backward: str = "input",
) -> nn.Sequential:
    """The convolutional network of the cnn scenario for rows of ``shape`` = (C, H, W), given
    flattened: ``depth`` blocks ``Conv2d(3×3, padding 1) → activation [→ MaxPool2d(2)]`` of
    ``width`` channels (pooled while height and width are ≥ 4), then ``Linear`` to the classes.
    Layer ℓ draws its initial weights from the generator of ``(seed, ℓ)``, as in
    :func:`build_model`.

    Example:
        >>> model = build_cnn("relu", shape=(1, 8, 8), classes=10, depth=3, width=16, seed=0)
        >>> [type(m).__name__ for m in model]  # doctest: +NORMALIZE_WHITESPACE
        ['Unflatten', 'Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d',
         'ReLU', 'Flatten', 'Linear']
        >>> model(torch.zeros(5, 64)).shape
        torch.Size([5, 10])
    """
    channels, height, side = shape
    layers: list[nn.Module] = [nn.Unflatten(1, (channels, height, side))]
    for index in range(depth):
        conv = nn.Conv2d(channels, width, kernel_size=3, padding=1)
        _initialise(conv, init, _generator(seed, index))
        if bias_shift:
            with torch.no_grad():
                conv.bias.add_(bias_shift)
        layers += [conv, activation_module(activation, modules, backward)]
        channels = width
        if min(height, side) >= 4:
            layers.append(nn.MaxPool2d(2))
            height, side = height // 2, side // 2
    head = nn.Linear(channels * height * side, classes)
    _initialise(head, "lecun_normal", _generator(seed, depth))
    layers += [nn.Flatten(), head]
    return nn.Sequential(*layers)


def hidden_layers(model: nn.Sequential) -> list[nn.Linear]:
    """The hidden ``Linear`` layers (every one followed by an activation), in order."""
    linears = [m for m in model if isinstance(m, nn.Linear)]
    return linears[:-1]
