"""Activation statistics where people train: callbacks for frameworks, and a plain-loop helper.

Each integration is an ``ActivationMonitor`` around the same engine
(:class:`~relukit.integrations.core.TrainingMonitor`, which drives a
:class:`~relukit.diagnostics.DeadUnitMonitor`): it counts one training batch in ``every``
(default 10), logs per-layer dead/rare units, firing rate, sparsity, mean, std, max |x| and
kurtosis to the framework's logger after every ``log_every`` batches (default: the framework's
own logging interval), and at the end of training can write ``activation_stats.json``,
``activation_stats.png`` and revive the dead units.

* :mod:`relukit.integrations.lightning` — a Lightning ``Callback`` (``pip install
  relukit[lightning]``); logs to every logger of the ``Trainer`` (TensorBoard, CSV, …).
* :mod:`relukit.integrations.transformers` — a Hugging Face ``TrainerCallback`` (``pip install
  relukit[transformers]``); logs to TensorBoard when ``report_to`` includes it.
* :mod:`relukit.integrations.loop` — for a loop written by hand: a TensorBoard
  ``SummaryWriter`` and/or a CSV file.

Only the integration you import needs its framework installed.
"""
