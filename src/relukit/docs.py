"""The family and conventions tables, generated from the registry (never typed by hand).

``relukit list --markdown docs/family.md`` writes :func:`family_markdown`; a test checks that
the committed file equals what the registry generates now.

>>> from relukit.docs import rows
>>> rows()[0]["name"], rows()[0]["kinks"]
('relu', 'x = 0 → 0')
"""

from __future__ import annotations

import math
from typing import Any

from relukit.family import MEMBERS, Activation


def _number(value: float | None) -> str:
    if value is None:
        return "per element"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:g}"


def _limits(spec: Activation) -> tuple[str, str]:
    if spec.limits is None:
        return "—", "—"
    params = spec.bind({})
    forward = spec.limits.forward(params)
    derivative = spec.limits.derivative(params)
    return (
        f"{_number(forward[0])}, {_number(forward[1])}",
        f"{_number(derivative[0])}, {_number(derivative[1])}",
    )


def _flags(spec: Activation) -> str:
    flags = [
        name
        for name, on in (
            ("monotonic", spec.monotonic),
            ("bounded", spec.bounded),
            ("smooth", spec.smooth),
            ("zero-centred", spec.zero_centred),
        )
        if on
    ]
    bits = spec.derivative_bits()
    if bits:
        flags.append(f"derivative in {bits} bit{'s' if bits > 1 else ''}")
    if not spec.in_family:
        flags.append("baseline, not of the family")
    return ", ".join(flags)


# What a member does with integer input (``Activation.integers``), as NumPy would: the forward
# keeps the dtype where PyTorch does, a derivative or vjp is never truncated to an integer.
INTEGERS = {
    "same": "forward kept; derivative and vjp in float (as NumPy promotes x·grad_out)",
    "float": "→ float",
    "refuse": "refused for integer arrays (as PyTorch); Python ints → float64 (as NumPy)",
}


def rows() -> list[dict[str, Any]]:
    """One dict per member with every column of the tables, as text."""
    result = []
    for spec in MEMBERS:
        forward_limits, derivative_limits = _limits(spec)
        result.append(
            {
                "name": spec.name,
                "aliases": ", ".join(spec.aliases),
                "formula": spec.formula,
                "parameters": ", ".join(f"{p.name}={p.default!r}" for p in spec.parameters),
                "kinks": "; ".join(f"{k.where} → {k.chosen}" for k in spec.kinks) or "none",
                "range": spec.output_range,
                "limits": forward_limits,
                "derivative_limits": derivative_limits,
                "integers": INTEGERS[spec.integers],
                "flags": _flags(spec),
                "reference": f"{spec.reference} ({spec.year})",
            }
        )
    return result


def _table(header: list[tuple[str, str]], records: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in header) + " |",
        "|" + "---|" * len(header),
    ]
    for record in records:
        cells = [str(record[key]).replace("|", "\\|") or "—" for key, _ in header]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _value(value: float | str) -> str:
    return value if isinstance(value, str) else repr(value)


def differences_markdown() -> str:
    """Every input where relukit deliberately differs from PyTorch, with both values (and JAX's)."""
    from relukit.family.differences import DIFFERENCES
    from relukit.family.differences import __doc__ as kinds

    records = [
        {
            "call": f"`{d.label}`" + (f" ×{d.size}" if d.size > 1 else ""),
            "relukit": _value(d.relukit),
            "torch": _value(d.torch),
            "jax": _value(d.jax),
            "why": d.why,
        }
        for d in DIFFERENCES
    ]
    header = [
        ("call", "call"),
        ("relukit", "relukit"),
        ("torch", "PyTorch 2.13"),
        ("jax", "JAX 0.10.2"),
        ("why", "why"),
    ]
    intro = (kinds or "")[(kinds or "").index("The JAX column") :].strip()
    return intro + "\n\n" + _table(header, records)


def keras_differences_markdown() -> str:
    """Every input where general_relu differs from Keras's relu, with both values."""
    from relukit.family.differences import KERAS_DIFFERENCES, KerasDifference

    records = [
        {
            "call": f"`{d.label}`",
            "relukit": _value(d.relukit),
            "keras": _value(d.keras),
            "why": d.why,
        }
        for d in KERAS_DIFFERENCES
    ]
    header = [("call", "call"), ("relukit", "relukit"), ("keras", "Keras 3"), ("why", "why")]
    intro = " ".join((KerasDifference.__doc__ or "").split("\n\n")[1].split())
    return intro + "\n\n" + _table(header, records)


def family_markdown() -> str:
    """The docs page: the family table and the conventions table."""
    records = rows()
    family = _table(
        [
            ("name", "member"),
            ("formula", "f(x)"),
            ("parameters", "parameters (defaults)"),
            ("range", "output range"),
            ("flags", "properties"),
            ("reference", "reference"),
        ],
        records,
    )
    conventions = _table(
        [
            ("name", "member"),
            ("kinks", "derivative chosen at the kinks"),
            ("limits", "f(-∞), f(+∞)"),
            ("derivative_limits", "f'(-∞), f'(+∞)"),
            ("integers", "integer input"),
        ],
        records,
    )
    return "\n".join(
        [
            "# The relukit family",
            "",
            "Generated from the registry by `relukit list --markdown docs/family.md`;"
            " do not edit by hand.",
            "",
            "## Members",
            "",
            family,
            "",
            "## Conventions",
            "",
            "For every member: forward values equal PyTorch's for finite inputs; the derivative"
            " at a kink is the one PyTorch's autograd gives; NaN in gives NaN out, for the"
            " forward and the derivative alike; ±inf give the mathematical limits below (where"
            " PyTorch's formula gives NaN, relukit gives the limit). A zero result keeps the"
            " sign of a zero input where the member passes the input through"
            " (`relu(-0.0) == -0.0`, as PyTorch) and is `+0.0` where a negative input is"
            " replaced by zero. 16-bit floats are computed in float32 and rounded once.",
            "",
            conventions,
            "",
            "## Differences from PyTorch and JAX",
            "",
            differences_markdown(),
            "",
            "## Differences from Keras (general_relu)",
            "",
            keras_differences_markdown(),
            "",
        ]
    )
