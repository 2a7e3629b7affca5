"""The saved-mask rules of the piecewise-linear formulas, written with PyTorch operations.

A rule is a compiled formula of the registry (``Activation.kernel``, keyed by registry name:
relu, leaky_relu, hardtanh, general_relu) with its parameters, written with PyTorch's own
operations, and it knows three things: its forward (PyTorch's own operation, so values are
PyTorch's bit for bit), the code of each element (which linear piece the derivative takes
there, decided with the very comparison PyTorch's backward kernel makes, NaN included) and the
backward from those codes alone. The codes are packed by :mod:`relukit.kernels.mask`: one bit
per element, two for ``general_relu`` with both a slope and a cap.

``forward_with_mask`` / ``backward_from_mask`` have the interface of the compiled CPU kernels;
these PyTorch versions run on every device and dtype (:mod:`relukit.nn.kernel` chooses).

Choices at NaN, each PyTorch's: ``relu'(NaN)·g = g`` (``threshold_backward``: ``x <= 0 ? 0 : g``),
``leaky_relu'(NaN)·g = slope·g`` (``x > 0 ? g : slope·g``), ``hardtanh'(NaN)·g = 0`` and
``relu6'(NaN)·g = 0`` (the vectorised CPU loop's ``(x > min) & (x < max)``; PyTorch's scalar
loop, which takes the last few elements of each thread's chunk and tensors it cannot
vectorise, such as non-contiguous ones, gives ``g`` there instead).
``general_relu`` has no PyTorch counterpart; at NaN it passes ``g`` through, like relu.

Example:
    >>> import torch
    >>> r = rule("leaky_relu", (0.1,))
    >>> y, mask = r.forward_with_mask(torch.tensor([-2.0, 0.0, 3.0]))
    >>> y.tolist(), mask.tolist()
    ([-0.20000000298023224, 0.0, 3.0], [4])
    >>> r.backward_from_mask(torch.ones(3), mask).tolist()
    [0.10000000149011612, 0.10000000149011612, 1.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from relukit.family import lookup
from relukit.kernels.mask import pack_bits, pack_codes, unpack_bits_as, unpack_codes

_aten = torch.ops.aten

# Codes of general_relu with two bits per element.
BELOW, IDENTITY, CAPPED = 0, 1, 2


def _low_precision(dtype: torch.dtype) -> bool:
    return dtype in (torch.bfloat16, torch.float16)


class MaskRule:
    """A piecewise-linear member with its parameters bound (see the module docstring)."""

    bits = 1

    def forward(self, x: Tensor) -> Tensor:
        """The member's forward, PyTorch's values."""
        raise NotImplementedError

    def forward_(self, x: Tensor) -> Tensor:
        """The forward written into ``x`` (PyTorch's in-place operation where it has one)."""
        return x.copy_(self.forward(x))

    def codes(self, x: Tensor) -> Tensor:
        """Per element: a bool (one-bit rules) or a uint8 piece code (two-bit rules)."""
        raise NotImplementedError

    def backward(self, grad: Tensor, codes: Tensor) -> Tensor:
        """``grad·f'(x)`` from the unpacked codes (0/1 of grad's dtype for one-bit rules)."""
        raise NotImplementedError

    def forward_with_mask(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The forward and the packed codes of ``x``."""
        codes = self.codes(x)
        mask = pack_bits(codes, scratch=True) if self.bits == 1 else pack_codes(codes, self.bits)
        return self.forward(x), mask

    def backward_from_mask(self, grad_out: Tensor, mask: Tensor) -> Tensor:
        """``grad_out·f'(x)``, with x known only through its packed codes ``mask``."""
        n = grad_out.numel()
        if self.bits == 1:
            codes = unpack_bits_as(mask, n, grad_out.dtype)
        else:
            codes = unpack_codes(mask, n, self.bits)
        return self.backward(grad_out, codes.view(grad_out.shape))


def _pass_or_zero(grad: Tensor, passes: Tensor) -> Tensor:
    """g where the flag is 1, +0 elsewhere (PyTorch's relu and hardtanh backward)."""
    return _aten.threshold_backward(grad, passes, 0)


def _pass_or_scale(grad: Tensor, passes: Tensor, slope: float) -> Tensor:
    """g where the flag is 1, g·slope elsewhere (PyTorch's leaky_relu backward, its rounding)."""
    return _aten.leaky_relu_backward(grad, passes, slope, False)


class ReluRule(MaskRule):
    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)

    def forward_(self, x: Tensor) -> Tensor:
        return torch.relu_(x)

    def codes(self, x: Tensor) -> Tensor:
        return torch.le(x, 0).logical_not_()

    def backward(self, grad: Tensor, codes: Tensor) -> Tensor:
        return _pass_or_zero(grad, codes)


class LeakyRule(MaskRule):
    def __init__(self, negative_slope: float) -> None:
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def forward_(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope, inplace=True)

    def codes(self, x: Tensor) -> Tensor:
        return x > 0

    def backward(self, grad: Tensor, codes: Tensor) -> Tensor:
        return _pass_or_scale(grad, codes, self.negative_slope)


class ClipRule(MaskRule):
    """hardtanh, and relu6 = hardtanh on [0, 6]."""

    def __init__(self, min_val: float, max_val: float) -> None:
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)

    def forward_(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val, inplace=True)

    def codes(self, x: Tensor) -> Tensor:
        return torch.gt(x, self.min_val).logical_and_(torch.lt(x, self.max_val))

    def backward(self, grad: Tensor, codes: Tensor) -> Tensor:
        return _pass_or_zero(grad, codes)


class GeneralRule(MaskRule):
    """Keras's relu: ``negative_slope·(x − threshold)`` up to the threshold, then x, clipped to
    ``[0, max_value]`` with a cap (see ``relukit.family.rectifiers``).

    16-bit inputs are compared and computed in float32 and rounded once, as relukit's
    reference does. Pieces: ``x <= threshold`` is below (``negative_slope``), above it the
    clip's flat parts are capped (derivative 0), anything else, NaN included, is the identity
    (1). Codes are the
    registry's (``relukit.kernels.mask``): the derivatives (below, identity, capped), without
    repeats and in that order, are numbered 0, 1, 2, and a piece's code is its derivative's
    number; one bit per element when there are at most two, two bits otherwise.
    """

    def __init__(self, negative_slope: float, threshold: float, cap: float, capped: float) -> None:
        self.negative_slope, self.max_value, self.threshold = negative_slope, cap, threshold
        self.capped = bool(capped)
        values = (negative_slope, 1.0, 0.0) if self.capped else (negative_slope, 1.0)
        self.derivatives = tuple(dict.fromkeys(values))
        self.piece_codes = tuple(self.derivatives.index(v) for v in values)
        self.bits = 1 if len(self.derivatives) <= 2 else 2

    def forward(self, x: Tensor) -> Tensor:
        work = x.float() if _low_precision(x.dtype) else x
        below = work <= self.threshold  # (NaN is not: it passes through)
        if self.capped:
            clipped = torch.where(work <= 0, 0, work)  # (NaN passes, -0 gives +0)
            upper = torch.where(work >= self.max_value, self.max_value, clipped)
        else:
            upper = work
        if self.negative_slope == 0:
            y = torch.where(
                below, torch.where(work < self.threshold, 0, work - self.threshold), upper
            )
        else:
            y = torch.where(below, (work - self.threshold) * self.negative_slope, upper)
        return y.to(x.dtype)

    def _flat(self, work: Tensor) -> Tensor:
        """Above the threshold, where the cap's clip to [0, max_value] holds (registry's rule)."""
        flat = work >= self.max_value
        if self.threshold < 0:
            flat = flat | (work <= 0)
        return flat & (work > self.threshold)

    def codes(self, x: Tensor) -> Tensor:
        work = x.float() if _low_precision(x.dtype) else x
        below, identity = self.piece_codes[:2]
        codes = torch.where(work <= self.threshold, below, identity)
        if self.capped:
            codes = torch.where(self._flat(work), self.piece_codes[2], codes)
        return codes.to(torch.uint8) if self.bits == 2 else codes.to(torch.bool)

    def backward(self, grad: Tensor, codes: Tensor) -> Tensor:
        if self.bits == 2:
            scaled = _pass_or_scale(grad, (codes == IDENTITY).to(grad.dtype), self.negative_slope)
            return torch.where(codes == CAPPED, 0.0, scaled)
        if len(self.derivatives) == 1:  # slope 1, no cap: the identity
            return _pass_or_scale(grad, codes, 1.0)
        zero, one = self.derivatives
        if one == 1.0:
            return _pass_or_zero(grad, codes) if zero == 0.0 else _pass_or_scale(grad, codes, zero)
        # slope 1 with a cap: code 0 has derivative 1, code 1 (capped) has 0.
        return _aten.threshold_backward(grad, codes.neg(), -0.5)


RULES: dict[str, type[MaskRule]] = {
    "relu": ReluRule,
    "leaky_relu": LeakyRule,
    "hardtanh": ClipRule,
    "general_relu": GeneralRule,
}
"""Formula key (the registry's ``kernel``) → its PyTorch rule."""


def params_key(params: Sequence[float]) -> tuple[tuple[float, bool], ...]:
    """Parameters as a cache key that tells -0.0 from 0.0 (equal, and equal in hash, as floats;
    hardtanh's min_val=-0.0 gives -0.0 where 0.0 gives +0.0)."""
    return tuple((float(p), math.copysign(1.0, float(p)) < 0) for p in params)


@functools.lru_cache(maxsize=256)
def _cached(formula: str, key: tuple[tuple[float, bool], ...]) -> MaskRule:
    return RULES[formula](*(value for value, _ in key))


def rule(formula: str, args: Sequence[float] = ()) -> MaskRule:
    """The rule of ``formula`` with the formula's parameters (the registry's ``kernel``)."""
    return _cached(formula, params_key(args))


def for_member(member: str, values: Sequence[float] = ()) -> MaskRule:
    """The rule of registry member ``member``, its parameters as ``Activation.encode`` gives
    them (``general_relu``: negative_slope, max_value or inf, threshold).

    Example:
        >>> for_member("relu6").forward(torch.tensor([-1.0, 7.0])).tolist()
        [0.0, 6.0]
    """
    spec = lookup(member)
    if spec.kernel is None:
        raise ValueError(f"relukit.nn.rules: {member} has no compiled formula")
    return rule(*spec.kernel(spec.bind(spec.decode(list(values)))))
