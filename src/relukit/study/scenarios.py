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

:func:`groups` averages the runs that differ only by seed (mean ± standard deviation);
:func:`claims` turns the groups into verdicts, each with the numbers behind it. The verdicts
are computed from this study's numbers with the rules written in each claim's ``rule``; they
say what happened here, on this data, not what is true in general.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relukit.study.config import StudyConfig
from relukit.study.training import RunResult

__all__ = ["Claim", "Group", "Stat", "StudyResult", "claims", "groups"]

BASELINES = ("sigmoid", "tanh")


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
    """The runs of one (scenario, activation, init, depth) over its seeds, summarised."""

    scenario: str
    activation: str
    init: str
    depth: int
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
    grad_norms: list[float]
    dead_per_layer: list[float]
    sparsity_per_layer: list[float]
    curves: dict[str, list[float]] = field(repr=False)
    diverged: int = 0

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


def groups(runs: Sequence[RunResult]) -> list[Group]:
    """The runs grouped over seeds, in the order their first run appears.

    Example:
        >>> from relukit.study.config import StudyConfig
        >>> specs = StudyConfig(activations=("relu",), seeds=2).plan()
        >>> runs = [
        ...     RunResult(spec, loss=[2.0, 0.5], accuracy=[0.1, 0.9], dead=[[0.0], [0.1]],
        ...               sparsity=[[0.5], [0.6]], grad_norms=[0.5, 1.0], test_accuracy=acc)
        ...     for spec, acc in zip(specs, [0.9, 0.8])
        ... ]
        >>> (group,) = groups(runs)
        >>> group.activation, group.seeds, round(group.test_accuracy.mean, 2), group.dead_end.mean
        ('relu', (0, 1), 0.85, 0.1)
    """
    by_key: dict[tuple[str, str, str, int], list[RunResult]] = {}
    for run in runs:
        by_key.setdefault(run.spec.group, []).append(run)
    result = []
    for (scenario, activation, init, depth), members in by_key.items():
        dead = [r.dead_fraction for r in members]
        sparsity = [r.mean_sparsity for r in members]
        result.append(
            Group(
                scenario=scenario,
                activation=activation,
                init=init,
                depth=depth,
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
                grad_norms=_layer_means([r.grad_norms for r in members]),
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
        environment: versions, cores, threads, load average.
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
    report: Path | None = None

    def groups(self, scenario: str | None = None) -> list[Group]:
        """The runs grouped over seeds (only ``scenario``'s when given)."""
        found = groups(self.runs)
        return [g for g in found if scenario is None or g.scenario == scenario]

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
            "interrupted": self.interrupted,
            "seconds": self.seconds,
            "environment": self.environment,
            "claims": [c.to_dict() for c in claims(self)],
            "groups": [g.to_dict() for g in self.groups()],
            "runs": [r.to_dict() for r in self.runs],
        }


@dataclass(frozen=True)
class Claim:
    """One claim about ReLU, this study's verdict on it and the numbers behind the verdict.

    ``verdict`` is ``"holds"``, ``"partly"``, ``"does not hold"`` or ``"not tested"``.
    """

    claim: str
    verdict: str
    evidence: str
    rule: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f} %"


def _epochs(group: Group) -> float:
    """Mean epochs to the target, inf when a seed never reached it."""
    stat = group.epochs_to_target
    return stat.mean if stat.n == stat.of and stat.n else math.inf


def _epochs_text(group: Group, epochs: int) -> str:
    stat = group.epochs_to_target
    if stat.n == 0:
        return f"{group.activation}: never in {epochs} epochs"
    text = f"{group.activation}: {stat.mean:.1f} epochs"
    return text if stat.n == stat.of else f"{text} ({group.reached} seeds)"


def _verdict(wins: Sequence[bool]) -> str:
    if all(wins):
        return "holds"
    return "partly" if any(wins) else "does not hold"


def _speed(by_name: dict[str, Group], target: float, epochs: int) -> Claim:
    title = "ReLU converges faster than sigmoid and tanh"
    rule = (
        f"holds when relu's mean epochs to {100 * target:.0f} % training accuracy is below "
        "every baseline's (a seed that never gets there counts as never)"
    )
    baselines = [by_name[b] for b in BASELINES if b in by_name]
    if "relu" not in by_name or not baselines:
        return Claim(title, "not tested", "needs relu and sigmoid or tanh in compare", rule)
    relu = by_name["relu"]
    evidence = "; ".join(_epochs_text(g, epochs) for g in [relu, *baselines])
    wins = [_epochs(relu) < _epochs(b) for b in baselines]
    return Claim(
        title, _verdict(wins), f"to {100 * target:.0f} % training accuracy: {evidence}", rule
    )


def _vanishing(by_name: dict[str, Group], depth_groups: Sequence[Group]) -> Claim:
    title = "ReLU avoids vanishing gradients"
    rule = (
        "holds when, at initialisation, the gradient reaching the first layer relative to the "
        "output layer's is larger for relu than for every baseline"
    )
    evidence = []
    wins: list[bool] = []

    def ratio(g: Group) -> float:
        return g.grad_norms[0] / g.grad_norms[-1] if g.grad_norms and g.grad_norms[-1] else 0.0

    baselines = [by_name[b] for b in BASELINES if b in by_name]
    if "relu" in by_name and baselines:
        relu = by_name["relu"]
        shown = ", ".join(f"{g.activation} {ratio(g):.3g}" for g in [relu, *baselines])
        evidence.append(f"first-layer / output-layer gradient norm at init: {shown}")
        wins += [ratio(relu) > ratio(b) for b in baselines]
    deepest = max((g.depth for g in depth_groups), default=0)
    deep = {g.activation: g for g in depth_groups if g.depth == deepest}
    deep_baselines = [deep[b] for b in BASELINES if b in deep]
    if "relu" in deep and deep_baselines:
        shown = ", ".join(
            f"{g.activation} {g.first_layer_grad.mean:.3g}" for g in [deep["relu"], *deep_baselines]
        )
        evidence.append(f"first-layer gradient norm with {deepest} hidden layers: {shown}")
        wins += [
            deep["relu"].first_layer_grad.mean > b.first_layer_grad.mean for b in deep_baselines
        ]
    if not wins:
        return Claim(title, "not tested", "needs relu and sigmoid or tanh", rule)
    return Claim(title, _verdict(wins), "; ".join(evidence), rule)


def _sparse(by_name: dict[str, Group]) -> Claim:
    title = "ReLU makes networks sparse"
    rule = (
        "holds when at least a third of relu's hidden outputs are exactly zero after training, "
        "partly when at least a tenth are"
    )
    if "relu" not in by_name:
        return Claim(title, "not tested", "needs relu in compare", rule)
    relu = by_name["relu"].sparsity_end.mean
    others = [g for name, g in by_name.items() if name != "relu"]
    shown = ", ".join(f"{g.activation} {_pct(g.sparsity_end.mean)}" for g in others[:4])
    evidence = f"exact zeros among hidden outputs after training: relu {_pct(relu)}"
    if shown:
        evidence += f" (vs {shown})"
    verdict = "holds" if relu >= 1 / 3 else "partly" if relu >= 0.1 else "does not hold"
    return Claim(title, verdict, evidence, rule)


def _dying(dying: dict[tuple[str, str], Group], init: str, settings: dict[str, Any]) -> Claim:
    title = "ReLU units die under a high learning rate or a negative bias"
    rule = "holds when at least 10 % of relu's hidden units are dead at the end of training"
    group = dying.get(("relu", init))
    if group is None:
        return Claim(title, "not tested", "run --scenario dying", rule)
    evidence = (
        f"with {settings['optimizer']} lr {settings['lr']:g} and bias shift "
        f"{settings['bias_shift']:g} ({init}): relu dead units "
        f"{_pct(group.dead_init.mean)} at init, {_pct(group.dead_end.mean)} at the end "
        f"(peak {_pct(group.dead_max.mean)})"
    )
    verdict = "holds" if group.dead_end.mean >= 0.1 else "does not hold"
    return Claim(title, verdict, evidence, rule)


def _fixes(dying: dict[tuple[str, str], Group], init: str) -> Claim:
    title = "Leaky ReLU, PReLU and ELU fix dying units"
    rule = (
        "holds when each of them ends training with fewer units that never see a positive "
        "input than relu has dead units, under the same dying conditions"
    )
    relu = dying.get(("relu", init))
    fixes = [dying[(n, init)] for n in ("leaky_relu", "prelu", "elu") if (n, init) in dying]
    if relu is None or not fixes:
        return Claim(title, "not tested", "run --scenario dying", rule)
    shown = ", ".join(
        f"{g.activation} {_pct(g.dead_end.mean)} (test acc {_pct(g.test_accuracy.mean)})"
        for g in [relu, *fixes]
    )
    wins = [g.dead_end.mean < relu.dead_end.mean for g in fixes]
    return Claim(title, _verdict(wins), f"dead at the end of training: {shown}", rule)


def _rai(dying: dict[tuple[str, str], Group], init: str) -> Claim:
    title = "Randomized asymmetric initialisation (RAI) keeps ReLU units alive"
    rule = "holds when relu with RAI has fewer dead units than with the symmetric init, at "
    rule += "initialisation and at the end"
    plain, rai = dying.get(("relu", init)), dying.get(("relu", "rai"))
    if plain is None or rai is None or init == "rai":
        return Claim(title, "not tested", "run --scenario dying", rule)
    evidence = (
        f"relu dead units at init / at the end: {init} {_pct(plain.dead_init.mean)} / "
        f"{_pct(plain.dead_end.mean)}, rai {_pct(rai.dead_init.mean)} / {_pct(rai.dead_end.mean)}"
    )
    wins = [
        rai.dead_init.mean < plain.dead_init.mean,
        rai.dead_end.mean < plain.dead_end.mean,
    ]
    return Claim(title, _verdict(wins), evidence, rule)


def claims(result: StudyResult) -> list[Claim]:
    """The claims about ReLU that this study's scenarios can check, with verdicts."""
    compare = {g.activation: g for g in result.groups("compare")}
    depth_groups = result.groups("depth")
    dying = {(g.activation, g.init): g for g in result.groups("dying")}
    settings = result.settings
    compare_epochs = settings.get("compare", {}).get("epochs", 0)
    target = result.config.target
    found: list[Claim] = []
    if "compare" in settings:
        found.append(_speed(compare, target, compare_epochs))
    if "compare" in settings or "depth" in settings:
        found.append(_vanishing(compare, depth_groups))
    if "compare" in settings:
        found.append(_sparse(compare))
    if "dying" in settings:
        dying_settings = settings["dying"]
        init = dying_settings["inits"][0]
        found += [
            _dying(dying, init, dying_settings),
            _fixes(dying, init),
            _rai(dying, init),
        ]
    return found
