"""The mask path: forward with a packed code per element, and the backward from the codes alone.

The backward of a piecewise-linear member needs only to know which linear piece each input was
in, so training can keep a few bits per element instead of the input (fewbit does this on
CUDA). This module is the reference for that path, written with the Python Array API so that it
runs on NumPy and PyTorch alike; :mod:`relukit.kernels.cpu` computes the same bits in one pass.

Layout of a mask
    ``uint8``, one code of ``bits`` bits per element (``Activation.derivative_bits``: 1, or 2
    where the derivative takes three values, as for general_relu with both a negative slope and
    a cap), for the elements in C order (row-major, whatever the array's own layout), packed
    little-endian within each byte: element ``i`` is in byte ``i·bits // 8`` at bit
    ``i·bits % 8``. For one bit this is exactly ``np.packbits(codes, bitorder="little")``.
    A mask has ``ceil(n·bits/8)`` bytes; the unused high bits of the last byte are zero.

Which code an element gets
    The registry gives each piecewise-linear member ``mask_code``, the comparison PyTorch's
    backward makes for it (relu: ``x <= 0 ? 0 : g``, so code ``not x <= 0``; leaky_relu and
    prelu: ``x > 0``; hardtanh and relu6: ``min < x < max``, the comparison of PyTorch's
    vectorised CPU kernel; rrelu in training: ``not x <= 0``, in evaluation ``x > 0``), and
    ``mask_derivatives``, the derivative on each code. For every
    input that is not NaN the codes select exactly the derivative that ``vjp`` uses, so
    ``backward_from_mask(grad_out, mask)`` equals ``vjp(x, grad_out)`` bit for bit (the product
    ``grad_out · f'`` is formed the same way, in the same dtype). A NaN input cannot be carried by
    a code: where ``vjp`` gives NaN, the mask path gives what PyTorch's backward gives (relu:
    ``grad_out``; leaky_relu: ``negative_slope·grad_out``; hardtanh and relu6: 0, as PyTorch's
    vectorised kernel gives for all but the last few elements of a tensor, where its scalar
    loop gives ``grad_out``).

>>> import numpy as np, relukit
>>> y, mask = relukit.relu.forward_with_mask(np.array([-1.0, 2.0, 0.0, 3.0]))
>>> y, mask, np.unpackbits(mask, bitorder="little")[:4]
(array([0., 2., 0., 3.]), array([10], dtype=uint8), array([0, 1, 0, 1], dtype=uint8))
>>> relukit.relu.backward_from_mask(np.array([5.0, 6.0, 7.0, 8.0]), mask)
array([0., 6., 0., 8.])

The packer
    This is the one host-side packer of that layout: :func:`pack` / :func:`unpack` for any
    Array-API array, and, for PyTorch tensors on any device, :func:`pack_bits`,
    :func:`pack_codes` and their inverses, which :mod:`relukit.nn` uses (one multiply per eight
    flags instead of eight shifts). The compiled kernels pack the same layout inside their loops
    (``cpu.masks.pack`` and the word-at-a-time compares); ``tests/kernels/test_mask.py``
    holds all of them to ``np.packbits(..., bitorder="little")``.

>>> import torch
>>> pack_bits(torch.tensor([True, False, True, True, False, False, False, False, True])).tolist()
[13, 1]
>>> unpack_codes(pack_codes(torch.tensor([2, 0, 1], dtype=torch.uint8), 2), 3, 2).tolist()
[2, 0, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from relukit.errors import UserTypeError, UserValueError
from relukit.family.spec import Activation
from relukit.kernels import reference
from relukit.kernels.arrays import Input


def nbytes(n: int, bits: int) -> int:
    """Bytes of the mask of ``n`` elements at ``bits`` bits each."""
    return -(-n * bits // 8)


def _shifts(m: Any, bits: int, like: Any) -> Any:
    return m.asarray([bits * i for i in range(8 // bits)], dtype=m.uint8, device=m.device(like))


def pack(m: Any, codes: Any, bits: int) -> Any:
    """The codes (any shape, C order) packed into a ``uint8`` mask, little-endian in each byte."""
    if type(codes).__module__.startswith("torch"):
        return pack_codes(codes, bits)
    if 8 % bits:  # codes that straddle bytes (3 bits): the bit stream, least significant first
        flat = np.asarray(codes, dtype=np.uint8).reshape(-1, 1)
        stream = (flat >> np.arange(bits, dtype=np.uint8)) & 1
        return m.asarray(np.packbits(stream.reshape(-1), bitorder="little"))
    per_byte = 8 // bits
    flat = m.reshape(m.astype(codes, m.uint8), (-1,))
    pad = (-flat.shape[0]) % per_byte
    if pad:
        flat = m.concat([flat, m.zeros((pad,), dtype=m.uint8, device=m.device(flat))])
    groups = m.reshape(flat, (-1, per_byte))
    shifted = m.bitwise_left_shift(groups, _shifts(m, bits, flat))
    return m.sum(shifted, axis=1, dtype=m.uint8)


def unpack(m: Any, mask: Any, n: int, bits: int) -> Any:
    """The first ``n`` codes of a mask, as a flat ``uint8`` array."""
    if 8 % bits:
        stream = np.unpackbits(np.asarray(mask), count=n * bits, bitorder="little")
        weights = (1 << np.arange(bits)).astype(np.uint8)
        return m.asarray((stream.reshape(n, bits) * weights).sum(axis=1, dtype=np.uint8))
    fields = m.bitwise_right_shift(mask[:, None], _shifts(m, bits, mask))
    fields = m.bitwise_and(fields, m.asarray((1 << bits) - 1, dtype=m.uint8))
    return m.reshape(fields, (-1,))[:n]


def check_mask(where: str, mask: Any, source: Input, n: int, bits: int) -> None:
    """TypeError/ValueError unless ``mask`` is a uint8 mask of the right size for ``n`` elements."""
    if type(mask) is not type(source.array):
        raise UserTypeError(
            f"{where}: mask is {type(mask).__name__} but grad_out is {type(source.array).__name__}"
        )
    dtype = mask.dtype
    if not (dtype == np.uint8 if isinstance(mask, np.ndarray) else str(dtype) == "torch.uint8"):
        raise UserTypeError(f"{where}: mask has dtype {dtype}; it must be uint8")
    expected = nbytes(n, bits)
    if tuple(mask.shape) != (expected,):
        raise UserValueError(
            f"{where}: mask has shape {tuple(mask.shape)}; {n} elements at {bits} bit(s) "
            f"each need shape ({expected},)"
        )


def working(source: Input) -> Any:
    """The array to compute on: 16-bit floats widened to float32, as the reference path does."""
    x = source.array
    return source.xp.astype(x, source.xp.float32) if source.kind == "low" else x


def forward_with_mask(
    spec: Activation, source: Input, params: dict[str, Any], bits: int
) -> tuple[Any, Any]:
    """``(f(x), mask)`` by the reference path: the forward, then the packed ``mask_code`` at
    ``bits`` per element (``spec.derivative_bits(params)``, which the caller keeps: it binds
    the parameters again)."""
    y = reference.evaluate(spec, "forward", source, params)
    m = reference.Math(source.xp)
    x = working(source)
    with np.errstate(all="ignore"):
        codes = spec.mask_code(m, x, **params)
    return y, pack(m, codes, bits)


def derivatives(spec: Activation, m: Any, like: Any, params: dict[str, Any]) -> tuple[Any, ...]:
    """The derivative on each code, in ``like``'s dtype (arrays for per-element slopes)."""
    values = spec.mask_derivatives(m, like, **params)
    with np.errstate(over="ignore"):  # (a slope past the dtype's range is ±inf there: no warning)
        return tuple(m.asarray(v, dtype=like.dtype, device=m.device(like)) for v in values)


def backward_from_mask(
    spec: Activation, grad: Input, mask: Any, params: dict[str, Any], bits: int
) -> Any:
    """``grad_out · f'`` with ``f'`` chosen by each element's code (reference path; ``bits``
    as for :func:`forward_with_mask`)."""
    xp = grad.xp
    m = reference.Math(xp)
    g, result_dtype = working(grad), grad.array.dtype
    n = 1
    for size in g.shape:
        n *= size
    codes = m.reshape(unpack(m, mask, n, bits), tuple(g.shape))
    values = derivatives(spec, m, g, params)
    d = m.broadcast_to(values[0], tuple(g.shape))
    for code, value in enumerate(values[1:], start=1):
        d = m.where(codes == code, value, d)
    with np.errstate(all="ignore"):
        # as vjp: a zero derivative blocks the gradient (+0 even for an infinite or NaN g)
        dx = m.where(d == 0, m.zeros_like(d), g * d)
    return dx if dx.dtype == result_dtype else m.astype(dx, result_dtype)


# ---------------------------------------------------------------------------------------------
# PyTorch tensors, on any device (torch is imported by the caller that passes a tensor)

# Multiplying eight 0/1 bytes (one int64, little-endian) by this gathers byte i's bit into bit
# 56 + i: the terms land at distinct positions 7(i + j + 1) + i, so no carries mix them.
_GATHER = 0x0102040810204080
_CODE_BITS = (1, 2, 4, 8)


def pack_bits(flags: Any, *, scratch: bool = False) -> Any:
    """The tensor ``flags`` (any shape; bool, or nonzero meaning 1) as one bit per element, in
    a 1-D uint8 tensor. With ``scratch=True`` the caller gives a bool ``flags`` away: it is
    packed in place, so packing needs no memory beyond the result.

    Example:
        >>> import torch
        >>> pack_bits(torch.tensor([[True, True], [False, True]])).tolist()
        [11]
    """
    import torch

    flat = flags.reshape(-1)
    if flat.dtype != torch.bool:
        flat, scratch = flat != 0, True
    n = flat.numel()
    whole = n - n % 8
    parts = []
    if whole:
        head = flat[:whole]
        if not (scratch and head.is_contiguous() and head.storage_offset() % 8 == 0):
            head = head.clone()
        lanes = head.view(torch.uint8).view(torch.int64)
        parts.append(lanes.mul_(_GATHER).bitwise_right_shift_(56).to(torch.uint8))
    if whole != n:
        tail = flat[whole:].to(torch.uint8)
        weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8, device=flat.device)
        parts.append((tail * weights[: n - whole]).sum(dtype=torch.uint8).reshape(1))
    if not parts:
        return torch.empty(0, dtype=torch.uint8, device=flags.device)
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _tensor_shifts(bits: int, like: Any) -> Any:
    import torch

    return torch.arange(0, 8, bits, dtype=torch.uint8, device=like.device)


def unpack_bits(packed: Any, n: int) -> Any:
    """The first ``n`` bits of ``packed`` as a 1-D bool tensor (inverse of :func:`pack_bits`)."""
    import torch

    spread = (packed.unsqueeze(1) >> _tensor_shifts(1, packed)) & 1
    return spread.view(-1)[:n].view(torch.bool)


_TABLES: dict[tuple[Any, Any], Any] = {}


def unpack_bits_as(packed: Any, n: int, dtype: Any) -> Any:
    """The first ``n`` bits of ``packed`` as 0 and 1 of ``dtype``, in one pass (a table lookup)."""
    import torch

    key = (dtype, packed.device)
    table = _TABLES.get(key)
    if table is None:
        byte = torch.arange(256, device=packed.device).unsqueeze(1)
        table = ((byte >> torch.arange(8, device=packed.device)) & 1).to(dtype)
        _TABLES[key] = table
    return table.index_select(0, packed.to(torch.int32)).view(-1)[:n]


def code_bits(levels: int) -> int:
    """Bits per code (1, 2, 4 or 8) that hold ``levels`` distinct values; 0 if 8 are not enough."""
    for bits in _CODE_BITS:
        if levels <= 1 << bits:
            return bits
    return 0


def pack_codes(codes: Any, bits: int) -> Any:
    """Integer codes (each ``< 2**bits``, any shape) of a tensor packed ``8/bits`` to a byte
    (``bits`` of 3: eight codes to three bytes, the layout's bit stream, some straddling)."""
    import torch

    if bits == 1:
        return pack_bits(codes)
    if 8 % bits:
        flat = codes.reshape(-1, 1).to(torch.uint8)
        stream = (flat >> torch.arange(bits, dtype=torch.uint8, device=flat.device)) & 1
        return pack_bits(stream.view(torch.bool), scratch=True)
    flat = codes.reshape(-1).to(torch.uint8)
    if bits == 8:
        return flat.contiguous()
    per = 8 // bits
    pad = -flat.numel() % per
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, per) << _tensor_shifts(bits, flat)).sum(1, dtype=torch.uint8)


def unpack_codes(packed: Any, n: int, bits: int) -> Any:
    """The first ``n`` codes of ``packed`` as a 1-D uint8 tensor (the inverse of pack_codes)."""
    if bits == 8:
        return packed[:n]
    if 8 % bits:
        import torch

        stream = unpack_bits_as(packed, n * bits, torch.uint8).view(n, bits)
        weights = torch.tensor([1 << k for k in range(bits)], dtype=torch.uint8)
        return (stream * weights.to(packed.device)).sum(1, dtype=torch.uint8)
    spread = (packed.unsqueeze(1) >> _tensor_shifts(bits, packed)) & ((1 << bits) - 1)
    return spread.view(-1)[:n]
