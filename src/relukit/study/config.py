"""What a study runs: :class:`StudyConfig` (what the user asked) and :class:`RunSpec` (one run).

A field left at ``None`` takes the scenario's default (:data:`SCENARIO_DEFAULTS`), shrunk by
``quick`` (:data:`QUICK`); a field the user sets always wins. :meth:`StudyConfig.check` refuses
a wrong value with a ``ValueError`` (``TypeError`` for a wrong kind) naming the field.

Example:
    >>> config = StudyConfig(activations=("relu", "swish"), seeds=2)
    >>> settings = config.settings("compare")
    >>> settings.activations, settings.seeds, settings.depth
    (('relu', 'silu'), 2, 4)
    >>> StudyConfig(epochs=0).check()
    Traceback (most recent call last):
    ...
    relukit.UserValueError: study: epochs must be an int >= 1, got 0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from relukit.errors import UserTypeError, UserValueError

__all__ = [
    "BACKWARDS",
    "BASELINES",
    "DEFAULT_ACTIVATIONS",
    "INITS",
    "LEARNING_RATES",
    "MODULES",
    "OPTIMIZERS",
    "QUICK",
    "QUICK_CNN",
    "SCENARIOS",
    "SCENARIO_DEFAULTS",
    "RunSpec",
    "Settings",
    "StudyConfig",
    "backward_mode",
]

SCENARIOS: tuple[str, ...] = ("compare", "dying", "depth", "cnn", "memory")
"""The scenarios; ``--scenario all`` runs them all in this order."""

MODULES: tuple[str, ...] = ("relukit", "torch", "both")
"""Whose modules the family's runs use: ``relukit.nn``'s, ``torch.nn``'s (members that have
one), or ``both`` (each such member trained twice, once on each; the baselines sigmoid and tanh
are always ``torch.nn``'s)."""

BASELINES: tuple[str, ...] = ("sigmoid", "tanh")
"""Not members of the family: trained for comparison, always on ``torch.nn``'s modules."""

DEFAULT_ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "leaky_relu",
    "prelu",
    "elu",
    "selu",
    "gelu",
    "relu6",
    "silu",
    "sigmoid",
    "tanh",
)
"""The activations of the default study: eight members of the family and the two baselines."""

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw", "rmsprop")
"""``sgd`` is SGD with momentum 0.9 (the default); the others use PyTorch's defaults."""

INITS: tuple[str, ...] = (
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "glorot_uniform",
    "rai",
    "torch",
)
"""Initialisations of the hidden layers: those of :mod:`relukit.diagnostics.init`, and
``torch``, PyTorch's own default for ``nn.Linear`` (uniform in ±1/√fan_in, bias too)."""

LEARNING_RATES: dict[str, dict[str, float]] = {
    "compare": {"sgd": 0.03, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3},
    "dying": {"sgd": 0.1, "adam": 0.01, "adamw": 0.01, "rmsprop": 3e-3},
    "depth": {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3},
    "cnn": {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3},
    "memory": {"sgd": 0.03, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3},
}
"""Default learning rate per scenario and optimizer; ``dying``'s are deliberately high."""


BACKWARDS: tuple[str, ...] = ("input", "output", "bits=3")
"""What the backward of a smooth member keeps (``relukit.nn``'s ``backward=`` and ``bits=``),
the memory scenario's default modes: ``input`` (PyTorch's backward, bit for bit), ``output``
(the output and one branch bit), ``bits=N`` (an N-bit code, N in 1–4; ``bits`` alone: 3)."""


def backward_mode(mode: object) -> tuple[str, int]:
    """``(backward, bits)`` of a mode as the study names it; ValueError naming it otherwise.

    Example:
        >>> backward_mode("output"), backward_mode("bits"), backward_mode("bits=2")
        (('output', 3), ('bits', 3), ('bits', 2))
        >>> backward_mode("bits=5")
        Traceback (most recent call last):
        ...
        relukit.UserValueError: study: backward mode 'bits=5' is not one of input, output, ...
    """
    if mode in ("input", "output", "bits"):
        return str(mode), 3
    if isinstance(mode, str) and mode.startswith("bits=") and mode[5:] in ("1", "2", "3", "4"):
        return "bits", int(mode[5:])
    raise UserValueError(
        f"study: backward mode {mode!r} is not one of input, output, bits=N (N in 1-4)"
    )


def _mode_name(mode: str) -> str:
    """The canonical name of a mode: ``bits`` is ``bits=3``."""
    backward, bits = backward_mode(mode)
    return f"bits={bits}" if backward == "bits" else backward


CLUSTER_JOBS = (
    "study: --jobs sets a local cluster's worker count; with --cluster the cluster's own "
    "workers run the study (start more with `dask worker ADDRESS --nworkers N`)"
)


@dataclass(frozen=True)
class Settings:
    """One scenario's settings with every default filled in (what its runs use)."""

    scenario: str
    activations: tuple[str, ...]
    optimizer: str
    seeds: int
    depth: int
    depths: tuple[int, ...]
    width: int
    epochs: int
    lr: float
    bias_shift: float
    inits: tuple[str, ...]
    modules: str
    backward: tuple[str, ...] = ("input",)


SCENARIO_DEFAULTS: dict[str, dict[str, Any]] = {
    "compare": {
        "activations": DEFAULT_ACTIVATIONS,
        "optimizer": "sgd",
        "seeds": 6,
        "depth": 4,
        "depths": (),
        "width": 128,
        "epochs": 30,
        "bias_shift": 0.0,
        "modules": "both",
    },
    "dying": {
        "activations": ("relu", "leaky_relu", "prelu", "elu"),
        "optimizer": "adam",
        "seeds": 3,
        "depth": 4,
        "depths": (),
        "width": 128,
        "epochs": 20,
        "bias_shift": -1.0,
        "modules": "relukit",
    },
    "depth": {
        "activations": ("relu", "leaky_relu", "elu", "selu", "gelu", "sigmoid", "tanh"),
        "optimizer": "adam",
        "seeds": 2,
        "depth": 0,
        "depths": (2, 5, 10, 20),
        "width": 64,
        "epochs": 15,
        "bias_shift": 0.0,
        "modules": "relukit",
    },
    "cnn": {
        "activations": ("relu", "tanh", "sigmoid"),
        "optimizer": "sgd",
        "seeds": 5,
        "depth": 3,
        "depths": (),
        "width": 16,
        "epochs": 20,
        "bias_shift": 0.0,
        "modules": "relukit",
    },
    "memory": {
        "activations": ("gelu", "silu", "mish", "relu"),
        "optimizer": "adam",
        "seeds": 3,
        "depth": 2,
        "depths": (),
        "width": 128,
        "epochs": 30,
        "bias_shift": 0.0,
        "modules": "relukit",
    },
}
"""Each scenario's defaults for the fields left at ``None`` (``lr``: :data:`LEARNING_RATES`).

compare trains with SGD and momentum, under which the baselines' vanishing gradients show;
dying with Adam at a high rate, under which ReLU units die (with SGD here they mostly revive);
depth with Adam, which keeps the deep networks of the family trainable; cnn with SGD and
momentum, as Krizhevsky et al. (2012) trained the four-layer CNN of their Figure 1 (``depth``
counts its convolutions, ``width`` their channels); memory with Adam, each smooth member in
every mode of :data:`BACKWARDS` and relu (one bit already; its own backward only) for
reference."""

QUICK: dict[str, Any] = {
    "seeds": 1,
    "epochs": 8,
    "width": 64,
    "depths": (2, 10, 20),
    "modules": "relukit",
}
"""What ``quick`` changes in every scenario's defaults (fields set explicitly still win; the
family runs on relukit.nn only, to stay a look in seconds)..."""

QUICK_CNN: dict[str, Any] = {"seeds": 2, "epochs": 10}
"""... except the cnn scenario's, where ``quick`` changes only these."""


@dataclass(frozen=True)
class RunSpec:
    """One training run: everything it needs besides the data. Picklable, hashable.

    ``index`` is the run's place in the study's plan, which fixes the order of the results.
    """

    index: int
    scenario: str
    activation: str
    seed: int
    depth: int
    width: int
    epochs: int
    lr: float
    optimizer: str
    batch_size: int
    init: str
    bias_shift: float
    target: float
    modules: str = "relukit"
    threads: int = 1
    image_shape: tuple[int, ...] = ()
    backward: str = "input"

    @property
    def group(self) -> tuple[str, str, str, int, str, str]:
        """The runs that differ only by seed share a group: (scenario, activation, init, depth,
        modules, backward)."""
        return (self.scenario, self.activation, self.init, self.depth, self.modules, self.backward)

    @property
    def cell(self) -> dict[str, Any]:
        """What fixes the run's numbers besides the data: every field but ``index`` (its place
        in one study's plan). Resuming matches runs by a hash of this, the data and the
        version (:mod:`relukit.study.cells`). ``backward`` counts only where it is not
        ``"input"``, so that the runs stored before the memory scenario existed keep their
        keys."""
        fields = self.to_dict()
        del fields["index"]
        if fields["backward"] == "input":
            del fields["backward"]
        return fields

    @property
    def label(self) -> str:
        """Short human name, e.g. ``"relu · seed 0"`` or ``"dying · relu · rai · seed 1"``."""
        parts = [] if self.scenario == "compare" else [self.scenario]
        parts.append(self.activation)
        if self.scenario == "dying":
            parts.append(self.init)
        if self.scenario == "depth":
            parts.append(f"depth {self.depth}")
        if self.scenario == "memory":
            parts.append(self.backward)
        if self.modules == "torch" and self.activation not in BASELINES:
            parts.append("torch.nn")
        parts.append(f"seed {self.seed}")
        return " · ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        fields = asdict(self)
        fields["image_shape"] = list(self.image_shape)
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> RunSpec:
        """The spec :meth:`to_dict` wrote."""
        return cls(**{**fields, "image_shape": tuple(fields.get("image_shape", ()))})


def _modules(
    activations: tuple[str, ...], modules: str, has_torch_module: Any
) -> list[tuple[str, str]]:
    """(activation, modules) of every group of one seed, in plan order."""
    pairs = []
    for activation in activations:
        if activation in BASELINES:
            pairs.append((activation, "torch"))
            continue
        if modules == "torch":
            pairs.append((activation, "torch" if has_torch_module(activation) else "relukit"))
            continue
        pairs.append((activation, "relukit"))
        if modules == "both" and has_torch_module(activation):
            pairs.append((activation, "torch"))
    return pairs


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class StudyConfig:
    """What ``relukit study`` runs (every CLI flag has a field of the same name).

    Attributes:
        scenario: ``"compare"`` (default), ``"dying"``, ``"depth"``, ``"cnn"``, ``"memory"`` or
            ``"all"``.
        activations: registry names (aliases accepted); None: the scenario's default.
        seeds: number of seeds, ``seed, seed+1, …``; None: 3 (depth: 2).
        seed: the first seed.
        depth: hidden layers (compare, dying); None: 4.
        depths: hidden layer counts swept by the depth scenario; None: 2, 5, 10, 20.
        width: units per hidden layer; None: 128 (depth scenario: 64).
        epochs: passes over the training split; None: 30 (dying: 20, depth: 15).
        lr: learning rate; None: :data:`LEARNING_RATES` for the scenario and optimizer.
        optimizer: one of :data:`OPTIMIZERS`; None: the scenario's (compare: sgd; dying,
            depth: adam).
        batch_size: rows per step.
        target: training accuracy whose first epoch is the convergence-speed measure.
        init: hidden layers' initialisation, one of :data:`INITS`.
        bias_shift: added to every hidden bias after initialisation; None: 0 (dying: -1).
        data: ``.npz`` or ``.csv`` file; None: the bundled digits.
        label: label column of a ``.csv`` file.
        out: report folder; None writes no report.
        force: overwrite an existing report folder (its stored runs are dropped).
        resume: continue the study in an existing report folder: every run already stored
            there under the same spec, data and relukit version is reused, only the others
            are trained.
        cluster: address of a running Dask scheduler (``tcp://host:8786``) to send the runs
            to; None: a local cluster of ``jobs`` workers (:mod:`relukit.study.runner`).
        modules: one of :data:`MODULES`; None: the scenario's (compare: ``both``, so that the
            cost of each member is measured on both implementations; the others:
            ``relukit``).
        image_shape: ``(channels, height, width)`` of a row of ``data`` for the cnn scenario;
            None: ``(1, 8, 8)`` for digits, else the shape of the file's image arrays.
        jobs: worker processes for the runs; 1 (the default here): in this process; None: one
            per core, at most one per run (the command line's default). Workers are started
            with the spawn method, so a script that calls :func:`~relukit.study.run` with
            ``jobs != 1`` must guard its top level with ``if __name__ == "__main__":``.
        threads: PyTorch threads per process; None: ``max(1, cores // jobs)``. The last digits
            of a run's numbers can depend on it (the order of floating-point sums), so compare
            studies run with the same value.
        quick: smaller defaults (:data:`QUICK`) for a look in seconds.
        backward: the memory scenario's modes, from :data:`BACKWARDS` and ``bits=N``; None:
            :data:`BACKWARDS`.
    """

    scenario: str = "compare"
    activations: tuple[str, ...] | None = None
    seeds: int | None = None
    seed: int = 0
    depth: int | None = None
    depths: tuple[int, ...] | None = None
    width: int | None = None
    epochs: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    batch_size: int = 64
    target: float = 0.95
    init: str = "he_normal"
    bias_shift: float | None = None
    data: str | Path | None = None
    label: str | None = None
    out: str | Path | None = "relukit-report"
    force: bool = False
    resume: bool = False
    cluster: str | None = None
    modules: str | None = None
    image_shape: tuple[int, ...] | None = None
    jobs: int | None = 1
    threads: int | None = None
    quick: bool = False
    backward: tuple[str, ...] | None = None

    @property
    def scenarios(self) -> tuple[str, ...]:
        """The scenarios this config runs, in order."""
        return SCENARIOS if self.scenario == "all" else (self.scenario,)

    def check(self) -> StudyConfig:
        """This config with activation names made canonical; ValueError/TypeError otherwise."""
        from relukit.family import lookup

        def fail(name: str, rule: str, value: object) -> UserValueError:
            return UserValueError(f"study: {name} must be {rule}, got {value!r}")

        if self.scenario not in (*SCENARIOS, "all"):
            raise fail("scenario", f"one of {', '.join((*SCENARIOS, 'all'))}", self.scenario)
        activations = self.activations
        if activations is not None:
            if isinstance(activations, str) or not all(isinstance(a, str) for a in activations):
                raise UserTypeError(
                    f"study: activations must be a tuple of names, got {activations!r}"
                )
            if not activations:
                raise fail("activations", "at least one name", activations)
            canonical: list[str] = []
            for name in activations:
                canonical_name = lookup(name).name
                if canonical_name in canonical:
                    raise UserValueError(f"study: activation {name!r} is named twice")
                canonical.append(canonical_name)
            from relukit.study.models import check_activation

            for name in canonical:
                check_activation(name, elementwise="cnn" in self.scenarios)
            activations = tuple(canonical)
        for name, low in (
            ("seeds", 1),
            ("depth", 1),
            ("width", 1),
            ("epochs", 1),
            ("jobs", 1),
            ("threads", 1),
        ):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value >= low):
                raise fail(name, f"an int >= {low}", value)
        for name, low in (("seed", 0), ("batch_size", 1)):
            value = getattr(self, name)
            if not (_is_int(value) and value >= low):
                raise fail(name, f"an int >= {low}", value)
        if self.depths is not None and (
            isinstance(self.depths, str)
            or not self.depths
            or not all(_is_int(d) and d >= 1 for d in self.depths)
        ):
            raise fail("depths", "a non-empty tuple of ints >= 1", self.depths)
        if self.lr is not None and not (
            _is_number(self.lr) and math.isfinite(self.lr) and self.lr > 0
        ):
            raise fail("lr", "a finite number > 0", self.lr)
        if not (_is_number(self.target) and 0 < self.target <= 1):
            raise fail("target", "a training accuracy in (0, 1]", self.target)
        if self.bias_shift is not None and not (
            _is_number(self.bias_shift) and math.isfinite(self.bias_shift)
        ):
            raise fail("bias_shift", "a finite number", self.bias_shift)
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise fail("optimizer", f"one of {', '.join(OPTIMIZERS)}", self.optimizer)
        if self.init not in INITS:
            raise fail("init", f"one of {', '.join(INITS)}", self.init)
        for name in ("force", "quick", "resume"):
            if not isinstance(getattr(self, name), bool):
                raise UserTypeError(f"study: {name} must be a bool, got {getattr(self, name)!r}")
        if self.force and self.resume:
            raise UserValueError("study: give --resume or --force, not both")
        if self.modules is not None and self.modules not in MODULES:
            raise fail("modules", f"one of {', '.join(MODULES)}", self.modules)
        if self.cluster is not None and not (
            isinstance(self.cluster, str) and "://" in self.cluster
        ):
            raise fail("cluster", "a scheduler address such as tcp://host:8786", self.cluster)
        if self.cluster is not None and self.jobs not in (None, 1):
            raise UserValueError(CLUSTER_JOBS)
        if self.image_shape is not None and not (
            isinstance(self.image_shape, tuple)
            and len(self.image_shape) == 3
            and all(_is_int(d) and d >= 1 for d in self.image_shape)
        ):
            raise fail("image_shape", "three ints >= 1 (channels, height, width)", self.image_shape)
        if self.image_shape is not None and "cnn" not in self.scenarios:
            raise UserValueError("study: image_shape applies only to the cnn scenario")
        backward = self.backward
        if backward is not None:
            if "memory" not in self.scenarios:
                raise UserValueError("study: backward applies only to the memory scenario")
            if isinstance(backward, str) or not backward:
                raise fail("backward", "a non-empty tuple of modes", backward)
            backward = tuple(_mode_name(mode) for mode in backward)
            if len(set(backward)) < len(backward):
                raise fail("backward", "modes named once each", self.backward)
        if "memory" in self.scenarios:
            if self.scenario == "memory" and self.modules not in (None, "relukit"):
                raise UserValueError(
                    "study: the memory scenario trains relukit.nn's modules in each backward "
                    f"mode; modules={self.modules!r} does not apply"
                )
            from relukit.study.models import backward_modes

            for name in activations or SCENARIO_DEFAULTS["memory"]["activations"]:
                backward_modes(name, backward or BACKWARDS)
        return replace(self, activations=activations, backward=backward)

    def settings(self, scenario: str) -> Settings:
        """The settings ``scenario`` runs with: the user's values, else the defaults."""
        config = self.check()
        defaults = dict(SCENARIO_DEFAULTS[scenario])
        if config.quick:
            defaults.update(QUICK_CNN if scenario == "cnn" else QUICK)
        optimizer = config.optimizer or defaults["optimizer"]
        lr = config.lr if config.lr is not None else LEARNING_RATES[scenario][optimizer]
        if scenario == "dying":
            inits = (config.init,) if config.init == "rai" else (config.init, "rai")
        else:
            inits = (config.init,)

        def pick(name: str) -> Any:
            value = getattr(config, name)
            return defaults[name] if value is None else value

        return Settings(
            scenario=scenario,
            activations=pick("activations"),
            optimizer=optimizer,
            seeds=pick("seeds"),
            depth=0 if scenario == "depth" else pick("depth"),
            depths=pick("depths") if scenario == "depth" else (),
            width=pick("width"),
            epochs=pick("epochs"),
            lr=float(lr),
            bias_shift=float(pick("bias_shift")),
            inits=inits,
            modules="relukit" if scenario == "memory" else pick("modules"),
            backward=(config.backward or BACKWARDS) if scenario == "memory" else ("input",),
        )

    def plan(self, threads: int = 1, image_shape: tuple[int, ...] = ()) -> list[RunSpec]:
        """Every run of the study, in the order the report lists them.

        ``threads`` (PyTorch threads of the process that trains a run) and ``image_shape``
        (the cnn scenario's row shape) are recorded in every spec: both fix its numbers.

        Example:
            >>> runs = StudyConfig(activations=("relu", "tanh"), seeds=2, modules="relukit").plan()
            >>> [run.label for run in runs]
            ['relu · seed 0', 'tanh · seed 0', 'relu · seed 1', 'tanh · seed 1']
            >>> runs = StudyConfig(activations=("relu", "tanh"), seeds=1, modules="both").plan()
            >>> [run.label for run in runs]
            ['relu · seed 0', 'relu · torch.nn · seed 0', 'tanh · seed 0']
        """
        from relukit.study.models import backward_modes, has_torch_module

        config = self.check()
        specs: list[RunSpec] = []
        for scenario in config.scenarios:
            settings = config.settings(scenario)
            depths = settings.depths or (settings.depth,)
            cells = [
                (activation, modules, backward)
                for activation, modules in _modules(
                    settings.activations, settings.modules, has_torch_module
                )
                for backward in backward_modes(activation, settings.backward)
            ]
            for seed in range(config.seed, config.seed + settings.seeds):
                for depth in depths:
                    for init in settings.inits:
                        for activation, modules, backward in cells:
                            specs.append(
                                RunSpec(
                                    index=len(specs),
                                    scenario=scenario,
                                    activation=activation,
                                    seed=seed,
                                    depth=depth,
                                    width=settings.width,
                                    epochs=settings.epochs,
                                    lr=settings.lr,
                                    optimizer=settings.optimizer,
                                    batch_size=config.batch_size,
                                    init=init,
                                    bias_shift=settings.bias_shift,
                                    target=float(config.target),
                                    modules=modules,
                                    threads=threads,
                                    image_shape=image_shape if scenario == "cnn" else (),
                                    backward=backward,
                                )
                            )
        return specs

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the fields as given (paths as strings)."""
        result = asdict(self)
        for key in ("data", "out"):
            if result[key] is not None:
                result[key] = str(result[key])
        for key in ("activations", "depths", "image_shape", "backward"):
            if result[key] is not None:
                result[key] = list(result[key])
        return result
