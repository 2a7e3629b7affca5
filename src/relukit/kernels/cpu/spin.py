"""Waiting without the GIL for a word of memory to change: what :mod:`relukit.threads`' pool
waits on between tasks, so that handing a chunk to a thread that is already awake costs a store
(as PyTorch's OpenMP threads do) instead of waking a sleeping thread (some 30 µs of the caller's
time in a virtual machine, measured: ``ThreadPoolExecutor.submit`` median 30 µs).

:func:`spin` reads the word with an atomic (acquire) load and ``pause`` between reads (x86-64),
for a bounded number of rounds; :func:`rounds_per_second` calibrates that bound on this machine.
Its intrinsics are also inlined into the kernels (:func:`address`, in the ufunc loops of
:func:`relukit.kernels.cpu.kernels.ufunc_loop`), so it counts in the kernels' source stamp.

>>> import numpy as np
>>> state = np.zeros(1, dtype=np.int64)
>>> int(spin(state, 0, 0, 10))  # nothing changed it within 10 rounds: the value it still has
0
>>> int(spin(state, 0, 5, 10, out=state, value=7))  # stores 7 first, so finds it changed
7
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

X86 = platform.machine().lower() in ("x86_64", "amd64")


def _int64_item(array: Any, index: Any) -> bool:
    """Do the intrinsics below take ``array[index]`` (an int64 array, an integer index)?"""
    return (
        isinstance(array, types.Array)
        and array.dtype == types.int64
        and isinstance(index, types.Integer)
    )


def _item_pointer(context: Any, builder: Any, signature: Any, args: Any) -> Any:
    """A pointer to ``args[0][args[1]]`` (the array and index of the intrinsics below)."""
    kind = signature.args[0]
    view = context.make_array(kind)(context, builder, args[0])
    at = context.cast(builder, args[1], signature.args[1], types.intp)
    return cgutils.get_item_pointer(context, builder, kind, view, [at])


@intrinsic
def load_acquire(typingctx: Any, array: Any, index: Any) -> Any:
    """``array[index]`` of an int64 array, read with an atomic acquire load (never hoisted out
    of a loop, and ordered before the reads that follow it)."""
    if not _int64_item(array, index):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        pointer = _item_pointer(context, builder, signature, args)
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(array, index), codegen


@intrinsic
def fetch_add(typingctx: Any, array: Any, index: Any) -> Any:
    """``array[index] += 1`` of an int64 array as one atomic operation; the value before. How
    the threads of :mod:`relukit.kernels.cpu.team` (and of the split ufunc loops' calls,
    :func:`relukit.kernels.cpu.kernels.ufunc_trampoline`) claim chunks."""
    if not _int64_item(array, index):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        pointer = _item_pointer(context, builder, signature, args)
        one = ir.Constant(ir.IntType(64), 1)
        return builder.atomic_rmw("add", pointer, one, "monotonic")

    return types.int64(array, index), codegen


@intrinsic
def address(typingctx: Any, value: Any) -> Any:
    """An int64 address as a ``void*`` (for ``numba.carray``)."""
    if not isinstance(value, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        word = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.inttoptr(word, ir.IntType(8).as_pointer())

    return types.voidptr(value), codegen


@intrinsic
def pause(typingctx: Any) -> Any:
    """``pause`` (x86-64): a spin-wait hint that frees the core's resources for a while; a
    no-op elsewhere."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        if X86:
            kind = ir.FunctionType(ir.VoidType(), [])
            function = cgutils.get_or_insert_function(builder.module, kind, "llvm.x86.sse2.pause")
            builder.call(function, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def call_at(typingctx: Any, function: Any, args: Any, returns: Any) -> Any:
    """``f(*args)`` where ``f`` is the compiled function at address ``function`` (an int64):
    the C wrapper Numba makes of each function it compiles (:func:`wrapper_address`), which
    takes each argument as Numba's value of its type (an array as its struct) and returns
    ``returns`` (a NumPy integer type, or None for nothing). A call through the address
    instead of a linked call: the caller's code does not hold the callee's, so a trampoline
    (:mod:`relukit.kernels.cpu.team`, :func:`relukit.kernels.cpu.kernels.ufunc_loop`) is
    compiled once for every kernel of its argument types, not once per kernel with that
    kernel's code compiled into it again. ``args`` must have the types the function was
    compiled for (their values' LLVM types are what the call passes)."""
    if not isinstance(function, types.Integer) or not isinstance(args, types.BaseTuple):
        return None
    if isinstance(returns, types.NumberClass) and isinstance(returns.instance_type, types.Integer):
        result = returns.instance_type
    elif returns is None or isinstance(returns, types.NoneType):
        result = types.none
    else:
        return None

    def codegen(context: Any, builder: Any, signature: Any, values: Any) -> Any:
        word = context.cast(builder, values[0], signature.args[0], types.int64)
        kind = ir.FunctionType(
            context.get_value_type(result), [context.get_value_type(t) for t in args.types]
        )
        callee = builder.inttoptr(word, kind.as_pointer())
        returned = builder.call(callee, cgutils.unpack_tuple(builder, values[1]))
        return context.get_dummy_value() if result is types.none else returned

    return result(function, args, returns), codegen


def wrapper_address(dispatcher: Any, arguments: tuple[Any, ...]) -> tuple[int, Any]:
    """The address of the C wrapper of ``dispatcher`` compiled for the Numba types of
    ``arguments`` (as a call from Python would type them; compiled or loaded from the disk
    cache here if need be), for :func:`call_at`, and the function's return type. TypeError
    where Numba made no C wrapper (a function returning an optional value, say)."""
    from numba.core.typing.typeof import Purpose, typeof

    signature = tuple(typeof(a, Purpose.argument) for a in arguments)
    dispatcher.compile(signature)
    compiled = dispatcher.overloads[signature]
    name = compiled.fndesc.llvm_cfunc_wrapper_name
    at = compiled.library.get_pointer_to_function(name)
    if not at:
        raise TypeError(f"Numba made no C wrapper of {dispatcher.py_func.__qualname__}")
    return at, compiled.signature.return_type


@njit(cache=True, nogil=True)
def spin(
    state: Any, index: int, old: int, rounds: int, settle: int = 0, out: Any = None, value: int = 0
) -> int:  # pragma: no cover (compiled)
    """Wait while ``state[index] == old``, at most ``rounds`` pauses, without the GIL; the
    value it has then. Once it changed, ``settle`` pauses more before returning (and taking the
    GIL back): time for the thread that changed it to let the GIL go. ``out[0] = value`` is
    stored first, without the GIL (``out`` None: nothing), so that a thread waiting for that
    store finds the GIL free when it sees it."""
    if out is not None:
        out[0] = value
    current = load_acquire(state, index)
    k = 0
    while current == old and k < rounds:
        pause()
        current = load_acquire(state, index)
        k += 1
    if current != old:
        for _ in range(settle):
            pause()
    return current


def rounds_per_second() -> float:
    """How many rounds of :func:`spin` one second holds on this machine (best of 5)."""
    state = np.zeros(1, dtype=np.int64)
    spin(state, 0, 0, 1)
    rounds = 20_000
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        spin(state, 0, 0, rounds)
        best = min(best, time.perf_counter() - start)
    return rounds / max(best, 1e-7)


@intrinsic
def call_parallel(typingctx: Any, function: Any, trampoline: Any, data: Any, threads: Any) -> Any:
    """``function(trampoline, data, threads, 0)``, all four given as int64 (addresses and a
    count): an OpenMP runtime's ``GOMP_parallel(void (*)(void*), void*, unsigned, unsigned)``
    called from compiled code (:mod:`relukit.kernels.cpu.team`'s launchers,
    :func:`relukit.kernels.cpu.kernels.ufunc_loop`)."""
    if not all(isinstance(a, types.Integer) for a in (function, trampoline, data, threads)):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        words = [
            context.cast(builder, value, kind, types.int64)
            for value, kind in zip(args, signature.args, strict=True)
        ]
        byte_pointer = ir.IntType(8).as_pointer()
        unsigned = ir.IntType(32)
        task = ir.FunctionType(ir.VoidType(), [byte_pointer]).as_pointer()
        kind = ir.FunctionType(ir.VoidType(), [task, byte_pointer, unsigned, unsigned])
        callee = builder.inttoptr(words[0], kind.as_pointer())
        builder.call(
            callee,
            [
                builder.inttoptr(words[1], task),
                builder.inttoptr(words[2], byte_pointer),
                builder.trunc(words[3], unsigned),
                ir.Constant(unsigned, 0),
            ],
        )
        return context.get_dummy_value()

    return types.void(function, trampoline, data, threads), codegen
