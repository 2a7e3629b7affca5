"""Packing small per-element codes into bytes with PyTorch operations, on any device.

The layout is the one the compiled kernels use (:mod:`relukit.kernels`): the codes of the
elements of a tensor, taken in C order (its logical order, whatever its strides), are packed
little-endian into ``ceil(n·bits/8)`` bytes. With one bit per element, element ``i`` is bit
``i % 8`` of byte ``i // 8``; with ``bits`` of 2, 4 or 8, element ``i`` occupies bits
``bits·(i % (8/bits))`` and up of byte ``i // (8/bits)``.

Example:
    >>> import torch
    >>> flags = torch.tensor([True, False, True, True, False, False, False, False, True])
    >>> packed = pack_bits(flags)
    >>> packed.tolist()
    [13, 1]
    >>> unpack_bits(packed, 9).tolist()
    [True, False, True, True, False, False, False, False, True]
    >>> unpack_codes(pack_codes(torch.tensor([2, 0, 1], dtype=torch.uint8), 2), 3, 2).tolist()
    [2, 0, 1]
"""

from __future__ import annotations

import torch
from torch import Tensor

# Multiplying eight 0/1 bytes (one int64, little-endian) by this gathers byte i's bit into bit
# 56 + i: the terms land at distinct positions 7(i + j + 1) + i, so no carries mix them.
_GATHER = 0x0102040810204080
_CODE_BITS = (1, 2, 4, 8)


def packed_size(n: int, bits: int = 1) -> int:
    """Bytes that hold ``n`` codes of ``bits`` bits each."""
    return (n * bits + 7) // 8


def pack_bits(flags: Tensor, *, scratch: bool = False) -> Tensor:
    """The bool tensor ``flags`` (any shape) as one bit per element, in a 1-D uint8 tensor.

    With ``scratch=True`` the caller gives ``flags`` away: it is packed in place, so packing
    needs no memory beyond the result.

    Example:
        >>> pack_bits(torch.tensor([[True, True], [False, True]])).tolist()
        [11]
    """
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


def _shifts(bits: int, device: torch.device) -> Tensor:
    return torch.arange(0, 8, bits, dtype=torch.uint8, device=device)


def unpack_bits(packed: Tensor, n: int) -> Tensor:
    """The first ``n`` bits of ``packed`` as a 1-D bool tensor (inverse of :func:`pack_bits`)."""
    spread = (packed.unsqueeze(1) >> _shifts(1, packed.device)) & 1
    return spread.view(-1)[:n].view(torch.bool)


_TABLES: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def unpack_bits_as(packed: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The first ``n`` bits of ``packed`` as 0 and 1 of ``dtype``, in one pass (a table lookup)."""
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


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Integer codes (each ``< 2**bits``, any shape) packed ``8/bits`` to a byte."""
    if bits == 1:
        return pack_bits(codes != 0, scratch=True)
    flat = codes.reshape(-1).to(torch.uint8)
    if bits == 8:
        return flat.contiguous()
    per = 8 // bits
    pad = -flat.numel() % per
    if pad:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    return (flat.view(-1, per) << _shifts(bits, flat.device)).sum(1, dtype=torch.uint8)


def unpack_codes(packed: Tensor, n: int, bits: int) -> Tensor:
    """The first ``n`` codes of ``packed`` as a 1-D uint8 tensor (the inverse of pack_codes)."""
    if bits == 8:
        return packed[:n]
    spread = (packed.unsqueeze(1) >> _shifts(bits, packed.device)) & ((1 << bits) - 1)
    return spread.view(-1)[:n]
