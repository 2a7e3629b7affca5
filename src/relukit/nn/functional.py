"""Functional forms of relukit's PyTorch activations, mirroring ``torch.nn.functional``.

Same names, signatures and defaults as ``torch.nn.functional`` where PyTorch has the function
(the in-place ``relu_``, ``elu_``, … and the baselines ``sigmoid`` and ``tanh`` included), plus
``crelu``, ``maxout``, ``squared_relu`` and ``general_relu``. Forward values are PyTorch's bit
for bit. What changes is what autograd keeps for the backward pass:

- relu, leaky_relu, relu6, hardtanh, general_relu, rrelu (eval): a packed mask, 1 bit per
  element (2 for general_relu with both a slope and a cap), instead of a full tensor
  (:mod:`relukit.nn.masked`);
- prelu: the mask plus the non-positive inputs, and those only if the weight needs a gradient;
- rrelu (training): the mask plus one slope per non-positive input;
- crelu: 2 bits per input; maxout: log2(pieces) bits per output instead of an int64 index;
- elu, selu, celu, gelu, silu, mish, softplus, squared_relu, sigmoid, tanh: PyTorch's own
  operations, which already keep one tensor and give exact gradients. The smooth members take
  a keyword ``backward`` choosing what their backward keeps instead (:func:`check_backward`):
  ``"input"`` (the default: PyTorch's, bit for bit), ``"output"`` (the output, which the next
  layer keeps anyway, plus one bit for gelu, silu and mish; :mod:`relukit.nn.from_output`) or
  ``"bits"`` with ``bits=1..4`` (Few-Bit's optimal step derivative; :mod:`relukit.nn.stepped`).

Small tensors: below :func:`native_below` elements, the members with a ``torch.nn.functional``
counterpart run it, with PyTorch's own autograd; gradients are PyTorch's bit for bit on both
sides. The defaults are where the one-bit path's forward + backward became the cheaper one,
measured (CPU time, one thread, ``benchmarks/nn_speed.py``'s cases, relukit.nn / torch.nn with
the one-bit path at every size):

- the mask members (relu, leaky_relu, relu6, hardtanh, rrelu outside training,
  general_relu): below :data:`NATIVE_BYTES` of input, half the last-level cache but at most
  16 MiB (i.e. below 2^22 float32 or 2^21 float64 elements). Below it input, output and
  gradient stay in cache, so PyTorch's single pass is as fast as the kernels and the path's
  fixed cost and mask decide. On a Zen 4 with 32 MiB of L3, with the one-bit path at 8 MiB of
  input (2^20 float64, 2^21 float32) ReLU, LeakyReLU, ReLU6, Hardtanh and RReLU (eval) took
  1.01-1.43x torch.nn's time on 2 threads (nine of ten cells above 1.19) and 0.97-1.12x on
  1, against 0.93-1.06x running PyTorch's operation (``benchmarks/nn_speed.py --sizes 20
  21``, one run); at 16 MiB (2^22 float32) the one-bit path took 0.61-1.02x. The cap: a
  virtual machine may read a last-level cache shared with the whole host (300 MiB on a
  2-core Xeon VM), where half of it would keep PyTorch's saved tensors up to 150 MiB of
  input. There, with the one-bit path at every size, ReLU, LeakyReLU and ReLU6 took
  1.11-1.69x torch.nn's time at 1 MiB (2^18 float32), 0.85-1.12x at 4-8 MiB and 0.46-0.96x
  from 16 MiB (2^22 float32) up (``RELUKIT_NN_NATIVE_BELOW=0 python benchmarks/nn_speed.py
  --sizes 14 18 20 22 24``, one run);
- prelu and rrelu in training: below :data:`NATIVE_SLOPES` = 2^18 elements, any dtype. PyTorch's
  PReLU backward is a scalar loop and its RReLU draws slope by slope, so the fused kernels win
  early: PReLU 0.94× at 2^16, 0.71-0.75× at 2^17, 0.49-0.68× at 2^18-2^21; RReLU (training)
  0.82-0.90× at 2^16, 0.54-0.65× from 2^18.

Set one size in elements for every member with :func:`set_native_below` (``None``: back to the
defaults) or the environment variable ``RELUKIT_NN_NATIVE_BELOW``; ``set_native_below(0)``
keeps the one-bit path at every size (the most memory saved).

When no gradient is needed (``torch.no_grad()``, or inputs that do not require one) the PyTorch
operation runs directly. ``inplace=True`` writes the result into the input, with PyTorch's errors
when that would corrupt autograd. Parameter values are checked by the registry
(:func:`relukit.family.lookup`); a bad one raises :class:`Error`, which is a ``ValueError`` (and
relukit's ``ParameterError``) and a ``RuntimeError`` (what torch raises for many such values),
with a message naming the function.

Example:
    >>> import torch
    >>> from relukit.nn import functional as rf
    >>> x = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    >>> y = rf.leaky_relu(x, 0.1)
    >>> y.sum().backward()
    >>> x.grad.tolist()
    [0.10000000149011612, 0.10000000149011612, 1.0]
    >>> rf.maxout(torch.tensor([1.0, 3.0, -2.0, -5.0]), pieces=2).tolist()
    [3.0, -2.0]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from relukit.family import ParameterError, lookup
from relukit.family.spec import integer
from relukit.kernels.cpu.host import CACHE_HALF
from relukit.memory import output as memory_output
from relukit.memory.steps import BITS
from relukit.nn import crelu as crelu_op
from relukit.nn import from_output as output_op
from relukit.nn import masked as masked_op
from relukit.nn import maxout as maxout_op
from relukit.nn import prelu as prelu_op
from relukit.nn import rrelu as rrelu_op
from relukit.nn import stepped as stepped_op
from relukit.nn.kernel import entry


class Error(ParameterError, RuntimeError):
    """A value relukit.nn refuses: a ``ValueError`` (relukit's ``ParameterError``) and, as
    PyTorch raises for many bad values, a ``RuntimeError``."""


# ---------------------------------------------------------------------------------------------
# the size below which PyTorch's own operation runs

NATIVE_ENV = "RELUKIT_NN_NATIVE_BELOW"
NATIVE_BYTES = min(CACHE_HALF, 1 << 24)
"""The mask members run PyTorch's operation below this many bytes of input: half the last-level
cache, at most 16 MiB (see above)."""
NATIVE_SLOPES = 1 << 18
"""prelu and rrelu in training run PyTorch's operation below this many elements."""


def _native_from_env() -> int | None:
    text = os.environ.get(NATIVE_ENV, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise Error(f"{NATIVE_ENV}={text!r}: must be an integer >= 0") from None
    if value < 0:
        raise Error(f"{NATIVE_ENV}={text!r}: must be an integer >= 0")
    return value


_native: list[int | None] = [_native_from_env()]


def native_below(dtype: torch.dtype = torch.float32, slopes: bool = False) -> int:
    """Tensors of ``dtype`` with fewer elements than this run PyTorch's own operation and
    autograd: the setting (:func:`set_native_below`) if one was made, else the measured default
    of the mask members or (``slopes``) of prelu and rrelu in training."""
    value = _native[0]
    if value is not None:
        return value
    if slopes:
        return NATIVE_SLOPES
    return NATIVE_BYTES // torch.empty(0, dtype=dtype).element_size()


def native_setting() -> int | None:
    """The size set by :func:`set_native_below` or the environment (``None``: the defaults)."""
    return _native[0]


def set_native_below(n: int | None) -> None:
    """One size in elements below which every member runs PyTorch's operation (0: the one-bit
    path at every size; ``None``: the measured defaults of :func:`native_below`). Also read at
    import from the environment variable ``RELUKIT_NN_NATIVE_BELOW``."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise TypeError(f"relukit.nn.set_native_below: n must be an integer or None, got {n!r}")
    if n is not None and n < 0:
        raise Error(f"relukit.nn.set_native_below: n={n!r} must be >= 0")
    _native[0] = n


def below_native(input: Tensor, slopes: bool = False) -> bool:
    """Is ``input`` smaller than :func:`native_below` for it (the test of every call)?"""
    value = _native[0]
    if value is not None:
        return input.numel() < value
    if slopes:
        return input.numel() < NATIVE_SLOPES
    return input.numel() * input.element_size() < NATIVE_BYTES


# ---------------------------------------------------------------------------------------------
# checks


def check(where: str, member: str, **params: Any) -> dict[str, Any]:
    """``params`` bound by the registry's checks; :class:`Error` naming ``where`` otherwise."""
    try:
        return _bind(member, tuple(params.items()))
    except ParameterError as error:
        raise Error(f"{where}: {error}") from None
    except TypeError:  # unhashable values: bind without the cache
        try:
            return lookup(member).bind(params)
        except ParameterError as error:
            raise Error(f"{where}: {error}") from None


@functools.lru_cache(maxsize=512)
def _bind(member: str, items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return lookup(member).bind(dict(items))


def check_dim(where: str, dim: Any) -> None:
    """``dim`` (the registry's ``axis``) must be an integer; :class:`Error` naming ``where``."""
    problem = integer(dim)
    if problem is not None:
        raise Error(f"{where}: dim={dim!r}: {problem}")


def _checking() -> bool:
    """Checks run in eager mode; under torch.compile the module constructors checked already."""
    return not torch.compiler.is_compiling()


def needs_grad(*tensors: Tensor) -> bool:
    """Will autograd record an operation on these tensors?"""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _encoded(member: str, **params: Any) -> list[float]:
    spec = lookup(member)
    return spec.encode(spec.bind(params))


@functools.lru_cache(maxsize=512)
def _values(member: str, items: tuple[tuple[str, Any], ...]) -> list[float]:
    return _encoded(member, **dict(items))


def _masked(
    input: Tensor,
    member: str,
    params: dict[str, Any],
    inplace: bool,
    native: Callable[[], Tensor] | None,
) -> Tensor:
    """A mask member: PyTorch's ``native`` call where it runs, else the one-bit op."""
    grad = input.requires_grad and torch.is_grad_enabled()
    if native is not None and (not grad or below_native(input)):
        return native()
    # (under torch.compile the function itself: Dynamo ignores a cache, and warns of it)
    encode = _values.__wrapped__ if torch.compiler.is_compiling() else _values
    values = encode(member, tuple(params.items()))
    if not grad:
        rule = entry(member, values, input.dtype).rule
        return rule.forward_(input) if inplace else rule.forward(input)
    if inplace:
        return masked_op.forward_inplace(input, member, values, f"relukit.nn.functional.{member}")
    return masked_op.forward(input, member, values)[0]


def masked_member(input: Tensor, member: str, params: dict[str, Any]) -> Tensor:
    """Any member of the registry with a mask (``mask_code``), by name, with its parameters:
    the forward of the modules made from the registry (:func:`relukit.nn.modules.made_module`)."""
    return _masked(input, member, params, False, None)


BACKWARDS = ("input", "output", "bits")


def check_choice(where: str, backward: Any, bits: Any, member: str | None = None) -> None:
    """:class:`Error` naming ``where``, the mode (and ``member``) unless ``backward`` is one of
    :data:`BACKWARDS` and ``bits`` an integer in 1–4."""
    of = f" for {member}" if member else ""
    if not isinstance(backward, str) or backward not in BACKWARDS:
        raise Error(f"{where}: backward={backward!r}{of}: not one of 'input', 'output', 'bits'")
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in BITS:
        raise Error(
            f"{where}: backward={backward!r} with bits={bits!r}{of}: bits must be an integer in 1-4"
        )


def check_backward(
    where: str, member: str, params: dict[str, Any], backward: Any, bits: Any, inplace: bool
) -> None:
    """:class:`Error` naming ``where``, the mode and the member unless ``backward`` (one of
    :data:`BACKWARDS`) with ``bits`` works for ``member`` with ``params``."""
    if backward == "input" and (bits in BITS and not isinstance(bits, bool)):
        return
    check_choice(where, backward, bits, member)
    spec = lookup(member)
    if backward == "input":
        return
    mode = f"backward={backward!r}" + (f" with bits={bits}" if backward == "bits" else "")
    if spec.piecewise_linear:
        raise Error(
            f"{where}: {mode} for {member}: {member} is piecewise linear and already keeps one "
            "bit per element; the memory modes are for the smooth members"
        )
    if inplace:
        raise Error(
            f"{where}: {mode} for {member}: inplace=True keeps PyTorch's in-place backward; "
            "use inplace=False"
        )
    if backward == "output":
        problem = memory_output.refusal(spec, spec.bind(params))
        if problem is not None:
            raise Error(f"{where}: {mode} for {member}: {problem}")


def one_bit(member: str, backward: Any, bits: Any, where: str | None = None) -> None:
    """The choice given to a piecewise-linear member's function or module (``where``; default
    its function): its backward keeps one bit per element whatever, so only
    ``backward="input"`` (with bits in 1–4) is taken; anything else is refused by name
    (:func:`check_backward`)."""
    if backward != "input" or bits != 3:
        where = where or f"relukit.nn.functional.{member}"
        check_backward(where, member, {}, backward, bits, False)


@torch.compiler.assume_constant_result
def _memory_key(member: str, items: tuple[tuple[str, Any], ...]) -> str:
    """The parameters as the memory modes' operators carry them (a constant to torch.compile)."""
    return output_op.key(member, dict(items))


def _smooth(
    input: Tensor,
    member: str,
    params: dict[str, Any],
    backward: str,
    bits: int,
    native: Callable[[], Tensor],
    inplace: bool = False,
) -> Tensor:
    """A smooth member: PyTorch's own operation, or the memory mode ``backward`` chose."""
    if _checking():
        check_backward(f"relukit.nn.functional.{member}", member, params, backward, bits, inplace)
    if backward == "input" or not needs_grad(input):
        return native()
    key = _memory_key(member, tuple(params.items()))
    if backward == "output":
        return output_op.forward(input, member, key)[0]
    return stepped_op.forward(input, member, key, bits)[0]


# ---------------------------------------------------------------------------------------------
# the mask members


def relu(input: Tensor, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> Tensor:
    """max(0, x); the backward keeps 1 bit per element. relu'(0) = 0, relu'(NaN)·g = g.

    Example:
        >>> relu(torch.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    one_bit("relu", backward, bits)
    return _masked(input, "relu", {}, inplace, lambda: F.relu(input, inplace))


def relu_(input: Tensor) -> Tensor:
    """:func:`relu` written into ``input``."""
    return relu(input, inplace=True)


def leaky_relu(
    input: Tensor,
    negative_slope: float = 0.01,
    inplace: bool = False,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """x if x > 0 else negative_slope·x; 1 bit per element. Derivative at 0 and NaN: the slope.

    Example:
        >>> leaky_relu(torch.tensor([-1.0, 2.0]), 0.5).tolist()
        [-0.5, 2.0]
    """
    one_bit("leaky_relu", backward, bits)
    if _checking():
        check("relukit.nn.functional.leaky_relu", "leaky_relu", negative_slope=negative_slope)
    return _masked(
        input,
        "leaky_relu",
        {"negative_slope": negative_slope},
        inplace,
        lambda: F.leaky_relu(input, negative_slope, inplace),
    )


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """:func:`leaky_relu` written into ``input``."""
    return leaky_relu(input, negative_slope, inplace=True)


def relu6(
    input: Tensor, inplace: bool = False, *, backward: str = "input", bits: int = 3
) -> Tensor:
    """min(max(0, x), 6); 1 bit per element. Derivative 0 at 0, 6 and NaN.

    Example:
        >>> relu6(torch.tensor([-1.0, 3.0, 9.0])).tolist()
        [0.0, 3.0, 6.0]
    """
    one_bit("relu6", backward, bits)
    return _masked(input, "relu6", {}, inplace, lambda: F.relu6(input, inplace))


def hardtanh(
    input: Tensor,
    min_val: float = -1.0,
    max_val: float = 1.0,
    inplace: bool = False,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """min(max(x, min_val), max_val); 1 bit per element. Derivative 0 at both kinks and NaN.

    ``min_val == max_val`` is allowed, as in PyTorch (a constant, derivative 0).

    Example:
        >>> hardtanh(torch.tensor([-3.0, 0.5, 2.0])).tolist()
        [-1.0, 0.5, 1.0]
    """
    one_bit("hardtanh", backward, bits)
    if _checking():
        check("relukit.nn.functional.hardtanh", "hardtanh", min_val=min_val, max_val=max_val)
    return _masked(
        input,
        "hardtanh",
        {"min_val": min_val, "max_val": max_val},
        inplace,
        lambda: F.hardtanh(input, min_val, max_val, inplace),
    )


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """:func:`hardtanh` written into ``input``."""
    return hardtanh(input, min_val, max_val, inplace=True)


def general_relu(
    input: Tensor,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """Keras's relu: slope·(x − threshold) up to the threshold, then x clipped to [0, max_value].

    1 bit per element, 2 when there is both a slope (not 0 or 1) and a cap. Derivative at the
    threshold: the slope; at max_value: 0; at NaN: 1 (the gradient passes, as relu's).

    Example:
        >>> general_relu(torch.tensor([-2.0, 0.5, 1.0, 4.0]), 0.1, 3.0, 1.0).tolist()
        [-0.30000001192092896, -0.05000000074505806, 0.0, 3.0]
    """
    one_bit("general_relu", backward, bits)
    params = {"negative_slope": negative_slope, "max_value": max_value, "threshold": threshold}
    if _checking():
        check("relukit.nn.functional.general_relu", "general_relu", **params)
    return _masked(input, "general_relu", params, False, None)


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: torch.Generator | None = None,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """Randomized leaky ReLU: slope r ~ U(lower, upper) per input ≤ 0 in training, else the mean.

    In training the slopes come from ``generator`` (torch's default generator if None) in the
    order and with the rounding of PyTorch's CPU kernel, so ``torch.manual_seed`` reproduces
    ``torch.nn.functional.rrelu`` exactly. The backward keeps 1 bit per element and the slopes of
    the inputs ≤ 0; outside training it is leaky_relu with slope (lower + upper)/2.

    Example:
        >>> rrelu(torch.tensor([-2.0, 3.0]), 0.1, 0.3).tolist()
        [-0.4000000059604645, 3.0]
    """
    one_bit("rrelu", backward, bits)
    where = "relukit.nn.functional.rrelu"
    if _checking():
        check(where, "rrelu", lower=lower, upper=upper)
    if not training:
        return _masked(
            input,
            "rrelu",
            {"lower": lower, "upper": upper, "training": False},
            inplace,
            lambda: rrelu_eval_native(input, lower, upper, inplace),
        )
    grad = needs_grad(input)
    if generator is None and (not grad or below_native(input, slopes=True)):
        return F.rrelu(input, lower, upper, True, inplace)
    if inplace and grad:
        return rrelu_op.forward_inplace(input, lower, upper, generator, where)
    y = rrelu_op.forward(input, lower, upper, generator)
    return input.copy_(y) if inplace else y


def rrelu_eval_native(input: Tensor, lower: float, upper: float, inplace: bool) -> Tensor:
    """PyTorch's RReLU outside training, bit for bit: ``F.leaky_relu`` with slope
    (lower + upper)/2 in double, which is what ``F.rrelu(training=False)`` runs (its forward
    and backward are leaky_relu's) after allocating a noise tensor it does not use."""
    return F.leaky_relu(input, (lower + upper) / 2, inplace)


def rrelu_(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """:func:`rrelu` written into ``input``."""
    return rrelu(input, lower, upper, training, True, generator=generator)


def prelu(input: Tensor, weight: Tensor, *, backward: str = "input", bits: int = 3) -> Tensor:
    """x if x > 0 else weight[c]·x, c the channel (axis 1); weight has 1 or C slopes.

    The backward keeps 1 bit per element, plus the non-positive inputs when the weight needs a
    gradient (its gradient is their sum weighted by the incoming gradient). Both gradients
    are PyTorch's bit for bit. Double backward is not supported (use torch.nn.PReLU).

    Example:
        >>> prelu(torch.tensor([[-2.0, 3.0]]), torch.tensor([0.5])).tolist()
        [[-1.0, 3.0]]
    """
    one_bit("prelu", backward, bits)
    if _checking():
        _check_prelu(input, weight)
    if not needs_grad(input, weight) or below_native(input, slopes=True):
        return torch.prelu(input, weight)
    return prelu_op.forward(input, weight)


def _check_prelu(input: Tensor, weight: Tensor) -> None:
    where = "relukit.nn.functional.prelu"
    if not isinstance(weight, Tensor):
        raise TypeError(f"{where}: weight must be a tensor, got {type(weight).__name__}")
    if weight.dim() > 1:
        raise Error(f"{where}: weight must be 0-D or 1-D, got shape {tuple(weight.shape)}")
    channels = input.shape[1] if input.dim() > 1 else 1
    if weight.numel() not in (1, channels):
        raise Error(
            f"{where}: weight has {weight.numel()} slopes but the input has {channels} "
            "channel(s) along dim 1"
        )


# ---------------------------------------------------------------------------------------------
# the shape-changing members


def _dim(where: str, input: Tensor, dim: int) -> int:
    if input.dim() == 0:
        raise Error(f"{where}: needs an input with at least one dim (got a 0-d tensor)")
    if not -input.dim() <= dim < input.dim():
        raise Error(f"{where}: dim={dim} is out of range for {input.dim()} dims")
    return dim % input.dim()


def crelu(input: Tensor, dim: int = -1) -> Tensor:
    """cat(relu(x), relu(−x)) along ``dim``: twice the size there; 2 bits per input saved.

    Example:
        >>> crelu(torch.tensor([-2.0, 0.5])).tolist()
        [0.0, 0.5, 2.0, 0.0]
    """
    where = "relukit.nn.functional.crelu"
    if _checking():
        check_dim(where, dim)
    d = _dim(where, input, dim)
    if not needs_grad(input):
        return torch.cat([torch.relu(input), torch.relu(torch.neg(input))], d)
    return crelu_op.forward(input, d)


def maxout(input: Tensor, pieces: int = 2, dim: int = -1) -> Tensor:
    """The maximum of each group of ``pieces`` consecutive entries along ``dim``.

    Ties and NaN as ``torch.max``: the whole gradient goes to the first maximal entry (or the
    first NaN). The backward keeps the winner's index in log2(pieces) bits (rounded up to 1, 2,
    4 or 8) where ``torch.max`` keeps an int64.

    Example:
        >>> maxout(torch.tensor([[1.0, 3.0, -2.0, -5.0]]), pieces=2).tolist()
        [[3.0, -2.0]]
    """
    where = "relukit.nn.functional.maxout"
    if _checking():
        check(where, "maxout", pieces=pieces)
        check_dim(where, dim)
    d = _dim(where, input, dim)
    if input.shape[d] % pieces:
        raise Error(
            f"{where}: pieces={pieces} does not divide dim {dim} of length {input.shape[d]}"
        )
    if not needs_grad(input):
        return input.unflatten(d, (input.shape[d] // pieces, pieces)).max(d + 1).values
    return maxout_op.forward(input, pieces, d)


# ---------------------------------------------------------------------------------------------
# the members PyTorch already saves one tensor for


def squared_relu(input: Tensor, *, backward: str = "input", bits: int = 3) -> Tensor:
    """max(0, x)²: PyTorch's relu then square (one saved tensor, relu(x), shared by both).

    Example:
        >>> squared_relu(torch.tensor([-2.0, 3.0])).tolist()
        [0.0, 9.0]
    """
    native = lambda: torch.square(torch.relu(input))  # noqa: E731
    return _smooth(input, "squared_relu", {}, backward, bits, native)


def elu(
    input: Tensor,
    alpha: float = 1.0,
    inplace: bool = False,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """x if x > 0 else alpha·(exp(x) − 1): ``torch.nn.functional.elu`` (saves x, or y in place).

    Example:
        >>> round(elu(torch.tensor([-1.0])).item(), 6)
        -0.632121
    """
    if _checking():
        check("relukit.nn.functional.elu", "elu", alpha=alpha)
    native = lambda: F.elu(input, alpha, inplace)  # noqa: E731
    return _smooth(input, "elu", {"alpha": alpha}, backward, bits, native, inplace)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """:func:`elu` written into ``input``."""
    return elu(input, alpha, inplace=True)


def selu(input: Tensor, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> Tensor:
    """scale·elu(x, alpha) with the self-normalising constants: ``torch.nn.functional.selu``.

    Example:
        >>> round(selu(torch.tensor([1.0])).item(), 6)
        1.050701
    """
    native = lambda: F.selu(input, inplace)  # noqa: E731
    return _smooth(input, "selu", {}, backward, bits, native, inplace)


def selu_(input: Tensor) -> Tensor:
    """:func:`selu` written into ``input``."""
    return selu(input, inplace=True)


def celu(
    input: Tensor,
    alpha: float = 1.0,
    inplace: bool = False,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """x if x > 0 else alpha·(exp(x/alpha) − 1): ``torch.nn.functional.celu``.

    Example:
        >>> round(celu(torch.tensor([-2.0]), 2.0).item(), 6)
        -1.264241
    """
    if _checking():
        check("relukit.nn.functional.celu", "celu", alpha=alpha)
    native = lambda: F.celu(input, alpha, inplace)  # noqa: E731
    return _smooth(input, "celu", {"alpha": alpha}, backward, bits, native, inplace)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """:func:`celu` written into ``input``."""
    return celu(input, alpha, inplace=True)


def gelu(
    input: Tensor, approximate: str = "none", *, backward: str = "input", bits: int = 3
) -> Tensor:
    """x·Φ(x) (or its tanh approximation): ``torch.nn.functional.gelu``.

    Example:
        >>> round(gelu(torch.tensor([1.0])).item(), 6)
        0.841345
    """
    if _checking():
        check("relukit.nn.functional.gelu", "gelu", approximate=approximate)
    native = lambda: F.gelu(input, approximate=approximate)  # noqa: E731
    return _smooth(input, "gelu", {"approximate": approximate}, backward, bits, native)


def silu(input: Tensor, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> Tensor:
    """x·σ(x): ``torch.nn.functional.silu``.

    Example:
        >>> round(silu(torch.tensor([1.0])).item(), 6)
        0.731059
    """
    native = lambda: F.silu(input, inplace)  # noqa: E731
    return _smooth(input, "silu", {}, backward, bits, native, inplace)


def mish(input: Tensor, inplace: bool = False, *, backward: str = "input", bits: int = 3) -> Tensor:
    """x·tanh(softplus(x)): ``torch.nn.functional.mish``.

    Example:
        >>> round(mish(torch.tensor([1.0])).item(), 6)
        0.865098
    """
    native = lambda: F.mish(input, inplace)  # noqa: E731
    return _smooth(input, "mish", {}, backward, bits, native, inplace)


def softplus(
    input: Tensor,
    beta: float = 1.0,
    threshold: float = 20.0,
    *,
    backward: str = "input",
    bits: int = 3,
) -> Tensor:
    """log(1 + exp(beta·x))/beta, x where beta·x > threshold: ``torch.nn.functional.softplus``.

    Example:
        >>> round(softplus(torch.tensor([0.0])).item(), 6)
        0.693147
    """
    if _checking():
        check("relukit.nn.functional.softplus", "softplus", beta=beta, threshold=threshold)
    native = lambda: F.softplus(input, beta, threshold)  # noqa: E731
    params = {"beta": beta, "threshold": threshold}
    return _smooth(input, "softplus", params, backward, bits, native)


def sigmoid(input: Tensor) -> Tensor:
    """1/(1 + exp(−x)), a baseline (not of the family): ``torch.sigmoid``.

    Example:
        >>> sigmoid(torch.tensor([0.0])).item()
        0.5
    """
    return torch.sigmoid(input)


def tanh(input: Tensor) -> Tensor:
    """tanh(x), a baseline (not of the family): ``torch.tanh``.

    Example:
        >>> tanh(torch.tensor([0.0])).item()
        0.0
    """
    return torch.tanh(input)


__all__ = [
    "BACKWARDS",
    "Error",
    "celu",
    "celu_",
    "check_backward",
    "crelu",
    "elu",
    "elu_",
    "gelu",
    "general_relu",
    "hardtanh",
    "hardtanh_",
    "leaky_relu",
    "leaky_relu_",
    "maxout",
    "mish",
    "native_below",
    "native_setting",
    "prelu",
    "relu",
    "relu6",
    "relu_",
    "rrelu",
    "rrelu_",
    "selu",
    "selu_",
    "set_native_below",
    "sigmoid",
    "silu",
    "softplus",
    "squared_relu",
    "tanh",
]
