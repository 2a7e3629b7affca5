"""relukit's own team of threads, for processes that have no OpenMP runtime loaded: a
``parallel(fn, data, threads, flags)`` with the arguments of OpenMP's ``GOMP_parallel``, so that
:mod:`relukit.kernels.cpu.team`'s launchers and the split ufunc loops run on it as they run on
PyTorch's team.

A process that has not imported PyTorch (a NumPy program) has no OpenMP runtime. Its split
calls ran on :mod:`relukit.threads`' pool, where each chunk's call takes the GIL: on 2 threads
they were often no faster than on 1 (relu out= on 2^20 float32 elements, AMD EPYC, µs on 2
threads / 1: 75-108 / 99-104 on the pool, 49-50 / 98-101 on this team, 51 / 98 on PyTorch's;
``benchmarks/numpy_threads.py``, RESULTS.md). Loading the
runtime PyTorch's wheel ships instead was tried and dropped: libgomp does not survive ``fork``
(a forked child that then ran a multi-threaded PyTorch operation hung), and PyTorch's older
copy took the name ``libgomp.so.1`` for the whole process (a library built with a newer GCC's
``-fopenmp`` then failed to load: no symbol version ``OMP_5.1``).

So the team here is a few lines of LLVM IR, compiled with llvmlite (not Numba: some
milliseconds, once per process). Its worker threads run compiled code only, started from Python
through ctypes (which releases the GIL) and never returning:

- A call (:func:`parallel`'s compiled code, called by the launchers without the GIL) writes the
  job (``fn``, ``data``), offers ``threads - 1`` tickets, bumps a sequence word and wakes the
  workers that sleep on it (``futex``); then it runs ``fn(data)`` itself, takes back the tickets
  nobody claimed, and waits for the workers that claimed one to finish. ``fn`` (a trampoline)
  claims the call's chunks one at a time, so a worker that comes late finds none left, and a
  call never waits for a worker that did not come.
- A worker spins (``pause``) for :data:`relukit.threads.SPIN_SECONDS` after its last job,
  claiming a ticket as soon as one is offered, then sleeps on the sequence word.
- A call made while another thread's call holds the team runs ``fn(data)`` alone.

Linux only (``futex``), on x86-64 and AArch64. After ``fork`` the child has none of the
threads: :mod:`~relukit.kernels.cpu.team` then uses relukit's pool, as for any runtime.
"""

from __future__ import annotations

import ctypes
import platform
import sys
import threading
from typing import Any

from relukit import threads

SYSCALL_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98}
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
SYMBOL = "relukit_pool_syscall"  # libc's syscall, as the compiled code calls it

_made: list[Any] = []  # [Team or None], once per process (before a fork: the parent's)
_lock = threading.Lock()


def supported() -> bool:
    """Can this process have the team (Linux, x86-64 or AArch64)?"""
    machine = platform.machine().lower()
    return sys.platform.startswith("linux") and machine in SYSCALL_FUTEX


def team() -> Team | None:
    """The process's team, started at the first call (None where :func:`supported` is False
    or llvmlite cannot compile it)."""
    if not _made:
        with _lock:
            if not _made:
                made = None
                if supported():
                    try:
                        made = Team(max(threads.cores() - 1, 1))
                    except Exception:  # (no team: relukit.threads' pool, as before)
                        made = None
                _made.append(made)
    return _made[0]


def made() -> Team | None:
    """The process's team if :func:`team` has started it, else None (starting nothing)."""
    return _made[0] if _made else None


class Team:
    """``workers`` threads, and :attr:`parallel`, the ctypes function that hands them a job."""

    def __init__(self, workers: int) -> None:
        from llvmlite import binding

        binding.initialize_native_target()
        binding.initialize_native_asmprinter()
        libc = ctypes.CDLL(None, use_errno=True)
        binding.add_symbol(SYMBOL, ctypes.cast(libc.syscall, ctypes.c_void_p).value)
        machine = binding.Target.from_default_triple().create_target_machine()
        module = binding.parse_assembly(_source(workers, platform.machine().lower()))
        module.verify()
        engine = binding.create_mcjit_compiler(module, machine)
        engine.finalize_object()
        # (kept to the end of the process: a worker may still be spinning in this code when
        # the interpreter tears down its modules)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))
        self.engine = engine
        self.workers = workers
        address = engine.get_function_address
        self.parallel = ctypes.CFUNCTYPE(
            None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint
        )(address("relukit_pool_parallel"))
        serve = ctypes.CFUNCTYPE(None, ctypes.c_int64)(address("relukit_pool_serve"))
        # (the pool's spin, calibrated once: a load and a pause a round, as the workers' here)
        rounds = max(threads._rounds(), 1)
        names = [f"relukit-team-{j + 1}" for j in range(workers)]  # (the pool's: relukit-1)
        self.threads = [
            threading.Thread(target=serve, args=(rounds,), name=name, daemon=True) for name in names
        ]
        for thread in self.threads:
            thread.start()


def _source(workers: int, machine: str) -> str:
    """The team's LLVM IR: its words (each in a cache line of its own), ``parallel`` and the
    workers' ``serve`` loop."""
    from llvmlite import ir

    i32, i64 = ir.IntType(32), ir.IntType(64)
    bytes_ = ir.IntType(8).as_pointer()
    task = ir.FunctionType(ir.VoidType(), [bytes_])
    module = ir.Module("relukit_pool")

    def word(name: str, kind: Any) -> Any:
        g = ir.GlobalVariable(module, kind, name)
        g.initializer = ir.Constant(kind, None)
        g.align = 64
        g.linkage = "internal"
        return g

    tickets, finished, busy = word("tickets", i64), word("finished", i64), word("busy", i64)
    sequence, sleepers = word("sequence", i32), word("sleepers", i32)
    job_fn, job_data = word("job_fn", bytes_), word("job_data", bytes_)
    syscall = ir.Function(module, ir.FunctionType(i64, [i64], var_arg=True), SYMBOL)
    futex = ir.Constant(i64, SYSCALL_FUTEX[machine])
    if machine in ("x86_64", "amd64"):
        hint = ir.Function(module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
        hint_args: list[Any] = []
    else:  # (AArch64's yield: hint #1)
        hint = ir.Function(module, ir.FunctionType(ir.VoidType(), [i32]), "llvm.aarch64.hint")
        hint_args = [ir.Constant(i32, 1)]

    def pause(b: ir.IRBuilder) -> None:
        b.call(hint, hint_args)

    def load(b: ir.IRBuilder, g: Any, order: str) -> Any:
        return b.load_atomic(g, order, 8 if g.type.pointee != i32 else 4)

    def store(b: ir.IRBuilder, value: Any, g: Any, order: str) -> None:
        b.store_atomic(value, g, order, 8 if g.type.pointee != i32 else 4)

    # parallel(fn, data, threads, flags)
    parallel = ir.Function(
        module, ir.FunctionType(ir.VoidType(), [bytes_, bytes_, i32, i32]), "relukit_pool_parallel"
    )
    fn_raw, data, asked_threads, _ = parallel.args
    names = ("entry", "alone", "claim", "post", "wake", "run", "wait", "waiting", "done")
    entry, alone, claim, post, wake, run, wait, waiting, done = (
        parallel.append_basic_block(n) for n in names
    )
    b = ir.IRBuilder(entry)
    fn = b.bitcast(fn_raw, task.as_pointer())
    b.cbranch(b.icmp_unsigned("<=", asked_threads, ir.Constant(i32, 1)), alone, claim)
    b.position_at_end(alone)
    b.call(fn, [data])
    b.ret_void()
    b.position_at_end(claim)
    taken = b.cmpxchg(busy, ir.Constant(i64, 0), ir.Constant(i64, 1), "acquire", "monotonic")
    b.cbranch(b.extract_value(taken, 1), post, alone)
    b.position_at_end(post)
    store(b, ir.Constant(i64, 0), finished, "monotonic")  # (no worker has a job: see wait)
    b.store(fn_raw, job_fn)
    b.store(data, job_data)
    asked = b.sub(b.zext(asked_threads, i64), ir.Constant(i64, 1))
    limit = ir.Constant(i64, workers)
    want = b.select(b.icmp_unsigned("<", asked, limit), asked, limit)
    store(b, want, tickets, "seq_cst")
    b.atomic_rmw("add", sequence, ir.Constant(i32, 1), "seq_cst")
    asleep = load(b, sleepers, "seq_cst")
    b.cbranch(b.icmp_signed(">", asleep, ir.Constant(i32, 0)), wake, run)
    b.position_at_end(wake)  # (as many as there are tickets: the others sleep on)
    b.call(syscall, [futex, sequence, ir.Constant(i64, FUTEX_WAKE_PRIVATE), want])
    b.branch(run)
    b.position_at_end(run)
    b.call(fn, [data])
    unclaimed = b.atomic_rmw("xchg", tickets, ir.Constant(i64, 0), "seq_cst")
    joined = b.sub(want, unclaimed)
    b.branch(wait)
    b.position_at_end(wait)  # (for the workers that claimed a ticket)
    b.cbranch(b.icmp_signed("<", load(b, finished, "acquire"), joined), waiting, done)
    b.position_at_end(waiting)
    pause(b)
    b.branch(wait)
    b.position_at_end(done)
    store(b, ir.Constant(i64, 0), busy, "release")
    b.ret_void()

    # serve(rounds): a worker's loop, never returning
    serve = ir.Function(module, ir.FunctionType(ir.VoidType(), [i64]), "relukit_pool_serve")
    (rounds,) = serve.args
    names = ("entry", "spin", "offered", "idle", "again", "sleep", "nap", "woken", "job")
    entry, spin, offered, idle, again, sleep, nap, woken, job = (
        serve.append_basic_block(n) for n in names
    )
    b = ir.IRBuilder(entry)
    b.branch(spin)
    b.position_at_end(spin)
    count = b.phi(i64)
    count.add_incoming(ir.Constant(i64, 0), entry)
    seen = load(b, tickets, "monotonic")
    b.cbranch(b.icmp_signed(">", seen, ir.Constant(i64, 0)), offered, idle)
    b.position_at_end(offered)
    swapped = b.cmpxchg(tickets, seen, b.sub(seen, ir.Constant(i64, 1)), "acq_rel", "monotonic")
    b.cbranch(b.extract_value(swapped, 1), job, spin)
    count.add_incoming(count, offered)
    b.position_at_end(idle)
    b.cbranch(b.icmp_signed("<", count, rounds), again, sleep)
    b.position_at_end(again)
    pause(b)
    count.add_incoming(b.add(count, ir.Constant(i64, 1)), again)
    b.branch(spin)
    b.position_at_end(sleep)
    b.atomic_rmw("add", sleepers, ir.Constant(i32, 1), "seq_cst")
    number = load(b, sequence, "seq_cst")
    still = load(b, tickets, "seq_cst")
    b.cbranch(b.icmp_signed("==", still, ir.Constant(i64, 0)), nap, woken)
    b.position_at_end(nap)
    null = ir.Constant(i64, 0)
    wait_code = ir.Constant(i64, FUTEX_WAIT_PRIVATE)
    b.call(syscall, [futex, sequence, wait_code, b.zext(number, i64), null, null, null])
    b.branch(woken)
    b.position_at_end(woken)
    b.atomic_rmw("sub", sleepers, ir.Constant(i32, 1), "seq_cst")
    count.add_incoming(ir.Constant(i64, 0), woken)
    b.branch(spin)
    b.position_at_end(job)
    work = b.bitcast(b.load(job_fn), task.as_pointer())
    b.call(work, [b.load(job_data)])
    b.atomic_rmw("add", finished, ir.Constant(i64, 1), "release")
    count.add_incoming(ir.Constant(i64, 0), job)
    b.branch(spin)

    return str(module)
