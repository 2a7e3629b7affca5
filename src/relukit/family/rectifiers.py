"""The piecewise-linear rectifiers and squared ReLU.

Every forward here keeps the sign of a zero input where it passes the input through
(``relu(-0.0) == -0.0``, as PyTorch's ``clamp_min``), and gives ``+0.0`` where it replaces a
negative input by zero. The derivative at a kink is the one PyTorch's autograd uses.
"""

from __future__ import annotations

from typing import Any

from relukit.family.spec import (
    INF,
    Activation,
    Firing,
    Kink,
    Limits,
    Parameter,
    ParameterError,
    Params,
    boolean,
    constant,
    non_negative,
    optional_real,
    plain,
    real,
)

# ---------------------------------------------------------------------------------------------
# relu


def _relu(m: Any, x: Any) -> Any:
    return m.where(x < 0, 0, x)


def _relu_derivative(m: Any, x: Any) -> Any:
    return m.where(x > 0, 1, 0)


def _relu_code(m: Any, x: Any) -> Any:
    # PyTorch: threshold_backward, x <= 0 ? 0 : g (so a NaN input passes the gradient)
    return m.logical_not(x <= 0)


def _zero_one(m: Any, like: Any, **params: Any) -> tuple[float, float]:
    return (0.0, 1.0)


relu = Activation(
    name="relu",
    module="ReLU",
    torch_module="ReLU",
    kernel=lambda p: ("relu", ()),
    summary="Rectified Linear Unit",
    formula="max(0, x)",
    latex=r"\max(0, x)",
    forward=_relu,
    derivative=_relu_derivative,
    kinks=(Kink("x = 0", "0", constant(0.0), constant(0.0)),),
    limits=Limits(lambda p: (0.0, INF), lambda p: (0.0, 1.0)),
    output_range="[0, ∞)",
    integers="same",
    derivative_pieces=lambda p: 2,
    mask_code=_relu_code,
    mask_derivatives=_zero_one,
    torch_name="relu",
    firing=Firing(constant(0.0), "y > 0", on="output"),
    reference="Nair & Hinton, Rectified Linear Units Improve Restricted Boltzmann Machines",
    year=2010,
    example="""
>>> import relukit
>>> relukit.relu([-2, 0.5, 3])
array([0. , 0.5, 3. ])
>>> relukit.relu([-1.5, 0, 2.5])
array([0. , 0. , 2.5])
>>> relukit.relu([-0.5, 1.2, -3.7, 4.0])
array([0. , 1.2, 0. , 4. ])
>>> relukit.relu.derivative([0.8, -1.0, 3.2])
array([1., 0., 1.])
""",
)

# ---------------------------------------------------------------------------------------------
# leaky_relu


def _leaky_relu(m: Any, x: Any, negative_slope: float) -> Any:
    return m.where(x > 0, x, x * negative_slope)


def _leaky_relu_derivative(m: Any, x: Any, negative_slope: float) -> Any:
    return m.where(x > 0, 1, negative_slope)


def _positive_code(m: Any, x: Any, **params: Any) -> Any:
    # PyTorch: leaky_relu_backward and prelu's backward, x > 0 ? g : a·g
    return x > 0


def _leaky_relu_pieces(m: Any, like: Any, negative_slope: float) -> tuple[float, float]:
    return (negative_slope, 1.0)


def _slope_limit(slope: float) -> float:
    """lim_{x→-inf} slope·x."""
    return -INF if slope > 0 else (INF if slope < 0 else 0.0)


leaky_relu = Activation(
    name="leaky_relu",
    module="LeakyReLU",
    torch_module="LeakyReLU",
    kernel=lambda p: ("leaky_relu", (p["negative_slope"],)),
    summary="Leaky ReLU",
    formula="x if x > 0 else negative_slope·x",
    latex=r"\begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}",
    forward=_leaky_relu,
    derivative=_leaky_relu_derivative,
    parameters=(Parameter("negative_slope", 0.01, "slope a for x ≤ 0", real),),
    kinks=(Kink("x = 0", "negative_slope", constant(0.0), lambda p: p["negative_slope"]),),
    limits=Limits(
        lambda p: (_slope_limit(p["negative_slope"]), INF),
        lambda p: (p["negative_slope"], 1.0),
    ),
    output_range="(-∞, ∞)",
    zero_centred=False,
    derivative_pieces=lambda p: 2,
    mask_code=_positive_code,
    mask_derivatives=_leaky_relu_pieces,
    torch_name="leaky_relu",
    firing=Firing(constant(0.0), "x > 0"),
    reference="Maas, Hannun & Ng, Rectifier Nonlinearities Improve Neural Network Acoustic Models",
    year=2013,
    example="""
>>> import numpy as np, relukit
>>> x = np.linspace(-20, 20, 5)
>>> relukit.leaky_relu(x, negative_slope=0.07)
array([-1.4, -0.7,  0. , 10. , 20. ])
>>> relukit.leaky_relu.derivative(x, negative_slope=0.07)
array([0.07, 0.07, 0.07, 1.  , 1.  ])
""",
)

# ---------------------------------------------------------------------------------------------
# prelu


def _weight_tuple(value: Any) -> Any:
    """A list or tuple of slopes as a tuple of Python numbers (NumPy scalars taken as such)."""
    return tuple(plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _check_weight(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return real(value)
    if isinstance(value, tuple):
        if not value:
            return "must hold at least one slope"
        problems = [real(v) for v in value]
        return next((f"slope {p}" for p in problems if p is not None), None)
    shape = getattr(value, "shape", None)
    if shape is None:
        return "must be a real number or a 1-D array of slopes"
    if len(shape) > 1:
        return f"must be a real number or a 1-D array of slopes (got shape {tuple(shape)})"
    return None


def _prelu_weight(m: Any, x: Any, weight: Any, axis: int) -> Any:
    """The slopes as an array of x's dtype, shaped to broadcast along the channel axis."""
    w = m.asarray(weight, dtype=x.dtype, device=m.device(x))
    count = 1 if w.ndim == 0 else w.shape[0]
    if count == 1:
        return m.reshape(w, ())
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ParameterError(f"axis={axis} is out of range for an input with {x.ndim} axes")
    channels = x.shape[axis] if x.ndim else 1
    if channels != count:
        raise ParameterError(
            f"weight has {count} slopes but the input has {channels} channel(s) along axis {axis}"
        )
    shape = [1] * x.ndim
    shape[axis] = count
    return m.reshape(w, tuple(shape))


def _prelu(m: Any, x: Any, weight: Any, axis: int) -> Any:
    w = _prelu_weight(m, x, weight, axis)
    # At -inf a zero slope has the limit 0, where w·x would give NaN.
    negative = m.where(m.isinf(x) & (w == 0), 0, w * x)
    return m.where(x > 0, x, negative)


def _prelu_derivative(m: Any, x: Any, weight: Any, axis: int) -> Any:
    w = _prelu_weight(m, x, weight, axis)
    return m.where(x > 0, m.ones_like(x), m.broadcast_to(w, x.shape))


def _prelu_pieces(m: Any, like: Any, weight: Any, axis: int) -> tuple[Any, float]:
    return (m.broadcast_to(_prelu_weight(m, like, weight, axis), like.shape), 1.0)


def _prelu_weight_vjp(m: Any, x: Any, g: Any, weight: Any, axis: int) -> Any:
    w = _prelu_weight(m, x, weight, axis)
    contribution = m.where(x > 0, 0, x * g)
    if w.ndim == 0:
        total = m.sum(contribution)
    else:
        others = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
        total = m.sum(contribution, axis=others)
    return m.reshape(total, m.asarray(weight).shape)


prelu = Activation(
    name="prelu",
    module="PReLU",
    torch_module="PReLU",
    kernel=lambda p: ("prelu", ()),
    summary="Parametric ReLU (learnable slope, shared or one per channel)",
    formula="x if x > 0 else weight[c]·x",
    latex=r"\begin{cases} x & x > 0 \\ a_c x & x \le 0 \end{cases}",
    forward=_prelu,
    derivative=_prelu_derivative,
    param_vjps={"weight": _prelu_weight_vjp},
    parameters=(
        Parameter(
            "weight",
            0.25,
            "slope(s) for x ≤ 0: one shared or one per channel (a number, list or 1-D array)",
            _check_weight,
            convert=_weight_tuple,
        ),
        Parameter(
            "axis",
            1,
            "channel axis (PyTorch: 1; inputs of fewer dims have 1 channel)",
            lambda v: (
                None if isinstance(v, int) and not isinstance(v, bool) else "must be an integer"
            ),
            int,
        ),
    ),
    kinks=(Kink("x = 0", "weight", constant(0.0), lambda p: float(p["weight"])),),
    limits=Limits(lambda p: (None, INF), lambda p: (None, 1.0)),
    output_range="(-∞, ∞)",
    derivative_pieces=lambda p: 2,
    mask_code=_positive_code,
    mask_derivatives=_prelu_pieces,
    torch_name="prelu",
    firing=Firing(constant(0.0), "x > 0"),
    reference="He, Zhang, Ren & Sun, Delving Deep into Rectifiers (PReLU)",
    year=2015,
    example="""
>>> import numpy as np, relukit
>>> x = np.array([[-2.0, 3.0], [-4.0, -1.0]])
>>> relukit.prelu(x, weight=np.array([0.5, 0.1]))
array([[-1. ,  3. ],
       [-2. , -0.1]])
>>> relukit.prelu.vjp(x, np.ones_like(x), weight=np.array([0.5, 0.1]), wrt="weight")
array([-6., -1.])
""",
)

# ---------------------------------------------------------------------------------------------
# rrelu


def _rrelu_slope(m: Any, x: Any, lower: float, upper: float, training: bool, seed: Any) -> Any:
    if not training:
        return (lower + upper) / 2
    return m.uniform(x, lower, upper, seed)


def _rrelu(m: Any, x: Any, lower: float, upper: float, training: bool, seed: Any) -> Any:
    return m.where(x > 0, x, x * _rrelu_slope(m, x, lower, upper, training, seed))


def _rrelu_derivative(m: Any, x: Any, lower: float, upper: float, training: bool, seed: Any) -> Any:
    return m.where(x > 0, 1, _rrelu_slope(m, x, lower, upper, training, seed))


def _rrelu_code(m: Any, x: Any, lower: float, upper: float, training: bool, seed: Any) -> Any:
    # PyTorch: in training (slopes drawn when upper - lower > 1e-6) the backward is g·noise with
    # noise = 1 unless x <= 0; otherwise leaky_relu_backward, x > 0 ? g : slope·g
    if training and upper - lower > 1e-6:
        return m.logical_not(x <= 0)
    return x > 0


def _rrelu_pieces(
    m: Any, like: Any, lower: float, upper: float, training: bool, seed: Any
) -> tuple[Any, float]:
    # in training the slopes are drawn again from the seed, as the derivative draws them
    return (_rrelu_slope(m, like, lower, upper, training, seed), 1.0)


def _rrelu_check(p: Params) -> str | None:
    if p["lower"] > p["upper"]:
        return f"lower={p['lower']!r} must be <= upper={p['upper']!r}"
    if p["training"] and p["seed"] is None:
        return "training=True draws random slopes: give seed= (an int or a numpy Generator)"
    return None


def _check_seed(value: Any) -> str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    if type(value).__name__ == "Generator":
        return None
    return "must be None, an int or a numpy.random.Generator"


rrelu = Activation(
    name="rrelu",
    module="RReLU",
    torch_module="RReLU",
    kernel=(
        lambda p: ("rrelu", ())
        if p["training"]
        else ("leaky_relu", ((p["lower"] + p["upper"]) / 2,))
    ),
    summary="Randomized leaky ReLU (random slope while training, mean slope otherwise)",
    formula="x if x > 0 else r·x, r ~ U(lower, upper) in training, (lower+upper)/2 otherwise",
    latex=r"\begin{cases} x & x > 0 \\ r x & x \le 0 \end{cases},\ r \sim U(l, u)",
    forward=_rrelu,
    derivative=_rrelu_derivative,
    parameters=(
        Parameter("lower", 1 / 8, "lower bound of the slope", non_negative),
        Parameter("upper", 1 / 3, "upper bound of the slope", non_negative),
        Parameter(
            "training", False, "draw a slope per element (True) or use the mean", boolean, bool
        ),
        Parameter(
            "seed", None, "seed or numpy Generator for the slopes in training", _check_seed, int
        ),
    ),
    check=_rrelu_check,
    kinks=(
        Kink(
            "x = 0",
            "the slope r (the mean slope outside training)",
            constant(0.0),
            lambda p: (p["lower"] + p["upper"]) / 2,
        ),
    ),
    limits=Limits(lambda p: (-INF if p["upper"] > 0 else 0.0, INF), lambda p: (None, 1.0)),
    output_range="(-∞, ∞)",
    derivative_pieces=lambda p: 2,
    mask_code=_rrelu_code,
    mask_derivatives=_rrelu_pieces,
    torch_name="rrelu",
    firing=Firing(constant(0.0), "x > 0"),
    reference="Xu, Wang, Chen & Li, Empirical Evaluation of Rectified Activations in "
    "Convolutional Network",
    year=2015,
    example="""
>>> import relukit
>>> relukit.rrelu([-2.0, 3.0], lower=0.1, upper=0.3)
array([-0.4,  3. ])
>>> y = relukit.rrelu([-1.0, -1.0], training=True, seed=0)
>>> bool(((-1/3 <= y) & (y <= -1/8)).all())
True
""",
)

# ---------------------------------------------------------------------------------------------
# hardtanh and relu6


def _clip(m: Any, x: Any, low: float, high: float) -> Any:
    if low < 0 and m.isdtype(x.dtype, "unsigned integer"):
        raise ParameterError(f"min_val={low!r} is negative, which an unsigned input cannot hold")
    return m.where(x < low, low, m.where(x > high, high, x))


def _clip_derivative(m: Any, x: Any, low: float, high: float) -> Any:
    return m.where((x > low) & (x < high), 1, 0)


def _clip_code(m: Any, x: Any, low: float, high: float) -> Any:
    # PyTorch: hardtanh_backward's vectorised CPU kernel, (x > min & x < max) & g, so a NaN input
    # gets 0 (its scalar loop, used for the last few elements, writes g instead)
    return (x > low) & (x < high)


def _hardtanh(m: Any, x: Any, min_val: float, max_val: float) -> Any:
    return _clip(m, x, min_val, max_val)


def _hardtanh_derivative(m: Any, x: Any, min_val: float, max_val: float) -> Any:
    return _clip_derivative(m, x, min_val, max_val)


hardtanh = Activation(
    name="hardtanh",
    module="Hardtanh",
    torch_module="Hardtanh",
    kernel=lambda p: ("hardtanh", (p["min_val"], p["max_val"])),
    summary="Hard tanh: the identity clipped to [min_val, max_val]",
    formula="min(max(x, min_val), max_val)",
    latex=r"\min(\max(x, a), b)",
    forward=_hardtanh,
    derivative=_hardtanh_derivative,
    parameters=(
        Parameter("min_val", -1.0, "lower bound a", real),
        Parameter("max_val", 1.0, "upper bound b", real),
    ),
    check=lambda p: (
        None
        if p["min_val"] <= p["max_val"]
        else f"min_val={p['min_val']!r} must be <= max_val={p['max_val']!r}"
    ),
    kinks=(
        Kink("x = min_val", "0", lambda p: p["min_val"], constant(0.0)),
        Kink("x = max_val", "0", lambda p: p["max_val"], constant(0.0)),
    ),
    limits=Limits(lambda p: (p["min_val"], p["max_val"]), lambda p: (0.0, 0.0)),
    output_range="[min_val, max_val]",
    bounded=True,
    zero_centred=True,
    integers="same",
    derivative_pieces=lambda p: 2,
    mask_code=lambda m, x, min_val, max_val: _clip_code(m, x, min_val, max_val),
    mask_derivatives=_zero_one,
    torch_name="hardtanh",
    firing=Firing(lambda p: p["min_val"], "x > min_val"),
    reference="Collobert, Large Scale Machine Learning (PhD thesis)",
    year=2004,
    example="""
>>> import relukit
>>> relukit.hardtanh([-3.0, -1.0, 0.5, 1.0, 2.0])
array([-1. , -1. ,  0.5,  1. ,  1. ])
>>> relukit.hardtanh.derivative([-3.0, -1.0, 0.5, 1.0, 2.0])
array([0., 0., 1., 0., 0.])
""",
)


def _relu6(m: Any, x: Any) -> Any:
    return _clip(m, x, 0, 6)


def _relu6_derivative(m: Any, x: Any) -> Any:
    return _clip_derivative(m, x, 0, 6)


relu6 = Activation(
    name="relu6",
    module="ReLU6",
    torch_module="ReLU6",
    kernel=lambda p: ("hardtanh", (0.0, 6.0)),
    summary="ReLU capped at 6",
    formula="min(max(0, x), 6)",
    latex=r"\min(\max(0, x), 6)",
    forward=_relu6,
    derivative=_relu6_derivative,
    kinks=(
        Kink("x = 0", "0", constant(0.0), constant(0.0)),
        Kink("x = 6", "0", constant(6.0), constant(0.0)),
    ),
    limits=Limits(lambda p: (0.0, 6.0), lambda p: (0.0, 0.0)),
    output_range="[0, 6]",
    bounded=True,
    integers="same",
    derivative_pieces=lambda p: 2,
    mask_code=lambda m, x: _clip_code(m, x, 0, 6),
    mask_derivatives=_zero_one,
    torch_name="relu6",
    firing=Firing(constant(0.0), "y > 0", on="output"),
    reference="Krizhevsky, Convolutional Deep Belief Networks on CIFAR-10",
    year=2010,
    example="""
>>> import relukit
>>> relukit.relu6([-1.0, 0.0, 3.0, 6.0, 9.0])
array([0., 0., 3., 6., 6.])
>>> relukit.relu6.derivative([-1.0, 0.0, 3.0, 6.0, 9.0])
array([0., 0., 1., 0., 0.])
""",
)

# ---------------------------------------------------------------------------------------------
# general_relu (Keras semantics)
#
# Keras computes relu(x, negative_slope=a, max_value=m, threshold=t) as
#     c = x·[x > t]  (relu(x) when t = 0),  c = clip(c, 0, m) if m is given,  f = c − a·relu(t − x)
# so f(x) = a·(x − t) for x ≤ t (0 at x = t), x above t, clipped to [0, m] when capped: with
# t < 0 and a cap, the inputs in (t, 0] give 0. The pieces below are exactly those.


def _general_relu(
    m: Any, x: Any, negative_slope: float, max_value: float | None, threshold: float
) -> Any:
    # (x - threshold at x == threshold keeps the sign of a zero input at threshold 0, as relu)
    if negative_slope == 0:
        lower = m.where(x < threshold, 0, x - threshold)
    else:
        lower = (x - threshold) * negative_slope
    upper = x if max_value is None else m.where(x >= max_value, max_value, m.where(x > 0, x, 0))
    return m.where(x > threshold, upper, lower)


def _general_relu_flat(x: Any, max_value: float | None, threshold: float) -> Any:
    """Where the derivative is 0 above the threshold: at or above the cap, and (t < 0) at or
    below 0, where the cap's clip to [0, max_value] holds the output at 0."""
    return (x >= max_value) | (x <= 0) if threshold < 0 else x >= max_value


def _general_relu_derivative(
    m: Any, x: Any, negative_slope: float, max_value: float | None, threshold: float
) -> Any:
    d = m.where(x > threshold, 1, negative_slope)
    if max_value is None:
        return d
    return m.where((x > threshold) & _general_relu_flat(x, max_value, threshold), 0, d)


def _cap(p: Params) -> float | None:
    return p["max_value"]


def _general_relu_check(p: Params) -> str | None:
    if p["max_value"] is not None and p["max_value"] < 0:
        return (
            f"max_value={p['max_value']!r} must be >= 0 (Keras clips to [0, max_value], "
            "which a negative cap leaves undefined)"
        )
    return None


def _general_relu_pieces(p: Params) -> int:
    return len(set(_general_relu_values(p["negative_slope"], p["max_value"])))


def _general_relu_values(negative_slope: float, max_value: float | None) -> tuple[float, ...]:
    """The derivative below the threshold, above it, and (with a cap) where the cap holds."""
    return (negative_slope, 1.0) if max_value is None else (negative_slope, 1.0, 0.0)


def general_relu_piece_codes(negative_slope: float, max_value: float | None) -> tuple[int, ...]:
    """The mask code of each piece (below, between, capped): pieces with the same derivative
    share a code, numbered in that order, so the codes number ``derivative_pieces``."""
    values = _general_relu_values(negative_slope, max_value)
    distinct = list(dict.fromkeys(values))
    return tuple(distinct.index(v) for v in values)


def _general_relu_code(
    m: Any, x: Any, negative_slope: float, max_value: float | None, threshold: float
) -> Any:
    # The pieces are decided as the derivative decides them (no PyTorch counterpart).
    codes = general_relu_piece_codes(negative_slope, max_value)
    code = m.where(x > threshold, codes[1], codes[0])
    if max_value is not None:
        flat = (x > threshold) & _general_relu_flat(x, max_value, threshold)
        code = m.where(flat, codes[2], code)
    return code


def _general_relu_derivatives(
    m: Any, like: Any, negative_slope: float, max_value: float | None, threshold: float
) -> tuple[float, ...]:
    return tuple(dict.fromkeys(_general_relu_values(negative_slope, max_value)))


def _general_kernel(p: Params) -> tuple[float, ...]:
    """The compiled formula's parameters: slope, threshold, cap (0 if none), capped flag."""
    cap = p["max_value"]
    return (
        p["negative_slope"],
        p["threshold"],
        0.0 if cap is None else cap,
        float(cap is not None),
    )


general_relu = Activation(
    name="general_relu",
    module="GeneralReLU",
    kernel=lambda p: ("general_relu", _general_kernel(p)),
    summary="Keras's relu: leaky up to a threshold, capped at max_value",
    formula="negative_slope·(x − threshold) if x ≤ threshold; otherwise x, "
    "clipped to [0, max_value] when max_value is given (Keras's keras.activations.relu)",
    latex=r"\begin{cases} a (x - t) & x \le t \\ \min(\max(x, 0), m) & x > t \end{cases}",
    forward=_general_relu,
    derivative=_general_relu_derivative,
    parameters=(
        Parameter("negative_slope", 0.0, "slope a below the threshold", real),
        Parameter("max_value", None, "saturation value m >= 0 (None: no cap)", optional_real),
        Parameter("threshold", 0.0, "threshold t up to which the slope applies", real),
    ),
    check=_general_relu_check,
    kinks=(
        Kink(
            "x = threshold",
            "negative_slope",
            lambda p: p["threshold"],
            lambda p: p["negative_slope"],
        ),
        Kink(
            "x = max_value (when above the threshold)",
            "0",
            lambda p: INF if _cap(p) is None or _cap(p) <= p["threshold"] else _cap(p),
            constant(0.0),
        ),
        Kink(
            "x = 0 (when threshold < 0 < max_value)",
            "0",
            lambda p: 0.0 if p["threshold"] < 0 < (_cap(p) or 0) else INF,
            constant(0.0),
        ),
    ),
    limits=Limits(
        lambda p: (
            _slope_limit(p["negative_slope"]),
            INF if p["max_value"] is None else p["max_value"],
        ),
        lambda p: (p["negative_slope"], 1.0 if p["max_value"] is None else 0.0),
    ),
    output_range="(-∞, max_value]",
    derivative_pieces=_general_relu_pieces,
    mask_code=_general_relu_code,
    mask_derivatives=_general_relu_derivatives,
    firing=Firing(
        lambda p: p["threshold"] if p["max_value"] is None else max(p["threshold"], 0.0),
        "x > threshold (with a max_value: x > max(threshold, 0), below which the clip holds)",
    ),
    reference="Keras, keras.activations.relu (negative_slope, max_value, threshold)",
    year=2015,
    example="""
>>> import relukit
>>> relukit.general_relu([-2.0, 0.5, 1.0, 1.5, 4.0], negative_slope=0.1, max_value=3.0,
...                      threshold=1.0)
array([-0.3 , -0.05,  0.  ,  1.5 ,  3.  ])
>>> relukit.general_relu([-10.0, -5.0, 0.0, 5.0, 10.0], max_value=5.0, threshold=5.0)
array([0., 0., 0., 0., 5.])
""",
)

# ---------------------------------------------------------------------------------------------
# squared_relu


def _squared_relu(m: Any, x: Any) -> Any:
    r = m.where(x > 0, x, 0)
    return r * r


def _squared_relu_derivative(m: Any, x: Any) -> Any:
    return 2 * m.where(x > 0, x, 0)


def _squared_relu_from_output(m: Any, y: Any) -> Any:
    return 2 * m.sqrt(y)


squared_relu = Activation(
    name="squared_relu",
    module="SquaredReLU",
    kernel=lambda p: ("squared_relu", ()),
    summary="Squared ReLU (Primer)",
    formula="max(0, x)²",
    latex=r"\max(0, x)^2",
    forward=_squared_relu,
    derivative=_squared_relu_derivative,
    from_output=_squared_relu_from_output,
    limits=Limits(lambda p: (0.0, INF), lambda p: (0.0, INF)),
    output_range="[0, ∞)",
    smooth=False,
    firing=Firing(constant(0.0), "x > 0"),  # not y > 0: y underflows to 0 for tiny x
    reference="So et al., Primer: Searching for Efficient Transformers for Language Modeling",
    year=2021,
    example="""
>>> import relukit
>>> relukit.squared_relu([-2.0, 0.5, 3.0])
array([0.  , 0.25, 9.  ])
>>> relukit.squared_relu.derivative([-2.0, 0.5, 3.0])
array([0., 1., 6.])
""",
)

MEMBERS = (relu, leaky_relu, prelu, rrelu, relu6, hardtanh, general_relu, squared_relu)
