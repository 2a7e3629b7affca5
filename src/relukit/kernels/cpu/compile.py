"""How the kernels are compiled and cached (Numba options, the disk cache, the source stamp)."""

from __future__ import annotations

import hashlib
import types
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit
from numba.core.caching import IndexDataCacheFile

JIT_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True}
# Scalar helpers are always inlined into the loops that call them, so that those vectorise. They
# are not cached on their own: Numba keys such a cache on the helper's file alone (a change to
# another file they call would leave stale code in freshly compiled kernels), and the float32
# and float64 versions of one helper would share a cache index (see cached_kernel). Only the
# kernels are cached.
INLINE_OPTIONS = {"error_model": "numpy", "nogil": True, "forceinline": True}
jit = njit(**INLINE_OPTIONS)


class _KeyNamedCacheFile(IndexDataCacheFile):
    """Numba's cache index and data files, with each data file named by a hash of its key.

    Numba numbers the data files of one index in order of arrival. Two processes compiling
    different signatures of one function at once (float32 and float64, or the kernels of two
    members, which share the factory's code) can then both pick number 1, and the index of one
    ends up pointing at the other's code: a TypeError at the next call, or another member's
    kernel. Named by key, a data file can only hold the code of its key; a concurrent index
    write may still drop an entry, which costs a recompilation, never a wrong kernel.
    """

    def __init__(self, cache_path: str, filename_base: str, source_stamp: Any) -> None:
        super().__init__(cache_path, filename_base, source_stamp)
        self._filename_base = filename_base

    def save(self, key: Any, data: Any) -> None:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:20]
        name = f"{self._filename_base}.{digest}.nbc"
        self._save_data(name, data)  # written to a temporary file, then renamed
        overloads = self._load_index()
        if overloads.get(key) != name:
            overloads[key] = name
            self._save_index(overloads)


def _codes_in_name(function: Any) -> None:
    """Append the integer codes a factory's kernel closes over to its ``__qualname__``.

    Numba names a compiled function by its qualified name, a number counted per process and its
    argument types. Kernels loaded from the disk cache keep the names the compiling processes
    gave them, so two different kernels of one factory compiled in two processes can carry the
    same symbol (measured: relu's and another member's map kernel, both ``...kernel$187``).
    Called on its own each kernel is fine, but a kernel's address is looked up by its symbol's
    name (:func:`relukit.kernels.cpu.spin.wrapper_address`, for the OpenMP trampolines of
    :mod:`relukit.kernels.cpu.team` and the ufunc loops), which may then find the other one.
    With the codes in the name, no two kernels share a symbol."""
    codes = []
    for cell in function.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, bool | int | np.integer):
            codes.append(str(int(value)))
    if codes:
        function.__qualname__ = f"{function.__qualname__}_{'_'.join(codes)}"
        function.__name__ = f"{function.__name__}_{'_'.join(codes)}"


def _name_cache_files_by_key(compiled: Any) -> None:
    """Give a compiled function's disk cache :class:`_KeyNamedCacheFile` files, whose index
    is valid only for the source stamp Numba takes (its own file's time and size) together
    with :data:`STAMP` (every compiled module's source): a changed helper in another file
    recompiles the kernels that inline it."""
    cache = getattr(compiled, "_cache", None)
    current = getattr(cache, "_cache_file", None)
    if isinstance(current, IndexDataCacheFile):  # (Numba's internals as of 0.60-0.68)
        cache._cache_file = _KeyNamedCacheFile(
            current._cache_path,
            current._index_name[: -len(".nbi")],
            (current._source_stamp, STAMP),
        )


def cached_kernel(function: Any) -> Any:
    """``njit(cache=True)`` (with :data:`JIT_OPTIONS`) whose cache cannot mix up the code of two
    signatures written by concurrent processes (see :class:`_KeyNamedCacheFile`), and whose
    symbol names differ from every other kernel's (:func:`_codes_in_name`)."""
    _codes_in_name(function)
    dispatcher = njit(**JIT_OPTIONS)(function)
    _name_cache_files_by_key(dispatcher)
    return dispatcher


def cached_cfunc(function: Any, signature: Any, names: dict[str, Any]) -> Any:
    """``cfunc(signature, cache=True)`` of a factory's ``function`` that uses values the
    factory chose (types, compiled functions): those it finds under ``names``, added to its
    globals. Numba keys
    a cache entry on the code and the closure's values, not on the globals, and a compiled
    function held in the closure would make a key of its own in every process; so the closure
    must hold the integer codes that decide ``names`` (as :func:`cached_kernel`'s do), which
    keeps one entry per choice of them. Built (or loaded) at once: a C function pointer at
    ``.address``."""
    built = types.FunctionType(
        function.__code__,
        {**function.__globals__, **names},
        function.__name__,
        function.__defaults__,
        function.__closure__,
    )
    built.__qualname__ = function.__qualname__
    _codes_in_name(built)
    return cfunc_cached(built, signature, {"error_model": "numpy"})


def cfunc_cached(function: Any, signature: Any, options: dict[str, Any]) -> Any:
    """``cfunc(signature, cache=True, **options)(function)`` whose cache data files are named by
    key (:class:`_KeyNamedCacheFile`), built (or loaded) at once."""
    from numba.core import sigutils
    from numba.core.ccallback import CFunc

    kind = sigutils.normalize_signature(signature)  # (as numba.cfunc does)
    compiled = CFunc(function, kind, locals={}, options=options)
    compiled.enable_caching()
    _name_cache_files_by_key(compiled)
    compiled.compile()
    return compiled


# not part of the kernels: see _source_stamp
HOST = ("__init__.py", "host.py", "pool.py", "team.py")


def _source_stamp() -> int:
    """A hash of the kernels' sources. Numba's disk cache checks only the file that defines a
    kernel, not the helpers inlined into it from the package's other modules, so every cached
    kernel's index carries this stamp too (:func:`_name_cache_files_by_key`) and a changed
    helper recompiles it. Every module of the package counts but the host side's (which Numba
    does not compile)."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    family = here.parent.parent / "family"
    compiled = sorted(p for p in here.glob("*.py") if p.name not in HOST)
    for path in (*compiled, family / "numerics.py", family / "smooth.py"):
        digest.update(path.read_bytes())
    return int.from_bytes(digest.digest()[:7], "little")


STAMP = _source_stamp()
