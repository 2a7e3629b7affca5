"""Accepting the caller's input: scalars, lists, NumPy arrays and any Array-API array.

This module turns what the caller passed into an array and its namespace, classifies its dtype,
and refuses, with a TypeError that names the function, what no member can take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

from relukit.errors import UserTypeError


def is_bfloat16(dtype: np.dtype) -> bool:
    """Whether a NumPy dtype is ml_dtypes' bfloat16 (told by name: an array of it exists only
    once ml_dtypes is imported, so relukit need not import it, which takes ~0.6 s on some
    machines). The kind is checked first: ``dtype.name`` takes over a microsecond."""
    return dtype.kind == "V" and dtype.name == "bfloat16"


def bfloat16() -> np.dtype:
    """ml_dtypes' bfloat16 as a NumPy dtype (imports ml_dtypes)."""
    import ml_dtypes

    return np.dtype(ml_dtypes.bfloat16)


@dataclass(frozen=True)
class Input:
    """An input made ready for a kernel: the array, its namespace and what to give back."""

    array: Any
    xp: Any
    kind: str  # "float", "low" (16-bit float), "int", "uint"
    scalar: bool  # the caller passed a scalar: give a NumPy scalar back
    python: bool = False  # the caller passed Python numbers (a number, list or tuple)


def dtype_kind(xp: Any, dtype: Any) -> str:
    """'float', 'low', 'int', 'uint', 'bool', 'complex' or 'other' for a dtype of namespace xp."""
    if isinstance(dtype, np.dtype):
        if dtype == np.float16 or is_bfloat16(dtype):
            return "low"
        return {"f": "float", "i": "int", "u": "uint", "b": "bool", "c": "complex"}.get(
            dtype.kind, "other"
        )
    for kind, name in (
        ("bool", "bool"),
        ("complex", "complex floating"),
        ("uint", "unsigned integer"),
        ("int", "signed integer"),
    ):
        if xp.isdtype(dtype, name):
            return kind
    if xp.isdtype(dtype, "real floating"):
        return "low" if xp.finfo(dtype).bits < 32 else "float"
    return "other"


def describe(value: Any) -> str:
    """A short description of a value's kind for error messages."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None:
        return f"an array of dtype {dtype}"
    return f"a value of type {type(value).__name__}"


def as_input(value: Any, where: str, what: str = "x") -> Input:
    """The caller's value as an :class:`Input`; TypeError for anything that is not real numbers."""
    scalar = python = False
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise UserTypeError(
            f"{where}: {what} must be a real number or array, got {describe(value)}"
        )
    if isinstance(value, (int, float, np.generic)):
        scalar, python = True, not isinstance(value, np.generic)
        value = np.asarray(value)
    elif isinstance(value, (list, tuple)):
        python = True
        try:
            value = np.asarray(value)
        except (ValueError, TypeError) as error:
            raise UserTypeError(f"{where}: {what} is not a rectangular list of numbers") from error
    elif not isinstance(value, np.ndarray):
        try:
            array_api_compat.array_namespace(value)
        except TypeError:
            raise UserTypeError(
                f"{where}: {what} must be a number, a list or an array, got {describe(value)}"
            ) from None
    xp = array_api_compat.array_namespace(value)
    kind = dtype_kind(xp, value.dtype)
    if kind in ("bool", "complex", "other"):
        raise UserTypeError(
            f"{where}: {what} has dtype {value.dtype}, which is not a real numeric type"
        )
    return Input(value, xp, kind, scalar, python)


def default_float(xp: Any, array: Any) -> Any:
    """The namespace's default floating dtype (float64 for NumPy, torch's default for torch)."""
    try:
        info = xp.__array_namespace_info__()
        return info.default_dtypes(device=array_api_compat.device(array))["real floating"]
    except (AttributeError, TypeError):
        return xp.float64
