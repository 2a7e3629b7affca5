"""The study's report: a folder people can open, and tables for the terminal.

The report folder holds

* ``index.html`` — self-contained: styles inline, every figure embedded as a base64 PNG, no
  script, no network; readable offline and by any browser (:mod:`.html`);
* the figures as PNG (:mod:`.figures`): ``gallery.png`` (every member and its derivative,
  from :func:`relukit.plot.gallery`), and per scenario ``accuracy.png``,
  ``learning_curves.png``, ``dead_units.png``, ``gradient_flow.png`` (compare), ``dying.png``
  (dying), ``depth.png`` (depth), ``cnn.png`` (cnn);
* ``results.json`` — everything: configuration, data, environment, claims with their
  intervals, groups, every run with its per-epoch curves, how many runs were reused;
* ``results.csv`` — every number in long form, one per row: ``scenario, activation, modules,
  init, depth, seed, epoch, layer, measure, value`` (``epoch`` and ``layer`` are empty where
  they do not apply; ``value`` is empty for "never");
* ``summary.csv`` — one row per activation (per modules, init and depth) with means and
  standard deviations over the seeds;
* ``runs/`` — every finished run, stored as it finished (:mod:`relukit.study.cells`).

:mod:`.files` checks the folder before any work and writes it (:func:`render` in memory, then
:func:`commit`); :mod:`.tables` makes the summary as rows of text, which the HTML page and the
terminal (:func:`rich_tables`, :func:`print_summary`) both show.
"""

from __future__ import annotations

from relukit.study.report.figures import FIGURES
from relukit.study.report.files import FILES, check_out, commit, render, write_report
from relukit.study.report.tables import Table, print_summary, rich_tables, summary_tables

__all__ = [
    "FIGURES",
    "FILES",
    "Table",
    "check_out",
    "commit",
    "print_summary",
    "render",
    "rich_tables",
    "summary_tables",
    "write_report",
]
