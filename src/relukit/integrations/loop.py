"""Activation statistics for a training loop written by hand.

Example:
    >>> import torch, tempfile, csv
    >>> from torch import nn
    >>> from relukit.integrations.loop import ActivationMonitor
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> folder = tempfile.mkdtemp()
    >>> with ActivationMonitor(model, csv=f"{folder}/acts.csv", every=2, log_every=5) as monitor:
    ...     for step in range(10):
    ...         with monitor.batch(step):
    ...             loss = model(torch.randn(16, 4)).square().mean()
    ...             opt.zero_grad(); loss.backward(); opt.step()
    >>> rows = list(csv.DictReader(open(f"{folder}/acts.csv")))
    >>> len(rows), rows[0]["step"], "activations/1/dead_fraction" in rows[0]
    (2, '4', True)
"""

from __future__ import annotations

import csv as _csv
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from relukit.integrations.core import EndOfTraining, TrainingMonitor, Window

__all__ = ["ActivationMonitor", "log_window"]


def log_window(writer: Any, window: Window, histograms: bool = True, scalars: bool = True) -> None:
    """Write a window's metrics and firing-rate histograms to a TensorBoard ``SummaryWriter``."""
    if scalars:
        for tag, value in window.metrics.items():
            writer.add_scalar(tag, value, window.step)
    if histograms:
        for name, rates in window.rates.items():
            if rates.numel():
                writer.add_histogram(
                    f"activations/{name or 'model'}/firing_rates", rates, window.step
                )


class ActivationMonitor:
    """Streaming activation statistics of ``model`` in a hand-written loop.

    Wrap each training batch in ``with monitor.batch(step):``; leave the ``with monitor:``
    block (or call :meth:`end`) when training is over.

    Args:
        model: the model (or the part of it to monitor).
        writer: a TensorBoard ``SummaryWriter`` (``torch.utils.tensorboard``), or ``None``.
        csv: a CSV file to write one row per window to (columns ``step``, ``batches`` and the
            metrics of the first window), or ``None``.
        out_dir: where :meth:`end` writes ``activation_stats.json`` / ``.png``; ``None`` writes
            nothing.
        log_every: batches per window (default 50).
        **options: ``every`` (default 10), ``modules``, ``channel_dim``, ``rare_threshold``,
            ``histograms``, ``figures``, ``report``, ``revive``, ``revive_init``, ``seed``: see
            :class:`~relukit.integrations.core.TrainingMonitor`.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        writer: Any = None,
        csv: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        log_every: int = 50,
        **options: Any,
    ) -> None:
        if writer is not None and not hasattr(writer, "add_scalar"):
            raise TypeError(
                f"ActivationMonitor: writer must be a SummaryWriter, got {type(writer).__name__}"
            )
        self.engine = TrainingMonitor(log_every=log_every, **options)
        self.writer = writer
        self.csv = None if csv is None else Path(csv)
        self.out_dir = out_dir
        self._columns: list[str] | None = None
        self._step = 0
        if self.csv is not None:
            self.csv.parent.mkdir(parents=True, exist_ok=True)
            self.csv.write_text("", encoding="utf-8")
        self.engine.begin(model)

    @property
    def windows(self) -> list[Window]:
        """Every window closed so far."""
        return self.engine.windows

    @contextmanager
    def batch(self, step: int) -> Iterator[None]:
        """Count this training batch (if it is one in ``every``); log when a window closes."""
        self._step = step
        self.engine.batch_start()
        try:
            yield
        finally:
            window = self.engine.batch_end(step)
            if window is not None:
                self._log(window)

    def _log(self, window: Window) -> None:
        if self.writer is not None:
            log_window(self.writer, window, self.engine.histograms)
        if self.csv is not None:
            row = {"step": window.step, "batches": window.batches, **window.metrics}
            with self.csv.open("a", newline="", encoding="utf-8") as f:
                if self._columns is None:
                    self._columns = list(row)
                    _csv.DictWriter(f, self._columns).writeheader()
                _csv.DictWriter(f, self._columns, extrasaction="ignore").writerow(row)

    def end(self, optimizer: Any = None) -> EndOfTraining:
        """Close the last window, log it, write the files and revive as configured."""
        result = self.engine.end(self._step, self.out_dir, optimizer)
        if result.window is not None:
            self._log(result.window)
        if self.writer is not None:
            self.writer.flush()
        return result

    def __enter__(self) -> ActivationMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()
