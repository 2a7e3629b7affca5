"""A Lightning ``Callback`` that logs activation statistics (``pip install relukit[lightning]``).

Example:
    >>> import tempfile, torch
    >>> import lightning.pytorch as L
    >>> from torch import nn
    >>> from relukit.integrations.lightning import ActivationMonitor
    >>> class Net(L.LightningModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.net = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 1))
    ...     def training_step(self, batch, batch_idx):
    ...         return self.net(batch[0]).square().mean()
    ...     def configure_optimizers(self):
    ...         return torch.optim.SGD(self.parameters(), lr=0.1)
    >>> data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(64, 4)), 8)
    >>> callback = ActivationMonitor(every=2)
    >>> trainer = L.Trainer(max_epochs=1, callbacks=[callback], log_every_n_steps=4,
    ...                     logger=L.loggers.CSVLogger(tempfile.mkdtemp()),
    ...                     enable_progress_bar=False, enable_model_summary=False)
    >>> trainer.fit(Net(), data)
    >>> [w.step for w in callback.windows], callback.windows[0].batches
    ([4, 8], 2)
"""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl

from relukit.integrations.core import EndOfTraining, TrainingMonitor, Window
from relukit.integrations.loop import log_window

__all__ = ["ActivationMonitor"]


class ActivationMonitor(pl.Callback):
    """Streaming activation statistics of the ``LightningModule`` during ``fit``.

    Counts one training batch in ``every``; after every ``log_every`` training batches
    (default: the trainer's ``log_every_n_steps``) it logs, at the trainer's global step, the
    metrics of :mod:`relukit.integrations.core` to every logger of the trainer
    (``logger.log_metrics``: TensorBoard, CSV, …) and, to a TensorBoard logger, a histogram of
    each layer's per-unit firing rates. At the end of ``fit`` it logs the last window and
    writes ``activation_stats.json`` (and ``activation_stats.png`` with ``figures=True``) to
    ``out_dir`` (default: the trainer's ``log_dir``); with ``revive=True`` it re-draws the dead
    units of the last window and resets their state in the first optimizer. Validation and
    test forwards are not counted.

    Args:
        every: count one training batch in ``every`` (default 10).
        log_every: training batches per window (default: ``trainer.log_every_n_steps``).
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
        out_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> None:
        self.engine = TrainingMonitor(every=every, log_every=log_every, **options)
        self.out_dir = out_dir
        self.end_of_training: EndOfTraining | None = None

    @property
    def windows(self) -> list[Window]:
        """Every window closed so far."""
        return self.engine.windows

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.engine.begin(pl_module, log_every=trainer.log_every_n_steps)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.engine.batch_start()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        window = self.engine.batch_end(trainer.global_step)
        if window is not None:
            self._log(trainer, window)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        out_dir = self.out_dir or trainer.log_dir or trainer.default_root_dir
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        if not trainer.is_global_zero:
            out_dir = None
        self.end_of_training = self.engine.end(trainer.global_step, out_dir, optimizer)
        if self.end_of_training.window is not None:
            self._log(trainer, self.end_of_training.window)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.engine.close()

    def _log(self, trainer: pl.Trainer, window: Window) -> None:
        if not trainer.is_global_zero:
            return
        from lightning.pytorch.loggers import TensorBoardLogger

        for logger in trainer.loggers:
            logger.log_metrics(window.metrics, step=window.step)
            if self.engine.histograms and isinstance(logger, TensorBoardLogger):
                log_window(logger.experiment, window, scalars=False)
