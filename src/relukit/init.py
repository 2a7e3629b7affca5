"""Weight initialisations for ReLU networks (public face of :mod:`relukit.diagnostics.init`).

Example:
    >>> import torch
    >>> import relukit.init
    >>> layer = relukit.init.randomized_asymmetric_(torch.nn.Linear(8, 8), generator=0)
    >>> tuple(layer.weight.shape)
    (8, 8)
"""

from relukit.diagnostics import init as _implementation
from relukit.diagnostics.init import *  # noqa: F403 (the public names, listed once, there)

__all__ = list(_implementation.__all__)
