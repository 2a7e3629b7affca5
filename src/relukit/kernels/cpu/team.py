"""Running a kernel's chunks on the process's OpenMP team: the threads PyTorch's own operations
run on.

PyTorch on Linux runs its intra-op work on an OpenMP team (libgomp in the pip wheels). After an
operation its threads spin for a while, waiting for the next one. Work handed to another pool in
that time competes with them for the cores: on the 2-core test machine a 2^20-element float64
mask forward split on :mod:`relukit.threads`' own pool took 350 µs back to back but 500-800 µs
right after a ``torch.add_`` (the spinning OpenMP thread held the second core), and 620-750 µs
after a 2 ms pause (waking the pool). Split on the OpenMP team, the same call took 300-310 µs in
every one of those cases (measured side by side, ``/proc/self/maps`` libgomp, torch 2.13).

So when an OpenMP runtime is already loaded in the process (by PyTorch, or another library),
:func:`run` calls its ``GOMP_parallel`` (the entry point compiled ``#pragma omp parallel``
regions call; LLVM's and Intel's runtimes export it too) through ctypes, which lets the GIL go.
Each thread of the team runs a small compiled trampoline that claims chunks one at a time with
an atomic counter and calls the kernel on each, with no Python and no GIL. A trampoline is
generated per kernel and argument layout and compiled once per process (about 0.2 s; it is not
cached on disk). Where no runtime is loaded, after ``fork`` (an OpenMP team does not survive
it), or with ``RELUKIT_OPENMP=0``, :func:`available` is False and callers use the pool.

The arguments of a call are described, not bound: :class:`Part` marks an array whose chunk the
kernel gets (elements ``[a, b)``, or the bytes of their packed codes), :class:`Words` a mask's
whole 64-bit words in the chunk, :class:`Segments` an array cut at offsets of its own (values
the chunks counted before), :data:`START` and :data:`STOP` the chunk's bounds; anything else is
passed whole (arrays, ints, bools, floats).

>>> import numpy as np
>>> x = np.arange(8.0)
>>> [bind((Part(x), START, 7), 2, 5)[0].tolist(), bind((Part(x), START, 7), 2, 5)[1:]]
[[2.0, 3.0, 4.0], (2, 7)]
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

ENV = "RELUKIT_OPENMP"
RUNTIMES = ("libgomp", "libiomp5", "libomp")


class Part:
    """An array of which each chunk ``[a, b)`` gets its own part: elements ``a`` to ``b``, or,
    with ``bits``, the bytes of their packed codes (``bits`` per element; chunks start at a
    multiple of 64 elements, so they never share a byte)."""

    __slots__ = ("array", "bits")

    def __init__(self, array: np.ndarray, bits: int = 0) -> None:
        self.array = array
        self.bits = bits


class Words:
    """A one-bit mask as 64-bit words, of which each chunk ``[a, b)`` gets the words wholly
    inside it (``a // 64`` to ``b // 64``)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


class Segments:
    """An array cut at ``offsets`` (int64, one more than the chunks): chunk ``j`` gets
    ``array[offsets[j]:offsets[j + 1]]`` (the values the chunks before it did not take)."""

    __slots__ = ("array", "offsets")

    def __init__(self, array: np.ndarray, offsets: np.ndarray) -> None:
        self.array = array
        self.offsets = offsets


class _Bound:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


START = _Bound("START")
"""The first element of the chunk (an int argument)."""
STOP = _Bound("STOP")
"""One past the last element of the chunk (an int argument)."""

_CUT = (Part, Words, Segments)


def bind(args: Sequence[Any], a: int, b: int, j: int = 0) -> tuple[Any, ...]:
    """The arguments of the kernel call for chunk ``j``, ``[a, b)``."""
    bound: list[Any] = []
    for arg in args:
        kind = type(arg)
        if arg is START:
            bound.append(a)
        elif arg is STOP:
            bound.append(b)
        elif kind is Part:
            bits, array = arg.bits, arg.array
            bound.append(array[a:b] if bits == 0 else array[a * bits // 8 : -(-b * bits // 8)])
        elif kind is Words:
            bound.append(arg.array[a // 64 : b // 64])
        elif kind is Segments:
            bound.append(arg.array[arg.offsets[j] : arg.offsets[j + 1]])
        else:
            bound.append(arg)
    return tuple(bound)


# ---------------------------------------------------------------------------------------------
# The runtime


_runtime: list[Any] = []  # [GOMP_parallel or None, whether torch was imported when looked for]


def _find() -> Any:
    """``GOMP_parallel`` of an OpenMP runtime already loaded in this process (PyTorch's first),
    or None. Never loads one: a second runtime would bring threads of its own."""
    if os.environ.get(ENV, "").strip() == "0" or not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/" in line}
    except OSError:
        return None
    loaded = sorted(p for p in paths if os.path.basename(p).startswith(RUNTIMES))
    loaded.sort(key=lambda p: "/torch/" not in p)  # PyTorch's runtime: its threads are the ones
    for path in loaded:
        try:
            function = ctypes.CDLL(path).GOMP_parallel
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        function.restype = None
        return function
    return None


def _parallel() -> Any:
    torch = "torch" in sys.modules
    if not _runtime or (_runtime[0] is None and torch and not _runtime[1]):
        _runtime[:] = [_find(), torch]
    return _runtime[0]


def available() -> bool:
    """Can :func:`run` use an OpenMP team in this process?"""
    return _parallel() is not None


def _forget_after_fork() -> None:
    _runtime[:] = [None, True]  # the parent's team is not in the child: use relukit's pool


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# ---------------------------------------------------------------------------------------------
# Trampolines

# The block a call passes to its trampoline (int64 words): [chunks, claimed, length of the
# block, address of the results (0: none), then three words per argument (an array's address
# and length and, for Segments, the address of its offsets; or a scalar), then the chunks'
# bounds].
_HEADER = 4
_SLOTS = 3
_trampolines: dict[tuple[Any, ...], tuple[Any, int]] = {}


def layout(kernel: Any, args: Sequence[Any]) -> tuple[Any, ...] | None:
    """What a trampoline's code depends on: each argument's kind and type; None where a
    trampoline cannot make the call: ``kernel`` not compiled by Numba, arrays other than 1-D and
    C-contiguous, scalars other than bools, ints and floats."""
    import numba

    if not isinstance(kernel, numba.core.registry.CPUDispatcher):
        return None
    kinds: list[Any] = []
    for arg in args:
        if arg is START or arg is STOP:
            kinds.append(arg.name)
            continue
        kind = type(arg)
        array = arg.array if kind in _CUT else arg
        if isinstance(array, np.ndarray):
            if array.ndim != 1 or not array.flags.c_contiguous:
                return None
            if kind is Part:
                kinds.append(("part", array.dtype.str, arg.bits))
            else:
                name = {Words: "words", Segments: "segments"}.get(kind, "array")
                kinds.append((name, array.dtype.str))
            continue
        kind_name = str(numba.typeof(arg))
        if kind_name != "bool" and not kind_name.startswith(("int", "uint", "float")):
            return None
        kinds.append(("scalar", kind_name))
    return tuple(kinds)


def _argument(i: int, kind: Any, namespace: dict[str, Any], setup: list[str]) -> str:
    """The trampoline's expression for argument ``i`` of chunk ``j``, ``[a, b)``."""
    slot = _HEADER + _SLOTS * i
    if kind == "START":
        return "a"
    if kind == "STOP":
        return "b"
    if kind[0] == "scalar":
        if kind[1] == "bool":
            return f"block[{slot}] != 0"
        source = "floats" if kind[1].startswith("float") else "block"
        return f"np.{kind[1]}({source}[{slot}])"
    namespace[f"d{i}"] = np.dtype(kind[1]).type
    setup.append(f"    v{i} = carray(address(block[{slot}]), block[{slot + 1}], d{i})")
    if kind[0] == "array":
        return f"v{i}"
    if kind[0] == "words":
        return f"v{i}[a // 64 : b // 64]"
    if kind[0] == "segments":
        setup.append(f"    o{i} = carray(address(block[{slot + 2}]), chunks + 1, np.int64)")
        return f"v{i}[o{i}[j] : o{i}[j + 1]]"
    bits = kind[2]
    return f"v{i}[a:b]" if bits == 0 else f"v{i}[a * {bits} // 8 : (b * {bits} + 7) // 8]"


def _trampoline(kernel: Any, kinds: tuple[Any, ...], results: bool) -> tuple[Any, int]:
    """The compiled ``void(void*)`` that runs ``kernel``'s chunks of a call laid out so (with
    ``results``: storing what each returns), and its address."""
    from numba import carray, cfunc, types

    from relukit.kernels.cpu.spin import address, fetch_add

    namespace: dict[str, Any] = {
        "np": np,
        "carray": carray,
        "address": address,
        "fetch_add": fetch_add,
        "kernel": kernel,
    }
    setup: list[str] = []
    call = ", ".join(_argument(i, kind, namespace, setup) for i, kind in enumerate(kinds))
    if results:
        setup.append("    results = carray(address(block[3]), chunks, np.int64)")
    bounds = _HEADER + _SLOTS * len(kinds)
    source = "\n".join(
        [
            "def trampoline(data):",
            f"    block = carray(data, {_HEADER}, np.int64)",
            "    size = block[2]",
            "    block = carray(data, size, np.int64)",
            "    floats = carray(data, size, np.float64)",
            "    chunks = block[0]",
            *setup,
            "    while True:",
            "        j = fetch_add(block, 1)",
            "        if j >= chunks:",
            "            break",
            f"        a = block[{bounds} + j]",
            f"        b = block[{bounds} + j + 1]",
            f"        {'results[j] = ' if results else ''}kernel({call})",
        ]
    )
    exec(compile(source, f"<relukit trampoline {kinds}>", "exec"), namespace)
    compiled = cfunc(types.void(types.voidptr), nopython=True)(namespace["trampoline"])
    return compiled, compiled.address


def run(
    kernel: Any,
    args: Sequence[Any],
    bounds: Sequence[int],
    threads: int,
    kinds: Any,
    results: np.ndarray | None = None,
) -> None:
    """``kernel(*bind(args, a, b, j))`` for each chunk ``j``, ``[a, b)`` of ``bounds``
    (ascending), on ``threads`` threads of the OpenMP team, storing what it returns in
    ``results[j]`` (int64) if given; ``kinds`` is :func:`layout` of them (not None). Only
    where :func:`available`."""
    parallel = _parallel()
    key = (kernel, kinds, results is not None)
    found = _trampolines.get(key)
    if found is None:
        found = _trampolines[key] = _trampoline(kernel, kinds, results is not None)
    chunks = len(bounds) - 1
    words = _HEADER + _SLOTS * len(args)
    block = np.empty(words + len(bounds), dtype=np.int64)
    block[0], block[1], block[2] = chunks, 0, block.size
    block[3] = 0 if results is None else results.ctypes.data
    floats = block.view(np.float64)
    for i, arg in enumerate(args):
        slot = _HEADER + _SLOTS * i
        if arg is START or arg is STOP:
            continue
        kind = type(arg)
        array = arg.array if kind in _CUT else arg
        if isinstance(array, np.ndarray):
            block[slot] = array.ctypes.data
            block[slot + 1] = array.size
            if kind is Segments:
                block[slot + 2] = arg.offsets.ctypes.data
        elif isinstance(arg, float | np.floating):
            floats[slot] = arg
        else:
            block[slot] = int(arg)
    block[words:] = bounds
    parallel(found[1], block.ctypes.data, threads, 0)
