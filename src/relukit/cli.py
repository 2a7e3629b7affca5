"""The `relukit` command: argument parsing only; each command calls one library function.

User errors (bad names, values or files) print one line, ``relukit CMD: error: …``, and exit
with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

USER_ERRORS = (ValueError, TypeError, OSError)


def _parse_value(text: str, kind: type) -> Any:
    """A ``k=v`` value parsed into the parameter's kind ('none' gives None)."""
    if text.lower() == "none":
        return None
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"{text!r} is not true or false")
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
            raise ValueError(f"parameter {pair!r} is not of the form k=v")
        if key not in kinds:
            allowed = ", ".join(kinds) or "none"
            raise ValueError(f"{name} has no parameter {key!r} (parameters: {allowed})")
        try:
            params[key] = _parse_value(text, kinds[key])
        except ValueError:
            raise ValueError(
                f"{name}: {key}={text!r} is not a valid {kinds[key].__name__}"
            ) from None
    return params


def _spec_with_params(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:k=v,k=v]`` as (name, params)."""
    name, _, rest = text.partition(":")
    return name, parse_params(name, [p for p in rest.split(",") if p])


def _format_number(value: float) -> str:
    if np.isnan(value) or np.isinf(value):
        return str(float(value))
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
        raise ValueError(f"value {text!r} is not a number") from None


def cmd_eval(args: argparse.Namespace) -> int:
    import relukit

    function = relukit.get(args.name, **parse_params(args.name, args.param))
    values = np.array([_float(v) for v in args.values], dtype=np.float64)
    if args.derivative:
        if not hasattr(function, "derivative"):
            raise ValueError(f"{args.name} has no elementwise derivative (use its vjp)")
        result = function.derivative(values)
    else:
        result = function(values)
    print(" ".join(_format_number(v) for v in np.ravel(result)))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import relukit
    from relukit import plot

    plot.check_path(args.output)
    if args.all:
        if args.names:
            raise ValueError("give member names or --all, not both")
        plot.gallery(args.output)
    else:
        if not args.names:
            raise ValueError("name at least one member, or use --all")
        functions = []
        for text in args.names:
            name, params = _spec_with_params(text)
            functions.append(relukit.get(name, **params))
        low, high = args.range
        plot.plot_functions(functions, low, high, derivative=args.derivative, path=args.output)
    print(f"wrote {args.output}")
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
        description="Evaluate a member at the given values, e.g. relukit eval relu -- -2 0.5 3",
    )
    evaluate.add_argument("name", help="member name, e.g. relu")
    evaluate.add_argument("values", nargs="+", help="input values (put -- before negatives)")
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
        "--range", nargs=2, type=float, default=(-20.0, 20.0), metavar=("LO", "HI")
    )
    drawing.add_argument("--derivative", action="store_true", help="draw derivatives")
    drawing.add_argument("-o", "--output", required=True, help="output file (.png or .svg)")
    drawing.set_defaults(handler=cmd_plot)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except USER_ERRORS as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"relukit {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
