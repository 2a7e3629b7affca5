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
regions call; LLVM's and Intel's runtimes export it too). Each thread of the team runs a small
compiled trampoline that claims chunks one at a time with an atomic counter and calls the
kernel on each, with no Python and no GIL. The call itself is made by a compiled launcher that
writes the arrays' addresses, the scalars and the chunks' bounds into the block the trampolines
read and calls ``GOMP_parallel`` without the GIL: one Numba entry point for the whole hand-off
(through ctypes, with the addresses read in Python, a split call cost some 15 µs more). A
trampoline and its launcher are generated per argument layout and shared by every kernel
called with it: the trampoline calls the kernel through the address of Numba's C wrapper of
it, which the launcher writes into the block
(:func:`~relukit.kernels.cpu.spin.call_at`). A trampoline that linked its kernel in, one per
kernel, had that kernel's code compiled into it again: 251 trampolines in a run of the test
suite on two workers, each 0.3-1.5 s. Each is written to a module file of its own and kept in
Numba's disk cache (:func:`_generated`): compiled, one takes a fraction of a second, loaded
some milliseconds (relu's first forward_with_mask on 2^22 float32 elements on 2 threads in a
fresh process, AMD EPYC: 1.03-1.11 s before they were cached, 0.02-0.05 s with them cached).
The map kernels' NumPy
ufuncs have loops that split a call themselves
(:func:`relukit.kernels.cpu.kernels.ufunc_loop`, with a trampoline of their own, cached on
disk), so that the public calls that take them reach the team with no Python at all. Where no
runtime is loaded (a process that has not imported PyTorch), relukit's own team of compiled
threads takes its place, with the same entry point (:mod:`relukit.kernels.cpu.pool`), until
PyTorch is imported. Off Linux, after ``fork`` (neither team survives it), or with
``RELUKIT_OPENMP=0``, :func:`available` is False and callers use relukit's pool
(:mod:`relukit.threads`), whose chunks take the GIL.

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
import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
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


def one_bit_mask(mask: np.ndarray, n: int) -> tuple[Part, Words]:
    """A one-bit mask of ``n`` elements as each chunk takes it: its bytes, and its whole 64-bit
    words."""
    return Part(mask, 1), Words(mask[: n // 64 * 8].view(np.uint64))


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
    else relukit's own team's ``parallel`` (:mod:`relukit.kernels.cpu.pool`), or None. Never
    loads a runtime: a second one would bring threads of its own, and PyTorch's, loaded before
    PyTorch is, hung forked children and shadowed newer copies of ``libgomp.so.1`` (see
    :mod:`~relukit.kernels.cpu.pool`)."""
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
    from relukit.kernels.cpu import pool

    own = pool.team()
    return None if own is None else own.parallel


def _parallel() -> Any:
    torch = "torch" in sys.modules
    if not _runtime or (torch and not _runtime[1]):
        found = _find()
        if _runtime and found is not _runtime[0]:
            _switched(found)
        _runtime[:] = [found, torch]
        from relukit.kernels.cpu import pool

        mine = pool.made()
        own[0] = mine is not None and found is mine.parallel
    return _runtime[0]


own = [False]
"""Is the team relukit's own (:mod:`relukit.kernels.cpu.pool`)? Callers that reach a team
without asking this module (the split ufuncs) ask :func:`available` once PyTorch is imported,
so that its team takes over."""


switched: list[Any] = []
"""Callables told ``(GOMP_parallel's address)`` when the team changes (PyTorch imported after
relukit's own team ran calls): the split ufuncs' data holds that address."""


def _switched(found: Any) -> None:
    generation[0] += 1  # (launches prepared for the other team: prepared again)
    address = None if found is None else _address(found)
    for tell in switched:
        tell(address)


def available() -> bool:
    """Can :func:`run` use an OpenMP team in this process?"""
    return _parallel() is not None


def parallel_address() -> int | None:
    """The address of the runtime's ``GOMP_parallel`` (for compiled code that calls it), or
    None where there is no team. Valid while :data:`generation` is unchanged."""
    parallel = _parallel()
    return None if parallel is None else _address(parallel)


generation = [0]
"""Bumped after ``fork``, and when PyTorch's team replaces relukit's own: what :func:`prepared`
gave before is not for the new team."""


def _forget_after_fork() -> None:
    _runtime[:] = [None, True]  # the parent's team is not in the child: use relukit's pool
    own[0] = False
    generation[0] += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


# ---------------------------------------------------------------------------------------------
# Trampolines

# The block a call passes to its trampoline (int64 words): [chunks, claimed, length of the
# block, address of the results (0: none), address of the kernel's C wrapper, then three words
# per argument (an array's address and length and, for Segments, the address of its offsets;
# or a scalar), then the chunks' bounds].
_HEADER = 5
_SLOTS = 3


_SCALAR_KINDS = {bool: "bool", int: "int64", float: "float64"}


@functools.cache
def _dispatcher_class() -> Any:
    import numba

    return numba.core.registry.CPUDispatcher


def layout(kernel: Any, args: Sequence[Any]) -> Layout | None:
    """What a trampoline's code depends on: each argument's kind and type; None where a
    trampoline cannot make the call: ``kernel`` not compiled by Numba, arrays other than 1-D and
    C-contiguous, scalars other than bools, ints and floats. (Asked at every split call, so it
    reads types, not ``numba.typeof``.)"""
    if not isinstance(kernel, _dispatcher_class()):
        return None
    kinds: list[Any] = []
    for arg in args:
        if arg is START or arg is STOP:
            kinds.append(arg.name)
            continue
        kind = type(arg)
        array = arg.array if kind in _CUT else arg
        if type(array) is np.ndarray:
            if array.ndim != 1 or not array.flags.c_contiguous:
                return None
            if kind is Part:
                kinds.append(("part", array.dtype, arg.bits))
            else:
                name = {Words: "words", Segments: "segments"}.get(kind, "array")
                kinds.append((name, array.dtype))
            continue
        name = _SCALAR_KINDS.get(kind)
        if name is None:
            if not isinstance(arg, np.bool_ | np.integer | np.floating):
                return None
            name = np.dtype(kind).name
        if kind is int and not -(2**63) <= arg < 2**63:
            return None
        kinds.append(("scalar", name))
    key = tuple(kinds)
    found = _layouts.get(key)
    if found is None:
        found = _layouts[key] = Layout(key)
    return found


_layouts: dict[tuple[Any, ...], Layout] = {}


class Layout:
    """:func:`layout` of a call: ``kinds``, each argument's kind and type, and what a call with
    that layout needs, made once: for each kernel called so, the layout's trampoline and
    launcher and the kernel's address (:func:`run`), and ``values(args)``, the arguments the
    launcher takes (START and STOP left out, each Part's, Words' and Segments' array, and a
    Segments' offsets after it)."""

    __slots__ = ("kinds", "launches", "values")

    def __init__(self, kinds: tuple[Any, ...]) -> None:
        self.kinds = kinds
        # (kernel, results) -> [trampoline, its address, launcher, the launcher's entry point,
        # the address of the kernel's C wrapper]
        self.launches: dict[tuple[Any, bool], list[Any]] = {}
        taken: list[str] = []
        for i, kind in enumerate(kinds):
            if kind in ("START", "STOP"):
                continue
            if kind[0] == "scalar" or kind[0] == "array":
                taken.append(f"a[{i}]")
            else:
                taken.append(f"a[{i}].array")
                if kind[0] == "segments":
                    taken.append(f"a[{i}].offsets")
        self.values = eval(f"lambda a: ({''.join(t + ', ' for t in taken)})")

    def __repr__(self) -> str:
        return f"Layout{self.kinds!r}"


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


@functools.cache
def _trampoline(kinds: tuple[Any, ...], returns: str | None, results: bool) -> Any:
    """The compiled ``void(void*)`` that runs the chunks of a call laid out as ``kinds`` on the
    kernel whose C wrapper's address the block holds (:func:`~relukit.kernels.cpu.spin.call_at`;
    the kernel returns the NumPy integer type named ``returns``, or nothing), with ``results``
    storing what each chunk returns. One per layout, shared by every kernel called so."""
    from numba import carray, cfunc, types

    from relukit.kernels.cpu.spin import address, call_at, fetch_add

    namespace: dict[str, Any] = {
        "np": np,
        "carray": carray,
        "address": address,
        "call_at": call_at,
        "fetch_add": fetch_add,
    }
    setup: list[str] = []
    call = "".join(f"{_argument(i, kind, namespace, setup)}, " for i, kind in enumerate(kinds))
    if results:
        setup.append("    results = carray(address(block[3]), chunks, np.int64)")
    bounds = _HEADER + _SLOTS * len(kinds)
    returned = "None" if returns is None else f"np.{returns}"
    source = "\n".join(
        [
            "def trampoline(data):",
            f"    block = carray(data, {_HEADER}, np.int64)",
            "    size = block[2]",
            "    block = carray(data, size, np.int64)",
            "    floats = carray(data, size, np.float64)",
            "    chunks = block[0]",
            "    kernel = block[4]",
            *setup,
            "    while True:",
            "        j = fetch_add(block, 1)",
            "        if j >= chunks:",
            "            break",
            f"        a = block[{bounds} + j]",
            f"        b = block[{bounds} + j + 1]",
            f"        {'results[j] = ' if results else ''}call_at(kernel, ({call}), {returned})",
        ]
    )
    from relukit.kernels.cpu.compile import STAMP

    # (the arrays' dtypes are globals, not in the source: named by the layout)
    found = _generated(source, "trampoline", namespace, _cached_trampoline,
                       f"{STAMP}|{kinds!r}|{returns}|{results}")  # fmt: skip
    if found is None:  # (nowhere to write the module: uncached)
        exec(compile(source, f"<relukit trampoline {kinds}>", "exec"), namespace)
        found = cfunc(types.void(types.voidptr), nopython=True)(namespace["trampoline"])
    return found


def _kernel_call(kernel: Any, args: Sequence[Any], results: bool, kinds: Layout) -> list[Any]:
    """What :func:`run` keeps for ``kernel`` called with ``args``, laid out as ``kinds``: the
    layout's trampoline, its address, its launcher, the launcher's entry point (None until
    compiled) and the address of the kernel's C wrapper, compiled for ``args``' types."""
    from numba import types

    from relukit.kernels.cpu.spin import wrapper_address

    at, returned = wrapper_address(kernel, bind(args, 0, 0))
    if returned != types.none and not isinstance(returned, types.Integer):
        raise TypeError(f"a kernel run on the team returns nothing or an integer, not {returned}")
    returns = None if returned == types.none else str(returned)
    trampoline = _trampoline(kinds.kinds, returns, results)
    return [trampoline, trampoline.address, _launcher(kinds.kinds, results), None, at]


@functools.cache
def _launcher(kinds: tuple[Any, ...], results: bool) -> Any:
    """The compiled ``launch(parallel, trampoline, kernel, threads, bounds, results, *values)``
    that fills a call's block (:data:`_HEADER`) and calls the runtime's ``GOMP_parallel`` on it
    without the GIL: ``values`` are the arguments laid out as ``kinds`` (START and STOP left
    out; a Segments gives its array, then its offsets), ``results`` an int64 array (read only
    ``with results``), ``kernel`` the address of the kernel's C wrapper. Returns how many
    chunks were claimed (which also keeps the block alive until the call is over). One per
    layout, like the trampolines."""
    from numba import njit

    from relukit.kernels.cpu.spin import call_parallel

    words = _HEADER + _SLOTS * len(kinds)
    names: list[str] = []
    lines: list[str] = []
    for i, kind in enumerate(kinds):
        slot = _HEADER + _SLOTS * i
        if kind in ("START", "STOP"):
            continue
        names.append(f"v{i}")
        if kind[0] == "scalar":
            if kind[1] == "bool":
                lines.append(f"    block[{slot}] = 1 if v{i} else 0")
            elif kind[1].startswith("float"):
                lines.append(f"    floats[{slot}] = v{i}")
            else:
                lines.append(f"    block[{slot}] = v{i}")
            continue
        lines.append(f"    block[{slot}] = v{i}.ctypes.data")
        lines.append(f"    block[{slot + 1}] = v{i}.size")
        if kind[0] == "segments":
            names.append(f"o{i}")
            lines.append(f"    block[{slot + 2}] = o{i}.ctypes.data")
    source = "\n".join(
        [
            "def launch(parallel, trampoline, kernel, threads, bounds, results, "
            f"{', '.join(names)}):",
            f"    size = {words} + bounds.size",
            "    block = np.empty(size, np.int64)",
            "    floats = block.view(np.float64)",
            "    block[0] = bounds.size - 1",
            "    block[1] = 0",
            "    block[2] = size",
            f"    block[3] = {'results.ctypes.data' if results else '0'}",
            "    block[4] = kernel",
            *lines,
            f"    block[{words}:] = bounds",
            "    call_parallel(parallel, trampoline, block.ctypes.data, threads)",
            "    return block[1]",
        ]
    )
    namespace: dict[str, Any] = {"np": np, "call_parallel": call_parallel}
    from relukit.kernels.cpu.compile import STAMP, cached_kernel

    # (cached_kernel: njit with the disk cache, its data files named by key, and nogil)
    found = _generated(source, "launch", namespace, cached_kernel, f"{STAMP}|{kinds!r}")
    if found is not None:
        return found
    exec(compile(source, f"<relukit launcher {kinds}>", "exec"), namespace)
    return njit(nogil=True)(namespace["launch"])


def _cached_trampoline(function: Any) -> Any:
    """``cfunc(void(voidptr), cache=True)`` of a trampoline, its cache's data files named by key
    (an index that two processes write at once, say compiling for two CPUs into one folder,
    then keeps each key's own code)."""
    from numba import types

    from relukit.kernels.cpu.compile import cfunc_cached

    return cfunc_cached(function, types.void(types.voidptr), {"nopython": True})


def _generated(
    source: str, name: str, namespace: dict[str, Any], compile_: Any, identity: str
) -> Any:
    """``compile_`` (a Numba compilation with its disk cache) of the function ``name`` that
    ``source`` defines, with ``namespace`` as its globals, written to a module file of its
    own under :func:`_modules` and imported from there, so that Numba's disk cache keeps its
    compiled code for the next process (a fraction of a second to compile each trampoline and
    launcher, some milliseconds to load). The file is named by a hash of ``source`` and
    ``identity`` (what else decides the code: the layout and the source stamp), since Numba
    keys its cache on the file and the function's code, not on the globals. A file found with
    other contents is written again. None where that fails, or the import or the compilation
    raises: the caller compiles ``source`` uncached (and so raises any error of its own)."""
    folder = _modules()
    if folder is None:
        return None
    text = f"# generated by relukit.kernels.cpu.team: {identity}\n{source}\n"
    digest = hashlib.sha256(f"{source}\0{identity}".encode()).hexdigest()[:24]
    path = folder / f"{name}_{digest}.py"
    module_name = f"relukit_team_{name}_{digest}"
    try:
        if not path.is_file() or path.read_text() != text:
            _write(path, text)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        module.__dict__.update(namespace)
        # (a module Numba can import by name, as its cached code's environment does when
        # loaded; a function whose module it cannot find is compiled uncached)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return compile_(getattr(module, name))
    except Exception:
        sys.modules.pop(module_name, None)
        return None


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: through a temporary file linked into place, so that a
    file another process has just written is left as it is (its modification time too, which
    Numba's cache index holds), and one with other contents replaced."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(text)
        try:
            os.link(temporary, path)
        except FileExistsError:
            if path.read_text() != text:
                os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


PRUNE_AFTER_DAYS = 7
"""The folders of other source stamps that no process has used for this many days are removed."""


@functools.cache
def _modules() -> Path | None:
    """The folder of the trampolines' and launchers' modules, one per source stamp
    (:data:`relukit.kernels.cpu.compile.STAMP`) under a folder for them all: under Numba's
    cache folder where one is set (``NUMBA_CACHE_DIR``), else next to this module
    (``__pycache__/team``, where Numba caches the kernels), else the user's cache folder; None
    where none can be written. Its modification time is set at each process's first use, and
    the folders of other stamps unused for :data:`PRUNE_AFTER_DAYS` are removed then
    (:func:`_prune`)."""
    from numba.core import config

    from relukit.kernels.cpu.compile import STAMP

    def candidates() -> Any:
        if config.CACHE_DIR:
            yield Path(config.CACHE_DIR) / "relukit_team"
        yield Path(__file__).parent / "__pycache__" / "team"
        try:
            home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        except (RuntimeError, KeyError):  # (no home folder)
            return
        yield Path(home) / "relukit" / "team"

    for base in candidates():
        folder = base / str(STAMP)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                continue
            os.utime(folder)  # (in use: see _prune)
        except OSError:
            continue
        _prune(base, folder)
        return folder
    return None


def _prune(base: Path, current: Path) -> None:
    """Remove the folders of other source stamps under ``base`` (named by a number) that no
    process has used for :data:`PRUNE_AFTER_DAYS` (by their modification time), with Numba's
    cache of their modules (inside them, or under ``NUMBA_CACHE_DIR`` where that is set, as
    Numba's ``_UserProvidedCacheLocator`` places it): code no process of these sources loads,
    some 60 MiB per stamp after a full test run. Any error leaves what is left."""
    try:
        from numba.core import config
        from numba.core.caching import _CacheLocator

        limit = time.time() - PRUNE_AFTER_DAYS * 86_400
        with os.scandir(base) as entries:
            stale = [
                Path(entry.path)
                for entry in entries
                if entry.name.isdigit()
                and entry.name != current.name
                and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_mtime < limit
            ]
        for folder in stale:
            if config.CACHE_DIR:
                subpath = _CacheLocator.get_suitable_cache_subpath(str(folder / "module.py"))
                shutil.rmtree(Path(config.CACHE_DIR) / subpath, ignore_errors=True)
            shutil.rmtree(folder, ignore_errors=True)
    except Exception:
        pass


def run(
    kernel: Any,
    args: Sequence[Any],
    bounds: Sequence[int],
    threads: int,
    kinds: Layout,
    results: np.ndarray | None = None,
) -> None:
    """``kernel(*bind(args, a, b, j))`` for each chunk ``j``, ``[a, b)`` of ``bounds``
    (ascending), on ``threads`` threads of the OpenMP team, storing what it returns in
    ``results[j]`` (int64) if given; ``kinds`` is :func:`layout` of them (not None). Only
    where :func:`available`, and for kernels that return nothing or an integer (TypeError
    otherwise)."""
    parallel = _parallel()
    returns = results is not None
    found = kinds.launches.get((kernel, returns))
    if found is None:
        found = kinds.launches[kernel, returns] = _kernel_call(kernel, args, returns, kinds)
    if type(bounds) is not np.ndarray or bounds.dtype != np.int64:
        bounds = np.asarray(bounds, dtype=np.int64)
    launch = found[3] or _entry_point(found) or found[2]
    launch(
        _address(parallel),
        found[1],
        found[4],
        threads,
        bounds,
        _NO_RESULTS if results is None else results,
        *kinds.values(args),
    )


def prepared(kernel: Any, kinds: Layout, bounds: np.ndarray, threads: int) -> Any:
    """``(launch, head)`` such that ``launch(*head, *kinds.values(args))`` makes the call that
    :func:`run` made for ``kernel`` with ``args`` laid out as ``kinds``, on ``bounds`` (int64)
    and ``threads`` (no results), for a caller that repeats one call: every lookup of
    :func:`run` done once (run's Python costs 0.9 µs a call, the launch and the barrier as
    much). None where there is no team, or run has not made the call yet. Valid while
    :data:`generation` is unchanged."""
    parallel = _parallel()
    found = kinds.launches.get((kernel, False))
    if parallel is None or found is None:
        return None
    launch = found[3] or _entry_point(found)
    if launch is None:
        return None
    return launch, (_address(parallel), found[1], found[4], threads, bounds, _NO_RESULTS)


def _entry_point(found: list[Any]) -> Any:
    """The launcher's entry point, kept in ``found[3]`` once the launcher is compiled (from the
    second call on: called without typing its arguments); None before."""
    launcher = found[2]
    if not launcher.signatures:
        return None
    found[3] = launcher.overloads[launcher.signatures[0]].entry_point
    return found[3]


_NO_RESULTS = np.zeros(1, dtype=np.int64)
_addresses: dict[int, tuple[Any, int]] = {}


def _address(function: Any) -> int:
    """The address of a ctypes function (kept with it: ctypes functions are not hashable)."""
    found = _addresses.get(id(function))
    if found is None or found[0] is not function:
        found = _addresses[id(function)] = (function, ctypes.cast(function, ctypes.c_void_p).value)
    return found[1]
