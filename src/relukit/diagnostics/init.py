r"""Weight initialisations for ReLU networks, including the randomized asymmetric one.

Four symmetric schemes, the ones the born-dead study compares, and the randomized asymmetric
initialisation (RAI) of Lu, Shin, Su and Karniadakis (2019), which was designed to keep deep,
narrow ReLU networks from being born dead.

=================  ==========================================================
name               distribution of every weight (``fan_in``, ``fan_out`` as in PyTorch)
=================  ==========================================================
``he_normal``      :math:`\mathcal N(0,\ 2/\text{fan\_in})`
``he_uniform``     :math:`\mathcal U(-a, a)`, :math:`a = \sqrt{6/\text{fan\_in}}`
``lecun_normal``   :math:`\mathcal N(0,\ 1/\text{fan\_in})`
``glorot_uniform`` :math:`\mathcal U(-a, a)`, :math:`a = \sqrt{6/(\text{fan\_in}+\text{fan\_out})}`
``rai``            see :func:`randomized_asymmetric_`
=================  ==========================================================

Randomness always comes from an explicit ``generator``: a :class:`torch.Generator` or an ``int``
seed. There is deliberately no default, so two layers never silently receive the same draw and
nothing reads PyTorch's global random state.

Example:
    >>> import torch
    >>> from relukit.diagnostics.init import he_normal_, randomized_asymmetric_
    >>> layer = torch.nn.Linear(4, 3)
    >>> _ = randomized_asymmetric_(layer, generator=0)
    >>> bool(torch.all(torch.cat([layer.weight, layer.bias[:, None]], 1).max(1).values > 0))
    True
    >>> w = he_normal_(torch.empty(3, 4), generator=torch.Generator().manual_seed(1))
    >>> tuple(w.shape)
    (3, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy import special
from torch import nn

__all__ = [
    "INITS",
    "RAI_BETA_PARAMETERS",
    "RAI_SIGMA_SCALE",
    "glorot_uniform_",
    "he_normal_",
    "he_uniform_",
    "lecun_normal_",
    "randomized_asymmetric_",
    "sample_layer",
]

INITS: tuple[str, ...] = ("he_normal", "he_uniform", "lecun_normal", "glorot_uniform", "rai")
"""Names accepted wherever an initialisation is chosen by name."""

RAI_BETA_PARAMETERS: tuple[float, float] = (2.0, 1.0)
"""The asymmetric distribution :math:`P = \\mathrm{Beta}(2, 1)` used by the paper (Section 5)."""

RAI_SIGMA_SCALE: float = 0.6007
"""Standard deviation of RAI's symmetric part is ``RAI_SIGMA_SCALE / sqrt(fan_in)`` for
:math:`P = \\mathrm{Beta}(2, 1)`: the value of the paper's second-moment design for that choice of
:math:`P` (Section 5), as used by the widely copied reference implementation ``RAI(fan_in,
fan_out)``."""

BiasMode = Literal["zeros", "same"]


def _as_generator(generator: torch.Generator | int, function: str) -> torch.Generator:
    """Return ``generator`` itself, or a fresh CPU generator seeded with the given ``int``."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int | np.integer):
        raise TypeError(
            f"{function}: generator must be a torch.Generator or an int seed, "
            f"got {type(generator).__name__} {generator!r}"
        )
    if generator < 0:
        raise ValueError(f"{function}: generator seed must be >= 0, got {generator!r}")
    return torch.Generator().manual_seed(int(generator))


def _check_init(init: object, function: str) -> str:
    if not isinstance(init, str):
        raise TypeError(f"{function}: init must be a str, got {type(init).__name__} {init!r}")
    if init not in INITS:
        raise ValueError(f"{function}: init must be one of {INITS}, got {init!r}")
    return init


def _fans(weight: torch.Tensor, function: str) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight laid out as ``(out, in, *kernel)``, as PyTorch counts."""
    if weight.ndim < 2:
        raise ValueError(
            f"{function}: weight must have at least 2 dimensions (out, in, ...), "
            f"got shape {tuple(weight.shape)}"
        )
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _symmetric_scale(init: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation (normal) or half-width (uniform) of a symmetric init."""
    if init == "he_normal":
        return math.sqrt(2.0 / fan_in)
    if init == "he_uniform":
        return math.sqrt(6.0 / fan_in)
    if init == "lecun_normal":
        return math.sqrt(1.0 / fan_in)
    return math.sqrt(6.0 / (fan_in + fan_out))  # glorot_uniform


def _draw_symmetric(
    init: str,
    shape: Sequence[int],
    fan_in: int,
    fan_out: int,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> torch.Tensor:
    scale = _symmetric_scale(init, fan_in, fan_out)
    device = generator.device
    if init.endswith("_normal"):
        return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device) * scale
    uniform = torch.rand(tuple(shape), generator=generator, dtype=dtype, device=device)
    return (2.0 * uniform - 1.0) * scale


def _draw_beta(
    shape: Sequence[int],
    alpha: float,
    beta: float,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Beta(alpha, beta) samples by inverse transform of uniforms from ``generator``."""
    u = torch.rand(tuple(shape), generator=generator, dtype=torch.float64, device=generator.device)
    x = special.betaincinv(alpha, beta, u.cpu().numpy())
    return torch.as_tensor(x, dtype=dtype, device=generator.device)


def _draw_rai(
    shape: Sequence[int],
    generator: torch.Generator,
    dtype: torch.dtype,
    alpha: float,
    beta: float,
    sigma: float,
) -> torch.Tensor:
    """RAI draw of ``shape = (..., rows, cols)``: one Beta entry per row, the rest normal."""
    device = generator.device
    v = torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device) * sigma
    *lead, cols = shape
    k = torch.randint(cols, tuple(lead), generator=generator, device=device)
    xi = _draw_beta(lead, alpha, beta, generator, dtype)
    v.scatter_(-1, k.unsqueeze(-1), xi.unsqueeze(-1))
    return v


def _rai_sigma(sigma: float | None, alpha: float, beta: float, fan_in: int, function: str) -> float:
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(
                f"{function}: {name} must be a float, got {type(value).__name__} {value!r}"
            )
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{function}: {name} must be finite and > 0, got {value!r}")
    if sigma is None:
        if (float(alpha), float(beta)) != RAI_BETA_PARAMETERS:
            raise ValueError(
                f"{function}: sigma must be given when P is not Beta(2, 1) (the paper designs "
                f"sigma for each P), got alpha={alpha!r}, beta={beta!r}, sigma=None"
            )
        return RAI_SIGMA_SCALE / math.sqrt(fan_in)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float):
        raise TypeError(f"{function}: sigma must be a float, got {type(sigma).__name__} {sigma!r}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"{function}: sigma must be finite and >= 0, got {sigma!r}")
    return float(sigma)


def sample_layer(
    init: str,
    rows: int,
    fan_in: int,
    *,
    generator: torch.Generator | int,
    fan_out: int | None = None,
    batch: Sequence[int] = (),
    bias: BiasMode | None = "zeros",
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Draw the weights (and bias) of ``rows`` neurons of a fully connected layer.

    Returns ``(W, b)`` with ``W`` of shape ``(*batch, rows, fan_in)`` and ``b`` of shape
    ``(*batch, rows)`` (``None`` when ``bias`` is ``None``). A batch of independent layers is
    drawn in one call, which is how :func:`~relukit.diagnostics.born_dead_probability`
    vectorises its trials.

    For the symmetric inits, ``bias="zeros"`` gives :math:`b = 0` and ``bias="same"`` draws
    :math:`b` from the weights' distribution. For ``init="rai"`` the bias is always part of the
    joint RAI draw of each neuron's row :math:`[W_i, b_i]` (both ``"zeros"`` and ``"same"``),
    exactly as the paper designs it; ``bias=None`` applies RAI to :math:`W` alone.

    Args:
        init: one of :data:`INITS`.
        rows: number of neurons to draw.
        fan_in: number of inputs of each neuron.
        generator: a :class:`torch.Generator` or an ``int`` seed.
        fan_out: output width for ``glorot_uniform`` (defaults to ``rows``).
        batch: leading batch shape.
        bias: ``"zeros"``, ``"same"`` or ``None`` (no bias).
        dtype: floating dtype of the result.

    Example:
        >>> w, b = sample_layer("he_normal", 3, 5, generator=0, batch=(2,))
        >>> tuple(w.shape), tuple(b.shape), float(b.abs().sum())
        ((2, 3, 5), (2, 3), 0.0)
        >>> w, b = sample_layer("rai", 4, 2, generator=0)
        >>> bool(torch.all(torch.cat([w, b[:, None]], 1).max(1).values > 0))
        True
    """
    fn = "sample_layer"
    init = _check_init(init, fn)
    for name, value in (("rows", rows), ("fan_in", fan_in)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
        if value < 1:
            raise ValueError(f"{fn}: {name} must be >= 1, got {value!r}")
    if fan_out is None:
        fan_out = rows
    if bias not in ("zeros", "same", None):
        raise ValueError(f"{fn}: bias must be 'zeros', 'same' or None, got {bias!r}")
    gen = _as_generator(generator, fn)
    batch = tuple(batch)
    if init == "rai":
        cols = fan_in + (0 if bias is None else 1)
        sigma = _rai_sigma(None, *RAI_BETA_PARAMETERS, fan_in, fn)
        v = _draw_rai((*batch, rows, cols), gen, dtype, *RAI_BETA_PARAMETERS, sigma)
        if bias is None:
            return v, None
        return v[..., :fan_in].contiguous(), v[..., fan_in].contiguous()
    w = _draw_symmetric(init, (*batch, rows, fan_in), fan_in, fan_out, gen, dtype)
    if bias is None:
        return w, None
    if bias == "zeros":
        return w, torch.zeros((*batch, rows), dtype=dtype, device=gen.device)
    return w, _draw_symmetric(init, (*batch, rows), fan_in, fan_out, gen, dtype)


def _fill_(tensor: torch.Tensor, init: str, generator: torch.Generator | int, fn: str):
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(
            f"{fn}: tensor must be a torch.Tensor, got {type(tensor).__name__} {tensor!r}"
        )
    fan_in, fan_out = _fans(tensor, fn)
    gen = _as_generator(generator, fn)
    values = _draw_symmetric(init, tensor.shape, fan_in, fan_out, gen, torch.float32)
    with torch.no_grad():
        tensor.copy_(values.to(device=tensor.device, dtype=tensor.dtype))
    return tensor


def he_normal_(tensor: torch.Tensor, *, generator: torch.Generator | int) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`\mathcal N(0, 2/\text{fan\_in})` (He et al., 2015).

    ``tensor`` is laid out ``(out, in, *kernel)``; ``fan_in = in * prod(kernel)``.

    Example:
        >>> w = he_normal_(torch.empty(1000, 50), generator=0)
        >>> round(float(w.var() * 50), 1)
        2.0
    """
    return _fill_(tensor, "he_normal", generator, "he_normal_")


def he_uniform_(tensor: torch.Tensor, *, generator: torch.Generator | int) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`\mathcal U(\pm\sqrt{6/\text{fan\_in}})` (He, 2015).

    Example:
        >>> w = he_uniform_(torch.empty(10, 6), generator=0)
        >>> bool(w.abs().max() <= 1.0)
        True
    """
    return _fill_(tensor, "he_uniform", generator, "he_uniform_")


def lecun_normal_(tensor: torch.Tensor, *, generator: torch.Generator | int) -> torch.Tensor:
    r"""Fill ``tensor`` in place from :math:`\mathcal N(0, 1/\text{fan\_in})` (LeCun et al., 1998).

    Example:
        >>> w = lecun_normal_(torch.empty(1000, 50), generator=0)
        >>> round(float(w.var() * 50), 1)
        1.0
    """
    return _fill_(tensor, "lecun_normal", generator, "lecun_normal_")


def glorot_uniform_(tensor: torch.Tensor, *, generator: torch.Generator | int) -> torch.Tensor:
    r"""Fill ``tensor`` from :math:`\mathcal U(\pm\sqrt{6/(\text{fan\_in}+\text{fan\_out})})`.

    Glorot and Bengio (2010).

    Example:
        >>> w = glorot_uniform_(torch.empty(3, 3), generator=0)
        >>> bool(w.abs().max() <= 1.0)
        True
    """
    return _fill_(tensor, "glorot_uniform", generator, "glorot_uniform_")


def randomized_asymmetric_(
    layer: nn.Module,
    *,
    generator: torch.Generator | int,
    alpha: float = 2.0,
    beta: float = 1.0,
    sigma: float | None = None,
) -> nn.Module:
    r"""Randomized asymmetric initialisation (RAI) of a layer, in place.

    Lu, Shin, Su and Karniadakis, "Dying ReLU and Initialization: Theory and Numerical
    Examples", Commun. Comput. Phys. 28 (2020), arXiv:1903.06733, Section 5. For each neuron
    :math:`i` write its incoming parameters as one row
    :math:`V_i = [W_i,\ b_i] \in \mathbb R^{\text{fan\_in}+1}`. RAI

    1. picks one index :math:`k_i` uniformly at random from the :math:`\text{fan\_in}+1`
       entries of the row,
    2. draws :math:`V_{i,k_i} \sim P`, an asymmetric distribution on the positive reals, here
       :math:`P = \mathrm{Beta}(\alpha, \beta)` with the paper's choice
       :math:`\alpha = 2,\ \beta = 1`,
    3. draws every other entry from the symmetric :math:`Q = \mathcal N(0, \sigma^2)`, where
       the paper designs :math:`\sigma` from a second-moment analysis of the layer map for the
       chosen :math:`P`; for :math:`\mathrm{Beta}(2, 1)` this gives
       :math:`\sigma = 0.6007/\sqrt{\text{fan\_in}}` (:data:`RAI_SIGMA_SCALE`).

    The positive entry makes every neuron active on a half-space that is more likely to
    contain the (non-negative) outputs of the layer below, and when it lands on the bias it
    keeps the neuron alive even where its inputs are all zero; this is what lowers the
    probability that a deep, narrow network is born dead (see
    :func:`~relukit.diagnostics.born_dead_probability`). The equation numbers of the published
    version could not be checked here, hence the reference to Section 5 only.

    ``layer`` is any module with a ``weight`` laid out ``(out, in, *kernel)`` — ``nn.Linear``,
    ``nn.Conv1d/2d/3d`` — and an optional ``bias``; each output unit is one neuron with
    ``fan_in = in * prod(kernel)``. Without a bias, RAI is applied to :math:`W_i` alone.

    Args:
        layer: the module to initialise; returned for chaining.
        generator: a :class:`torch.Generator` or an ``int`` seed (required).
        alpha, beta: parameters of :math:`P = \mathrm{Beta}(\alpha, \beta)`.
        sigma: standard deviation of :math:`Q`; required unless :math:`P` is Beta(2, 1).

    Example:
        >>> import torch
        >>> layer = torch.nn.Linear(100, 400)
        >>> _ = randomized_asymmetric_(layer, generator=torch.Generator().manual_seed(0))
        >>> v = torch.cat([layer.weight, layer.bias[:, None]], 1)
        >>> big = (v > 4 * 0.6007 / 10).sum(1)  # entries beyond 4 sigma: one per row, mostly
        >>> bool((big == 1).float().mean() > 0.85)
        True
    """
    fn = "randomized_asymmetric_"
    if not isinstance(layer, nn.Module):
        raise TypeError(f"{fn}: layer must be a torch.nn.Module, got {type(layer).__name__}")
    weight = getattr(layer, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{fn}: layer must have a tensor 'weight', got {type(layer).__name__}")
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        raise TypeError(f"{fn}: transposed convolutions are not supported, got {layer!r}")
    fan_in, _ = _fans(weight, fn)
    sig = _rai_sigma(sigma, alpha, beta, fan_in, fn)
    gen = _as_generator(generator, fn)
    bias = getattr(layer, "bias", None)
    has_bias = isinstance(bias, torch.Tensor)
    rows = weight.shape[0]
    v = _draw_rai(
        (rows, fan_in + int(has_bias)), gen, torch.float32, float(alpha), float(beta), sig
    )
    with torch.no_grad():
        weight.copy_(v[:, :fan_in].reshape(weight.shape).to(weight.device, weight.dtype))
        if has_bias:
            bias.copy_(v[:, fan_in].to(bias.device, bias.dtype))
    return layer
