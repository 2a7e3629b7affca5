"""The report's page: ``index.html``, self-contained (styles inline, figures embedded as base64
PNGs, no script, no network), readable offline and by any browser."""

from __future__ import annotations

import base64
import html
import shlex
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from relukit.study.report.figures import FIGURES
from relukit.study.report.tables import Table, best_cells, summary_tables
from relukit.study.scenarios import Group, StudyResult, claims

__all__ = ["command", "page"]


_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #dde2ea; --soft: #f5f7fa; --accent: #2457c5; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--ink); margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 60px; }
header { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 8px; }
h1 { font-size: 28px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 34px 0 10px; padding-bottom: 4px;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
.sub { color: var(--muted); margin: 0; }
.banner { background: #fff4e0; border: 1px solid #f0c36d; padding: 10px 14px; border-radius: 6px;
          margin: 14px 0; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 4px; font-size: 14px; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); text-align: right;
         white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--soft); font-weight: 600; border-bottom: 2px solid var(--line); }
tbody tr:nth-child(even) { background: #fafbfc; }
td.best { font-weight: 700; color: #0f6b2f; }
.note { color: var(--muted); font-size: 13px; margin: 2px 0 16px; }
.claims td, .claims th { white-space: normal; text-align: left; vertical-align: top; }
.claims td.rule { color: var(--muted); font-size: 12.5px; }
.claims td.effect { white-space: nowrap; font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12.5px;
           font-weight: 600; white-space: nowrap; }
.v-holds { background: #dff3e4; color: #11652b; }
.v-inconclusive { background: #fff1d6; color: #8a5a00; }
.v-does-not-hold { background: #fde2e1; color: #a01d1d; }
.v-not-tested { background: #eceff3; color: #5b6475; }
figure { margin: 16px 0 26px; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 6px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 8px 0; }
dt { color: var(--muted); }
dd { margin: 0; }
code { background: var(--soft); padding: 1px 5px; border-radius: 3px; font-size: 13px; }
ul.files { columns: 3; padding-left: 18px; }
.scroll { overflow-x: auto; }
"""


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _html_table(table: Table, best: dict[int, set[int]] | None = None) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in table.headers)
    body = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, value in enumerate(row):
            mark = ' class="best"' if best and r in best.get(c, set()) else ""
            cells.append(f"<td{mark}>{_esc(value)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<h3>{_esc(table.title)}</h3><div class="scroll"><table class="summary">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f'<p class="note">{_esc(table.note)}</p>'
    )


def _claims_html(result: StudyResult) -> str:
    rows = []
    for claim in claims(result):
        kind = claim.verdict.split(" at ")[0].replace(" ", "-")
        rows.append(
            f"<tr><td><b>{_esc(claim.claim)}</b></td>"
            f'<td><span class="verdict v-{kind}">{_esc(claim.verdict)}</span></td>'
            f'<td class="effect">{_esc(claim.effect)}</td>'
            f"<td>{_esc(claim.evidence)}</td>"
            f'<td class="rule">{_esc(claim.rule)}</td></tr>'
        )
    if not rows:
        return ""
    return (
        "<h2>The claims about ReLU, checked</h2>"
        '<table class="claims"><thead><tr><th>claim</th><th>here</th>'
        "<th>effect [95 % interval]</th><th>computed from</th>"
        "<th>rule for the verdict</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        '<p class="note">Each effect is computed per seed, pairing runs of the same seed (same '
        "initial weights, same batches), and given a 95 % Student t interval over the seeds. "
        "Verdicts describe this study: this data, this network, these settings and seeds. "
        "Change them and the verdicts may change; that is the point of checking.</p>"
    )


def _layer_table(found: Sequence[Group], title: str, values: str, fmt: str, note: str) -> str:
    width = max((len(getattr(g, values)) for g in found), default=0)
    if not width:
        return ""
    last_is_output = values == "grad_norms"
    headers = ["activation"] + [
        "output" if last_is_output and i == width else f"layer {i}" for i in range(1, width + 1)
    ]
    rows = tuple((g.name, *(format(v, fmt) for v in getattr(g, values))) for g in found)
    return _html_table(Table(title, tuple(headers), rows, note))


def _setup_html(result: StudyResult) -> str:
    config = result.config
    data = result.data
    env = result.environment
    items = [
        ("data", f"{data['name']}: {data['source']}"),
        (
            "rows",
            f"{data['train']} train · {data['validation']} validation · {data['test']} test; "
            f"{data['features']} features, {data['classes']} classes; standardised with the "
            "training split's mean and std",
        ),
        (
            "training",
            f"cross-entropy, batch size {config.batch_size}, same batches in the same "
            "order for every activation",
        ),
        ("target", f"{100 * config.target:.0f} % training accuracy"),
        ("init", f"hidden layers {config.init}; output layer lecun_normal"),
    ]
    for scenario, settings in result.settings.items():
        layers = (
            f"{settings['depth']} hidden layers"
            if settings["depth"]
            else "depths " + ", ".join(map(str, settings["depths"]))
        )
        items.append(
            (
                scenario,
                f"{', '.join(settings['activations'])}; {settings['seeds']} seeds from "
                f"{config.seed}; {layers} of {settings['width']}; {settings['epochs']} epochs; "
                f"{settings['optimizer']}"
                + (" (momentum 0.9)" if settings["optimizer"] == "sgd" else "")
                + f", lr {settings['lr']:g}"
                + (f"; bias shift {settings['bias_shift']:g}" if settings["bias_shift"] else "")
                + (f"; inits {', '.join(settings['inits'])}" if scenario == "dying" else "")
                + (f"; backward {', '.join(settings['backward'])}" if scenario == "memory" else ""),
            )
        )
    load = env.get("load_average_before")
    items += [
        (
            "runs",
            f"{len(result.runs)} of {result.planned} completed in {result.seconds:.1f} s"
            + (" (interrupted)" if result.interrupted else "")
            + f"; {result.reused} reused from the report folder's stored runs, "
            f"{len(result.runs) - result.reused} trained",
        ),
        ("engine", str(env.get("engine"))),
        (
            "machine",
            f"{env.get('processor')}, {env.get('cores')} cores; {env.get('jobs')} "
            f"job(s) × {env.get('torch_threads_per_process')} torch thread(s); load "
            f"average before {load[0]:.2f}"
            if load
            else f"{env.get('cores')} cores",
        ),
        (
            "software",
            f"relukit {env.get('relukit')}, Python {env.get('python')}, PyTorch "
            f"{env.get('torch')}, NumPy {env.get('numpy')}",
        ),
        ("reproduce", command(result)),
    ]
    body = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items)
    return f"<h2>Setup</h2><dl>{body}</dl>"


def command(result: StudyResult) -> str:
    """The command that reproduces ``result``'s numbers: every setting that differs from the
    default, and always the engine (``--jobs N``, or ``--cluster ADDRESS``) and ``--threads``,
    which can change the last digits.

    Example:
        >>> from relukit.study.config import StudyConfig
        >>> from relukit.study.scenarios import StudyResult
        >>> config = StudyConfig(activations=("relu", "tanh"), seeds=2, jobs=None)
        >>> environment = {"jobs": 2, "torch_threads_per_process": 1}
        >>> command(StudyResult(config, {}, {}, 0, [], environment=environment))
        'relukit study --activations relu,tanh --seeds 2 --jobs 2 --threads 1'
    """
    config = result.config
    parts = ["relukit", "study"]
    defaults = type(config)()
    skip = ("force", "out", "resume", "jobs", "threads", "cluster")
    for key, value in config.to_dict().items():
        if key in skip or value == getattr(defaults, key, None) or value is None:
            continue
        if isinstance(value, list):
            value = ",".join(map(str, value))
        if isinstance(value, bool):
            if value:
                parts.append(f"--{key.replace('_', '-')}")
            continue
        parts += [f"--{key.replace('_', '-')}", str(value)]
    environment = result.environment
    if config.cluster is not None:
        parts += ["--cluster", config.cluster]
    else:
        parts += ["--jobs", str(environment.get("jobs") or config.jobs or 1)]
    parts += ["--threads", str(environment.get("torch_threads_per_process") or config.threads or 1)]
    return " ".join(shlex.quote(part) for part in parts)


def page(result: StudyResult, figures: dict[str, tuple[bytes, str]]) -> str:
    """The HTML of the report."""
    when = datetime.now(timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M %Z")
    data = result.data
    scenarios = ", ".join(result.settings)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>relukit study: {_esc(data['name'])}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<header><h1>relukit study: the ReLU family on {_esc(data['name'])}</h1>",
        f'<p class="sub">{_esc(scenarios)} · {len(result.runs)} runs'
        + (f" ({result.reused} reused from the report folder)" if result.reused else "")
        + f" · {result.seconds:.0f} s · {_esc(when)}</p></header>",
    ]
    if result.interrupted:
        parts.append(
            f'<div class="banner"><b>Interrupted.</b> The study was stopped after '
            f"{len(result.runs)} of {result.planned} runs; this report shows the completed "
            "runs only.</div>"
        )
    parts.append(_claims_html(result))
    parts.append("<h2>Summary</h2>")
    tables = summary_tables(result)
    for index, table in enumerate(tables):
        scenario = result.scenarios[index] if index < len(result.scenarios) else ""
        parts.append(_html_table(table, best_cells(result, scenario)))
    if not tables:
        parts.append('<p class="note">No run completed.</p>')
    order = [name for name in FIGURES if name in figures and name != "gallery.png"]
    titles = {
        "accuracy.png": "Accuracy and convergence speed",
        "learning_curves.png": "Learning curves",
        "dead_units.png": "Dead units and sparsity",
        "gradient_flow.png": "Gradient flow at initialisation",
        "dying.png": "Dying units under a high learning rate and a negative bias",
        "depth.png": "Depth: vanishing gradients",
        "cnn.png": "A CNN: training error against epochs (Krizhevsky et al. 2012, Figure 1)",
        "memory.png": "Memory: bytes kept for the backward pass, accuracy and time",
        "memory_curves.png": "Memory: learning curves per backward mode",
        "gallery.png": "The family",
    }
    if order:
        parts.append("<h2>Figures</h2>")
    for name in [*order, "gallery.png"]:
        if name not in figures:
            continue
        png, caption = figures[name]
        encoded = base64.b64encode(png).decode("ascii")
        if name == "gallery.png":
            parts.append("<h2>The family</h2>")
        else:
            parts.append(f"<h3>{_esc(titles[name])}</h3>")
        parts.append(
            f'<figure><img alt="{_esc(titles[name])}" src="data:image/png;base64,{encoded}">'
            f'<figcaption>{_esc(caption)} <a href="{name}">{name}</a></figcaption></figure>'
        )
    compare = result.groups("compare")
    if compare:
        parts.append("<h2>Per layer</h2>")
        parts.append(
            _layer_table(
                compare,
                "Dead units per hidden layer after training",
                "dead_per_layer",
                ".1%",
                "fraction of each layer's units that fire on no training row, mean over seeds",
            )
        )
        parts.append(
            _layer_table(
                compare,
                "Sparsity per hidden layer after training",
                "sparsity_per_layer",
                ".1%",
                "fraction of exact zeros among each layer's outputs, mean over seeds",
            )
        )
        parts.append(
            _layer_table(
                compare,
                "Gradient norm per layer at initialisation",
                "grad_norms",
                ".3g",
                "‖∂L/∂W‖ of each weight matrix before training, on the whole training split",
            )
        )
    parts.append(_setup_html(result))
    links = "".join(
        f'<li><a href="{name}">{name}</a></li>'
        for name in ("results.json", "results.csv", "summary.csv", *figures)
    )
    parts.append(
        "<h2>Files</h2><p>Every number of this page, and more, is in the files beside it "
        f'(<code>results.csv</code>: one number per row).</p><ul class="files">{links}</ul>'
    )
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)
