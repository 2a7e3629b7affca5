r"""Born dead: the probability that a freshly initialised deep ReLU network is dead.

A fully connected ReLU network with ``depth`` hidden layers of ``width`` units,

.. math::
    h^0 = x,\qquad h^\ell = \max(0,\ W^\ell h^{\ell-1} + b^\ell),\quad \ell = 1,\dots,\text{depth},

is *dead at the inputs* :math:`x_1,\dots,x_N` when some hidden layer :math:`\ell` outputs
:math:`h^\ell(x_n) = 0` for every unit and every input point. Every layer above then sees the
same constant, the network's output is constant on the inputs and every weight below receives
zero gradient: training cannot start. Lu, Shin, Su and Karniadakis (2019, arXiv:1903.06733)
prove that this happens with probability tending to 1 as the depth grows at fixed width, for
symmetric initialisations, and propose the randomized asymmetric initialisation
(:func:`~relukit.diagnostics.init.randomized_asymmetric_`) to lower it.

:func:`born_dead_probability` estimates the probability by Monte Carlo over independent
initialisations; ``dead_count`` of ``trials`` draws were dead, the estimate is their ratio and
the 95 % interval is Wilson's score interval,

.. math::
    \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}
         {1 + \frac{z^2}{n}},\qquad z = 1.95996,

which stays inside [0, 1] and is not empty when no or every draw died. The trials are
simulated together with batched matrix products in float64; a trial is dropped as soon as one
of its layers is dead. The first ``d`` layers of a depth-``D`` draw are a depth-``d`` draw, so
:func:`born_dead_curve` gets every depth up to ``max_depth`` from one simulation, and
``born_dead_curve(w, D, ...)[d - 1]`` equals ``born_dead_probability(w, d, ...)`` exactly for the
same seed.

Example:
    >>> import numpy as np
    >>> from relukit.diagnostics import born_dead_probability
    >>> x = np.random.default_rng(0).uniform(-1, 1, size=(100, 1))
    >>> deep = born_dead_probability(2, 30, x, trials=400, seed=0)
    >>> shallow = born_dead_probability(2, 1, x, trials=400, seed=0)
    >>> shallow.probability < deep.probability
    True
    >>> deep.ci_low <= deep.probability <= deep.ci_high
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from relukit.diagnostics.init import INITS, sample_layer

__all__ = [
    "BornDeadEstimate",
    "born_dead_curve",
    "born_dead_grid",
    "born_dead_probability",
    "wilson_interval",
]

_Z95 = 1.959963984540054
_CHUNK_ELEMENTS = 1 << 22  # trials x points x width held at once, per chunk


@dataclass(frozen=True)
class BornDeadEstimate:
    """A Monte Carlo estimate of the born-dead probability.

    Attributes:
        width, depth: the network's hidden width and number of hidden layers.
        init, bias_init: the initialisation.
        trials: independent initialisations drawn.
        dead_count: how many of them were dead at all the input points.
        probability: ``dead_count / trials``.
        ci_low, ci_high: the 95 % Wilson score interval.
    """

    width: int
    depth: int
    init: str
    bias_init: str
    trials: int
    dead_count: int
    probability: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def wilson_interval(successes: int, trials: int, z: float = _Z95) -> tuple[float, float]:
    r"""Wilson score interval for a binomial proportion (95 % for the default ``z``).

    Example:
        >>> lo, hi = wilson_interval(0, 100)
        >>> lo, round(hi, 4)
        (0.0, 0.037)
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"wilson_interval: trials must be an int >= 1, got {trials!r}")
    if isinstance(successes, bool) or not isinstance(successes, int):
        raise ValueError(f"wilson_interval: successes must be an int, got {successes!r}")
    if not 0 <= successes <= trials:
        raise ValueError(f"wilson_interval: successes must be in [0, trials], got {successes!r}")
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def _check_count(value: object, name: str, fn: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{fn}: {name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def _check_inputs(inputs: object, fn: str) -> torch.Tensor:
    if isinstance(inputs, torch.Tensor):
        x = inputs.detach().to(device="cpu", dtype=torch.float64)
    elif isinstance(inputs, np.ndarray | list | tuple):
        try:
            x = torch.as_tensor(np.asarray(inputs, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{fn}: inputs must be numeric, got {type(inputs).__name__}") from err
    else:
        raise TypeError(
            f"{fn}: inputs must be an array of shape (N, d_in), got {type(inputs).__name__}"
        )
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"{fn}: inputs must have shape (N, d_in) with N, d_in >= 1, got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError(f"{fn}: inputs must be finite, got non-finite values")
    return x


def _check_choice(value: object, name: str, choices: Sequence[str], fn: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{fn}: {name} must be a str, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {tuple(choices)}, got {value!r}")
    return value


def _first_dead_layer(
    width: int, max_depth: int, x: torch.Tensor, init: str, bias_init: str, trials: int, seed: int
) -> np.ndarray:
    """For each trial, the first dead hidden layer (1-based), or ``max_depth + 1`` if none."""
    gen = torch.Generator().manual_seed(seed)
    n_points, d_in = x.shape
    first = np.full(trials, max_depth + 1, dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // (n_points * max(width, d_in)))
    for start in range(0, trials, chunk):
        alive = torch.arange(start, min(trials, start + chunk))
        h = x.expand(len(alive), n_points, d_in)
        fan_in = d_in
        for layer in range(1, max_depth + 1):
            w, b = sample_layer(
                init,
                width,
                fan_in,
                generator=gen,
                batch=(len(alive),),
                bias=bias_init,  # type: ignore[arg-type]
                dtype=torch.float64,
            )
            assert b is not None
            h = torch.relu(torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2)))
            dead = h.flatten(1).amax(dim=1) == 0
            if dead.any():
                first[alive[dead].numpy()] = layer
                keep = ~dead
                alive, h = alive[keep], h[keep]
                if len(alive) == 0:
                    break
            fan_in = width
    return first


def _estimate(
    width: int, depth: int, init: str, bias_init: str, trials: int, dead: int
) -> BornDeadEstimate:
    lo, hi = wilson_interval(dead, trials)
    return BornDeadEstimate(width, depth, init, bias_init, trials, dead, dead / trials, lo, hi)


def born_dead_curve(
    width: int,
    max_depth: int,
    inputs: np.ndarray | torch.Tensor,
    init: str = "he_normal",
    bias_init: str = "zeros",
    trials: int = 1000,
    seed: int = 0,
) -> list[BornDeadEstimate]:
    """Born-dead estimates for every depth ``1 … max_depth`` from one simulation.

    Arguments as in :func:`born_dead_probability`; element ``d - 1`` is the estimate for
    depth ``d``. The estimates share their draws, so they are not independent of each other.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(-1, 1, 21)[:, None]
        >>> curve = born_dead_curve(3, 10, x, trials=200)
        >>> probs = [e.probability for e in curve]
        >>> probs == sorted(probs)    # deeper is never less dead
        True
    """
    args = _validate("born_dead_curve", "max_depth", width, max_depth, inputs, init, bias_init)
    trials = _check_count(trials, "trials", "born_dead_curve")
    seed = _check_count(seed, "seed", "born_dead_curve", minimum=0)
    return _curve(*args, trials, seed)


def _validate(
    fn: str,
    depth_name: str,
    width: object,
    depth: object,
    inputs: object,
    init: object,
    bias_init: object,
) -> tuple[int, int, torch.Tensor, str, str]:
    width = _check_count(width, "width", fn)
    depth = _check_count(depth, depth_name, fn)
    x = _check_inputs(inputs, fn)
    init = _check_choice(init, "init", INITS, fn)
    bias_init = _check_choice(bias_init, "bias_init", ("zeros", "same"), fn)
    return width, depth, x, init, bias_init


def _curve(
    width: int,
    max_depth: int,
    x: torch.Tensor,
    init: str,
    bias_init: str,
    trials: int,
    seed: int,
) -> list[BornDeadEstimate]:
    first = _first_dead_layer(width, max_depth, x, init, bias_init, trials, seed)
    counts = np.cumsum(np.bincount(first, minlength=max_depth + 2))
    return [
        _estimate(width, d, init, "rai" if init == "rai" else bias_init, trials, int(counts[d]))
        for d in range(1, max_depth + 1)
    ]


def born_dead_probability(
    width: int,
    depth: int,
    inputs: np.ndarray | torch.Tensor,
    init: str = "he_normal",
    bias_init: str = "zeros",
    trials: int = 1000,
    seed: int = 0,
) -> BornDeadEstimate:
    r"""Monte Carlo probability that a fresh ReLU network is dead at all the given inputs.

    Args:
        width: units per hidden layer.
        depth: number of hidden layers.
        inputs: the input points, shape ``(N, d_in)`` (NumPy array, tensor or nested lists);
            ``d_in`` is the network's input dimension.
        init: ``"he_normal"``, ``"he_uniform"``, ``"lecun_normal"``, ``"glorot_uniform"``
            (fan-out = ``width``) or ``"rai"`` (randomized asymmetric initialisation).
        bias_init: for the symmetric inits, ``"zeros"`` (default) or ``"same"`` (biases drawn
            from the weights' distribution). ``"rai"`` always draws each neuron's bias jointly
            with its weights, as the paper designs it, whatever ``bias_init`` says.
        trials: number of independent initialisations.
        seed: seed of the random draws; the result is a deterministic function of the
            arguments.

    Returns:
        A :class:`BornDeadEstimate` with the probability and its 95 % Wilson interval.

    Example:
        >>> import numpy as np
        >>> x = np.random.default_rng(1).uniform(-1, 1, size=(64, 2))
        >>> he = born_dead_probability(3, 20, x, trials=300)
        >>> rai = born_dead_probability(3, 20, x, init="rai", trials=300)
        >>> rai.probability < he.probability
        True
    """
    fn = "born_dead_probability"
    args = _validate(fn, "depth", width, depth, inputs, init, bias_init)
    trials = _check_count(trials, "trials", fn)
    seed = _check_count(seed, "seed", fn, minimum=0)
    curve = _curve(*args, trials, seed)
    return curve[-1]


def born_dead_grid(
    widths: Iterable[int],
    depths: Iterable[int],
    inputs: np.ndarray | torch.Tensor,
    inits: Iterable[str] = ("he_normal", "rai"),
    bias_init: str = "zeros",
    trials: int = 1000,
    seed: int = 0,
) -> list[BornDeadEstimate]:
    """Estimates for every ``(init, width, depth)``, one simulation per ``(init, width)``.

    Feed the result to :func:`~relukit.diagnostics.plot_born_dead`.

    Example:
        >>> import numpy as np
        >>> x = np.linspace(-1, 1, 11)[:, None]
        >>> grid = born_dead_grid([2, 3], [1, 5], x, trials=50)
        >>> [(e.init, e.width, e.depth) for e in grid][:3]
        [('he_normal', 2, 1), ('he_normal', 2, 5), ('he_normal', 3, 1)]
    """
    fn = "born_dead_grid"
    widths = [_check_count(w, "widths", fn) for w in widths]
    depths = [_check_count(d, "depths", fn) for d in depths]
    inits = [_check_choice(i, "inits", INITS, fn) for i in inits]
    if not widths or not depths or not inits:
        raise ValueError(f"{fn}: widths, depths and inits must be non-empty")
    out = []
    for init in inits:
        for width in widths:
            curve = born_dead_curve(width, max(depths), inputs, init, bias_init, trials, seed)
            out.extend(curve[d - 1] for d in depths)
    return out
