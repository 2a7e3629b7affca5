r"""What the study concludes: runs grouped over seeds, and the claims about ReLU checked.

The three scenarios (their runs are planned by :meth:`~relukit.study.config.StudyConfig.plan`):

* **compare** — every activation trained the same way; test accuracy, epochs and seconds to the
  target training accuracy (the convergence-speed claim), final loss, dead units and sparsity
  per layer across training, gradient norm per layer at initialisation (vanishing gradients),
  time per epoch.
* **dying** — a high learning rate and a negative shift of every hidden bias, the two causes of
  dying ReLUs the literature names; the dead fraction over training for relu against
  leaky_relu, prelu and elu, each with the chosen init and with the randomized asymmetric
  initialisation (RAI, Lu et al. 2020).
* **depth** — the same network from 2 to 20 hidden layers: the gradient norm reaching the first
  layer at initialisation and the final accuracy, the baselines sigmoid/tanh against the family.
* **cnn** — Krizhevsky et al. (2012, Figure 1): a four-layer CNN (three convolutions and a
  linear layer) on the images, relu against tanh and sigmoid; epochs and seconds to the target
  training accuracy, and the training error per epoch.
* **memory** — what the backward of the smooth members keeps (issue 12): each member trained
  in every backward mode of relukit.nn (``input``: PyTorch's gradients bit for bit;
  ``output``: the output, which the next Linear keeps anyway, and one bit; ``bits=3``: a 3-bit
  code), relu for reference; test accuracy, training loss, the bytes autograd keeps for one
  batch and time per epoch, and whether ``output`` stays within the seed spread of ``input``
  and ``bits`` within one standard deviation of it.

:func:`groups` averages the runs that differ only by seed (mean ± standard deviation);
:func:`claims` turns the runs into verdicts: each claim's effect is computed per seed, paired
(runs of one seed share initial weights and batches), and given a 95 % interval over the seeds
(:mod:`relukit.study.stats`); the verdict is "holds", "does not hold" or "inconclusive at N
seeds" by the rule written in each claim. The verdicts say what happened here, on this data,
not what is true in general.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relukit.study.config import BASELINES, StudyConfig
from relukit.study.stats import Interval, verdict
from relukit.study.training import RunResult

__all__ = ["BASELINES", "Claim", "Group", "Stat", "StudyResult", "claims", "groups"]


@dataclass(frozen=True)
class Stat:
    """Mean and standard deviation (population, ``ddof=0``) of the finite values among ``n``."""

    mean: float
    std: float
    n: int
    of: int

    @classmethod
    def of_values(cls, values: Iterable[float | None]) -> Stat:
        """The statistic of ``values``; ``None`` and non-finite values are left out.

        Example:
            >>> Stat.of_values([1.0, 3.0, None])
            Stat(mean=2.0, std=1.0, n=2, of=3)
        """
        values = list(values)
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(math.nan, math.nan, 0, len(values))
        return cls(float(np.mean(finite)), float(np.std(finite)), len(finite), len(values))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN becomes None)."""
        clean = None if math.isnan(self.mean) else self.mean
        return {
            "mean": clean,
            "std": None if math.isnan(self.std) else self.std,
            "n": self.n,
            "of": self.of,
        }


def _curve(rows: Sequence[Sequence[float]]) -> list[float]:
    """Mean over runs, per epoch, of curves that may differ in length (diverged runs)."""
    length = max((len(r) for r in rows), default=0)
    padded = np.full((len(rows), length), np.nan)
    for i, row in enumerate(rows):
        padded[i, : len(row)] = row
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(padded), padded, np.nan)
        counts = np.sum(~np.isnan(finite), axis=0)
        sums = np.nansum(finite, axis=0)
        return [float(s / c) if c else math.nan for s, c in zip(sums, counts, strict=True)]


def _curve_std(rows: Sequence[Sequence[float]]) -> list[float]:
    length = max((len(r) for r in rows), default=0)
    return [Stat.of_values(r[i] if i < len(r) else None for r in rows).std for i in range(length)]


@dataclass(frozen=True)
class Group:
    """The runs of one (scenario, activation, init, depth, modules, backward) over its seeds,
    summarised."""

    scenario: str
    activation: str
    init: str
    depth: int
    modules: str
    seeds: tuple[int, ...]
    test_accuracy: Stat
    test_loss: Stat
    final_loss: Stat
    epochs_to_target: Stat
    seconds_to_target: Stat
    seconds_per_epoch: Stat
    dead_init: Stat
    dead_end: Stat
    dead_max: Stat
    sparsity_end: Stat
    first_layer_grad: Stat
    grad_ratio: Stat
    grad_norms: list[float]
    activation_grad_rms: list[float]
    dead_per_layer: list[float]
    sparsity_per_layer: list[float]
    curves: dict[str, list[float]] = field(repr=False)
    diverged: int = 0
    backward: str = "input"
    kept_bytes: Stat = Stat(math.nan, math.nan, 0, 0)
    kept_by_activations: Stat = Stat(math.nan, math.nan, 0, 0)

    @property
    def name(self) -> str:
        """The activation, marked ``(torch.nn)`` for a family member run on torch.nn's module,
        and with its backward mode in the memory scenario (``gelu · output``)."""
        if self.scenario == "memory":
            return f"{self.activation} · {self.backward}"
        if self.modules == "torch" and self.activation not in BASELINES:
            return f"{self.activation} (torch.nn)"
        return self.activation

    @property
    def reached(self) -> str:
        """``"k/n"``: how many seeds reached the target training accuracy."""
        return f"{self.epochs_to_target.n}/{self.epochs_to_target.of}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            if isinstance(value, Stat):
                out[key] = value.to_dict()
            elif isinstance(value, dict):
                out[key] = {k: [_finite(x) for x in v] for k, v in value.items()}
            elif isinstance(value, list | tuple):
                out[key] = [_finite(x) for x in value]
            else:
                out[key] = value
        return out


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _layer_means(rows: Sequence[Sequence[float]]) -> list[float]:
    if not rows:
        return []
    width = min(len(r) for r in rows)
    return [float(np.nanmean([r[i] for r in rows])) for i in range(width)]


def _grad_ratio(run: RunResult) -> float:
    """‖∂L/∂W₁‖ / ‖∂L/∂W_out‖ at initialisation: below 1, the gradient shrinks towards the
    input."""
    norms = run.grad_norms
    return norms[0] / norms[-1] if norms and norms[-1] else math.nan


def groups(runs: Sequence[RunResult]) -> list[Group]:
    """The runs grouped over seeds, in the order their first run appears.

    Example:
        >>> from relukit.study.config import StudyConfig
        >>> specs = StudyConfig(activations=("relu",), seeds=2, modules="relukit").plan()
        >>> runs = [
        ...     RunResult(spec, loss=[2.0, 0.5], accuracy=[0.1, 0.9], dead=[[0.0], [0.1]],
        ...               sparsity=[[0.5], [0.6]], grad_norms=[0.5, 1.0], test_accuracy=acc)
        ...     for spec, acc in zip(specs, [0.9, 0.8])
        ... ]
        >>> (group,) = groups(runs)
        >>> group.activation, group.seeds, round(group.test_accuracy.mean, 2), group.dead_end.mean
        ('relu', (0, 1), 0.85, 0.1)
    """
    by_key: dict[tuple[str, str, str, int, str, str], list[RunResult]] = {}
    for run in runs:
        by_key.setdefault(run.spec.group, []).append(run)
    result = []
    for (scenario, activation, init, depth, modules, backward), members in by_key.items():
        dead = [r.dead_fraction for r in members]
        sparsity = [r.mean_sparsity for r in members]
        result.append(
            Group(
                scenario=scenario,
                activation=activation,
                init=init,
                depth=depth,
                modules=modules,
                seeds=tuple(r.spec.seed for r in members),
                test_accuracy=Stat.of_values(r.test_accuracy for r in members),
                test_loss=Stat.of_values(r.test_loss for r in members),
                final_loss=Stat.of_values(r.loss[-1] for r in members),
                epochs_to_target=Stat.of_values(r.epochs_to_target for r in members),
                seconds_to_target=Stat.of_values(r.seconds_to_target for r in members),
                seconds_per_epoch=Stat.of_values(
                    float(np.mean(r.epoch_seconds)) if r.epoch_seconds else None for r in members
                ),
                dead_init=Stat.of_values(d[0] for d in dead),
                dead_end=Stat.of_values(d[-1] for d in dead),
                dead_max=Stat.of_values(max(d) for d in dead),
                sparsity_end=Stat.of_values(s[-1] for s in sparsity),
                first_layer_grad=Stat.of_values(r.grad_norms[0] for r in members),
                grad_ratio=Stat.of_values(_grad_ratio(r) for r in members),
                grad_norms=_layer_means([r.grad_norms for r in members]),
                activation_grad_rms=_layer_means([r.activation_grad_rms for r in members]),
                dead_per_layer=_layer_means([r.dead[-1] for r in members]),
                sparsity_per_layer=_layer_means([r.sparsity[-1] for r in members]),
                curves={
                    "loss": _curve([r.loss for r in members]),
                    "accuracy": _curve([r.accuracy for r in members]),
                    "val_accuracy": _curve([r.val_accuracy for r in members]),
                    "val_accuracy_std": _curve_std([r.val_accuracy for r in members]),
                    "dead": _curve(dead),
                    "dead_std": _curve_std(dead),
                    "sparsity": _curve(sparsity),
                },
                diverged=sum(r.diverged for r in members),
                backward=backward,
                kept_bytes=Stat.of_values(r.kept_bytes for r in members),
                kept_by_activations=Stat.of_values(r.kept_by_activations for r in members),
            )
        )
    return result


@dataclass
class StudyResult:
    """What :func:`relukit.study.run` returns.

    Attributes:
        config: the configuration as given.
        data: the data set's description (:meth:`~relukit.study.data.Dataset.describe`).
        settings: per scenario, the settings its runs used.
        planned: number of runs planned.
        runs: the completed runs, in plan order.
        interrupted: the study was stopped (Ctrl-C) before every run completed.
        seconds: wall time of the runs.
        environment: versions, cores, threads, load average, the engine the runs went to.
        reused: runs taken from the report folder's stored runs (``resume``), not trained.
        report: the report's ``index.html`` (None when no report was written).
    """

    config: StudyConfig
    data: dict[str, Any]
    settings: dict[str, dict[str, Any]]
    planned: int
    runs: list[RunResult]
    interrupted: bool = False
    seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    reused: int = 0
    report: Path | None = None

    def groups(self, scenario: str | None = None, *, every: bool = False) -> list[Group]:
        """The runs grouped over seeds (only ``scenario``'s when given). With ``modules``
        ``"both"``, the family's runs on torch.nn's modules are left out unless ``every``:
        the claims and the summary are about relukit.nn's, the cost table sets the two side by
        side."""
        found = groups(self.runs)
        return [
            g
            for g in found
            if (scenario is None or g.scenario == scenario)
            and (
                every
                or self.settings.get(g.scenario, {}).get("modules") != "both"
                or g.modules == "relukit"
                or g.activation in BASELINES
            )
        ]

    @property
    def scenarios(self) -> list[str]:
        """The scenarios with at least one completed run, in plan order."""
        seen: list[str] = []
        for run in self.runs:
            if run.spec.scenario not in seen:
                seen.append(run.spec.scenario)
        return seen

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready: config, data, settings, groups, runs, claims."""
        return {
            "config": self.config.to_dict(),
            "data": self.data,
            "settings": self.settings,
            "planned": self.planned,
            "completed": len(self.runs),
            "reused": self.reused,
            "trained": len(self.runs) - self.reused,
            "interrupted": self.interrupted,
            "seconds": self.seconds,
            "environment": self.environment,
            "claims": [c.to_dict() for c in claims(self)],
            "groups": [g.to_dict() for g in self.groups(every=True)],
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class Claim:
    """One claim about ReLU, this study's verdict on it and what the verdict rests on.

    Attributes:
        claim: the claim, as the literature makes it.
        verdict: ``"holds"``, ``"does not hold"``, ``"inconclusive at N seeds"`` or
            ``"not tested"``.
        effect: what is measured, with its estimate and 95 % interval, e.g.
            ``"speed-up 2.0× [1.5, 2.7]"``.
        evidence: the quantities the effect is computed from (means and per-seed values).
        rule: how the verdict follows from the interval.
        interval: the effect's :class:`~relukit.study.stats.Interval` (None: not tested).
    """

    claim: str
    verdict: str
    effect: str
    evidence: str
    rule: str
    interval: Interval | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out: dict[str, Any] = {k: v for k, v in self.__dict__.items() if k != "interval"}
        out["interval"] = None if self.interval is None else self.interval.to_dict()
        return out


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def _seeds(values: Sequence[float], fmt: str = ".3g") -> str:
    return ", ".join(format(v, fmt) for v in values)


_Runs = dict[int, RunResult]


def _runs(
    result: StudyResult, scenario: str, activation: str, init: str | None = None, depth: int = -1
) -> _Runs:
    """The main runs (see :meth:`StudyResult.groups`) of one activation, by seed."""
    kept = {(g.activation, g.modules) for g in result.groups(scenario)}
    found: _Runs = {}
    for run in result.runs:
        spec = run.spec
        if (
            spec.scenario == scenario
            and spec.activation == activation
            and (spec.activation, spec.modules) in kept
            and (init is None or spec.init == init)
            and (depth < 0 or spec.depth == depth)
        ):
            found[spec.seed] = run
    return found


def _paired(a: _Runs, b: _Runs, effect: Any) -> list[float]:
    """``effect(a_run, b_run)`` for every seed both have, in seed order."""
    return [effect(a[seed], b[seed]) for seed in sorted(set(a) & set(b))]


def _to_target(run: RunResult) -> float:
    """Epochs to the target; a run that never reached it counts as ``epochs + 1`` (so a
    speed-up over it is a lower bound)."""
    if run.epochs_to_target is None:
        return float(run.spec.epochs + 1)
    return float(run.epochs_to_target)


def _mean_epochs(runs: _Runs) -> str:
    reached = [r.epochs_to_target for r in runs.values() if r.epochs_to_target is not None]
    if not reached:
        return f"never in {next(iter(runs.values())).spec.epochs} epochs"
    text = f"{np.mean(reached):.1f} epochs"
    return text if len(reached) == len(runs) else f"{text} ({len(reached)}/{len(runs)} seeds)"


_RATIO_RULE = (
    "paired by seed; holds when the 95 % t interval of the {what} (geometric mean over seeds) "
    "lies above 1, does not hold when it lies at or below 1, else inconclusive"
)


def _speed(result: StudyResult, scenario: str, baseline: str, title: str) -> Claim:
    target = f"{100 * result.config.target:.0f} %"
    rule = _RATIO_RULE.format(
        what=f"speed-up (baseline's epochs to {target} training accuracy "
        "over relu's; a seed that never gets there counts as epochs + 1)"
    )
    relu, other = _runs(result, scenario, "relu"), _runs(result, scenario, baseline)
    values = _paired(relu, other, lambda r, b: _to_target(b) / _to_target(r))
    if not values:
        return Claim(title, "not tested", "", f"needs relu and {baseline} in {scenario}", rule)
    effect = Interval.of(values, ratio=True)
    evidence = (
        f"epochs to {target} training accuracy: relu {_mean_epochs(relu)}, {baseline} "
        f"{_mean_epochs(other)}; speed-up per seed: {_seeds(values)}"
    )
    text = f"speed-up {effect.text()}"
    missed = [
        name
        for name, runs in (("relu", relu), (baseline, other))
        if any(run.epochs_to_target is None for run in runs.values())
    ]
    if missed == [baseline]:
        text = (
            f"speed-up ≥ {effect.text()} (a lower bound: {baseline} missed {target} in some seeds)"
        )
    elif missed:
        text += f" (not an estimate: {' and '.join(missed)} missed {target} in some seeds)"
    return Claim(title, verdict(effect, 1.0), text, evidence, rule, effect)


def _vanishing(result: StudyResult, baseline: str) -> Claim:
    title = f"ReLU avoids vanishing gradients (against {baseline})"
    rule = _RATIO_RULE.format(
        what="ratio of relu's to the baseline's first-layer / output-layer gradient norm at "
        "initialisation"
    )
    relu, other = _runs(result, "compare", "relu"), _runs(result, "compare", baseline)
    values = _paired(relu, other, lambda r, b: _grad_ratio(r) / _grad_ratio(b))
    if not values:
        return Claim(title, "not tested", "", f"needs relu and {baseline} in compare", rule)
    effect = Interval.of(values, ratio=True)
    means = ", ".join(
        f"{name} {np.mean([_grad_ratio(r) for r in runs.values()]):.3g}"
        for name, runs in (("relu", relu), (baseline, other))
    )
    evidence = f"‖∂L/∂W₁‖ / ‖∂L/∂W_out‖ at init, mean over seeds: {means}; ratio per seed: "
    evidence += _seeds(values)
    return Claim(title, verdict(effect, 1.0), f"ratio {effect.text()}", evidence, rule, effect)


def _deep(result: StudyResult, baseline: str) -> Claim:
    depths = [g.depth for g in result.groups("depth")]
    deepest = max(depths, default=0)
    title = f"ReLU avoids vanishing gradients in deep networks (against {baseline})"
    rule = _RATIO_RULE.format(
        what=f"ratio of relu's to the baseline's first-layer gradient norm at initialisation, "
        f"{deepest} hidden layers"
    )
    relu = _runs(result, "depth", "relu", depth=deepest)
    other = _runs(result, "depth", baseline, depth=deepest)
    values = _paired(relu, other, lambda r, b: r.grad_norms[0] / b.grad_norms[0])
    if not values:
        return Claim(title, "not tested", "", f"needs relu and {baseline} in depth", rule)
    effect = Interval.of(values, ratio=True)
    evidence = (
        f"‖∂L/∂W₁‖ with {deepest} hidden layers, mean over seeds: relu "
        f"{np.mean([r.grad_norms[0] for r in relu.values()]):.3g}, {baseline} "
        f"{np.mean([r.grad_norms[0] for r in other.values()]):.3g}; ratio per seed: "
        f"{_seeds(values)}"
    )
    return Claim(title, verdict(effect, 1.0), f"ratio {effect.text()}", evidence, rule, effect)


def _sparse(result: StudyResult) -> Claim:
    title = "ReLU makes networks sparse"
    rule = (
        "holds when the 95 % t interval over seeds of the fraction of relu's hidden outputs "
        "that are exactly zero after training lies above one third, does not hold when it "
        "lies at or below, else inconclusive"
    )
    relu = _runs(result, "compare", "relu")
    if not relu:
        return Claim(title, "not tested", "", "needs relu in compare", rule)
    values = [r.mean_sparsity[-1] for _, r in sorted(relu.items())]
    effect = Interval.of(values)
    evidence = f"exact zeros among relu's hidden outputs per seed: {_seeds(values, '.1%')}"
    text = f"zeros {effect.text(1, ' %', 100)}"
    return Claim(title, verdict(effect, 1 / 3), text, evidence, rule, effect)


def _dying(result: StudyResult, init: str) -> Claim:
    title = "ReLU units die under a high learning rate and a negative bias"
    rule = (
        "holds when the 95 % t interval over seeds of relu's dead fraction at the end of "
        "training lies above 10 %, does not hold when at or below, else inconclusive"
    )
    relu = _runs(result, "dying", "relu", init=init)
    if not relu:
        return Claim(title, "not tested", "", "run --scenario dying", rule)
    values = [r.dead_fraction[-1] for _, r in sorted(relu.items())]
    effect = Interval.of(values)
    settings = result.settings["dying"]
    evidence = (
        f"{settings['optimizer']} lr {settings['lr']:g}, bias shift {settings['bias_shift']:g}, "
        f"{init}: relu's dead units at the end per seed: {_seeds(values, '.1%')}"
    )
    text = f"dead {effect.text(1, ' %', 100)}"
    return Claim(title, verdict(effect, 0.1), text, evidence, rule, effect)


_DIFFERENCE_RULE = (
    "paired by seed; holds when the 95 % t interval of {what} lies above 0, does not hold "
    "when it lies at or below 0, else inconclusive"
)


def _fixes(result: StudyResult, member: str, init: str) -> Claim:
    title = f"{member} fixes dying units"
    rule = _DIFFERENCE_RULE.format(
        what=f"relu's dead fraction minus {member}'s (units that never see a positive input) at "
        "the end of training, under the same dying conditions"
    )
    relu, other = _runs(result, "dying", "relu", init=init), _runs(result, "dying", member, init)
    values = _paired(relu, other, lambda r, m: r.dead_fraction[-1] - m.dead_fraction[-1])
    if not values:
        return Claim(title, "not tested", "", "run --scenario dying", rule)
    effect = Interval.of(values)
    evidence = (
        f"dead at the end, mean over seeds: relu "
        f"{_pct(np.mean([r.dead_fraction[-1] for r in relu.values()]))}, {member} "
        f"{_pct(np.mean([r.dead_fraction[-1] for r in other.values()]))}; difference per seed: "
        f"{_seeds(values, '.1%')}"
    )
    text = f"fewer dead {effect.text(1, ' pts', 100)}"
    return Claim(title, verdict(effect, 0.0), text, evidence, rule, effect)


def _rai(result: StudyResult, init: str, when: str) -> Claim:
    title = f"Randomized asymmetric initialisation (RAI) keeps ReLU units alive ({when})"
    at = 0 if when == "at initialisation" else -1
    rule = _DIFFERENCE_RULE.format(what=f"relu's dead fraction with {init} minus with rai, {when}")
    plain, rai = _runs(result, "dying", "relu", init=init), _runs(result, "dying", "relu", "rai")
    values = _paired(plain, rai, lambda p, r: p.dead_fraction[at] - r.dead_fraction[at])
    if not values or init == "rai":
        return Claim(title, "not tested", "", "run --scenario dying", rule)
    effect = Interval.of(values)
    evidence = (
        f"relu's dead units {when}, mean over seeds: {init} "
        f"{_pct(np.mean([r.dead_fraction[at] for r in plain.values()]))}, rai "
        f"{_pct(np.mean([r.dead_fraction[at] for r in rai.values()]))}; difference per seed: "
        f"{_seeds(values, '.1%')}"
    )
    text = f"fewer dead {effect.text(1, ' pts', 100)}"
    return Claim(title, verdict(effect, 0.0), text, evidence, rule, effect)


def _mode_runs(result: StudyResult, activation: str, backward: str) -> _Runs:
    """The memory scenario's runs of one member in one backward mode, by seed."""
    return {
        run.spec.seed: run
        for run in result.runs
        if run.spec.scenario == "memory"
        and run.spec.activation == activation
        and run.spec.backward == backward
    }


def _spread(values: Sequence[float], fmt: str) -> str:
    return f"{format(float(np.mean(values)), fmt)} (seeds {format(min(values), fmt)}–" + (
        f"{format(max(values), fmt)}, std {format(float(np.std(values)), fmt)})"
    )


def _memory(result: StudyResult, activation: str, mode: str) -> Claim:
    """Does ``mode`` train ``activation`` as its exact gradient does? ``output`` must stay
    within the seed spread of ``input`` (PyTorch's gradients bit for bit), ``bits=N`` within
    one standard deviation of it (issue 12's bars), in test accuracy and in test loss."""
    spread = mode == "output"
    title = f"{activation} with backward={mode} trains as with its exact gradient (within " + (
        "the seed spread)" if spread else "one standard deviation)"
    )
    rule = (
        f"holds when the mean over seeds of {mode}'s test accuracy and of its test loss each "
        + (
            "lie within the range over seeds of input's (PyTorch's gradients, bit for bit)"
            if spread
            else "lie within one standard deviation (over seeds, ddof 0) of input's mean "
            "(PyTorch's gradients, bit for bit)"
        )
        + ", does not hold otherwise; inconclusive below 2 seeds. The effect: the difference "
        "to input, paired by seed, with its 95 % t interval"
    )
    exact, other = _mode_runs(result, activation, "input"), _mode_runs(result, activation, mode)
    seeds = sorted(set(exact) & set(other))
    if not seeds:
        return Claim(title, "not tested", "", f"needs {activation} with input and {mode}", rule)
    accuracy = Interval.of(other[s].test_accuracy - exact[s].test_accuracy for s in seeds)
    loss = Interval.of(other[s].test_loss - exact[s].test_loss for s in seeds)
    within = True
    for measure in ("test_accuracy", "test_loss"):
        base = [getattr(exact[s], measure) for s in seeds]
        mean = float(np.mean([getattr(other[s], measure) for s in seeds]))
        if spread:
            within = within and min(base) <= mean <= max(base)
        else:
            within = within and abs(mean - float(np.mean(base))) <= float(np.std(base))
    if len(seeds) < 2:
        verdict_text = f"inconclusive at {len(seeds)} seed"
    else:
        verdict_text = "holds" if within else "does not hold"
    evidence = (
        f"test accuracy: input {_spread([exact[s].test_accuracy for s in seeds], '.2%')}, "
        f"{mode} {_spread([other[s].test_accuracy for s in seeds], '.2%')}; test loss: input "
        f"{_spread([exact[s].test_loss for s in seeds], '.4f')}, {mode} "
        f"{_spread([other[s].test_loss for s in seeds], '.4f')}"
    )
    low_high = "" if math.isnan(loss.low) else f" [{loss.low:.1e}, {loss.high:.1e}]"
    text = f"Δ accuracy {accuracy.text(2, ' pts', 100)}; Δ loss {loss.estimate:.1e}{low_high}"
    return Claim(title, verdict_text, text, evidence, rule, accuracy)


def claims(result: StudyResult) -> list[Claim]:
    """The claims about ReLU that this study's scenarios can check, with verdicts."""
    settings = result.settings
    found: list[Claim] = []
    if "compare" in settings:
        found += [
            _speed(result, "compare", b, f"ReLU converges faster than {b}") for b in BASELINES
        ]
        found += [_vanishing(result, b) for b in BASELINES]
    if "depth" in settings:
        found += [_deep(result, b) for b in BASELINES]
    if "compare" in settings:
        found.append(_sparse(result))
    if "dying" in settings:
        init = settings["dying"]["inits"][0]
        found.append(_dying(result, init))
        found += [_fixes(result, m, init) for m in ("leaky_relu", "prelu", "elu")]
        found += [_rai(result, init, when) for when in ("at initialisation", "at the end")]
    if "cnn" in settings:
        found += [
            _speed(
                result,
                "cnn",
                b,
                f"A ReLU CNN reaches the target training error faster than a {b} one "
                "(Krizhevsky et al. 2012, Figure 1)",
            )
            for b in BASELINES
        ]
    if "memory" in settings:
        for group in result.groups("memory"):
            if group.backward != "input":
                found.append(_memory(result, group.activation, group.backward))
    return found
