"""One training run of the study, measured: :func:`train` turns a :class:`RunSpec` into a
:class:`RunResult`.

The loop is plain mini-batch training with cross-entropy. Everything random comes from the
spec's seed: ``torch.manual_seed(seed)`` (for members that draw, like rrelu), the per-layer
generators of :func:`~relukit.study.models.build_model` and a ``torch.Generator`` for the batch
order, so every activation sees the same batches in the same order.

Measured, at initialisation (epoch 0) and after every epoch, on the whole training split in
evaluation mode: loss and accuracy, validation loss and accuracy, and per hidden layer the
fraction of dead units and the sparsity (fraction of exact zeros), counted by
:class:`~relukit.diagnostics.monitor.DeadUnitMonitor` (a unit is dead when it fires on no
training row). At initialisation only: the norm of the loss gradient of every weight matrix
(:func:`~relukit.diagnostics.gradient_flow.gradient_flow`), the vanishing-gradient measure. At
the end: test loss and accuracy. In the memory scenario, before training: the bytes autograd
keeps for the backward pass of one training batch (:func:`relukit.memory.saved.saved_bytes`:
unique storages, parameters left out), all of them and those only the activations keep. The
first epoch after which the training accuracy reaches
``target`` gives the epochs and the seconds of training (the measurements excluded) to the
target; ``None`` when it never does. A non-finite loss stops the run (``diverged``).

Nothing here prints: progress goes to the ``emit`` callback as :class:`Event` objects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from relukit.diagnostics import DeadUnitMonitor, gradient_flow
from relukit.memory.saved import saved_bytes
from relukit.study.config import RunSpec
from relukit.study.data import Dataset
from relukit.study.models import build_cnn, build_model

__all__ = ["Event", "RunResult", "Stopped", "Tensors", "train"]


class Stopped(Exception):
    """Raised inside a run when the study was asked to stop (Ctrl-C in a parallel study)."""


@dataclass(frozen=True)
class Event:
    """A progress report from the study to whoever watches it (the CLI's progress bars).

    ``kind`` is ``"plan"`` (``total`` runs), ``"start"``, ``"epoch"`` (``epoch`` of ``epochs``,
    with the training ``accuracy`` and ``loss``), ``"done"`` (the run's final ``accuracy`` on
    test), ``"report"`` (writing the report) or ``"stopping"``.
    """

    kind: str
    run: int = -1
    label: str = ""
    epoch: int = 0
    epochs: int = 0
    total: int = 0
    accuracy: float = math.nan
    loss: float = math.nan


Emit = Callable[[Event], None]


@dataclass(frozen=True)
class Tensors:
    """The data set as tensors, made once per process."""

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor
    features: int
    classes: int

    @classmethod
    def of(cls, data: Dataset) -> Tensors:
        """Tensors sharing memory with ``data``'s arrays."""
        return cls(
            *(
                torch.from_numpy(getattr(data, key))
                for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")
            ),
            features=data.features,
            classes=data.classes,
        )


@dataclass
class RunResult:
    """Everything one run measured. Lists indexed by epoch start at epoch 0 (initialisation).

    Attributes:
        spec: the run.
        epochs_run: epochs completed (less than ``spec.epochs`` only if it diverged).
        loss, accuracy: training split, per epoch 0 … epochs_run.
        val_loss, val_accuracy: validation split, per epoch.
        dead, sparsity: per epoch, per hidden layer (fractions).
        epoch_seconds: training time of each epoch 1 … epochs_run (measurements excluded).
        grad_norms: ‖∂L/∂W‖ of every weight matrix at initialisation, input layer first.
        activation_grad_rms: RMS of the loss gradient reaching each activation's output at
            initialisation, input side first.
        test_loss, test_accuracy: after the last epoch.
        epochs_to_target, seconds_to_target: first epoch whose training accuracy reached the
            target, and the training seconds up to its end; None: never.
        diverged: the loss became NaN or infinite.
        kept_bytes, kept_by_activations: bytes kept for the backward pass of one training
            batch of ``batch_size`` rows, all and only the activations'; None: not measured
            (measured in the memory scenario).
    """

    spec: RunSpec
    epochs_run: int = 0
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    dead: list[list[float]] = field(default_factory=list)
    sparsity: list[list[float]] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    grad_norms: list[float] = field(default_factory=list)
    activation_grad_rms: list[float] = field(default_factory=list)
    test_loss: float = math.nan
    test_accuracy: float = math.nan
    epochs_to_target: int | None = None
    seconds_to_target: float | None = None
    diverged: bool = False
    kept_bytes: int | None = None
    kept_by_activations: int | None = None

    @property
    def dead_fraction(self) -> list[float]:
        """Whole-network dead fraction per epoch (every hidden layer has ``width`` units)."""
        return [float(np.mean(layers)) for layers in self.dead]

    @property
    def mean_sparsity(self) -> list[float]:
        """Whole-network sparsity per epoch."""
        return [float(np.mean(layers)) for layers in self.sparsity]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN and infinities become None)."""
        return _jsonable({**asdict(self), "spec": self.spec.to_dict()})

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> RunResult:
        """The result :meth:`to_dict` wrote (None read back as NaN where a float belongs).

        Example:
            >>> from relukit.study.config import StudyConfig
            >>> spec = StudyConfig(activations=("relu",), seeds=1).plan()[0]
            >>> result = RunResult(spec, loss=[2.0, math.inf], dead=[[0.5, 0.25]])
            >>> again = RunResult.from_dict(result.to_dict())
            >>> again.spec == spec, again.loss, again.dead, math.isnan(again.test_loss)
            (True, [2.0, nan], [[0.5, 0.25]], True)
        """
        values = dict(fields)
        values["spec"] = RunSpec.from_dict(values["spec"])
        for key in ("test_loss", "test_accuracy"):
            values[key] = math.nan if values[key] is None else float(values[key])
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
            values[key] = [math.nan if v is None else float(v) for v in values[key]]
        for key in ("grad_norms", "activation_grad_rms"):
            values[key] = [math.nan if v is None else float(v) for v in values.get(key, [])]
        for key in ("dead", "sparsity"):
            values[key] = [
                [math.nan if v is None else float(v) for v in row] for row in values[key]
            ]
        return cls(**values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _optimizer(name: str, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    params = model.parameters()
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    return torch.optim.RMSprop(params, lr=lr)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    scores = model(x)
    loss = float(functional.cross_entropy(scores, y))
    accuracy = float((scores.argmax(dim=1) == y).double().mean())
    return loss, accuracy


def _measure(model: nn.Module, data: Tensors, result: RunResult) -> None:
    """Append the epoch's training, validation and dead-unit measures to ``result``."""
    model.eval()
    with DeadUnitMonitor(model) as monitor:
        loss, accuracy = _evaluate(model, data.X_train, data.y_train)
    layers = monitor.report()
    result.loss.append(loss)
    result.accuracy.append(accuracy)
    result.dead.append([row.dead / row.units for row in layers])
    result.sparsity.append([row.sparsity for row in layers])
    val_loss, val_accuracy = _evaluate(model, data.X_val, data.y_val)
    result.val_loss.append(val_loss)
    result.val_accuracy.append(val_accuracy)
    model.train()


def train(
    spec: RunSpec,
    data: Tensors,
    *,
    emit: Emit | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train the network of ``spec`` on ``data`` and measure it (see the module docstring).

    ``should_stop`` is polled before every step; when it answers True the run raises
    :class:`Stopped`. A ``KeyboardInterrupt`` passes through untouched.

    Example:
        >>> from relukit.study.config import StudyConfig
        >>> from relukit.study.data import load
        >>> spec = StudyConfig(activations=("relu",), seeds=1, epochs=2, width=16).plan()[0]
        >>> result = train(spec, Tensors.of(load()))
        >>> result.epochs_run, len(result.accuracy), len(result.dead[0]), len(result.grad_norms)
        (2, 3, 4, 5)
        >>> result.accuracy[-1] > result.accuracy[0]
        True
    """
    torch.manual_seed(spec.seed)
    shape = {"features": data.features} if spec.scenario != "cnn" else {"shape": spec.image_shape}
    model = (build_cnn if spec.scenario == "cnn" else build_model)(
        spec.activation,
        **shape,
        classes=data.classes,
        depth=spec.depth,
        width=spec.width,
        seed=spec.seed,
        init=spec.init,
        bias_shift=spec.bias_shift,
        modules=spec.modules,
        backward=spec.backward,
    )
    result = RunResult(spec)
    if spec.scenario == "memory":
        x, y = data.X_train[: spec.batch_size].clone(), data.y_train[: spec.batch_size]
        kept = saved_bytes(model, lambda: functional.cross_entropy(model(x), y))
        result.kept_bytes, result.kept_by_activations = kept.total, kept.only_activation
    flow = gradient_flow(model, (data.X_train, data.y_train), functional.cross_entropy)
    result.grad_norms = [w.grad_norm for w in flow.weights]
    result.activation_grad_rms = [a.grad_output_rms for a in flow.activations]
    optimizer = _optimizer(spec.optimizer, model, spec.lr)
    _measure(model, data, result)
    order = torch.Generator().manual_seed(spec.seed)
    rows = len(data.y_train)
    trained = 0.0
    for epoch in range(1, spec.epochs + 1):
        permutation = torch.randperm(rows, generator=order)
        started = time.perf_counter()
        for begin in range(0, rows, spec.batch_size):
            if should_stop is not None and should_stop():
                raise Stopped
            batch = permutation[begin : begin + spec.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = functional.cross_entropy(model(data.X_train[batch]), data.y_train[batch])
            if not torch.isfinite(loss):
                result.diverged = True
                break
            loss.backward()
            optimizer.step()
        elapsed = time.perf_counter() - started
        trained += elapsed
        result.epoch_seconds.append(elapsed)
        _measure(model, data, result)
        result.epochs_run = epoch
        if not math.isfinite(result.loss[-1]):
            result.diverged = True
        if result.epochs_to_target is None and result.accuracy[-1] >= spec.target:
            result.epochs_to_target = epoch
            result.seconds_to_target = trained
        if emit is not None:
            emit(
                Event(
                    "epoch",
                    run=spec.index,
                    label=spec.label,
                    epoch=epoch,
                    epochs=spec.epochs,
                    accuracy=result.accuracy[-1],
                    loss=result.loss[-1],
                )
            )
        if result.diverged:
            break
    model.eval()
    result.test_loss, result.test_accuracy = _evaluate(model, data.X_test, data.y_test)
    return result
