"""The report's tables: the summary of every scenario as rows of text, shown by the HTML page
and in the terminal (:func:`rich_tables`, :func:`print_summary`), and which cells are the best.

A best value is marked only where its interval excludes the others: paired by seed, the 95 %
t interval of its difference to every other activation lies on its side of 0
(:func:`best_cells`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from relukit.study.scenarios import BASELINES, Group, Stat, StudyResult, claims
from relukit.study.stats import Interval

__all__ = [
    "Table",
    "best_cells",
    "cost_table",
    "memory_table",
    "print_summary",
    "rich_tables",
    "summary_tables",
]


def _pct(stat: Stat) -> str:
    if stat.n == 0:
        return "—"
    if stat.of == 1:
        return f"{100 * stat.mean:.1f} %"
    return f"{100 * stat.mean:.1f} ± {100 * stat.std:.1f} %"


def _num(stat: Stat, digits: int = 3, unit: str = "") -> str:
    if stat.n == 0:
        return "—"
    if stat.of == 1:
        return f"{stat.mean:.{digits}g}{unit}"
    return f"{stat.mean:.{digits}g} ± {stat.std:.{digits - 1}g}{unit}"


def _to_target(stat: Stat, unit: str = "", digits: int = 1) -> str:
    if stat.n == 0:
        return "never"
    text = f"{stat.mean:.{digits}f}"
    if stat.of > 1:
        text += f" ± {stat.std:.{digits}f}"
    text += unit
    if stat.n < stat.of:
        text += f" ({stat.n}/{stat.of} seeds)"
    return text


@dataclass(frozen=True)
class Table:
    """A summary table as text: title, column headers, rows, and a note under it."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _depth_cell(group: Group | None) -> str:
    if group is None:
        return "—"
    return f"{_pct(group.test_accuracy)} · {group.first_layer_grad.mean:.2g}"


def _error(group: Group) -> str:
    curve = group.curves["accuracy"]
    return f"{100 * (1 - curve[-1]):.1f} %" if curve else "—"


def summary_tables(result: StudyResult) -> list[Table]:
    """The summary of every scenario that ran, as tables of text (mean ± std over seeds)."""
    tables = []
    target = f"{100 * result.config.target:.0f} %"
    for scenario in result.scenarios:
        found = result.groups(scenario)
        settings = result.settings[scenario]
        seeds = _plural(max(len(g.seeds) for g in found), "seed")
        training = f"{settings['optimizer']} lr {settings['lr']:g}"
        modules = {"relukit": "relukit.nn's", "torch": "torch.nn's", "both": "relukit.nn's"}
        if scenario == "compare":
            rows = tuple(
                (
                    g.name,
                    _pct(g.test_accuracy),
                    _to_target(g.epochs_to_target),
                    _to_target(g.seconds_to_target, " s", 2),
                    _num(g.final_loss),
                    _pct(g.dead_end),
                    _pct(g.sparsity_end),
                    _num(g.first_layer_grad),
                    _num(g.grad_ratio),
                    _num(g.seconds_per_epoch, 2, " s"),
                )
                for g in found
            )
            tables.append(
                Table(
                    f"compare: {_plural(len(found), 'activation')} × {seeds}, "
                    f"{settings['depth']} hidden layers of {settings['width']}, "
                    f"{settings['epochs']} epochs, {training}",
                    (
                        "activation",
                        "test accuracy",
                        f"epochs to {target}",
                        f"seconds to {target}",
                        "final loss",
                        "dead units",
                        "sparsity",
                        "‖∂L/∂W₁‖ at init",
                        "‖∂L/∂W₁‖ / ‖∂L/∂W_out‖",
                        "s / epoch",
                    ),
                    rows,
                    f"mean ± std over seeds; 'to {target}': training accuracy; dead units and "
                    "sparsity: hidden layers after the last epoch; loss: training loss at the "
                    "end; gradient norms at initialisation (the ratio below 1: the gradient "
                    "shrinks towards the input); seconds: the family runs on "
                    f"{modules[settings['modules']]} modules, sigmoid and tanh on torch.nn's; "
                    "bold: best, its interval excluding every other's",
                )
            )
        elif scenario == "cnn":
            rows = tuple(
                (
                    g.name,
                    _pct(g.test_accuracy),
                    _to_target(g.epochs_to_target),
                    _to_target(g.seconds_to_target, " s", 2),
                    _error(g),
                    _num(g.seconds_per_epoch, 2, " s"),
                )
                for g in found
            )
            shape = "×".join(map(str, result.runs[0].spec.image_shape)) if result.runs else ""
            tables.append(
                Table(
                    f"cnn: {settings['depth']} convolutions of {settings['width']} channels on "
                    f"{shape} images, {seeds}, {settings['epochs']} epochs, {training}",
                    (
                        "activation",
                        "test accuracy",
                        f"epochs to {target}",
                        f"seconds to {target}",
                        "final training error",
                        "s / epoch",
                    ),
                    rows,
                    f"mean ± std over seeds; 'to {target}': training accuracy (training error "
                    f"{100 - 100 * result.config.target:.0f} %), as in Krizhevsky et al. 2012, "
                    "Figure 1",
                )
            )
        elif scenario == "memory":
            tables.append(memory_table(result, found, settings, seeds, training))
        elif scenario == "dying":
            rows = tuple(
                (
                    g.name,
                    g.init,
                    _pct(g.dead_init),
                    _pct(g.dead_max),
                    _pct(g.dead_end),
                    _pct(g.test_accuracy),
                    f"{g.diverged}/{len(g.seeds)}",
                )
                for g in found
            )
            tables.append(
                Table(
                    f"dying: {training}, every hidden bias shifted by "
                    f"{settings['bias_shift']:g}, {seeds}, {settings['epochs']} epochs",
                    (
                        "activation",
                        "init",
                        "dead at init",
                        "dead at peak",
                        "dead at the end",
                        "test accuracy",
                        "diverged",
                    ),
                    rows,
                    "dead: hidden units that fire on no training row (relu: output > 0; "
                    "leaky_relu, prelu, elu: input > 0), averaged over layers and seeds",
                )
            )
        else:
            depths = sorted({g.depth for g in found})
            names = list(dict.fromkeys(g.name for g in found))
            cell = {(g.name, g.depth): g for g in found}

            rows = tuple(
                (name, *(_depth_cell(cell.get((name, depth))) for depth in depths))
                for name in names
            )
            tables.append(
                Table(
                    f"depth: {seeds}, width {settings['width']}, "
                    f"{settings['epochs']} epochs, {training}",
                    ("activation", *(f"{d} layers" for d in depths)),
                    rows,
                    "each cell: test accuracy (mean ± std) · first-layer gradient norm at init",
                )
            )
    cost = cost_table(result)
    if cost is not None:
        tables.append(cost)
    return tables


def _kib(stat: Stat) -> str:
    return "—" if stat.n == 0 else f"{stat.mean / 1024:.1f}"


def memory_table(
    result: StudyResult, found: list[Group], settings: dict[str, Any], seeds: str, training: str
) -> Table:
    """The memory scenario's summary: per member and backward mode, accuracy, losses, the
    bytes kept for the backward pass, time per epoch, and the differences to ``input`` paired
    by seed."""
    exact = {g.activation: g for g in found if g.backward == "input"}
    rows = []
    for group in found:
        base = exact.get(group.activation)
        versus = ("", "", "")
        if base is not None and base is not group:
            runs, base_runs = _seed_runs(result, group), _seed_runs(result, base)
            seeds_both = sorted(set(runs) & set(base_runs))
            accuracy = Interval.of(
                runs[s].test_accuracy - base_runs[s].test_accuracy for s in seeds_both
            )
            kept = (
                f"{group.kept_bytes.mean / base.kept_bytes.mean:.3f}×"
                if base.kept_bytes.n and base.kept_bytes.mean
                else "—"
            )
            ratio = Interval.of(_paired_seconds(result, group, base), ratio=True)
            versus = (accuracy.text(2, " pts", 100), kept, ratio.text(3))
        rows.append(
            (
                group.activation,
                group.backward,
                _pct(group.test_accuracy),
                versus[0],
                _num(group.final_loss),
                _num(group.test_loss),
                _kib(group.kept_bytes),
                _kib(group.kept_by_activations),
                versus[1],
                _num(group.seconds_per_epoch, 2, " s"),
                versus[2],
            )
        )
    return Table(
        f"memory: {_plural(len(exact), 'member')} × backward modes × {seeds}, "
        f"{settings['depth']} hidden layers of {settings['width']}, {settings['epochs']} "
        f"epochs, {training}, batch {result.config.batch_size}",
        (
            "member",
            "backward",
            "test accuracy",
            "Δ accuracy vs input [95 %]",
            "final training loss",
            "test loss",
            "kept for backward, KiB/batch",
            "only by the activations, KiB",
            "kept vs input",
            "s / epoch",
            "time vs input [95 %]",
        ),
        tuple(rows),
        "mean ± std over seeds; input: PyTorch's backward, bit for bit; output: the output "
        "(which the next Linear keeps anyway) and one bit per element; bits=N: an N-bit code "
        "per element (Few-Bit's step derivative); relu (one bit already) for reference. Kept "
        "for backward: the bytes autograd keeps for one training batch, each storage once, "
        "parameters left out; 'only by the activations': storages no other layer keeps. "
        "Differences to input paired by seed: accuracy difference and geometric-mean time "
        "ratio with their 95 % t intervals",
    )


def cost_table(result: StudyResult) -> Table | None:
    """Seconds per epoch of each family member on relukit.nn's and on torch.nn's modules, with
    the ratio paired by seed and its interval (only when both were run: ``modules="both"``)."""
    rows = []
    for scenario in result.scenarios:
        every = result.groups(scenario, every=True)
        torch_groups = {
            (g.activation, g.init, g.depth): g
            for g in every
            if g.modules == "torch" and g.activation not in BASELINES
        }
        for group in every:
            key = (group.activation, group.init, group.depth)
            if group.modules != "relukit" or key not in torch_groups:
                continue
            peer = torch_groups[key]
            ratio = Interval.of(_paired_seconds(result, group, peer), ratio=True)
            same = _same_numbers(result, group, peer)
            rows.append(
                (
                    group.activation if scenario == "compare" else f"{scenario} · {group.name}",
                    _num(group.seconds_per_epoch, 2, " s"),
                    _num(peer.seconds_per_epoch, 2, " s"),
                    ratio.text(3),
                    same,
                )
            )
    if not rows:
        return None
    return Table(
        "cost: seconds per epoch on relukit.nn's and on torch.nn's modules",
        ("activation", "relukit.nn", "torch.nn", "ratio relukit.nn / torch.nn", "same numbers"),
        tuple(rows),
        "ratio: paired by seed (same weights, same batches, same process kind), geometric mean "
        "with its 95 % t interval; 'same numbers': the two runs of each seed gave bit-identical "
        "losses, accuracies and dead-unit counts",
    )


def _seed_runs(result: StudyResult, group: Group) -> dict[int, Any]:
    return {
        run.spec.seed: run
        for run in result.runs
        if run.spec.group
        == (
            group.scenario,
            group.activation,
            group.init,
            group.depth,
            group.modules,
            group.backward,
        )
    }


def _paired_seconds(result: StudyResult, a: Group, b: Group) -> list[float]:
    first, second = _seed_runs(result, a), _seed_runs(result, b)
    out = []
    for seed in sorted(set(first) & set(second)):
        x, y = first[seed].epoch_seconds, second[seed].epoch_seconds
        if x and y:
            out.append(sum(x) / len(x) / (sum(y) / len(y)))
    return out


def _same_numbers(result: StudyResult, a: Group, b: Group) -> str:
    first, second = _seed_runs(result, a), _seed_runs(result, b)
    seeds = sorted(set(first) & set(second))
    same = sum(
        (first[s].loss, first[s].accuracy, first[s].dead)
        == (second[s].loss, second[s].accuracy, second[s].dead)
        for s in seeds
    )
    return f"{same}/{len(seeds)} seeds"


def best_cells(result: StudyResult, scenario: str) -> dict[int, set[int]]:
    """Rows to mark in ``scenario``'s summary table, by column: the best test accuracy and
    the fewest epochs to the target (compare and cnn), each only when, paired by seed, the
    95 % interval of its difference to every other row lies on its side of 0."""
    if scenario not in ("compare", "cnn"):
        return {}
    found = result.groups(scenario)
    runs = [_seed_runs(result, g) for g in found]
    measures = {
        1: (lambda r: r.test_accuracy, True),
        2: (lambda r: r.epochs_to_target or r.spec.epochs + 1, False),
    }
    best: dict[int, set[int]] = {}
    for column, (measure, higher) in measures.items():
        means = [
            sum(measure(r) for r in rows.values()) / len(rows) if rows else math.nan
            for rows in runs
        ]
        finite = [m for m in means if math.isfinite(m)]
        if len(finite) < 2:
            continue
        top = means.index(max(finite) if higher else min(finite))
        sign = 1.0 if higher else -1.0
        wins = True
        for index, rows in enumerate(runs):
            if index == top:
                continue
            seeds = sorted(set(rows) & set(runs[top]))
            effect = Interval.of(sign * (measure(runs[top][s]) - measure(rows[s])) for s in seeds)
            if not (effect.n >= 2 and effect.low > 0):
                wins = False
                break
        if wins:
            best[column] = {top}
    return best


def rich_tables(result: StudyResult) -> list[Any]:
    """:func:`summary_tables` as :class:`rich.table.Table` objects for the terminal."""
    from rich.table import Table as RichTable

    out = []
    for table in summary_tables(result):
        rich = RichTable(title=table.title, caption=table.note, title_style="bold")
        for index, header in enumerate(table.headers):
            rich.add_column(header, justify="left" if index == 0 else "right")
        for row in table.rows:
            rich.add_row(*row)
        out.append(rich)
    return out


_VERDICT_STYLE = {
    "holds": "bold green",
    "does not hold": "bold red",
    "not tested": "dim",
}


def print_summary(result: StudyResult, console: Any) -> None:
    """Print the summary tables, the claims' verdicts and where the report is on ``console``
    (a :class:`rich.console.Console`; one narrower than 160 columns and not a terminal is
    widened so that the tables keep their shape in logs)."""
    from rich.console import Console

    if not console.is_terminal and console.width < 160:
        console = Console(file=console.file, width=160)
    if result.interrupted:
        console.print(
            f"[bold yellow]Stopped (Ctrl-C)[/]: {len(result.runs)} of {result.planned} runs "
            "completed; the summary and the report show those."
        )
    for table in rich_tables(result):
        console.print(table)
    found = claims(result)
    if found:
        console.print("[bold]The claims about ReLU, checked on this data (95 % intervals):[/]")
        for claim in found:
            style = _VERDICT_STYLE.get(claim.verdict, "bold yellow")
            effect = f"  [dim]{claim.effect}[/]" if claim.effect else ""
            console.print(
                f"  [{style}]{claim.verdict:>25}[/]  {claim.claim}{effect}", highlight=False
            )
    environment = result.environment
    reused = f", {result.reused} reused from the report folder" if result.reused else ""
    console.print(
        f"{_plural(len(result.runs), 'run')}{reused}, in {result.seconds:.1f} s on "
        f"{environment.get('engine')}, {environment.get('torch_threads_per_process')} torch "
        "thread(s) per run",
        highlight=False,
    )
    if result.report is not None:
        console.print(f"report: [bold]{result.report.resolve()}[/]", highlight=False)
