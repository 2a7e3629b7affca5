"""Diagnostics: dead units and sparsity, gradient flow, born-dead probability, initialisation.

* :class:`DeadUnitMonitor` — per-layer dead, rarely firing and sparse units, firing rates
  per unit, and mean, std, max |x| and kurtosis of any PyTorch model's activations, streaming
  through forward hooks (on every k-th batch if asked); :meth:`~DeadUnitMonitor.reinitialize_dead`
  revives dead units. The framework callbacks live in :mod:`relukit.integrations`.
* :func:`gradient_flow` — per-layer gradient norms of one backward pass.
* :func:`born_dead_probability` — Monte Carlo probability that a fresh deep ReLU network is
  dead, with a 95 % interval; :func:`born_dead_curve` and :func:`born_dead_grid` for many
  depths at once.
* :func:`plot_gradient_flow`, :func:`plot_born_dead` — figures.
* :mod:`relukit.diagnostics.init` — He, LeCun, Glorot and randomized asymmetric
  initialisation (also reachable as :mod:`relukit.init`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from relukit.diagnostics import DeadUnitMonitor
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> with DeadUnitMonitor(model) as monitor:
    ...     _ = model(torch.randn(8, 2, generator=torch.Generator().manual_seed(0)))
    >>> monitor.report()[0].units
    3
"""

from relukit.diagnostics.born_dead import (
    BornDeadEstimate,
    born_dead_curve,
    born_dead_grid,
    born_dead_probability,
    wilson_interval,
)
from relukit.diagnostics.figures import plot_activation_stats, plot_born_dead, plot_gradient_flow
from relukit.diagnostics.gradient_flow import (
    ActivationGrad,
    GradientFlow,
    WeightGrad,
    gradient_flow,
)
from relukit.diagnostics.init import randomized_asymmetric_
from relukit.diagnostics.monitor import (
    DeadUnitMonitor,
    Gate,
    LayerStats,
    Revival,
    find_activations,
    firing_rule,
    member_of,
)

__all__ = [
    "ActivationGrad",
    "BornDeadEstimate",
    "DeadUnitMonitor",
    "Gate",
    "GradientFlow",
    "LayerStats",
    "Revival",
    "WeightGrad",
    "born_dead_curve",
    "born_dead_grid",
    "born_dead_probability",
    "find_activations",
    "firing_rule",
    "gradient_flow",
    "member_of",
    "plot_activation_stats",
    "plot_born_dead",
    "plot_gradient_flow",
    "randomized_asymmetric_",
    "wilson_interval",
]
