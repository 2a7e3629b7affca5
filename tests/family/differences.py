"""Where relukit deliberately differs from PyTorch, one entry per input that shows it.

The list is published with the docs. ``tests/family/test_vs_torch.py`` re-evaluates every entry
with relukit and with PyTorch (the values recorded here must still come out), and its property
tests accept a disagreement with PyTorch only of a kind listed here.

The JAX column was run with JAX 0.10.2 on CPU (``jax.nn.<name>`` and ``jax.grad``/``jax.vjp``,
x64 enabled); JAX is not a dependency and the tests do not run it. ``"no such function"`` marks
a member JAX does not have, and a note says where JAX's function lacks the parameter.

The differences, in kinds:

* NaN in gives NaN out for the derivative too. PyTorch's backward of the piecewise members takes
  a branch by a comparison that is false for NaN, so it gives that branch's slope.
* ±inf give the mathematical limit. PyTorch (and JAX) evaluate ``x·Φ(x)``, ``x·σ(x)``,
  ``x·tanh(softplus(x))`` there and get ``0·inf = NaN``; so do ``0·x`` at ``x = -inf`` for a zero
  slope, and the tanh-approximate gelu's derivative once ``x·x`` overflows (a finite input).
* A zero derivative of a piecewise-linear member blocks the gradient (``+0`` whatever the
  incoming gradient), as PyTorch's relu, relu6 and hardtanh backward do; PyTorch's leaky_relu
  and prelu multiply instead, which differs only for a zero slope.
* 16-bit floats are rounded once. PyTorch's sigmoid and tanh backward start from the output
  already rounded to 16 bits, so ``1 - y`` or ``1 - y²`` loses everything where ``y`` rounds
  to ±1.
* PyTorch's celu backward uses ``alpha`` rounded to float32 (``1.0 / alpha.toFloat()`` in
  ``derivatives.yaml``), which shows in float64 for an alpha that float32 cannot hold.
* softplus's derivative is 1 where ``exp(beta·x)`` overflows below a large ``threshold``;
  PyTorch's ``e / (e + 1)`` gives ``inf / inf = NaN`` there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INF = float("inf")
NAN = float("nan")
NO_JAX = "no such function"


@dataclass(frozen=True)
class Difference:
    """relukit's value and PyTorch's (and JAX's) for one member, operation and input.

    ``op`` is "forward", "derivative" or "vjp" (``grad_out`` is the incoming gradient);
    ``params`` are relukit's parameters, which PyTorch's functional takes under the same names.
    ``size`` is the length of the array of copies of ``x`` it takes to show: PyTorch's CPU
    kernels have a scalar path and a vectorised one (8 or more elements) that can disagree.
    """

    member: str
    op: str
    x: float
    relukit: float
    torch: float
    jax: float | str
    why: str
    params: dict[str, Any] = field(default_factory=dict)
    grad_out: float = 1.0
    dtype: str = "float64"
    size: int = 1

    @property
    def label(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        if self.op == "forward":
            call = f"{self.member}({self.x!r}{args})"
        elif self.op == "derivative":
            call = f"{self.member}.derivative({self.x!r}{args})"
        else:
            call = f"{self.member}.vjp({self.x!r}, grad_out={self.grad_out!r}{args})"
        return call if self.dtype == "float64" else f"{call} [{self.dtype}]"


_NAN_DERIVATIVE = "NaN in gives NaN out; PyTorch's backward takes the x ≤ 0 or x > 0 branch"
_NAN_DERIVATIVE_SCALAR = (
    "NaN in gives NaN out; PyTorch's scalar path takes the x > 0 branch (its vectorised path, "
    "8 or more elements, gives NaN as relukit does)"
)
_NAN_LIMIT = "the mathematical limit; PyTorch computes 0·inf = NaN"

DIFFERENCES: list[Difference] = [
    # NaN in, NaN out for the derivative.
    Difference("relu", "derivative", NAN, NAN, 1.0, 0.0, _NAN_DERIVATIVE),
    Difference("leaky_relu", "derivative", NAN, NAN, 0.01, 0.01, _NAN_DERIVATIVE),
    Difference("prelu", "derivative", NAN, NAN, 0.25, NO_JAX, _NAN_DERIVATIVE),
    Difference("rrelu", "derivative", NAN, NAN, 0.22916666666666666, NO_JAX, _NAN_DERIVATIVE),
    Difference("relu6", "derivative", NAN, NAN, 1.0, 0.0, _NAN_DERIVATIVE),
    Difference("hardtanh", "derivative", NAN, NAN, 1.0, 1.0, _NAN_DERIVATIVE),
    *(
        Difference(member, "derivative", NAN, NAN, slope, NAN, _NAN_DERIVATIVE_SCALAR)
        for member, slope in (("elu", 1.0), ("selu", 1.0507009873554805), ("celu", 1.0))
    ),
    # The limits at ±inf.
    Difference("gelu", "forward", -INF, 0.0, NAN, NAN, _NAN_LIMIT),
    Difference("gelu", "derivative", -INF, 0.0, NAN, NAN, _NAN_LIMIT),
    Difference("gelu", "derivative", INF, 1.0, NAN, NAN, _NAN_LIMIT),
    Difference("gelu", "forward", -INF, 0.0, NAN, NAN, _NAN_LIMIT, {"approximate": "tanh"}),
    Difference("gelu", "derivative", -INF, 0.0, NAN, NAN, _NAN_LIMIT, {"approximate": "tanh"}),
    Difference("gelu", "derivative", INF, 1.0, NAN, NAN, _NAN_LIMIT, {"approximate": "tanh"}),
    Difference("silu", "forward", -INF, 0.0, NAN, NAN, _NAN_LIMIT),
    Difference("silu", "derivative", -INF, 0.0, NAN, NAN, _NAN_LIMIT),
    Difference("silu", "derivative", INF, 1.0, NAN, NAN, _NAN_LIMIT),
    Difference("mish", "forward", -INF, 0.0, NAN, NAN, _NAN_LIMIT),
    Difference("mish", "derivative", -INF, 0.0, NAN, NAN, _NAN_LIMIT),
    Difference("mish", "derivative", INF, 1.0, NAN, NAN, _NAN_LIMIT),
    Difference("leaky_relu", "forward", -INF, 0.0, NAN, NAN, _NAN_LIMIT, {"negative_slope": 0.0}),
    Difference("prelu", "forward", -INF, 0.0, NAN, NO_JAX, _NAN_LIMIT, {"weight": 0.0}),
    Difference(
        "gelu",
        "forward",
        INF,
        INF,
        NAN,
        NAN,
        "float32 arrays of 8 or more elements: PyTorch's vectorised erf path gives NaN at +inf",
        dtype="float32",
        size=64,
    ),
    # Finite inputs where PyTorch's formula overflows.
    Difference(
        "gelu",
        "forward",
        3.4028234663852886e38,
        3.4028234663852886e38,
        INF,
        INF,
        "float32 arrays of 8 or more elements: PyTorch's vectorised path multiplies "
        "x·(1 + erf) before halving and overflows",
        dtype="float32",
        size=64,
    ),
    *(
        Difference(
            "gelu",
            "derivative",
            x,
            value,
            NAN,
            NAN,
            "x·x overflows; the term it multiplies is 0 once tanh saturates (0·inf = NaN in "
            "PyTorch)",
            {"approximate": "tanh"},
            dtype=dtype,
        )
        for x, value, dtype in (
            (1e200, 1.0, "float64"),
            (-1e200, 0.0, "float64"),
            (1e20, 1.0, "float32"),
        )
    ),
    Difference(
        "softplus",
        "derivative",
        1e4,
        1.0,
        NAN,
        1.0,
        "exp(beta·x) overflows below the threshold; the limit is 1 (PyTorch: inf/inf = NaN; "
        "JAX's softplus has no threshold)",
        {"threshold": 1e30},
    ),
    # A zero derivative blocks the gradient.
    Difference(
        "leaky_relu",
        "vjp",
        -1.0,
        0.0,
        NAN,
        NAN,
        "a zero slope blocks the gradient, as PyTorch's relu backward; PyTorch multiplies inf·0",
        {"negative_slope": 0.0},
        grad_out=INF,
    ),
    Difference(
        "leaky_relu",
        "vjp",
        -1.0,
        0.0,
        -0.0,
        0.0,
        "a blocked gradient is +0, as PyTorch's relu backward; PyTorch multiplies (-1)·0",
        {"negative_slope": 0.0},
        grad_out=-1.0,
    ),
    # Precision.
    Difference(
        "celu",
        "derivative",
        -99.0,
        5.113674879240353e-26,
        5.113683088774931e-26,
        0.0,
        "PyTorch's backward uses 1/float32(alpha); JAX's derivative of expm1 is expm1(x)+1",
        {"alpha": 1.7},
    ),
    Difference(
        "sigmoid",
        "derivative",
        8.3203125,
        0.0002434253692626953,
        0.0,
        0.0,
        "rounded once from float32; PyTorch computes y·(1-y) from the float16 output y = 1",
        dtype="float16",
    ),
    Difference(
        "sigmoid",
        "derivative",
        9.0,
        0.00012302398681640625,
        0.0,
        0.0,
        "rounded once from float32; PyTorch computes y·(1-y) from the bfloat16 output y = 1",
        dtype="bfloat16",
    ),
    Difference(
        "tanh",
        "derivative",
        -4.5078125,
        0.0004858970642089844,
        0.0,
        0.0,
        "rounded once from float32; PyTorch computes 1-y² from the float16 output y = -1",
        dtype="float16",
    ),
]
