"""Write src/relukit/memory/step_tables.py: Few-Bit step derivatives for the default settings.

For every smooth elementwise member of the registry (every elementwise member that is not
piecewise linear), with its default parameters (and gelu's both forms), and each of 1-4 bits,
the optimal step derivative for the standard normal weight, by
:func:`relukit.memory.steps.optimal_steps` with its default grid. The shipped module is
checked against a fresh run by ``tests/memory/test_steps.py``.

    python scripts/step_tables.py [--check]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import relukit
from relukit.memory.steps import BITS, optimal_steps

TARGET = Path(__file__).resolve().parents[1] / "src" / "relukit" / "memory" / "step_tables.py"

HEADER = '''"""Few-Bit step derivatives for the default settings (generated: do not edit).

Written by ``python scripts/step_tables.py`` from :func:`relukit.memory.steps.optimal_steps`
(standard normal weight, 1,600 cells on [-8, 8]): ``(member, params, bits)`` to
``(borders, levels, error)``.
"""

from __future__ import annotations

TABLES = {
'''


def settings() -> list[tuple[str, dict]]:
    """Every smooth elementwise member with its default parameters (gelu in both forms)."""
    found: list[tuple[str, dict]] = []
    for spec in relukit.family():
        if not spec.elementwise or spec.piecewise_linear:
            continue
        found.append((spec.name, {}))
        if spec.name == "gelu":
            found.append((spec.name, {"approximate": "tanh"}))
    return found


def render() -> str:
    lines = [HEADER]
    for name, params in settings():
        for bits in BITS:
            q = optimal_steps(name, bits, params=params)
            lines.append(f"    {(q.member, q.params, q.bits)!r}: (\n")
            for values in (q.borders, q.levels):
                wrapped = textwrap.wrap(repr(values), 90, break_on_hyphens=False)
                lines.extend(f"        {line}\n" for line in wrapped[:-1])
                lines.append(f"        {wrapped[-1]},\n")
            lines.append(f"        {q.error!r},\n    ),\n")
    lines.append("}\n")
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the shipped file differs")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = TARGET.read_text() == text
        print("up to date" if same else f"{TARGET} differs from a fresh run")
        return 0 if same else 1
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
