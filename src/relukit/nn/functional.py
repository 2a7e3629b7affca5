"""Functional forms of relukit's PyTorch activations, mirroring ``torch.nn.functional``.

Same names, signatures and defaults as ``torch.nn.functional`` where PyTorch has the function,
plus ``crelu``, ``maxout``, ``squared_relu`` and ``general_relu``. Forward values are PyTorch's
bit for bit. What changes is what autograd keeps for the backward pass:

- relu, leaky_relu, relu6, hardtanh, general_relu, rrelu (eval): a packed mask, 1 bit per
  element (2 for general_relu with both a slope and a cap), instead of a full tensor;
- prelu: the mask plus the non-positive inputs, and those only if the weight needs a gradient;
- rrelu (training): the mask plus one slope per non-positive input;
- crelu: 2 bits per input; maxout: log2(pieces) bits per output instead of an int64 index;
- elu, selu, celu, gelu, silu, mish, softplus, squared_relu: PyTorch's own operations, which
  already keep one tensor and give exact gradients.

Input gradients of the mask members are PyTorch's bit for bit, kinks and NaN included. When no
gradient is needed (``torch.no_grad()``, or inputs that do not require one) the PyTorch
operation runs directly. ``inplace=True`` writes the result into the input, with PyTorch's
errors when that would corrupt autograd. Parameter values are checked by the registry
(:func:`relukit.family.lookup`); ``ParameterError`` (a ``ValueError``) names the function.

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
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from relukit.family import ParameterError, lookup
from relukit.family.spec import integer
from relukit.nn.autograd import InplaceMasked, InplaceRReLU, call, check_inplace
from relukit.nn.rules import rule


def check(where: str, member: str, **params: Any) -> dict[str, Any]:
    """``params`` bound by the registry's checks; ParameterError naming ``where`` otherwise."""
    try:
        return _bind(member, tuple(params.items()))
    except ParameterError as error:
        raise ParameterError(f"{where}: {error}") from None
    except TypeError:  # unhashable values: bind without the cache
        try:
            return lookup(member).bind(params)
        except ParameterError as error:
            raise ParameterError(f"{where}: {error}") from None


@functools.lru_cache(maxsize=512)
def _bind(member: str, items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    return lookup(member).bind(dict(items))


def check_dim(where: str, dim: Any) -> None:
    """``dim`` (the registry's ``axis``) must be an integer; ParameterError naming ``where``."""
    problem = integer(dim)
    if problem is not None:
        raise ParameterError(f"{where}: dim={dim!r}: {problem}")


def _checking() -> bool:
    """Checks run in eager mode; under torch.compile the module constructors checked already."""
    return not torch.compiler.is_compiling()


def needs_grad(*tensors: Tensor) -> bool:
    """Will autograd record an operation on these tensors?"""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _masked(input: Tensor, member: str, params: Sequence[float], inplace: bool) -> Tensor:
    if not needs_grad(input):
        r = rule(member, params)
        return r.forward_(input) if inplace else r.forward(input)
    if inplace:
        check_inplace(input, f"relukit.nn.functional.{member}")
        return InplaceMasked.apply(input, member, list(params))
    return call("masked", input, member, list(params))[0]


# ---------------------------------------------------------------------------------------------
# the mask members


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(0, x); the backward keeps 1 bit per element. relu'(0) = 0, relu'(NaN)·g = g.

    Example:
        >>> relu(torch.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    return _masked(input, "relu", (), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope·x; 1 bit per element. Derivative at 0 and NaN: the slope.

    Example:
        >>> leaky_relu(torch.tensor([-1.0, 2.0]), 0.5).tolist()
        [-0.5, 2.0]
    """
    if _checking():
        check("relukit.nn.functional.leaky_relu", "leaky_relu", negative_slope=negative_slope)
    return _masked(input, "leaky_relu", (negative_slope,), inplace)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(0, x), 6); 1 bit per element. Derivative 0 at 0, 6 and NaN.

    Example:
        >>> relu6(torch.tensor([-1.0, 3.0, 9.0])).tolist()
        [0.0, 3.0, 6.0]
    """
    return _masked(input, "relu6", (), inplace)


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """min(max(x, min_val), max_val); 1 bit per element. Derivative 0 at both kinks and NaN.

    Example:
        >>> hardtanh(torch.tensor([-3.0, 0.5, 2.0])).tolist()
        [-1.0, 0.5, 1.0]
    """
    if _checking():
        check("relukit.nn.functional.hardtanh", "hardtanh", min_val=min_val, max_val=max_val)
    return _masked(input, "hardtanh", (min_val, max_val), inplace)


def general_relu(
    input: Tensor,
    negative_slope: float = 0.0,
    max_value: float | None = None,
    threshold: float = 0.0,
) -> Tensor:
    """Keras's relu: slope·(x − threshold) below the threshold, x, then max_value from there on.

    1 bit per element, 2 when there is both a slope (not 0 or 1) and a cap. Derivative at the
    threshold: the slope; at max_value: 0; at NaN: 1 (the gradient passes, as relu's).

    Example:
        >>> general_relu(torch.tensor([-2.0, 0.5, 1.0, 4.0]), 0.1, 3.0, 1.0).tolist()
        [-0.30000001192092896, -0.05000000074505806, 1.0, 3.0]
    """
    if _checking():
        check(
            "relukit.nn.functional.general_relu",
            "general_relu",
            negative_slope=negative_slope,
            max_value=max_value,
            threshold=threshold,
        )
    cap = math.inf if max_value is None else max_value
    return _masked(input, "general_relu", (negative_slope, cap, threshold), False)


def rrelu(
    input: Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
    *,
    generator: torch.Generator | None = None,
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
    if _checking():
        check("relukit.nn.functional.rrelu", "rrelu", lower=lower, upper=upper)
    if not training:
        return _masked(input, "leaky_relu", ((lower + upper) / 2,), inplace)
    if inplace and needs_grad(input):
        check_inplace(input, "relukit.nn.functional.rrelu")
        return InplaceRReLU.apply(input, lower, upper, generator)
    y = call("rrelu", input, lower, upper, generator)[0]
    return input.copy_(y) if inplace else y


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x if x > 0 else weight[c]·x, c the channel (axis 1); weight has 1 or C slopes.

    The backward keeps 1 bit per element, plus the non-positive inputs when the weight needs a
    gradient (its gradient is their sum weighted by the incoming gradient). Both gradients
    are PyTorch's bit for bit. Double backward is not supported (use torch.nn.PReLU).

    Example:
        >>> prelu(torch.tensor([[-2.0, 3.0]]), torch.tensor([0.5])).tolist()
        [[-1.0, 3.0]]
    """
    if _checking():
        _check_prelu(input, weight)
    if not needs_grad(input, weight):
        return torch.prelu(input, weight)
    keep_negatives = torch.is_grad_enabled() and weight.requires_grad
    return call("prelu", input, weight, keep_negatives)[0]


def _check_prelu(input: Tensor, weight: Tensor) -> None:
    where = "relukit.nn.functional.prelu"
    if not isinstance(weight, Tensor):
        raise TypeError(f"{where}: weight must be a tensor, got {type(weight).__name__}")
    if weight.dim() > 1:
        raise ParameterError(f"{where}: weight must be 0-D or 1-D, got shape {tuple(weight.shape)}")
    channels = input.shape[1] if input.dim() > 1 else 1
    if weight.numel() not in (1, channels):
        raise ParameterError(
            f"{where}: weight has {weight.numel()} slopes but the input has {channels} "
            "channel(s) along dim 1"
        )


# ---------------------------------------------------------------------------------------------
# the shape-changing members


def _dim(where: str, input: Tensor, dim: int) -> int:
    if input.dim() == 0:
        raise ParameterError(f"{where}: needs an input with at least one dim (got a 0-d tensor)")
    if not -input.dim() <= dim < input.dim():
        raise ParameterError(f"{where}: dim={dim} is out of range for {input.dim()} dims")
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
    return call("crelu", input, d)[0]


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
        raise ParameterError(
            f"{where}: pieces={pieces} does not divide dim {dim} of length {input.shape[d]}"
        )
    if not needs_grad(input):
        return input.unflatten(d, (input.shape[d] // pieces, pieces)).max(d + 1).values
    return call("maxout", input, pieces, d)[0]


# ---------------------------------------------------------------------------------------------
# the members PyTorch already saves one tensor for


def squared_relu(input: Tensor) -> Tensor:
    """max(0, x)²: PyTorch's relu then square (one saved tensor, relu(x), shared by both).

    Example:
        >>> squared_relu(torch.tensor([-2.0, 3.0])).tolist()
        [0.0, 9.0]
    """
    return torch.square(torch.relu(input))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha·(exp(x) − 1): ``torch.nn.functional.elu`` (saves x, or y in place).

    Example:
        >>> round(elu(torch.tensor([-1.0])).item(), 6)
        -0.632121
    """
    if _checking():
        check("relukit.nn.functional.elu", "elu", alpha=alpha)
    return F.elu(input, alpha, inplace)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale·elu(x, alpha) with the self-normalising constants: ``torch.nn.functional.selu``.

    Example:
        >>> round(selu(torch.tensor([1.0])).item(), 6)
        1.050701
    """
    return F.selu(input, inplace)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha·(exp(x/alpha) − 1): ``torch.nn.functional.celu``.

    Example:
        >>> round(celu(torch.tensor([-2.0]), 2.0).item(), 6)
        -1.264241
    """
    if _checking():
        check("relukit.nn.functional.celu", "celu", alpha=alpha)
    return F.celu(input, alpha, inplace)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x·Φ(x) (or its tanh approximation): ``torch.nn.functional.gelu``.

    Example:
        >>> round(gelu(torch.tensor([1.0])).item(), 6)
        0.841345
    """
    if _checking():
        check("relukit.nn.functional.gelu", "gelu", approximate=approximate)
    return F.gelu(input, approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x·σ(x): ``torch.nn.functional.silu``.

    Example:
        >>> round(silu(torch.tensor([1.0])).item(), 6)
        0.731059
    """
    return F.silu(input, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x·tanh(softplus(x)): ``torch.nn.functional.mish``.

    Example:
        >>> round(mish(torch.tensor([1.0])).item(), 6)
        0.865098
    """
    return F.mish(input, inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta·x))/beta, x where beta·x > threshold: ``torch.nn.functional.softplus``.

    Example:
        >>> round(softplus(torch.tensor([0.0])).item(), 6)
        0.693147
    """
    if _checking():
        check("relukit.nn.functional.softplus", "softplus", beta=beta, threshold=threshold)
    return F.softplus(input, beta, threshold)


__all__ = [
    "celu",
    "crelu",
    "elu",
    "gelu",
    "general_relu",
    "hardtanh",
    "leaky_relu",
    "maxout",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "silu",
    "softplus",
    "squared_relu",
]
