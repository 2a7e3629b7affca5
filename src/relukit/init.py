"""Weight initialisations for ReLU networks (public face of :mod:`relukit.diagnostics.init`).

Example:
    >>> import torch
    >>> import relukit.init
    >>> layer = relukit.init.randomized_asymmetric_(torch.nn.Linear(8, 8), generator=0)
    >>> tuple(layer.weight.shape)
    (8, 8)
"""

from relukit.diagnostics.init import (
    INITS,
    RAI_BETA_PARAMETERS,
    RAI_SIGMA_SCALE,
    glorot_uniform_,
    he_normal_,
    he_uniform_,
    lecun_normal_,
    randomized_asymmetric_,
    sample_layer,
)

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
