"""The single dispatch point between the public functions and the kernels.

Every evaluation goes through :func:`run`, which picks the first kernel that takes the call
(array kind, dtype, size, layout) and falls back to the reference kernel, which takes all.
"""

from __future__ import annotations

from typing import Any

from relukit.family.spec import Activation
from relukit.kernels import reference
from relukit.kernels.arrays import Input


def run(
    spec: Activation,
    op: str,
    source: Input,
    params: dict[str, Any],
    grad: Any = None,
    wrt: str = "x",
) -> Any:
    """``op`` of ``spec`` at ``source`` with bound ``params``; the result in the caller's kind."""
    return reference.evaluate(spec, op, source, params, grad=grad, wrt=wrt)
