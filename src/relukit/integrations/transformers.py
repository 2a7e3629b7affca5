"""A Hugging Face ``TrainerCallback`` that logs activation statistics
(``pip install relukit[transformers]``).

Besides relukit's and ``torch.nn``'s activation modules, the callback recognises the activation
classes of ``transformers.activations`` that compute a registry member (:data:`HF_MEMBERS`:
BERT's ``GELUActivation``, GPT-2's ``NewGELUActivation``, …). Gated MLPs whose activation is a
module (Llama's ``act_fn``) are monitored as they are; for a gate applied as a function, pass
``modules={"model.layers.0.mlp.gate_proj": Gate("silu"), …}``.

Example:
    >>> import tempfile, torch
    >>> from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments
    >>> from relukit.integrations.transformers import ActivationMonitor
    >>> config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16,
    ...                     bos_token_id=0, eos_token_id=0)
    >>> model = GPT2LMHeadModel(config)
    >>> data = [{"input_ids": t, "labels": t} for t in torch.randint(0, 64, (16, 8))]
    >>> callback = ActivationMonitor(every=1)
    >>> args = TrainingArguments(tempfile.mkdtemp(), max_steps=4, per_device_train_batch_size=4,
    ...                          logging_steps=2, report_to="none", use_cpu=True)
    >>> trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[callback])
    >>> _ = trainer.train()  # doctest: +ELLIPSIS
    {'loss': ...}
    >>> [w.step for w in callback.windows], [r.member for r in callback.windows[0].layers]
    ([2, 4], ['gelu', 'gelu'])
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn
from transformers import TrainerCallback

from relukit.integrations.core import EndOfTraining, TrainingMonitor, Window
from relukit.integrations.loop import log_window

__all__ = ["HF_MEMBERS", "ActivationMonitor", "hf_member"]

_TANH = {"approximate": "tanh"}
HF_MEMBERS: dict[str, tuple[str, dict[str, Any]]] = {
    "GELUActivation": ("gelu", {}),
    "NewGELUActivation": ("gelu", _TANH),
    "GELUTanh": ("gelu", _TANH),
    "PytorchGELUTanh": ("gelu", _TANH),
    "FastGELUActivation": ("gelu", _TANH),
    "AccurateGELUActivation": ("gelu", _TANH),
    "SiLUActivation": ("silu", {}),
    "MishActivation": ("mish", {}),
    "ReLUSquaredActivation": ("squared_relu", {}),
}
"""``transformers.activations`` class name → (registry member, parameters). Classes that compute
no member (QuickGELU's x·σ(1.702x), ClippedGELU, Laplace, xIELU) are left out."""


def hf_member(module: nn.Module) -> tuple[str, dict[str, Any]] | None:
    """The member (and parameters) of a ``transformers.activations`` module, else ``None``."""
    cls = type(module)
    if not cls.__module__.startswith("transformers."):
        return None
    return HF_MEMBERS.get(cls.__name__)


def _interval(args: Any) -> int:
    steps = args.logging_steps
    if isinstance(steps, float) and steps < 1:  # a fraction of the run
        return max(1, round(steps * max(args.max_steps, 1)))
    return max(1, int(steps))


class ActivationMonitor(TrainerCallback):
    """Streaming activation statistics of the model a ``Trainer`` trains.

    Counts one optimisation step in ``every`` (all micro-batches of a step with gradient
    accumulation); after every ``log_every`` steps (default: ``args.logging_steps``) it closes a
    window. When ``args.report_to`` includes ``"tensorboard"`` the window's metrics (see
    :mod:`relukit.integrations.core`) and firing-rate histograms go to a TensorBoard event file
    in ``log_dir`` (default: ``$TENSORBOARD_LOGGING_DIR``, else ``<output_dir>/runs/relukit``,
    beside the Trainer's own runs). At the end of training it writes
    ``activation_stats.json`` (and ``activation_stats.png`` with ``figures=True``) to
    ``out_dir`` (default ``args.output_dir``) and, with ``revive=True``, re-draws the dead
    units of the last window. Evaluation forwards are not counted.

    Args:
        every: count one training step in ``every`` (default 10).
        log_every: steps per window (default: ``args.logging_steps``).
        log_dir: TensorBoard folder.
        out_dir: folder for the end-of-training files.
        **options: ``modules``, ``channel_dim``, ``rare_threshold``, ``histograms``,
            ``figures``, ``report``, ``revive``, ``revive_init``, ``seed``: see
            :class:`~relukit.integrations.core.TrainingMonitor`.
    """

    def __init__(
        self,
        *,
        every: int = 10,
        log_every: int | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.engine = TrainingMonitor(every=every, log_every=log_every, **options)
        self.log_dir = log_dir
        self.out_dir = out_dir
        self.writer: Any = None
        self.end_of_training: EndOfTraining | None = None

    @property
    def windows(self) -> list[Window]:
        """Every window closed so far."""
        return self.engine.windows

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if not isinstance(model, nn.Module):
            raise TypeError("ActivationMonitor: the Trainer passed no model to on_train_begin")
        self.engine.begin(model, extra=hf_member, log_every=_interval(args))
        report_to = args.report_to if isinstance(args.report_to, list) else [args.report_to]
        if state.is_world_process_zero and ({"tensorboard", "all"} & set(report_to)):
            from torch.utils.tensorboard import SummaryWriter

            log_dir = self.log_dir or os.environ.get("TENSORBOARD_LOGGING_DIR")
            self.writer = SummaryWriter(log_dir or os.path.join(args.output_dir, "runs", "relukit"))

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.engine.batch_start()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        window = self.engine.batch_end(state.global_step)
        if window is not None:
            self._log(window)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        out_dir = (self.out_dir or args.output_dir) if state.is_world_process_zero else None
        self.end_of_training = self.engine.end(state.global_step, out_dir, kwargs.get("optimizer"))
        if self.end_of_training.window is not None:
            self._log(self.end_of_training.window)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _log(self, window: Window) -> None:
        if self.writer is not None:
            log_window(self.writer, window, self.engine.histograms)
