"""The `relukit` command: argument parsing only; each command calls one library function.

User errors print one line, ``relukit CMD: error: …``, and exit with status 2, no traceback:
relukit's own :class:`relukit.errors.UserError` (a bad name, value, option or file; every
``ParameterError`` is one) and ``OSError`` (the system refused a file operation; its message
names the file). Any other exception is a bug in relukit and keeps its traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from relukit.errors import UserError, UserValueError

USER_ERRORS = (UserError, OSError)


def _parse_value(text: str, kind: type) -> Any:
    """A ``k=v`` value parsed into the parameter's kind ('none' gives None)."""
    if text.lower() == "none":
        return None
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise UserValueError(f"{text!r} is not true or false")
        return text.lower() in ("true", "1")
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    return text


def parse_params(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["k=v", …]`` parsed with the types the registry gives each parameter of ``name``."""
    from relukit.family import lookup

    kinds = {p.name: p.kind for p in lookup(name).parameters}
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserValueError(f"parameter {pair!r} is not of the form k=v")
        if key not in kinds:
            allowed = ", ".join(kinds) or "none"
            raise UserValueError(f"{name} has no parameter {key!r} (parameters: {allowed})")
        try:
            params[key] = _parse_value(text, kinds[key])
        except ValueError:
            raise UserValueError(
                f"{name}: {key}={text!r} is not a valid {kinds[key].__name__}"
            ) from None
    return params


def _spec_with_params(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:k=v,k=v]`` as (name, params)."""
    name, _, rest = text.partition(":")
    return name, parse_params(name, [p for p in rest.split(",") if p])


def _format_number(value: float) -> str:
    """The shortest digits that read back as ``value``: positional from 1e-4 up to 1e16 (as
    Python's ``repr`` switches), scientific outside (``5e-301``, not 300 zeros), without a
    trailing ``.0``."""
    if np.isnan(value) or np.isinf(value):
        return str(float(value))
    if value != 0 and not 1e-4 <= abs(value) < 1e16:
        return np.format_float_scientific(value, trim="-")
    return np.format_float_positional(value, trim="-")


def cmd_list(args: argparse.Namespace) -> int:
    from relukit import docs

    if args.markdown is not None:
        text = docs.family_markdown()
        if args.markdown == "-":
            sys.stdout.write(text)
        else:
            Path(args.markdown).write_text(text, encoding="utf-8")
            print(f"wrote {args.markdown}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="The relukit family", show_lines=True)
    for column in ("name", "f(x)", "parameters", "derivative at the kinks", "reference"):
        table.add_column(column, overflow="fold")
    for row in docs.rows():
        name = row["name"] + (f" ({row['aliases']})" if row["aliases"] else "")
        table.add_row(name, row["formula"], row["parameters"], row["kinks"], row["reference"])
    Console().print(table)
    return 0


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserValueError(f"value {text!r} is not a number") from None


def cmd_eval(args: argparse.Namespace) -> int:
    import relukit

    function = relukit.get(args.name, **parse_params(args.name, args.param))
    values = np.array([_float(v) for v in args.values], dtype=np.float64)
    if args.derivative:
        if not hasattr(function, "derivative"):
            raise UserValueError(f"{args.name} has no elementwise derivative (use its vjp)")
        result = function.derivative(values)
    else:
        result = function(values)
    print(" ".join(_format_number(v) for v in np.ravel(result)))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import relukit
    from relukit import plot

    plot.check_path(args.output)
    # (the range where given; plot's own defaults otherwise)
    drawn = {} if args.range is None else {"low": args.range[0], "high": args.range[1]}
    if args.all:
        if args.names:
            raise UserValueError("give member names or --all, not both")
        plot.gallery(args.output, **drawn)
    else:
        if not args.names:
            raise UserValueError("name at least one member, or use --all")
        functions = []
        for text in args.names:
            name, params = _spec_with_params(text)
            functions.append(relukit.get(name, **params))
        plot.plot_functions(functions, derivative=args.derivative, path=args.output, **drawn)
    print(f"wrote {args.output}")
    return 0


def _names(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """``["relu,gelu", "tanh"]`` as ``("relu", "gelu", "tanh")``; None stays None."""
    if values is None:
        return None
    return tuple(n for value in values for n in value.split(",") if n)


def cmd_study(args: argparse.Namespace) -> int:
    from rich.console import Console

    from relukit import study
    from relukit.study.config import CLUSTER_JOBS
    from relukit.study.progress import RichProgress
    from relukit.study.report import print_summary

    depths = _names(args.depths)
    if depths is not None and not all(d.isdigit() for d in depths):
        raise UserValueError(f"--depths takes whole numbers, got {','.join(depths)!r}")
    shape = _names(args.image_shape)
    if shape is not None and not (len(shape) == 3 and all(d.isdigit() for d in shape)):
        raise UserValueError(f"--image-shape takes C,H,W, got {','.join(shape)!r}")
    if args.cluster is not None and args.jobs is not None:
        raise UserValueError(CLUSTER_JOBS)
    config = study.StudyConfig(
        scenario=args.scenario,
        activations=_names(args.activations),
        seeds=args.seeds,
        seed=args.seed,
        depth=args.depth,
        depths=None if depths is None else tuple(int(d) for d in depths),
        width=args.width,
        epochs=args.epochs,
        lr=args.lr,
        optimizer=args.optimizer,
        batch_size=args.batch_size,
        target=args.target,
        init=args.init,
        bias_shift=args.bias_shift,
        data=args.data,
        label=args.label,
        out=args.out,
        force=args.force,
        resume=args.resume,
        cluster=args.cluster,
        modules=args.modules,
        image_shape=None if shape is None else tuple(int(d) for d in shape),
        jobs=args.jobs,
        threads=args.threads,
        quick=args.quick,
        backward=_names(args.backward),
    )
    result = None
    try:
        with RichProgress() as progress:
            result = study.run(config, progress=progress)
        print_summary(result, Console())
    except KeyboardInterrupt:
        _ignore_ctrl_c()
        if result is not None or not args.out:
            print("relukit study: stopped (Ctrl-C)", file=sys.stderr)
        else:
            print(
                "relukit study: stopped (Ctrl-C) before the report was written; the report "
                f"folder keeps its previous files, and the finished runs are stored in "
                f"{args.out}/runs (run the same command with --resume to report them)",
                file=sys.stderr,
            )
        return 130
    return 130 if result.interrupted else 0


def _ignore_ctrl_c() -> None:
    """Further Ctrl-C ignored: the command is ending, and says so once, without a traceback
    (main thread only: elsewhere Python cannot change handlers). :func:`main` puts back the
    handler it found; :func:`program` keeps ignoring until the process exits."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def cmd_bench(args: argparse.Namespace) -> int:
    from rich.console import Console

    from relukit import bench

    report = bench.run(
        bench.BenchConfig.from_options(
            quick=args.quick,
            sizes=args.sizes,
            dtypes=args.dtypes,
            repeats=args.repeats,
            json_path=args.json,
            png_path=args.png,
            threads=args.threads,
        )
    )
    console = Console()
    console.print(report.table())
    console.print(report.target_table())
    for path in (args.json, args.png):
        if path:
            print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="relukit",
        description="The ReLU family of activation functions: exact, fast and explained.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="the family table from the registry")
    listing.add_argument(
        "--markdown", metavar="FILE", help="write the docs tables as Markdown ('-' for stdout)"
    )
    listing.set_defaults(handler=cmd_list)

    evaluate = commands.add_parser(
        "eval",
        help="evaluate a member at values",
        description="Evaluate a member at the given values, e.g. relukit eval relu -2 0.5 3",
    )
    evaluate.add_argument("name", help="member name, e.g. relu")
    evaluate.add_argument("values", nargs="+", help="input values, e.g. -1e3 0 2.5")
    evaluate.add_argument("--derivative", action="store_true", help="print f'(x) instead")
    evaluate.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="a parameter, repeatable"
    )
    evaluate.set_defaults(handler=cmd_eval)

    drawing = commands.add_parser(
        "plot",
        help="plot members or the whole gallery",
        description="Plot members over a range (axes through the origin), or --all for the "
        "gallery of every member with its derivative.",
    )
    drawing.add_argument("names", nargs="*", metavar="NAME[:k=v,…]", help="members to draw")
    drawing.add_argument("--all", action="store_true", help="the gallery of every member")
    drawing.add_argument(
        "--range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="the x range (default -20 20; the gallery's -7 7)",
    )
    drawing.add_argument("--derivative", action="store_true", help="draw derivatives")
    drawing.add_argument("-o", "--output", required=True, help="output file (.png or .svg)")
    drawing.set_defaults(handler=cmd_plot)

    from relukit.study.config import INITS, MODULES, OPTIMIZERS, SCENARIOS

    studying = commands.add_parser(
        "study",
        help="the main job: the family trained side by side, the ReLU claims checked",
        description="Train the same network with each activation over several seeds (default: "
        "scikit-learn's digits), check the claims about ReLU, and write a report folder with a "
        "self-contained index.html. Unset options take the scenario's defaults.",
    )
    studying.add_argument("--scenario", choices=(*SCENARIOS, "all"), default="compare")
    studying.add_argument(
        "--activations", nargs="+", metavar="NAME", help="e.g. relu,gelu,tanh (default: 10)"
    )
    studying.add_argument("--seeds", type=int, metavar="N", help="seeds per activation (3)")
    studying.add_argument("--seed", type=int, default=0, metavar="S", help="first seed (0)")
    studying.add_argument("--depth", type=int, metavar="N", help="hidden layers (4)")
    studying.add_argument(
        "--depths", nargs="+", metavar="N", help="depth scenario's sweep (2,5,10,20)"
    )
    studying.add_argument("--width", type=int, metavar="N", help="units per hidden layer (128)")
    studying.add_argument("--epochs", type=int, metavar="N", help="training epochs (30)")
    studying.add_argument("--lr", type=float, metavar="X", help="learning rate")
    studying.add_argument("--optimizer", choices=OPTIMIZERS, help="sgd has momentum 0.9")
    studying.add_argument("--batch-size", type=int, default=64, metavar="N")
    studying.add_argument(
        "--target", type=float, default=0.95, metavar="ACC", help="training accuracy (0.95)"
    )
    studying.add_argument("--init", choices=INITS, default="he_normal")
    studying.add_argument("--bias-shift", type=float, metavar="X", help="added to hidden biases")
    studying.add_argument("--data", metavar="FILE", help=".npz or .csv (default: digits)")
    studying.add_argument("--label", metavar="COLUMN", help="label column of a .csv file")
    studying.add_argument(
        "--out", default="relukit-report", metavar="DIR", help="report folder (relukit-report)"
    )
    studying.add_argument(
        "--force", action="store_true", help="overwrite an existing report, drop its runs"
    )
    studying.add_argument(
        "--resume", action="store_true", help="continue the report folder: reuse its runs"
    )
    studying.add_argument(
        "--cluster", metavar="ADDRESS", help="Dask scheduler to run on, e.g. tcp://host:8786"
    )
    studying.add_argument(
        "--modules",
        choices=MODULES,
        help="the family's modules: relukit.nn's, torch.nn's, or both side by side "
        "(default: both in compare, else relukit)",
    )
    studying.add_argument(
        "--image-shape", nargs="+", metavar="C,H,W", help="cnn scenario: a row's image shape"
    )
    studying.add_argument(
        "--jobs", type=int, metavar="N", help="worker processes (default: one per core)"
    )
    studying.add_argument("--threads", type=int, metavar="N", help="torch threads per process")
    studying.add_argument("--quick", action="store_true", help="a small study in seconds")
    studying.add_argument(
        "--backward",
        nargs="+",
        metavar="MODE",
        help="memory scenario: what the backward keeps (input,output,bits=3; bits=N, N 1-4)",
    )
    studying.set_defaults(handler=cmd_study)

    benching = commands.add_parser(
        "bench",
        help="time the kernels against NumPy, PyTorch and the machine's memory limit",
        description="Time relukit's kernels, their NumPy and PyTorch peers, and a copy of the "
        "same bytes (the machine's limit), best of interleaved repeats; print the table and "
        "the targets met.",
    )
    benching.add_argument("--quick", action="store_true", help="a few seconds: 2^10, 2^16")
    benching.add_argument("--sizes", metavar="N,N", help="element counts, e.g. 2^10,2^20")
    benching.add_argument("--dtypes", metavar="D,D", help="float32,float64,bfloat16,float16")
    benching.add_argument("--repeats", type=int, metavar="N", help="interleaved rounds (5)")
    benching.add_argument("--threads", type=int, metavar="N", help="kernel threads")
    benching.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    benching.add_argument("--png", metavar="FILE", help="plot throughput against size")
    benching.set_defaults(handler=cmd_bench)

    return parser


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _negatives_as_values(argv: Sequence[str]) -> list[str]:
    """The arguments with each negative number (``-1e3``, ``-inf``) marked as a value.

    argparse takes a word that starts with ``-`` for an option unless it looks like ``-2`` or
    ``-.5``; a leading space makes it a value, and ``float``/``int`` read it alike.
    """
    return [f" {a}" if a.startswith("-") and a != "-" and _is_number(a) else a for a in argv]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: this process's arguments) in this process and return
    its exit status: 0, 2 for a user error, 130 when stopped by Ctrl-C.

    A command stopped by Ctrl-C ignores further Ctrl-C while it ends; the SIGINT handler this
    found is back when it returns, so a program that calls it keeps its own Ctrl-C.

    Example:
        >>> main(["eval", "relu", "-2", "3"])
        0 3
        0
    """
    previous = signal.getsignal(signal.SIGINT)
    try:
        return _command(argv)
    finally:
        if previous is not None and signal.getsignal(signal.SIGINT) is not previous:
            signal.signal(signal.SIGINT, previous)


def program() -> None:
    """The ``relukit`` program (its console script, ``python -m relukit.cli``): runs the
    command line's command and exits with its status. After a Ctrl-C the process keeps
    ignoring Ctrl-C until it has exited, so a second one never prints a traceback."""
    sys.exit(_command(None))


def _command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(_negatives_as_values(sys.argv[1:] if argv is None else argv))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        # (the library's messages name their command, as the prefix does: once is enough)
        for named in (f"relukit {args.command}: ", f"{args.command}: "):
            message = message.removeprefix(named)
        print(f"relukit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _ignore_ctrl_c()
        print(f"relukit {args.command}: stopped (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    program()
