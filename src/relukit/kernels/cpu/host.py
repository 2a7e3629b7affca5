"""The compiled CPU path: Numba kernels behind the same public functions.

:func:`run`, :func:`forward_with_mask` and :func:`backward_from_mask` take a call that
:mod:`relukit.kernels.dispatch` routed here, and either compute it or return ``None`` (declined:
the caller falls back to the reference path). They take NumPy arrays and CPU torch tensors that
do not require grad (through zero-copy NumPy views; bfloat16 through ``.view(torch.int16)``) of
dtype float16, bfloat16, float32 or float64, of any shape and layout:

- C- or F-contiguous arrays are walked in memory order, the output (allocated, or ``out`` when
  it has the same layout) written in place of the loop;
- other strided arrays are first gathered into a contiguous copy (one pass), and an ``out``
  of another layout receives the result with one ``np.copyto``;
- ``out`` may be the input itself (in place); an ``out`` that partly overlaps the input is
  written through a temporary.

Work is split into contiguous chunks (multiples of 64 elements, so that mask words never
straddle two threads) run on the process's team (PyTorch's OpenMP threads, or relukit's own
before PyTorch is imported: :mod:`relukit.kernels.cpu.team`), else on :mod:`relukit.threads`'
pool. Outputs of at least :func:`stream_bytes` (measured) are written with streaming stores
(x86-64 only).

Nothing here imports Numba until a kernel is first needed; kernels come from Numba's on-disk
cache after the first compilation (see :func:`warm_up` for the cost).
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from relukit import threads
from relukit.errors import UserValueError
from relukit.family.spec import Activation
from relukit.kernels.arrays import Input, bfloat16, is_bfloat16
from relukit.kernels.cpu import team
from relukit.kernels.cpu.team import START, Part, one_bit_mask
from relukit.kernels.pages import empty_array, empty_tensor, resident

STREAM = platform.machine().lower() in ("x86_64", "amd64")


CACHES = "/sys/devices/system/cpu/cpu0/cache"


def _bytes(text: str) -> int | None:
    """A sysfs cache size ("2048K") in bytes, or None."""
    text = text.strip()
    unit = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    digits = text[:-1] if unit > 1 else text
    return int(digits) * unit if digits.isdigit() else None


def _cpus(text: str) -> int:
    """How many CPUs a sysfs CPU list ("0-3,8") names (at least 1)."""
    count = 0
    for part in text.strip().split(","):
        first, _, last = part.partition("-")
        if first.isdigit():
            count += int(last) - int(first) + 1 if last.isdigit() else 1
    return max(count, 1)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _caches(root: str) -> list[tuple[int, int, Path]]:
    """(level, bytes, folder) of each cache of sysfs's ``root`` that says its size (level 0
    where it does not say its level)."""
    found = []
    for index in Path(root).glob("index*"):
        size = _bytes(_read(index / "size") or "")
        level = (_read(index / "level") or "").strip()
        if size is not None:
            found.append((int(level) if level.isdigit() else 0, size, index))
    return found


def cache_sizes(root: str = CACHES) -> dict[int, int]:
    """Bytes of the largest cache at each level of this machine's first CPU (Linux's sysfs;
    level 0 where a cache does not say its level), empty where sysfs does not tell."""
    sizes: dict[int, int] = {}
    for level, size, _ in _caches(root):
        sizes[level] = max(sizes.get(level, 0), size)
    return sizes


def last_level_cache(root: str = CACHES) -> int | None:
    """Bytes of the largest cache of this machine's first CPU (Linux's sysfs), or None."""
    sizes = cache_sizes(root)
    return max(sizes.values()) if sizes else None


def level_two_per_core(root: str = CACHES) -> int | None:
    """Bytes of the first CPU's level-2 cache over the cores that share it (the CPUs of its
    ``shared_cpu_list`` less the first CPU's SMT siblings), or None where sysfs does not say."""
    for level, size, index in _caches(root):
        if level == 2:
            shared = _cpus(_read(index / "shared_cpu_list") or "0")
            siblings = _cpus(_read(Path(root).parent / "topology" / "thread_siblings_list") or "0")
            return size // max(shared // siblings, 1)
    return None


def stream_floor(root: str = CACHES) -> int:
    """:data:`STREAM_FLOOR`: 1 MiB, or a core's share of the level-2 cache where larger."""
    return max(1 << 20, level_two_per_core(root) or 0)


# Outputs from STREAM_BYTES up bypass the caches: measured once per process on this machine
# (stream_bytes), between STREAM_FLOOR and half the last-level cache (CACHE_HALF, 16 MiB where
# it is unknown), or pinned (STREAM_BYTES, or the environment variable RELUKIT_STREAM_BYTES).
# Half the last-level cache, the threshold until it was measured, was right on a Zen 4 with 32
# MiB of L3 (relu out=, ms, streamed / not, 1 and 2 threads: 8 MiB 0.30 / 0.25 and 0.36 /
# 0.25, 16 MiB 0.69 / 0.81 and 0.73 / 0.72, 32 MiB 1.55 / 2.21 and 1.44 / 2.26), but a virtual
# machine may read its host's whole cache from sysfs: 300 MiB on a 2-vCPU Xeon VM (Emerald
# Rapids, 2 MiB of L2 per core), where relu out= on one thread then ran unstreamed up to 150
# MiB. There, ns per element, streamed / not: 1 MiB 0.30 / 0.28, 2 MiB 0.33 / 0.39, 16 MiB
# 0.25 / 0.32, 64 MiB 0.30 / 0.65 (torch.clamp_min(out=) 0.65).
# Outputs below the floor never stream: a core's L2 (1 MiB where smaller or unknown). There
# x and y fit in L2 or nearly, where a call repeated on them finds both there and plain stores
# win, which the measurement did not see while it interleaved streamed and plain calls (each
# then found y evicted by the other; it now times each kind in a row: _streaming_wins): on the
# Xeon, with 2 MiB of L2, it took 1 MiB in most processes, and relu out= on 2^18 float32
# (1 MiB), 1 thread, then took 54-57 µs against 33-35 unstreamed (np.copyto 30,
# torch.clamp_min(out=) 40); from 2 MiB streaming wins either way (the copy kernel, five
# calls of each in a row: 1 MiB 57 / 58 µs plain / streamed, 2 MiB 151-167 / 112-130)
STREAM_FLOOR = stream_floor()
CACHE_HALF = (last_level_cache() or 1 << 25) // 2
STREAM_ENV = "RELUKIT_STREAM_BYTES"


STREAM_BYTES: int | None = None
"""Outputs from this many bytes up are streamed (None: :func:`stream_bytes` reads
``RELUKIT_STREAM_BYTES`` or measures it)."""
_STREAM_ENV_SET = bool(os.environ.get(STREAM_ENV, "").strip())


def _stream_pin() -> int | None:
    """RELUKIT_STREAM_BYTES as a count of bytes (None: not set)."""
    text = os.environ.get(STREAM_ENV, "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise UserValueError(f"{STREAM_ENV}={text!r} is not a whole number of bytes")
    return int(text)


# A call split over threads streams from twice that (the Zen 4's whole L3), where its
# working set is likely to be x and y alone (:func:`_large`: map calls, and mask calls into a
# given out): two cores read and write the cached part of a hot in+out working set at twice the
# rate, while streaming stores share one memory bus (about 55 GB/s here on 1 or 2 threads).
# Same machine, relu out= float32 on 2 threads (µs, streamed / not / torch.clamp_min(out=),
# best of 15 side by side): 12 MiB 458 / 205 / 204, 16 MiB 608 / 344 / 326, 24 MiB 918 / 827 /
# 738, 32 MiB 1238 / 1380 / 1144. A mask call into a fresh output (relukit.nn's forward and
# backward, whose step also keeps the mask and reads the gradients) still streams from
# stream_bytes(): there ReLU, ReLU6 and Hardtanh at 2^22 float32 on 2 threads took 0.78-0.98x
# torch.nn's time streamed, 0.99-1.12x not (nn_speed.py, three runs each, side by side).
# Only the piecewise-linear members stream: the smooth ones, bound by their arithmetic, lost
# more to the block buffer that streaming stores are written through than they gained. Same
# machine, 2^24 float32 out=, ns per element, streamed / direct (1 thread): silu 0.60 / 0.46,
# sigmoid 0.51 / 0.41, elu 0.60 / 0.55, gelu and the others within 3 %, float64 too.
# Small calls, and calls that split without streaming, take the map kernels as NumPy ufuncs
# (Calls.ufunc, Calls.split_ufunc) on x86-64, where their loops clear the floating-point flags
# NumPy would warn of (intrinsics.clear_float_status)
UFUNCS = STREAM
# Allocations from 32 MiB up are new pages from the kernel each time (glibc's largest mmap
# threshold), which fault in on first write.
FRESH_BYTES = 1 << 25
# A call splits into threads only when each gets at least a grain of elements, chosen by
# :func:`grain` from measurement on this machine; these pin it instead (None: measure).
GRAIN_LINEAR: int | None = None  # piecewise-linear members, the mask path, copies
GRAIN_SMOOTH: int | None = None  # members that call exp/erf/tanh (SMOOTH and SMOOTH_WIDE)
GRAIN_BOUNDS = (1 << 12, 1 << 22)
SMALL = 2 * GRAIN_BOUNDS[0]  # below: one thread and no streaming stores, whatever is measured
# What an element costs, by class (:func:`cost_class`): the grain is measured for each. A smooth
# member's float64 kernel takes 4-9x its float32 one (1 thread, 2^14 elements in cache, Xeon:
# sigmoid 0.68 / 3.56 ns, gelu 0.79 / 6.1, softplus 1.29 / 11.9), so one grain for both would
# split float32 calls that the hand-off makes slower, or keep float64 ones whole that a split
# would halve. ``False`` and ``True`` stand for SMOOTH and LINEAR.
SMOOTH, LINEAR, SMOOTH_WIDE = 0, 1, 2
# Below WHOLE_BELOW[cost] elements a call runs whole on the calling thread, unstreamed,
# whatever the thread count: SMALL, and twice the grain once :func:`grain` has measured it (at
# most STREAM_FLOOR's elements of float64, which never stream unless pinned). A call there
# costs the kernel's time and the entry point's, without asking the thread count (0.15-0.4 µs).
WHOLE_BELOW = [SMALL, SMALL, SMALL]
# Below SPLIT_BELOW[cost] elements a map kernel's public call runs whole (the caller's test:
# relukit.kernels.dispatch; INPLACE_SPLIT_BELOW for calls in place), from there on the calls
# that may take a ufunc that splits them (Calls.split_ufunc) take it: WHOLE_BELOW until such a
# ufunc's grain is measured, then twice that grain (:func:`ufunc_grain`), measured on the
# ufunc's own hand-off, which costs less than the planned route's (:func:`_handoff`): relu out=
# on 2 threads, AMD EPYC, µs, the ufunc split / whole, 2^14 float32 elements 2.14 / 1.82, 2^15
# 2.56 / 3.06, 2^16 3.44 / 5.14 (``torch.clamp_min``'s out= 4.5 there), while the planned
# route's grain kept calls below about 100,000 elements whole. At most WHOLE_BELOW.
SPLIT_BELOW = [SMALL, SMALL, SMALL]
INPLACE_SPLIT_BELOW = [SMALL, SMALL, SMALL]
ALIGN = 64  # chunk boundaries: one mask word at one bit per element (kernels.SPLIT_ALIGN)

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.float16))  # + bfloat16

_kernel_cache: dict[tuple[Any, ...], Any] = {}


# ---------------------------------------------------------------------------------------------
# Lazy access to the kernels


def _module() -> Any:
    found = _kernels_module
    if not found:  # (imported at the first call: a function-level import costs 0.3 µs a call)
        from relukit.kernels.cpu import kernels

        found = _kernels_module[:] = [kernels]
    return found[0]


_kernels_module: list[Any] = []


def _kernel(kind: str, *codes: int) -> Any:
    asked = (kind, *codes)
    kernel = _kernel_cache.get(asked)  # (the key as asked: 0.1 µs a call against 1.0)
    if kernel is not None:
        return kernel
    k = _module()
    one_pass = kind == "mask_forward" or (kind == "map" and codes[1] == k.FORWARD)
    if one_pass and len(codes) == 3 and codes[0] in k.ONE_PASS:
        codes = (*codes[:2], False)  # these write straight from the registers: one variant
    key = (kind, *codes)
    kernel = _kernel_cache.get(key)
    if kernel is None:
        factory = {
            "map": k.map_kernel,
            "mask_forward": k.mask_forward_kernel,
            "mask_backward": k.mask_backward_kernel,
            "function": k.function_kernel,
            "copy": k.copy_kernel,
            "distance": k.distance_kernel,
            "split": k.split_kernel,
            "expand": k.expand_kernel,
            "scale": k.scale_kernel,
            "convert": k.convert_kernel,
            "lookup": k.lookup_kernel,
            "ufunc": k.ufunc_loop,
            "ufunc_trampoline": k.ufunc_trampoline,
        }[kind]
        kernel = _kernel_cache[key] = factory(*codes)
    _kernel_cache[asked] = kernel
    return kernel


def available() -> bool:
    """True when Numba can be imported (the compiled path is used only then)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Formulas: which kernel, which parameters (the registry's ``kernel`` field names the formula)


class Plan:
    """How one member with bound parameters maps onto the kernels."""

    def __init__(self, member: int, p: np.ndarray, slopes: Callable[..., Any] | None) -> None:
        self.member = member
        self.p = p
        self.slopes = slopes  # (shape, order) -> per-element slopes, for the SLOPES member


def _limit(value: float | None) -> float:
    return math.nan if value is None else float(value)


Slots = tuple[int, list[float], Callable[..., Any] | None] | None


def _general(args: tuple[float, ...], params: dict[str, Any], work: np.dtype) -> Slots:
    slope, threshold, cap, capped = args
    # p[6]: a zero slope gives +0 below the threshold (not 0·(x − t), NaN at -inf)
    slots = [slope, threshold, cap, capped, 0.0, 0.0, float(slope == 0)]
    return _module().GENERAL_RELU, slots, None


def _prelu(args: tuple[float, ...], params: dict[str, Any], work: np.dtype) -> Slots:
    slopes = _prelu_slopes(params["weight"], params["axis"], work)
    if slopes is None:
        return None
    if _one_slope(params, work):
        # leaky_relu of that slope, whose kernels (one pass, the small calls' ufuncs) give
        # prelu's bits (prelu on 1,024 float32 elements, AMD EPYC: 30 µs a call with
        # per-element slopes planned at every call, as general calls, against 1.2)
        return _module().LEAKY_RELU, [float(slopes((1,), "C")[0])], None
    return _module().SLOPES, [], slopes


def _one_slope(params: dict[str, Any], work: np.dtype) -> bool:
    """Is prelu's weight one slope given as a plain value (a number or a 1-tuple: arrays and
    tensors may change in place, and a bound member keeps its kernels' parameters), finite
    and not 0 in the working dtype? Then prelu is leaky_relu of it, the formula giving the
    limit at -inf (w·(−∞); a zero slope's limit is prelu's own 0, where w·x is NaN)."""
    weight = params["weight"]
    if isinstance(weight, tuple) and len(weight) == 1:
        weight = weight[0]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        return False
    with np.errstate(over="ignore"):  # (beyond float32's range: inf, not one slope)
        slope = np.asarray(weight).astype(work)
    return bool(np.isfinite(slope) and slope != 0)


def _rrelu(args: tuple[float, ...], params: dict[str, Any], work: np.dtype) -> Slots:
    slopes = _rrelu_slopes(params["lower"], params["upper"], params["seed"], work)
    return _module().SLOPES, [], slopes


FORMULAS: dict[str, Callable[[tuple[float, ...], dict[str, Any], np.dtype], Slots]] = {
    "general_relu": _general,
    "prelu": _prelu,
    "rrelu": _rrelu,
}
"""Formulas whose parameters need more than being placed in order (per-element slopes, a
general_relu flag). Any other formula key is the kernels' member of that key
(:func:`relukit.kernels.cpu.kernels.code`) with the formula's parameters in ``p[0]``, ``p[1]``,
…"""

PER_ELEMENT = frozenset({"prelu", "rrelu"})
"""Formulas with per-element slopes (code 0 of the mask takes its derivative from them)."""


def formula(spec: Activation, params: dict[str, Any]) -> tuple[str, tuple[float, ...]] | None:
    """The registry's ``(formula, parameters)`` for ``spec`` bound to ``params``, or None."""
    return None if spec.kernel is None else spec.kernel(params)


def plan(spec: Activation, op: str, params: dict[str, Any], work: np.dtype) -> Plan | None:
    """The kernel plan for ``spec`` (``op``: forward or derivative), or None if it has none."""
    packed = formula(spec, params)
    if packed is None:
        return None
    key, args = packed
    adapt = FORMULAS.get(key)
    if adapt is None:
        if len(args) > 4:
            return None  # (p[4], p[5] hold the limits: at most four parameters)
        try:
            slots: Slots = _module().code(key), list(args), None
        except KeyError:
            return None  # (no compiled formula of that key: the reference path)
    else:
        slots = adapt(args, params, work)
        if slots is None:
            return None
    member, placed, slopes = slots
    if member in _module().WIDE and work == np.float32 and not _module().moderate(placed):
        return None  # float32 arithmetic cannot hold the parameter (see math32.moderate)
    values = [0.0] * 8
    values[: len(placed)] = placed
    if spec.limits is not None:
        limits = spec.limits.forward if op == "forward" else spec.limits.derivative
        values[4], values[5] = (_limit(v) for v in limits(params))
    else:
        values[4] = values[5] = math.nan
    # the smooth members compute in float64 whatever the input (see kernels.py): their
    # parameters keep every digit
    wide = member in _module().WIDE
    with np.errstate(over="ignore"):  # (a parameter past float32's range rounds to ±inf there,
        # as the reference path rounds it: no warning of it)
        return Plan(member, np.array(values, dtype=np.float64 if wide else work), slopes)


def _weight_array(weight: Any, work: np.dtype) -> np.ndarray | None:
    """prelu's weight as a new 1-D array of the working dtype, or None where it is none (a
    tensor that requires grad or lives on a GPU, ...: the reference path takes those)."""
    try:
        w = np.asarray(weight)
    except (TypeError, ValueError, RuntimeError):
        return None
    if w.ndim > 1 or w.dtype.kind not in "fiu":
        return None
    with np.errstate(over="ignore"):  # (beyond float32's range: inf, as the reference has it)
        return w.astype(work).reshape(-1)


def _prelu_slopes(weight: Any, axis: int, work: np.dtype) -> Callable[..., Any] | None:
    w = _weight_array(weight, work)
    if w is None:
        return None

    def slopes(shape: tuple[int, ...], order: str) -> np.ndarray | None:
        if w.size == 1:
            return w
        ndim = len(shape)
        channels = shape[axis] if -ndim <= axis < ndim else 1
        if channels != w.size:
            return None  # the reference path raises the ParameterError
        ax = axis % ndim
        faster = shape[ax + 1 :] if order == "C" else shape[:ax]
        return np.repeat(w, math.prod(faster))

    return slopes


PATTERN = 1 << 15
"""prelu's slopes travel to its fused kernels as one period (``C·inner`` elements) when it is at
most this long, else each 64-element word's are written as it comes
(:mod:`relukit.kernels.cpu.slopes`)."""


def slope_layout(
    w: np.ndarray, shape: tuple[int, ...], axis: int, after: int = 64
) -> tuple[np.ndarray, int, np.ndarray, int]:
    """``(w, inner, pattern, period)`` as :mod:`relukit.kernels.cpu.slopes` takes prelu's slopes
    ``w`` (1-D, the input's dtype) for a C-contiguous input of ``shape`` whose channels lie
    along ``axis`` (one slope: any shape); the pattern holds one period and ``after`` more."""
    inner = math.prod(shape[axis % len(shape) + 1 :]) if w.size > 1 else 1
    period = w.size * inner
    if period > PATTERN:
        return w, inner, w[:0], 0
    one = np.repeat(w, inner) if inner > 1 else w
    return w, inner, np.tile(one, -(-(period + after) // period))[: period + after], period


class Channels:
    """prelu's slopes, one per channel, as its one-pass kernels take them: ``aux``, a period of
    them and ``SLOPES_AFTER`` more, for the map and mask kernels (None where the period is
    longer than :data:`PATTERN`: then ``layout``, that of :func:`slope_layout`, for the fused
    kernels of relukit.nn, which write each word's slopes as they go); ``p`` and ``table``,
    the parameters of the map and mask kernels' forward and backward."""

    __slots__ = ("aux", "layout", "p", "table")

    def __init__(self, w: np.ndarray, shape: tuple[int, ...], axis: int, work: np.dtype) -> None:
        self.layout = slope_layout(w, shape, axis, _module().SLOPES_AFTER)
        self.aux = self.layout[2] if self.layout[3] > 0 else None
        self.p = np.zeros(8, dtype=work)
        self.p[4] = self.p[5] = np.nan  # (no limits: x·s is prelu's value at ∓inf)
        self.p[6] = 1.0  # (the slopes come as aux says)
        # the mask backward's derivatives: code 0 from aux, code 1 is 1
        self.table = np.array([np.nan, 1.0, 0.0, 0.0], dtype=work)


_channels: dict[tuple[Any, ...], Channels | None] = {}
_KEPT_CHANNELS = 32


def channel_slopes(
    spec: Activation, params: dict[str, Any], shape: tuple[int, ...], dtype: np.dtype
) -> Channels | None:
    """prelu's slopes per channel for its one-pass kernels, for a C-contiguous input of ``shape``
    (64 slopes along axis 1 of 2^16 float32 elements, 1 thread, Xeon: 110-125 µs a
    forward_with_mask by the kernels of per-element slopes, where a copy takes 7-9). None where
    they do not apply: another member; one plain slope (leaky_relu's kernels run it); a slope
    that is 0 or not finite in the working dtype (prelu's limit at -inf, and the gradient a
    zero slope blocks, are not w·x); channels that differ from the weight's (the reference
    path raises); for 16-bit floats (``dtype``, the elements'; their slopes are float32), a
    period longer than :data:`PATTERN` (relukit.nn's fused kernels take float32 and float64
    only), and float16 on a host without F16C. A weight given as a tuple of numbers (bound, it
    cannot change) is kept by its values, channel period and working dtype, the last
    :data:`_KEPT_CHANNELS` of them; an array may change in place, and is read at every call."""
    if _formula_key(spec, params) != "prelu":
        return None
    work = _work(dtype)
    if dtype.itemsize == 2:
        if dtype == np.float16 and not _f16c():  # (widened by the host first, as Calls is)
            return None
        found = channel_slopes(spec, params, shape, work)
        return None if found is None or found.aux is None else found
    weight, axis, ndim = params["weight"], params["axis"], len(shape)

    def fits(count: int) -> bool:
        return count == 1 or (-ndim <= axis < ndim and shape[axis] == count)

    key = None
    if isinstance(weight, tuple):
        if not fits(len(weight)):
            return None
        inner = math.prod(shape[axis % ndim + 1 :]) if len(weight) > 1 else 1
        key = (weight, inner, work)
        found = _channels.get(key, False)
        if found is not False:
            return found
    channels = None
    w = None if _one_slope(params, work) else _weight_array(weight, work)
    if w is not None and fits(w.size) and np.isfinite(w).all() and w.all():
        channels = Channels(w, shape, axis, work)
    if key is not None:
        if len(_channels) >= _KEPT_CHANNELS:
            _channels.clear()
        _channels[key] = channels
    return channels


def _rrelu_slopes(lower: float, upper: float, seed: Any, work: np.dtype) -> Callable[..., Any]:
    def slopes(shape: tuple[int, ...], order: str) -> np.ndarray:
        # exactly the reference's draw: U(lower, upper) shaped like x, cast to the working dtype
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        samples = rng.uniform(lower, upper, size=shape).astype(work)
        return samples.reshape(-1, order=order)

    return slopes


def _periodic(pattern: np.ndarray, n: int) -> np.ndarray:
    """``pattern`` repeated so that its period is a multiple of 64 and at least one block."""
    period = pattern.size
    reps = ALIGN // math.gcd(period, ALIGN)
    while period * reps < _module().BLOCK and period * reps < n:
        reps *= 2
    if period * reps >= n:
        reps = -(-n // period)
    return np.ascontiguousarray(np.tile(pattern, reps))


# ---------------------------------------------------------------------------------------------
# Arrays: kinds, raw views, layouts


def _work(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32)


def _raw(a: np.ndarray) -> np.ndarray:
    """The array as the kernels read it: 16-bit floats as their bits."""
    if a.itemsize != 2:  # (first: comparing a dtype with np.float16 costs 0.1 µs)
        return a
    if a.dtype == np.float16:
        return a.view(np.int16)
    if is_bfloat16(a.dtype):
        return a.view(np.uint16)
    return a


def _numpy(value: Any) -> tuple[np.ndarray, str] | None:
    """A NumPy view of an array the kernels can take, and its kind ('numpy' or 'torch')."""
    if type(value) is np.ndarray:
        floating = value.dtype in FLOAT_DTYPES or is_bfloat16(value.dtype)
        return (value, "numpy") if floating else None
    if not type(value).__module__.startswith("torch"):
        return None
    if not isinstance(value, _torch().Tensor):
        return None
    found = tensor_numpy(value)
    return None if found is None else (found, "torch")


def tensor_numpy(value: Any) -> np.ndarray | None:
    """:func:`_numpy` of a torch tensor ``value``: its NumPy view, or None."""
    if _TORCH[0] is None:
        _torch()
    if not value.is_cpu:
        return None
    if value.requires_grad or value.is_conj() or value.is_neg() or value.layout is not _STRIDED[0]:
        return None
    if outside_autograd(value):  # (its tangent, trace or compiled graph would lose it)
        return None
    try:
        return tensor_view(value)
    except RuntimeError:  # (a tensor without storage: torch.func's wrappers, under vmap)
        return None


def _torch() -> Any:
    """The torch module (imported: only tensors ask), with the few of its objects that the
    checks of every tensor call read looked up once (a lookup through ``torch.`` each time,
    and ``import torch`` in each function, cost some 0.5 µs of a relu call's 5 on 1,000
    float32 elements)."""
    torch = _TORCH[0]
    if torch is None:
        import torch

        _STRIDED[0] = torch.strided
        _VIEWS.update({torch.float32: False, torch.float64: False, torch.float16: False})
        _VIEWS[torch.bfloat16] = True
        _CHECKS[:] = [
            torch.compiler.is_compiling,
            torch.jit.is_tracing,
            torch.autograd.forward_ad.unpack_dual,
            torch.int16,
        ]
        _TORCH[0] = torch
    return torch


_TORCH: list[Any] = [None]
_STRIDED: list[Any] = [None]
_VIEWS: dict[Any, bool] = {}  # torch dtype -> taken as raw 16-bit words (bfloat16)
_CHECKS: list[Any] = []  # is_compiling, is_tracing, unpack_dual, torch.int16


def tensor_view(tensor: Any) -> np.ndarray | None:
    """The NumPy view of a strided CPU tensor of a float dtype the kernels take (bfloat16
    as ml_dtypes' bfloat16), or None for another dtype."""
    if _TORCH[0] is None:
        _torch()
    words = _VIEWS.get(tensor.dtype)
    if words is None:
        return None
    if words:
        return tensor.view(_CHECKS[3]).numpy().view(bfloat16())
    return tensor.numpy()


def outside_autograd(value: Any) -> bool:
    """Would reading this torch tensor through NumPy lose what PyTorch records of it: a
    forward-mode tangent (a dual tensor), or a ``torch.jit.trace`` or ``torch.compile`` under
    way? (Under ``torch.compile`` the reference path's torch operations are what Dynamo
    traces; the kernels' call made Dynamo fail inside Numba's dispatcher.)"""
    if _TORCH[0] is None:
        _torch()
    compiling, tracing, unpack_dual, _ = _CHECKS
    if compiling() or tracing():
        return True
    return unpack_dual(value).tangent is not None


def _order(a: np.ndarray) -> str | None:
    if a.flags.c_contiguous:
        return "C"
    if a.flags.f_contiguous:
        return "F"
    return None


def _flat(a: np.ndarray, order: str) -> np.ndarray | None:
    """A 1-D view of ``a`` in ``order``, or None if that needs a copy."""
    if order == "C" and a.flags.c_contiguous:
        return a.reshape(-1)
    if order == "F" and a.flags.f_contiguous:
        return a.reshape(-1, order="F")
    return None


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def _writable_into(out: np.ndarray, inputs: tuple[np.ndarray, ...]) -> bool:
    """True if the kernel may write ``out`` directly: every input is it or is disjoint from it.
    (Disjoint first: the test costs 0.5 µs, where :func:`_identical` reads the array interface
    of both, 4.7 µs on a Xeon.)"""
    return all(a is out or not np.may_share_memory(out, a) or _identical(out, a) for a in inputs)


class Target:
    """Where a kernel's flat output goes and how the caller gets it back (a caller's tensor
    with its version counter bumped, as PyTorch's in-place writes bump it: autograd then
    refuses a backward that saved its old values)."""

    def __init__(
        self, flat: np.ndarray, result: Any, copy_to: np.ndarray | None = None, bump: bool = False
    ):
        self.flat = flat
        self.result = result
        self.copy_to = copy_to
        self.bump = bump

    def finish(self, shaped: np.ndarray) -> Any:
        if self.copy_to is not None:
            np.copyto(self.copy_to, shaped)
        if self.bump:
            written(self.result)
        return self.result


def written(tensor: Any) -> None:
    """Bump the version counter of a torch tensor written through a NumPy view."""
    import torch

    torch.autograd.graph.increment_version(tensor)


def _target(
    out: Any, like: np.ndarray, kind: str, source: Any, order: str, inputs: tuple[np.ndarray, ...]
) -> Target | None:
    """The output: ``out`` (directly when its layout allows) or a fresh array of ``like``'s."""
    shape, dtype = like.shape, like.dtype
    if out is not None:
        view = _numpy(out)
        if view is None or view[1] != kind or view[0].shape != shape or view[0].dtype != dtype:
            return None  # the caller's checks raise the right error
        array = view[0]
        if not array.flags.writeable:
            return None
        flat = _flat(array, order)
        bump = kind == "torch"
        if flat is not None and _writable_into(array, inputs):
            return Target(flat, out, bump=bump)
        temp = empty_array(shape, dtype, order)
        return Target(_flat(temp, order), out, copy_to=array, bump=bump)
    if kind == "torch":
        if order == "C":
            tensor = empty_tensor(shape, source.dtype)
        else:  # F-contiguous: the transpose of a C-contiguous tensor
            tensor = empty_tensor(shape[::-1], source.dtype).permute(*reversed(range(len(shape))))
        array = _numpy(tensor)
        assert array is not None
        return Target(_flat(array[0], order), tensor)
    array = empty_array(shape, dtype, order)
    return Target(_flat(array, order), array)


# ---------------------------------------------------------------------------------------------
# Running kernels over chunks


PIECES = 4
"""Chunks per thread in a split call on relukit's pool: the threads claim them one at a time, so
a thread that starts late or shares its core with other work takes fewer (measured under load
on this 2-core machine: a 2^20 float64 mask forward split in two halves took 760 µs where the
worker's half took 300 and the caller's 730)."""

PIECES_TEAM = 1
"""Chunks per thread on the OpenMP team, where the other threads are PyTorch's own, not
competing with it: one contiguous chunk per thread. Four each cost up to a third more (AMD EPYC,
2 threads, relu6 out= / forward_with_mask / backward_from_mask, best of 4 interleaved rounds,
4 chunks per thread against 1: float32 2^19-2^21 1.09-1.34x the time, float64 2^19-2^20
1.02-1.21x; 2^17, 2^18 and 2^22 within ±5 %)."""


def _chunks(n: int, cost: int) -> list[tuple[int, int]]:
    """``[0, n)`` in chunks for the pool: up to :data:`PIECES` per thread (:data:`PIECES_TEAM` on
    the OpenMP team), each at least a :func:`grain` (of the ``cost`` class) and starting at a
    multiple of 64 elements. Remembered per size and thread count (the list is shared: callers
    do not change it)."""
    pinned = _pinned(cost)
    known = _measured.get((cost, False), GRAIN_BOUNDS[0]) if pinned is None else pinned
    if n < 2 * known:  # (without asking for the thread count: a small call's cost)
        return [(0, n)]
    count = threads.get_num_threads()
    if count == 1:
        return [(0, n)]
    pieces = PIECES_TEAM if team.available() else PIECES
    key = (n, cost, count, pinned, pieces)
    found = _split.get(key)
    if found is not None:
        return found
    # (the rule of the split ufunc loops, run here as Python: kernels.split_parts and
    # split_bounds)
    k = _module()
    parts = k.split_parts.py_func(n, count, grain(cost), pieces)
    if parts == 1:
        chunks = [(0, n)]
    else:
        bounds = np.empty(parts + 1, dtype=np.int64)
        k.split_bounds.py_func(n, parts, ALIGN, bounds)
        chunks = [(a, b) for a, b in itertools.pairwise(bounds.tolist()) if b > a]
    if len(_split) >= 256:
        _split.clear()
        _bounds.clear()
    _split[key] = chunks
    _bounds_of(chunks, count)
    return chunks


_split: dict[tuple[int, int, int, int | None, int], list[tuple[int, int]]] = {}
_bounds: dict[int, tuple[list[tuple[int, int]], np.ndarray, int]] = {}


def _bounds_of(chunks: list[tuple[int, int]], count: int | None = None) -> tuple[np.ndarray, int]:
    """The chunks' bounds as int64 (``a`` of each, then the last ``b``) and the number of
    threads to run them on: ``count`` (the thread count :func:`_chunks` planned them for, or
    :func:`relukit.threads.get_num_threads`) up to one per chunk; remembered per list."""
    found = _bounds.get(id(chunks))
    if found is None or found[0] is not chunks:
        if len(_bounds) >= 256:
            _bounds.clear()
        array = np.array([a for a, _ in chunks] + [chunks[-1][1]], dtype=np.int64)
        if count is None:
            return array, min(len(chunks), threads.get_num_threads())
        found = _bounds[id(chunks)] = (chunks, array, min(len(chunks), count))
    return found[1], found[2]


def _streams(y: np.ndarray, inplace: bool) -> bool:
    return STREAM and not inplace and y.flags.aligned and _large(y.nbytes, True)


def _large(nbytes: int, cached: bool) -> bool:
    """Is an output of ``nbytes`` large enough to stream: from :func:`stream_bytes` up on one
    thread; where the call splits over several and the working set is likely x and y alone
    (``cached``), from twice that, each core's caches holding their part."""
    if _unstreamed(nbytes):
        return False
    return not cached or nbytes >= 2 * stream_bytes() or threads.get_num_threads() == 1


def split_unstreamed(nbytes: int, linear: bool) -> bool:
    """Is the output (``nbytes``, apart from x) of a call that splits over threads written
    without streaming stores, as :meth:`Calls.map` decides (smooth members never stream; the
    others from twice :func:`stream_bytes` up; a fresh output below that does not either)?"""
    return not linear or not STREAM or not _large(nbytes, True)


def _unstreamed(nbytes: int) -> bool:
    """Is an output of ``nbytes`` below the size that streams on one thread (measured only for
    outputs from :data:`STREAM_FLOOR` up)?"""
    if nbytes < STREAM_FLOOR and STREAM_BYTES is None and not _STREAM_ENV_SET:
        return True  # (nothing pinned: not measured for this)
    return nbytes < stream_bytes()


def stream_bytes() -> int:
    """The size of output from which streaming stores pay on one thread: :data:`STREAM_BYTES`
    or ``RELUKIT_STREAM_BYTES`` where set, else measured once per process
    (:func:`_stream_threshold` on :func:`_streaming_wins`; 10-20 ms where streaming wins from
    a few MiB, about 100 ms where it wins nowhere up to :data:`STREAM_MEASURE_TOP`), at the
    first call on one thread of a piecewise-linear member or mask path with an output that
    large (in place too: :func:`alone` does not know)."""
    pinned = STREAM_BYTES
    if pinned is not None:
        return pinned
    if _STREAM_ENV_SET:
        found = _stream_pin()  # (a bad value raises at every call, as RELUKIT_NUM_THREADS's)
        if found is not None:
            return found
    if not _stream_found:
        with _stream_lock:  # (one measurement: two at once would share the memory bus)
            if not _stream_found:
                measured = _stream_threshold(_streaming_wins) if STREAM else CACHE_HALF
                _stream_found.append(measured)
    return _stream_found[0]


_stream_found: list[int] = []
_stream_lock = threading.Lock()
STREAM_MEASURE_TOP = 1 << 25  # the largest size measured


def _stream_threshold(wins: Callable[[int], bool]) -> int:
    """The first of two doubling sizes from :data:`STREAM_FLOOR` at which ``wins(size)`` (do
    streaming stores beat plain ones there?) holds, measured up to the smaller of
    :data:`STREAM_MEASURE_TOP` and :data:`CACHE_HALF`; that largest size where it wins there
    alone (nothing larger measured), else :data:`CACHE_HALF`. (A win at one size alone below
    it, where the two are within noise, is not taken.)"""
    top = min(CACHE_HALF, STREAM_MEASURE_TOP)
    size = STREAM_FLOOR
    won = False
    while size <= top:
        if wins(size):
            if won:
                return size // 2
            won = True
        else:
            won = False
        size *= 2
    if won and size // 2 < CACHE_HALF:
        return size // 2
    return max(CACHE_HALF, STREAM_FLOOR)


def _streaming_wins(nbytes: int, rounds: int = 5) -> bool:
    """Does the copy kernel write ``nbytes`` of float32 faster with streaming stores than
    without, on this thread, the same input and output each time: best of ``rounds`` calls in
    a row of each kind, after one of that kind, as repeated calls find the arrays. (Calls of
    the two kinds interleaved found each other's output evicted, which favours streaming
    where x and y fit in the last-level cache: on the AMD EPYC, with 32 MiB of L3, streamed /
    plain time 1.0-1.1 at 1-4 MiB and 0.86-0.92 at 8 MiB interleaved, 1.2-1.8 and 1.0-1.3 in
    a row, and 0.85-0.99 in a row at 16 MiB; measured interleaved, the threshold came out
    1, 4 or 8 MiB from one process to the next, and relu out= on 2^22 float32 elements, 2
    threads, then streamed: 608 µs against 364 for torch.clamp_min(out=).)"""
    kernel = _kernel("copy")
    x = np.ones(nbytes // 4, dtype=np.float32)
    y = np.zeros_like(x)
    best = {False: math.inf, True: math.inf}
    # (which kind goes first alternates with the size: a clock that ramps up favours neither)
    first = nbytes.bit_length() % 2 == 0
    for stream in (first, not first):
        for round_ in range(rounds + 1):
            start = time.perf_counter()
            kernel(x, y, stream)
            if round_:
                best[stream] = min(best[stream], time.perf_counter() - start)
    return best[True] < best[False]


def _linear(member: int) -> bool:
    """Does the member's formula cost about what a copy does (no exp, erf or tanh)?"""
    return member not in _module().WIDE


_measured: dict[tuple[int, bool], int] = {}


def cost_class(linear: bool, itemsize: int) -> int:
    """The class of a kernel's cost per element: :data:`LINEAR` for a piecewise-linear member
    (and the mask path), else :data:`SMOOTH_WIDE` in float64 and :data:`SMOOTH` below."""
    if linear:
        return LINEAR
    return SMOOTH_WIDE if itemsize == 8 else SMOOTH


def _pinned(cost: int) -> int | None:
    return GRAIN_LINEAR if cost == LINEAR else GRAIN_SMOOTH


def grain(cost: int, asleep: bool = False) -> int:
    """The fewest elements per thread worth a split, for a kernel of the ``cost`` class
    (:func:`cost_class`): ``2·H/t``, with H what splitting a call in two costs beyond half
    its work (:func:`_handoff`) and t the class's time per element in cache
    (:func:`_per_element`), both measured once per process on this machine, so a split gains
    at least a quarter of the time. ``asleep``: the grain worth waking a pool worker that has
    gone to sleep (H of a wake-up; for :data:`LINEAR`, t out of cache, 2^20 elements, as the
    calls that large are). Within :data:`GRAIN_BOUNDS`, a multiple of 64. Asked only for a
    call on more than one thread. :data:`GRAIN_LINEAR` / :data:`GRAIN_SMOOTH` pin it."""
    pinned = _pinned(cost)
    if pinned is not None:
        return pinned
    measured = _measured.get((cost, asleep))
    if measured is None:
        elements = 2 * _handoff(asleep) / _per_element(cost, large=asleep)
        measured = _bounded(elements)
        _measured[cost, asleep] = measured
        if not asleep:  # (_chunks splits nothing below 2·measured either)
            WHOLE_BELOW[cost] = _whole_below(measured)
            _set_split_below(cost)
            if UFUNCS and team.available():  # (else when a split ufunc is first made)
                # (compiles relu's float32 ufunc loops, once per machine)
                ufunc_grain(cost)
                ufunc_grain(cost, True)
    return measured


def ufunc_grain(cost: int, inplace: bool = False) -> int:
    """The fewest elements per thread worth a split for a ufunc that splits its calls
    (:meth:`Calls.split_ufunc`) of the ``cost`` class, in place or not: :func:`grain`'s rule,
    ``2·H/t``, with H that ufunc's own hand-off and, for :data:`LINEAR`, t its own time per
    element (:func:`_ufunc_costs`; in place, a core reads and writes the same lines and takes
    about half the time of out=), else :func:`_per_element`'s. Its calls split from twice
    that (or the planned route's grain, where less: :meth:`Calls._make_ufunc`), where a split
    saves at least a quarter of the kernel's time. (With ``1.25·H/t``, a
    tenth, calls split that the public call made slower: relu out= on 2^15 float32 elements, 2
    threads, AMD EPYC, 4.09 µs split against 3.69 whole, where the ufunc alone took 2.56
    against 3.06. relu out=, public calls, µs, split / whole: 2^16 5.28 / 6.14, 2^17 8.06 /
    about 14; H 1.0-1.7 µs and t 0.08 ns there, so out= splits from 50,000-85,000 elements.)
    Measured once per process where there is an OpenMP team (the first time, relu's float32
    ufunc loops are compiled, some 10 ms once cached on disk); sets :data:`SPLIT_BELOW` or
    :data:`INPLACE_SPLIT_BELOW` (:func:`_set_split_below`). Where no such ufunc can be made,
    :func:`grain`, and both stay :data:`WHOLE_BELOW`. (None pinned: the calls that split take
    the planned route while a grain is pinned.)"""
    measured = _ufunc_measured.get((cost, inplace))
    if measured is None and (cost, False) not in _measured and _pinned(cost) is None:
        # the planned route's first (WHOLE_BELOW, the cap of both thresholds, is measured
        # there; it measures this grain too, where there is a team, after storing its own)
        grain(cost)
        measured = _ufunc_measured.get((cost, inplace))
    if measured is None:
        costs = _ufunc_costs(inplace)
        if costs is None:
            return grain(cost)
        handoff, per_element = costs
        if cost != LINEAR:
            per_element = _per_element(cost)
        measured = _bounded(2 * handoff / per_element)
        _ufunc_measured[cost, inplace] = measured
        _set_split_below(cost)
    return measured


_ufunc_measured: dict[tuple[int, bool], int] = {}


def _set_split_below(cost: int) -> None:
    """:data:`SPLIT_BELOW` and :data:`INPLACE_SPLIT_BELOW` of the ``cost`` class: twice the
    split ufunc's grain measured (out= or in place), at most :data:`WHOLE_BELOW` (measured
    first: :func:`ufunc_grain`), so that no call from there on takes the small calls' route:
    it goes to the split ufunc, which splits it from twice its grain, at most the planned
    route's (so it splits every call the planned route would);
    :data:`WHOLE_BELOW` while none is measured. (Apart: a call in place from twice the out=
    grain up, on a ufunc that ran it whole, cost 0.2 µs more than the small calls' route.)"""
    below = WHOLE_BELOW[cost]
    for inplace, split_below in ((False, SPLIT_BELOW), (True, INPLACE_SPLIT_BELOW)):
        measured = _ufunc_measured.get((cost, inplace))
        split_below[cost] = below if measured is None else min(_whole_below(measured), below)


def _bounded(elements: float) -> int:
    """A grain of ``elements``: within :data:`GRAIN_BOUNDS`, a multiple of :data:`ALIGN`."""
    low, high = GRAIN_BOUNDS
    return int(min(max(elements, low), high)) // ALIGN * ALIGN


def _whole_below(measured: int) -> int:
    """Where calls stop running whole for a grain of ``measured`` elements: twice it, at
    least :data:`SMALL`, at most an eighth of what may stream (no measuring of streaming stores
    here)."""
    below = STREAM_FLOOR if STREAM_BYTES is None else STREAM_BYTES
    return max(SMALL, min(2 * measured, below // 8))


def whole(n: int, nbytes: int, cost: int) -> bool:
    """Does a call of ``n`` elements (``nbytes`` of output) of the ``cost`` class run whole on
    the calling thread, without streaming stores: below :data:`WHOLE_BELOW` whatever the thread
    count, and on one thread wherever it would not stream (:func:`alone`). Such a call costs
    the kernel's time and its entry point's; the others plan their chunks and streaming, some
    1.1 µs of Python more (relu out= on 2^16 float32 elements, 1 thread, AMD EPYC: 7.2 µs
    against 6.1), but for the map kernels' public calls that split without streaming, which
    take their ufunc instead (:meth:`Calls.split_ufunc`). Never while a grain is pinned."""
    if GRAIN_LINEAR is not None or GRAIN_SMOOTH is not None:
        return False
    return n < WHOLE_BELOW[cost] or alone(nbytes, cost == LINEAR)


def _unchanged(planned: tuple[Any, ...]) -> bool:
    """Is a plan kept by :meth:`Calls._plan` still the one :func:`whole`, :func:`_stream_to`
    and :func:`_chunks` would make (the call's size, thread count and output are in its key,
    and the caller asks it only from :data:`WHOLE_BELOW` up): the same OpenMP team (no
    ``fork`` since), the same chunks per thread, the same streaming threshold (measured once
    per process), nothing pinned?"""
    return (
        planned[0] == team.generation[0]
        and planned[1] == PIECES_TEAM
        and planned[2] == STREAM_FLOOR
        and planned[3] is _stream_found
        and GRAIN_LINEAR is None
        and GRAIN_SMOOTH is None
        and STREAM_BYTES is None
        and not _STREAM_ENV_SET
    )


def alone(nbytes: int, linear: bool, count: int | None = None) -> bool:
    """On one thread (which a pinned grain does not change; ``count``: the thread count, asked
    if None), does an output of ``nbytes`` stay unstreamed: below :func:`stream_bytes` for a
    piecewise-linear member or the mask path, at every size for a smooth member
    (:func:`_large`)."""
    if count is None:
        count = threads.get_num_threads()
    return count == 1 and (not linear or not STREAM or _unstreamed(nbytes))


def _handoff(asleep: bool = False) -> float:
    """What splitting a call over two threads costs beyond half its work, measured once per
    process: on the OpenMP team where one is there when first asked (:func:`_team_handoff`),
    else (and with ``asleep``, a wake-up) on relukit's pool (:func:`_pool_handoff`)."""
    on_team = not asleep and team.available()
    found = _handoffs.get((asleep, on_team))
    if found is None:
        found = _team_handoff() if on_team else _pool_handoff(asleep)
        _handoffs[asleep, on_team] = found
    return found


_handoffs: dict[tuple[bool, bool], float] = {}


def _ufunc_costs(inplace: bool) -> tuple[float, float] | None:
    """What a ufunc that splits its calls on the team (:meth:`Calls.split_ufunc`) costs, in
    place or not: its hand-off and the time per element of the ufunc that runs the call whole.
    Measured once per process for both at once (the machine's moment the same for both), on
    relu's forward in float32 (out= into a second array, and in place), from the best of 30
    interleaved rounds of each call: the hand-off, the call on 16,384 elements in cache split
    over 2 threads less half the same call whole (in place it costs more: the other core
    fetches lines this one has just written; with out='s hand-off, in place split from 2^16,
    3.66 µs against 3.45 whole); the time per element, the whole call on 65,536 elements over
    their number (an element costs more
    there than among 16,384, past the core's L1: in place, µs, AMD EPYC, 16,384 / 32,768 /
    65,536 / 131,072 elements 1.21 / 1.56 / 2.91 / 4.96, where a split saves 15 % from 98,304
    on). The hand-off counts NumPy's call of the loop, the team's start and end and the
    trampoline's claims (1.0-1.7 µs on the AMD EPYC, against 2-5 µs by :func:`_team_handoff`,
    whose calls pass through Python; 3-4 µs too at times, for the rest of a process: see
    benchmarks/RESULTS.md). None where no such ufunc can be made (nor any split ufunc)."""
    if inplace in _ufunc_found:
        return _ufunc_found[inplace]
    k = _module()
    p, aux = np.zeros(8, dtype=np.float32), np.zeros(1, dtype=np.float32)
    number = np.dtype(np.float32).num
    found: dict[bool, tuple[float, float]] = {}
    for variant in (False, True):
        codes = (k.RELU, k.FORWARD, 4, int(variant))
        made = (
            _ufunc(codes, p, aux, number, "relu_forward"),
            _ufunc(codes, p, aux, number, "relu_forward", 2, ALIGN),
        )
        if not all(made):
            _ufunc_found.update({False: None, True: None})
            return None
        found[variant] = _variant_costs(made[0][0], made[1][0], variant)
    for variant, (handoff, per_element) in found.items():
        _ufunc_found[variant] = (max(handoff, 1e-7), max(per_element, 1e-12))
    return _ufunc_found[inplace]


_ufunc_found: dict[bool, tuple[float, float] | None] = {}


def _variant_costs(whole_ufunc: Any, split_ufunc: Any, inplace: bool) -> tuple[float, float]:
    """:func:`_ufunc_costs` of one variant: (hand-off, time per element)."""
    x = np.zeros(1 << 16, dtype=np.float32)
    y = x if inplace else np.empty_like(x)
    half_x, half_y = x[: 1 << 14], y[: 1 << 14]
    whole_calls = (lambda: whole_ufunc(half_x, half_y), lambda: whole_ufunc(x, y))
    split_calls = (lambda: split_ufunc(half_x, half_y), whole_calls[0])
    split_calls[0]()  # (wakes the team)
    # (the whole calls apart from the split ones: after a split call, the lines the other core
    # wrote cost the next whole call their move back, 2.2 against 1.2 µs in place)
    whole, split = _best_of(whole_calls, 30), _best_of(split_calls, 30)
    return split[0] - whole[0] / 2, whole[1] / x.size


def _best_of(calls: tuple[Callable[[], Any], ...], rounds: int) -> list[float]:
    """The best time of each call over ``rounds`` rounds of them all, in turn (a slow moment of
    the machine costs each kind alike)."""
    best = [math.inf] * len(calls)
    for _ in range(rounds):
        for j, call in enumerate(calls):
            start = time.perf_counter()
            call()
            best[j] = min(best[j], time.perf_counter() - start)
    return best


def _team_handoff() -> float:
    """The team's hand-off: the best of 30 rounds of the copy kernel on 16,384 float32
    elements in cache, split in two as a kernel call is (its arguments described, the thread
    count asked, :func:`_spread` on the team), less half the time of one call on all of them.
    That counts the team's start and end and the Python of a split call. (A repeated call
    takes the shorter way of a kept plan (:meth:`Calls._plan`), without its chunks and
    streaming test, about 2 µs less, but has the public call's checks around it, which this
    does not count: measured on 2 threads before plans were kept, relu in place at 2^17
    float32 elements ran as fast whole as split, and out= split only paid from 2^16, so a
    hand-off measured on the launch alone, 1.5 µs against about 3 here, split calls from
    38,000 elements that ran slower so. The map kernels' public calls that split without
    streaming go through their ufunc (:meth:`Calls.split_ufunc`), whose hand-off costs less
    than this measures: relu out= on 2 threads, AMD EPYC, split there / whole, µs: 2^16
    float32 elements 5.0 / 5.9-6.1, 2^15 3.9 / 3.6-3.7; they split from the same grain.)"""
    kernel = _kernel("copy")
    n = 1 << 14
    x = np.zeros(n, dtype=np.float32)
    y = np.zeros_like(x)
    chunks = [(0, n // 2), (n // 2, n)]
    _bounds_of(chunks, 2)  # (as a split call's chunks are: planned, their bounds kept)
    kinds = team.layout(kernel, (Part(x), Part(y), False))

    def split() -> None:
        threads.get_num_threads()
        args = (Part(x), Part(y), False)
        _spread(n, LINEAR, kernel, args, 4, kernel, chunks, kinds)

    split()  # (compiles the trampoline)
    return max(min(_split_less_half(split, lambda: kernel(x, y, False), 30)), 1e-7)


def _pool_handoff(asleep: bool) -> float:
    """The pool's hand-off: the median of 15 rounds (5 with ``asleep``, each after a pause that
    puts the workers to sleep) of the exp kernel on 2^15 float64 elements in cache, some 90 µs
    of work, in the chunks of a split call on 2 threads (:data:`PIECES` each, claimed one at a
    time, each chunk's call taking the GIL), less half the time of one call on all of them in
    the same round. The chunks must outlast a worker's start: split into two empty tasks, the
    caller ran both before the worker came and the hand-off read 1.3 µs, where a split gelu
    call on 2^14 float32 elements then took 49 µs against 11 whole (2-core Xeon VM). There,
    measured this way, it is 40-90 µs: threads that take the GIL in turn wake each other."""
    kernel = _kernel("function", _module().EXP)
    n = 1 << 15
    x = np.linspace(-1.0, 1.0, n)
    y = np.empty_like(x)
    parts = 2 * PIECES
    bounds = [n * j // parts // ALIGN * ALIGN for j in range(parts + 1)]
    args = (Part(x), Part(y))

    def chunk(a: int, b: int) -> Callable[[], None]:
        return lambda: kernel(*team.bind(args, a, b))

    tasks = [chunk(a, b) for a, b in itertools.pairwise(bounds)]
    pause = 3 * threads.SPIN_SECONDS if asleep else 0.0
    with threads.limit(2):
        threads.run_all(tasks)  # (starts the workers)
        rounds = _split_less_half(
            lambda: threads.run_all(tasks), lambda: kernel(x, y), 5 if asleep else 15, pause
        )
    return max(float(np.median(rounds)), 1e-7)


def _split_less_half(
    split: Callable[[], None], whole: Callable[[], None], rounds: int, pause: float = 0.0
) -> list[float]:
    """Each round's time of ``split`` less half that of ``whole`` right after it (after a
    ``pause``, if any, before each round): what a split costs beyond its halves' work."""
    whole()
    found = []
    for _ in range(rounds):
        if pause:
            time.sleep(pause)
        start = time.perf_counter()
        split()
        middle = time.perf_counter()
        whole()
        found.append((middle - start) - (time.perf_counter() - middle) / 2)
    return found


def _spread(
    n: int,
    cost: int,
    kernel: Any,
    args: tuple[Any, ...],
    itemsize: int = 4,
    compiled: Any = None,
    chunks: list[tuple[int, int]] | None = None,
    kinds: Any = None,
) -> None:
    """``kernel(*team.bind(args, a, b))`` over ``[0, n)`` in :func:`_chunks`: on the process's
    team where there is one (:mod:`relukit.kernels.cpu.team`; PyTorch's threads; there
    ``compiled`` is ``kernel``'s Numba dispatcher where ``kernel`` is one of its entry points),
    else on relukit's pool, waking sleeping workers only for a call of at least twice the
    :func:`grain` of a wake-up (in float32 elements: a piecewise-linear member's time is its
    bytes', so ``itemsize`` 8 halves it; measured only in a process with no team, and where
    there is one, a call of a layout it has no trampoline for wakes them). ``chunks``:
    :func:`_chunks`, and ``kinds``: :func:`team.layout <relukit.kernels.cpu.team.layout>` of
    ``compiled`` and ``args``, if the caller has them."""
    chunks = _chunks(n, cost) if chunks is None else chunks
    if len(chunks) == 1:
        kernel(*team.bind(args, 0, n))
        return
    # (a team wakes its own threads: the pool's wake-up is measured only where the pool runs)
    wake = team.available()
    if not wake:
        scale = max(itemsize, 4) / 4 if cost == LINEAR else 1.0
        wake = _pinned(cost) is not None or n * scale >= 2 * grain(cost, asleep=True)
    run_chunks(kernel, args, chunks, compiled, wake, kinds=kinds)


def run_chunks(
    kernel: Any,
    args: tuple[Any, ...],
    chunks: list[tuple[int, int]],
    compiled: Any = None,
    wake: bool = True,
    returns: bool = False,
    kinds: Any = None,
) -> list[int]:
    """``kernel(*team.bind(args, a, b, j))`` for each chunk ``j``, ``[a, b)`` (contiguous, in
    order): on the calling thread if there is one, else on the process's team where there is one
    (``compiled``: ``kernel``'s Numba dispatcher where ``kernel`` is an entry point of it), else
    on relukit's pool (``wake``: waking workers gone to sleep). With ``returns``, what each
    call returned (ints), in order. ``kinds``: the team's layout of the call, if the caller
    has it."""
    if len(chunks) == 1:
        a, b = chunks[0]
        value = kernel(*team.bind(args, a, b))
        return [int(value)] if returns else []
    if team.available():
        compiled = kernel if compiled is None else compiled
        kinds = team.layout(compiled, args) if kinds is None else kinds
        if kinds is not None:
            bounds, count = _bounds_of(chunks)
            results = np.zeros(len(chunks), dtype=np.int64) if returns else None
            team.run(compiled, args, bounds, count, kinds, results)
            return [] if results is None else results.tolist()
    values: list[int] = [0] * len(chunks)

    def task(j: int, a: int, b: int) -> Callable[[], None]:
        def one() -> None:
            values[j] = kernel(*team.bind(args, a, b, j))

        return one

    threads.run_all([task(j, a, b) for j, (a, b) in enumerate(chunks)], wake)
    return [int(v) for v in values] if returns else []


def _per_element(cost: int, large: bool = False) -> float:
    """Seconds per element of the cost class's cheapest kernel on 16,384 elements in cache, or
    (``large``, :data:`LINEAR` only) on 2^20 float32 elements, past the core's own caches (best
    of 20): relu's derivative in float32 (:data:`LINEAR`), sigmoid in float32 (:data:`SMOOTH`:
    the centre tables' cost) and exp in float64 (:data:`SMOOTH_WIDE`)."""
    k = _module()
    linear = cost == LINEAR
    n = 1 << (20 if large and linear else 14)
    if cost == SMOOTH_WIDE:
        x = np.linspace(-1.0, 1.0, n)
        y = np.empty_like(x)
        function = _kernel("function", k.EXP)

        def once() -> None:
            function(x, y)

    else:
        x = np.linspace(-1.0, 1.0, n, dtype=np.float32)
        y = np.empty_like(x)
        p = np.zeros(8, dtype=np.float32 if linear else np.float64)  # (as plan gives it)
        member, op = (k.RELU, k.DERIVATIVE) if linear else (k.SIGMOID, k.FORWARD)
        kernel = _kernel("map", member, op, True)

        def once() -> None:
            kernel(x, x, x, y, p, 0, False, False)

    once()
    best = float("inf")
    for _ in range(20):
        start = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - start)
    return max(best / n, 1e-12)


# An output a few bytes after its input modulo 1 MiB (as glibc's heap, once its mmap threshold
# has risen, gives an array of a whole number of MiB, up to 32, allocated right after another:
# 16 bytes after) makes each load wait on the store just before it, whose address the core
# takes for the load's (compared on 20 bits, it seems). Measured on the 2-vCPU Xeon VM (Emerald
# Rapids), float32 out= on 2^20 elements, 1 thread, ns per element, y − x ≡ 16 / 4096 bytes
# modulo 1 MiB: tanh 1.90 / 0.57, elu 1.47 / 0.55, gelu 1.75 / 0.85 (PyTorch's tanh 0.62 /
# 0.37); 128 bytes on, half that; from 192, nothing. Through the block buffer (computed in L1,
# then copied out) the loads run ahead of the stores: tanh 1.05 there. Such outputs take the
# buffered kernel from ALIAS_BYTES up (seen from 1 MiB, in one of two runs there: tanh 2.42 /
# 0.81, through the buffer 0.76; not at 256 KiB and below, whose lines stay in L2), on a
# machine where the buffer pays (:func:`_buffer_pays`: not on the AMD EPYC of session 32).
ALIAS_PERIOD = 1 << 20
ALIAS_WINDOW = 192
TABLE_AFTER = 1 << 17
"""16-bit elements one op (forward or derivative) of a bound smooth member computes (in one
:class:`Calls`, by calls of :data:`TABLE_FROM` elements or more) before it makes that op's
table of every 16-bit input (:meth:`Calls.lookup_table`): making it computes 2^16, so it costs
at most half of what came before, and calls from :data:`TABLE_FROM` elements up then look
their results up (smaller ones run the kernel, which gives the same bits)."""
TABLE_FROM = 1 << 12

ALIAS_BYTES = 1 << 20


# Does the block buffer pay for an aliased output on this machine (None: measure it once, by
# :func:`_buffer_pays`)? Pinned by tests that need either route.
ALIAS_BUFFER: bool | None = None


def aliased(y: np.ndarray, *inputs: np.ndarray) -> bool:
    """Should ``y`` go through the block buffer: is it (of at least :data:`ALIAS_BYTES`) a few
    bytes after one of ``inputs`` modulo :data:`ALIAS_PERIOD` (0 < distance <
    :data:`ALIAS_WINDOW`), where writing it directly makes each load wait on a store, on a
    machine where the buffer pays (:data:`ALIAS_BUFFER`, measured by :func:`_buffer_pays`)?"""
    if y.nbytes < ALIAS_BYTES:
        return False
    if not any(0 < _distance(y, a) % ALIAS_PERIOD < ALIAS_WINDOW for a in inputs):
        return False
    return _buffer_pays() if ALIAS_BUFFER is None else ALIAS_BUFFER


def buffer_declined() -> bool:
    """Is it known that no output goes through the block buffer, however it lies
    (:data:`ALIAS_BUFFER` pinned False, or measured so by :func:`_buffer_pays`)? Then a fresh
    output need not be placed apart from its input. (Not yet measured: not known.)"""
    return ALIAS_BUFFER is False or (ALIAS_BUFFER is None and _buffer_measured == [False])


_buffer_measured: list[bool] = []
_buffer_lock = threading.Lock()
BUFFER_GAIN = 0.9  # the buffer must take at most this share of the direct kernel's time


def _buffer_pays() -> bool:
    """Does sigmoid's float32 kernel write an output 16 bytes after its input modulo
    :data:`ALIAS_PERIOD` through the block buffer in at most :data:`BUFFER_GAIN` of the time it
    takes writing it directly (2^20 elements, past the core's own caches; best of 5 each,
    interleaved)? Measured once per process, the first time an output is found aliased, and
    taken for every member, dtype and thread count: 11-24 ms after a sigmoid call, most of it
    loading the buffered kernel from Numba's cache (seconds where neither kernel was ever
    compiled on the machine). (On the 2-vCPU Xeon of :data:`ALIAS_PERIOD`'s comment the buffer
    halves the time; on the AMD EPYC (Zen 4) it costs more than it saves, 1 thread, ns per
    element, direct / buffered: silu 0.40 / 0.65 at 2^24, tanh 0.32 / 0.60, gelu 0.36 / 0.58;
    at 2^20 silu 0.38 / 0.46, tanh 0.30 / 0.44, where 4,096 bytes apart took 0.36 and 0.28;
    relu′ 0.11-0.14 / 0.15-0.16 in float32, 0.25 / 0.39-0.40 in float64.)"""
    with _buffer_lock:
        if not _buffer_measured:
            _buffer_measured.append(_measure_buffer())
    return _buffer_measured[0]


def _measure_buffer() -> bool:
    """:func:`_buffer_pays`' measurement."""
    k = _module()
    n = 1 << 20
    # (a vector of slack past y: the start moves x to a 64-byte boundary)
    room = np.empty(2 * n + (ALIAS_PERIOD + 16) // 4 + 32, dtype=np.float32)
    start = (-room.ctypes.data % 64) // 4
    x = room[start : start + n]
    y = room[start + n + ((-4 * n) % ALIAS_PERIOD + 16) // 4 :][:n]
    assert y.size == n and (y.ctypes.data - x.ctypes.data) % ALIAS_PERIOD == 16
    x[:] = np.linspace(-6.0, 6.0, n, dtype=np.float32)
    p = np.zeros(8, dtype=np.float64)  # (as plan gives it)
    kernels = {direct: _kernel("map", k.SIGMOID, k.FORWARD, direct) for direct in (True, False)}
    best = {}
    for direct, kernel in kernels.items():
        kernel(x, x, x, y, p, 0, False, False)
        best[direct] = math.inf
    for _ in range(5):
        for direct, kernel in kernels.items():
            begin = time.perf_counter()
            kernel(x, x, x, y, p, 0, False, False)
            best[direct] = min(best[direct], time.perf_counter() - begin)
    return best[False] <= BUFFER_GAIN * best[True]


def _distance(y: np.ndarray, a: np.ndarray) -> int:
    """Bytes from ``a``'s first element to ``y``'s: by a kernel (0.3 µs) for the 1-D, C-ordered,
    writeable float32/float64 arrays the host passes (one signature per dtype), else by ctypes
    (1.1 µs each: any other layout or dtype, which Numba would compile anew, or does not type)."""
    if (
        y.ndim == 1
        and a.ndim == 1
        and y.dtype is a.dtype
        and y.itemsize > 2
        and y.flags.carray
        and a.flags.carray
    ):
        return _kernel("distance")(y, a)  # type: ignore[no-any-return]
    return y.ctypes.data - a.ctypes.data  # type: ignore[no-any-return]


def _disjoint(y: np.ndarray, *inputs: np.ndarray) -> bool:
    """May a ``direct`` kernel write ``y`` (no input shares its memory)?"""
    return not any(np.may_share_memory(y, a) for a in inputs)


def _prepare(array: np.ndarray) -> tuple[np.ndarray, str]:
    """``array`` as a 1-D view in memory order, gathering it first if it is not contiguous."""
    order = _order(array)
    if order is None:
        array = np.ascontiguousarray(array)
        order = "C"
    flat = _flat(array, order)
    assert flat is not None
    return flat, order


def run(
    spec: Activation,
    op: str,
    source: Input,
    params: dict[str, Any],
    grad: Any = None,
    wrt: str = "x",
    out: Any = None,
) -> Any:
    """forward / derivative / vjp (wrt x) of an elementwise member, or None if declined."""
    if wrt != "x" or not spec.elementwise or op not in ("forward", "derivative", "vjp"):
        return None
    view = _numpy(source.array)
    if view is None:
        return None
    x, kind = view
    if x.size == 0:
        return None
    work = _work(x.dtype)
    prepared = None
    if op == "forward" and _formula_key(spec, params) == "prelu":
        prepared = xf, order = _prepare(x)
        channels = channel_slopes(spec, params, x.shape, x.dtype) if order == "C" else None
        if channels is not None:  # (C order: the layout of its slopes)
            target = _target(out, x, kind, source.array, "C", (x,))
            if target is None:
                return None
            channels_map(channels, xf, target.flat)
            return target.finish(target.flat.reshape(x.shape))
    the_plan = plan(spec, "forward" if op == "forward" else "derivative", params, work)
    if the_plan is None:
        return None
    k = _module()
    xf, order = _prepare(x) if prepared is None else prepared
    inputs = (x,)
    g = None
    if op == "vjp":
        gview = _numpy(grad)
        if gview is None or gview[1] != kind or gview[0].dtype != x.dtype:
            return None
        if gview[0].shape != x.shape:
            return None
        g = gview[0]
        inputs = (x, g)
        g = np.ravel(g, order=order)
    aux = np.zeros(1, dtype=work)
    if the_plan.slopes is not None:
        pattern = the_plan.slopes(x.shape, order)
        if pattern is None:
            return None
        aux = _periodic(pattern, x.size)
    target = _target(out, x, kind, source.array, order, inputs)
    if target is None:
        return None
    y = target.flat
    code = k.FORWARD if op == "forward" else k.DERIVATIVE
    raw = op == "forward" and the_plan.member in (k.RELU, k.HARDTANH)
    xr, yr, gr, finish = _operands(xf, y, g, raw)
    # 16-bit map outputs are not streamed (the map kernels' streaming stores are float
    # vectors; the mask kernels stream 16-bit words too), nor a smooth member's (see STREAM_BYTES)
    linear = _linear(the_plan.member)
    stream = y.itemsize > 2 and linear and _streams(y, np.may_share_memory(y, xf))
    direct = not stream and _disjoint(yr, xr, gr) and not aliased(yr, xr, gr)
    kernel = _kernel("map", the_plan.member, code, direct)
    p = the_plan.p
    vjp = g is not None

    args = (Part(xr), Part(gr), aux, Part(yr), p, START, stream, vjp)
    _spread(x.size, cost_class(linear, np.dtype(work).itemsize), kernel, args, xr.itemsize)
    if finish is not None:
        finish()
    return target.finish(y.reshape(x.shape, order=order))


def _operands(
    x: np.ndarray, y: np.ndarray, g: np.ndarray | None, raw: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Callable[[], None] | None]:
    """What the kernel reads and writes: 16-bit floats as raw bits, which the kernel widens to
    float32 element by element, computes on in float32 and rounds back once, as the reference
    path does (relu, relu6 and hardtanh forward select the bits themselves). One pass: float16
    leaky_relu at 2^20 took 850 µs in three (widened, computed, rounded back), 270 in one
    with the hardware's conversions; bfloat16's are bit operations, 16 lanes too. Only a
    float16 array on a host without F16C (whose bit-operation conversions cost 3x) is still
    widened first and its result rounded back once (``finish``)."""
    if x.dtype.itemsize != 2 or raw or x.dtype != np.float16 or _f16c():
        xr = _raw(x)
        return xr, _raw(y), (xr if g is None else _raw(g)), None
    x32 = _convert(_raw(x), np.empty(x.shape, dtype=np.float32))
    y32 = np.empty(x.shape, dtype=np.float32)
    g32 = x32 if g is None else _convert(_raw(g), np.empty(x.shape, dtype=np.float32))

    def finish() -> None:
        _convert(y32, _raw(y))

    return x32, y32, g32, finish


def _f16c() -> bool:
    """Has the host F16C (the kernels' float16 conversions are then the hardware's)?"""
    from relukit.kernels.cpu.intrinsics import F16C

    return F16C


def _convert(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``dst[...] = src`` (1-D, float32 and raw 16-bit bits), rounded to nearest even."""
    kernel = _kernel("convert")

    _spread(src.size, True, kernel, (Part(src), Part(dst)))
    return dst


def _entry_point(kernel: Any, args: tuple[Any, ...]) -> Any:
    """The compiled function of ``kernel`` for the types of ``args`` (compiled by calling it
    on them once), without the dispatcher's type resolution: for callers that only ever pass
    these exact types, where microseconds matter."""
    import numba

    kernel(*args)
    return kernel.overloads[tuple(numba.typeof(a) for a in args)].entry_point


def _stream_to(y: np.ndarray, x: np.ndarray, fresh: bool, cached: bool = True) -> bool:
    """Are ``y``'s stores streamed? From :func:`stream_bytes` up (:func:`_large`, ``cached``:
    whether a split call keeps up to the whole last-level cache in it), not in place,
    and, for an output ``fresh`` from the allocator, below :data:`FRESH_BYTES` and only where its
    pages are already mapped (:func:`relukit.kernels.pages.resident`): new pages fault in on
    first write, where streaming stores cost 1.6x plain ones (relukit.nn's relu forward at 2^24
    float32: 42 ms against 26 ms; forward+backward at 2^22, 1 thread, in a process whose glibc
    mapped each 16 MiB output afresh: 18.3 ms streamed against 11.4 for torch.nn)."""
    nbytes = y.nbytes
    if not STREAM or y is x or not _large(nbytes, cached):
        return False
    # a fresh output below FRESH_BYTES is reused memory or new pages, as glibc's state has it
    # (its mmap threshold moves with what the process freed before): ask
    return not fresh or (nbytes < FRESH_BYTES and resident(y))


# The Calls that made ufuncs that split their calls (Calls.split_ufunc): after a fork the child
# has no OpenMP team, so it forgets those ufuncs (and asks again: none, team.available() says
# there) and clears their data's GOMP_parallel word (their loops, if still called, run whole)
_split_calls: weakref.WeakSet[Calls] = weakref.WeakSet()


def _team_switched(parallel: int | None) -> None:
    """The split ufuncs made before call this ``GOMP_parallel`` from now on (None: none, their
    loops run whole): PyTorch's team replaced relukit's own
    (:func:`relukit.kernels.cpu.team._switched`), or a fork left none."""
    for calls in list(_split_calls):
        for data in calls.split_data:
            data[_module().UFUNC_PARALLEL] = parallel or 0


def _no_team_after_fork() -> None:
    _team_switched(None)
    for calls in list(_split_calls):
        calls.split_ufuncs.clear()
    # (no split ufuncs, so calls split where the planned route does; measured again if a
    # team comes)
    _ufunc_measured.clear()
    _ufunc_found.clear()
    SPLIT_BELOW[:] = INPLACE_SPLIT_BELOW[:] = WHOLE_BELOW


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_no_team_after_fork)


team.switched.append(_team_switched)


def _ufunc(
    codes: tuple[int, int, int, int],
    p: np.ndarray,
    aux: np.ndarray,
    number: int,
    name: str,
    count: int = 1,
    grain: int = 0,
) -> Any:
    """A member's map kernel as a NumPy ufunc of one input and one output of the dtype numbered
    ``number`` (:meth:`Calls.ufunc`): ``codes`` (member, op, itemsize, in place) name its
    kernel, which the loop (:func:`~relukit.kernels.cpu.kernels.ufunc_loop`, one per itemsize,
    parameter type and in place or not) calls through the address of its C wrapper in the
    data; ``p`` and ``aux`` are the kernel's parameters. With ``count`` above 1 its calls split
    over that many threads of the OpenMP team from twice ``grain`` elements up. Returned with
    its data (int64 words: what the loop reads, and how it splits); False where Numba's
    ``fromfunc`` or the team's ``GOMP_parallel`` is not to be had."""
    try:
        from numba.np.ufunc._internal import PyUFunc_None, fromfunc
    except ImportError:
        return False
    from numba import types

    from relukit.kernels.cpu import spin

    k = _module()
    member, op, itemsize, inplace = codes
    wide = int(member in k.WIDE)
    loop = _kernel("ufunc", itemsize, wide, inplace)
    into = _kernel("map", member, op, not inplace)
    data = np.zeros(k.UFUNC_DATA, dtype=np.int64)
    data[:3] = [p.ctypes.data, aux.ctypes.data, aux.size]
    at, returned = spin.wrapper_address(into, k.ufunc_arguments(itemsize, p))
    if returned != types.none:  # (the loop calls it for nothing back)
        return False
    data[k.UFUNC_KERNEL] = at
    kept = [loop, into, data, p, aux]  # (alive with the ufunc)
    if count > 1:
        trampoline = _kernel("ufunc_trampoline", itemsize, wide)
        parallel = team.parallel_address()
        if parallel is None:
            return False
        data[3:8] = [count, grain, PIECES_TEAM, parallel, trampoline.address]
        kept.append(trampoline)
    try:  # (a private API: another Numba may want other arguments)
        found = fromfunc(
            name,
            f"relukit's {name} kernel as a ufunc",
            [loop.address],
            [[number, number]],
            1,
            1,
            [data.ctypes.data],
            kept,
            PyUFunc_None,
        )
    except (TypeError, ValueError):
        return False
    return found, data


class Calls:
    """One bound member's compiled calls for one dtype (float32, float64, or a 16-bit float),
    planned once.

    The methods take C-contiguous, aligned 1-D arrays of that dtype (``y`` is ``x`` itself or
    disjoint from it; the caller checks) and run the kernel's entry point on the whole array
    where :func:`whole` says so (below ``2·grain`` elements, or on one thread wherever the call
    does not stream) or on chunks on the pool; outputs from :func:`stream_bytes` are streamed
    as :func:`_large` says (not those of smooth members; below :data:`FRESH_BYTES` when
    ``fresh``: an output just allocated, as relukit.nn's are). The plan, the parameters and
    the entry points are found once, so that the cost of a small call is the kernel's: this
    is the path :mod:`relukit.kernels.dispatch` takes for NumPy arrays and :mod:`relukit.nn`
    for tensors. 16-bit floats go to the kernels
    as their raw bits, which widen each element to float32 and round the result back once, in
    one pass, as the general path does (float16 only on a host with F16C; their map kernels
    are not streamed, their mask paths are); a smooth member's forward and derivative of them
    look their results up, once they have been computed often enough to pay for a table of
    every 16-bit input (:meth:`lookup_table`). A member with per-element slopes (prelu but of
    one plain slope, rrelu in training) has none (ValueError).
    """

    def __init__(
        self,
        spec: Activation,
        params: dict[str, Any],
        dtype: np.dtype,
        codes: np.ndarray | None = None,
        table: np.ndarray | None = None,
    ) -> None:
        dtype = np.dtype(dtype)
        self.half = dtype.itemsize == 2
        if self.half and dtype == np.float16 and not _f16c():
            raise ValueError("float16 without F16C: the general path widens it first")
        work = _work(dtype)
        forward = plan(spec, "forward", params, work) if spec.elementwise else None
        if forward is None or forward.slopes is not None:
            raise ValueError(f"{spec.name} has no direct kernels")
        derivative = plan(spec, "derivative", params, work)
        assert derivative is not None
        self.spec, self.params, self.dtype = spec, params, dtype
        self.member = forward.member
        k = _module()
        self.p = {"forward": forward.p, "derivative": derivative.p}
        self.codes_of = {"forward": k.FORWARD, "derivative": k.DERIVATIVE}
        self.linear = _linear(self.member)
        self.cost = cost_class(self.linear, np.dtype(work).itemsize)
        # mask kernels that write from the registers in one pass (the others through a buffer)
        self.one_pass = self.member in k.ONE_PASS
        self.aux = np.zeros(1, dtype=work)
        # what the kernels read and write: 16-bit floats as their bits
        self.raw = _raw(np.zeros(1, dtype)).dtype if self.half else None
        self._element = np.zeros(1, dtype=self.raw or work)
        # op -> (entry point, parameters): kernels into y directly, and through a buffer
        self.direct: dict[str, tuple[Any, np.ndarray]] = {}
        self.buffered: dict[str, tuple[Any, np.ndarray]] = {}
        self.masked = self.member in k.LINEAR and spec.mask_code is not None
        if self.masked:
            self.bits = spec.derivative_bits(params)
            self.mask_p = forward.p.copy()
            self.mask_p[7] = 0.0
            self.codes = np.zeros(3, dtype=np.int64) if codes is None else codes
            self.table = np.zeros(4, dtype=work)
            if table is not None:
                self.table[: table.size] = table
        self._mask_forward: dict[bool, Any] = {}
        self._layouts: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        # split calls made on the OpenMP team, to repeat (see _launch), and the same by their
        # size and thread count, without planning them again (see _plan)
        self._ready: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._plans: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._mask_backward: Any = None
        # op -> the map kernel as a NumPy ufunc (False: none to be had; see ufunc), and the
        # one for calls in place; (op, in place, threads, chunks per thread) -> the ufunc that
        # splits its calls, and the data of those made
        self.ufuncs: dict[str, Any] = {}
        self.inplace_ufuncs: dict[str, Any] = {}
        self.split_ufuncs: dict[tuple[str, bool, int, int], Any] = {}
        self.split_data: list[np.ndarray] = []
        # 16-bit floats of a smooth member: op -> its results on every input, and the elements
        # computed before it is made (see lookup_table)
        self.tables: dict[str, np.ndarray] = {}
        self.table_count: dict[str, int] = {}
        self._lookup: Any = None

    def ufunc(self, op: str, inplace: bool = False) -> Any:
        """``op``'s map kernel (forward or derivative, float32 or float64) as a NumPy ufunc of
        one input, kept in :attr:`ufuncs` (with ``inplace``, the one whose loop runs the
        kernel where the output is the input: :attr:`inplace_ufuncs`; made at the first call
        in place, as the other at the first call apart, from a loop compiled once per machine
        and shared by every member, then loaded from the cache), or False where there is none:
        16-bit floats, hosts
        other than x86-64 (:data:`UFUNCS`), or a Numba whose private
        ``numba.np.ufunc._internal.fromfunc`` (what ``numba.vectorize`` makes its ufuncs with)
        is missing or takes other arguments. Its inner loop runs the kernel
        (:func:`~relukit.kernels.cpu.kernels.ufunc_loop`, through its address), so an
        element's value is the same as by :meth:`map`;
        NumPy does the call's checks, the output's allocation and any copying for overlap in
        C: 0.3 µs a call where the same written in Python cost 0.8 (relu at 1,024 float32
        elements, AMD EPYC, Python 3.11). One thread, no streaming: for the calls that
        :func:`whole` takes (:meth:`split_ufunc` for those that split)."""
        kept = self.inplace_ufuncs if inplace else self.ufuncs
        found = kept.get(op)
        if found is None:
            found = kept[op] = UFUNCS and not self.half and self._make_ufunc(op, inplace)
        return found

    def writes_directly(self, op: str, y: np.ndarray, x: np.ndarray, nbytes: int) -> bool:
        """May a ufunc's loop write ``op``'s output ``y`` (apart from ``x``, ``nbytes``)
        directly, as :meth:`map` would: wherever :meth:`writes_fresh_directly` says so, or
        where ``y`` is not :func:`aliased` to ``x``?"""
        return self.writes_fresh_directly(op, nbytes) or not aliased(y, x)

    def writes_fresh_directly(self, op: str, nbytes: int) -> bool:
        """May a ufunc's loop write ``op``'s output of ``nbytes`` directly wherever it lies (a
        fresh one, NumPy's to place): below :data:`ALIAS_BYTES`, for a one-pass forward (which
        writes from its registers whichever kernel runs, so aliasing changes nothing for it),
        or where no output goes through the buffer (:func:`buffer_declined`)? (From
        :data:`ALIAS_BYTES` up such calls took the planned route, which allocates the output
        itself: relu's allocating call, float32, AMD EPYC, µs, planned / ufunc: 2^18 on 1
        thread 32.4 / 27.9, 2^20 119 / 111; on 2 threads, the split ufunc, 2^18 18.4 / 13.7,
        2^20 55.1 / 51.1.)"""
        return nbytes < ALIAS_BYTES or (self.one_pass and op == "forward") or buffer_declined()

    def split_ufunc(self, op: str, inplace: bool, count: int) -> Any:
        """:meth:`ufunc`'s ufunc that splits a call over ``count`` threads of the OpenMP team
        as :func:`_chunks` would cut it, but from twice the :func:`ufunc_grain` up (unit
        strides), kept in :attr:`split_ufuncs`: the call goes from NumPy's C to the team's with
        no Python in between (:func:`~relukit.kernels.cpu.kernels.ufunc_loop`), for the calls
        whose output does not stream (the caller asks: :func:`split_unstreamed`). Kept under
        ``(op, inplace, count, PIECES_TEAM)``. False where there is none: no ufunc, or no team
        (:func:`relukit.kernels.cpu.team.available`; not kept: a team may come later). Made
        for :func:`ufunc_grain` (measured on such a ufunc's own hand-off, which costs less than
        the planned route's: it splits smaller calls);
        forgotten at a fork (the child has no team)."""
        key = (op, inplace, count, PIECES_TEAM)
        found = self.split_ufuncs.get(key)
        if found is None:
            if not team.available():
                return False
            found = False
            if UFUNCS and not self.half and count > 1:
                found = self._make_ufunc(op, inplace, count)
                _split_calls.add(self)
            self.split_ufuncs[key] = found
        return found

    def _make_ufunc(self, op: str, inplace: bool, count: int = 1) -> Any:
        """:meth:`ufunc`'s ufunc, made (splitting over ``count`` threads from twice the
        :func:`ufunc_grain` up, or the planned route's :func:`grain` where that is less:
        :meth:`split_ufunc`); False where none is to be had. (A grain measured at a slow moment
        of the machine, 3-4 µs of hand-off, split relu in place on 2 threads only from some
        380,000 float32 elements, where the planned route splits from 100,000: at 2^18 the
        kernels table read 0.50 of a read-modify-write against 1.18 before.)"""
        codes = (self.member, self.codes_of[op], self.dtype.itemsize, int(inplace))
        name = f"{self.spec.name}_{op}"
        least = min(ufunc_grain(self.cost, inplace), grain(self.cost)) if count > 1 else 0
        made = _ufunc(codes, self.p[op], self.aux, self.dtype.num, name, count, least)
        if not made:
            return False
        if count > 1:
            self.split_data.append(made[1])
        return made[0]

    def lookup_table(self, op: str, n: int) -> np.ndarray | None:
        """``op``'s results (forward or derivative, 16-bit floats of a smooth member) on all
        65,536 inputs, indexed by their bits, made by the op's own kernel (whole, on this
        thread) once its calls of :data:`TABLE_FROM` elements or more (not a vjp) have
        computed :data:`TABLE_AFTER` elements, counting the ``n`` of this call, and kept in
        :attr:`tables`; None before. A lookup
        (:func:`~relukit.kernels.cpu.kernels.lookup_kernel`) then gives the kernel's bits at
        about 0.3 ns an element, where the kernels take 0.7-2.3 (2^16 elements of 3·N(0, 1),
        1 thread, AMD EPYC, µs, bfloat16 / float16: gelu 75 / 86 → 21, silu 54 / 59 → 21,
        mish 149 / 148 → 23, softplus 104 / 91 → 27, tanh 74 / 62 → 25)."""
        count = self.table_count[op] = self.table_count.get(op, 0) + n
        if count < TABLE_AFTER:
            return None
        inputs = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(self.raw)
        found = np.empty_like(inputs)
        kernel, p = self.direct.get(op) or self.load(op, True)
        kernel(inputs, inputs, self.aux, found, p, 0, False, False)
        self.tables[op] = found
        return found

    def _load_lookup(self) -> Any:
        # (compiled by a call on these: of the tables' types, never a table itself, which the
        # call writes)
        z = np.zeros(1, dtype=self.raw)
        self._lookup = _entry_point(_kernel("lookup"), (z, z, z))
        return self._lookup

    def load(self, op: str, direct: bool) -> tuple[Any, np.ndarray]:
        """The entry point of ``op``'s map kernel (writing y directly, or through a buffer) and
        its parameters, loaded and kept in :attr:`direct` / :attr:`buffered`."""
        x = self._element
        args = (x, x, self.aux, x, self.p[op], 0, False, False)
        kernel = _kernel("map", self.member, self.codes_of[op], direct)
        loaded = (_entry_point(kernel, args), self.p[op])
        (self.direct if direct else self.buffered)[op] = loaded
        return loaded

    def map(
        self,
        op: str,
        x: np.ndarray,
        g: np.ndarray,
        y: np.ndarray,
        vjp: bool,
        fresh: bool = True,
        count: int = 0,
    ) -> None:
        """``y = f(x)`` (``op`` forward), ``f'(x)`` (derivative) or, with ``vjp``, ``g·f'(x)``;
        ``count``: the thread count where the caller has just asked it (0: asked here)."""
        n = x.size
        apart = y is not x and y is not g  # (asked before the 16-bit views, new objects each)
        if self.raw is not None:
            x, g, y = x.view(self.raw), g.view(self.raw), y.view(self.raw)
            if not self.linear and not vjp and n >= TABLE_FROM:
                table = self.tables.get(op)
                if table is not None or (table := self.lookup_table(op, n)) is not None:
                    # (whole by the entry point where whole() says so, else split as the
                    # member's kernels are: a lookup costs 0.3-0.4 ns an element, about
                    # what theirs do)
                    if whole(n, y.nbytes, self.cost):
                        (self._lookup or self._load_lookup())(x, table, y)
                    else:
                        _spread(n, self.cost, _kernel("lookup"), (Part(x), table, Part(y)), 2)
                    return
        # whether a direct kernel may write y, asked only where a kernel will (a lookup writes
        # from its table, and asking may measure the buffer: host._buffer_pays); a one-pass
        # forward's two kernels are one, so it is not asked
        into = apart and ((self.one_pass and op == "forward") or not aliased(y, x, g))
        plan_key = None
        if n >= WHOLE_BELOW[self.cost] and (count or (count := threads.get_num_threads())) > 1:
            plan_key = ("map", op, n, count, into, y is x, vjp, fresh)
            planned = self._plans.get(plan_key)
            if planned is not None and _unchanged(planned):
                planned[4](*planned[5], x, g, self.aux, y, planned[6], planned[7], vjp)
                return
        if whole(n, y.nbytes, self.cost):
            # one thread, no streaming: the cost of a small call is this and the kernel's
            if into:
                kernel, p = self.direct.get(op) or self.load(op, True)
            else:
                kernel, p = self.buffered.get(op) or self.load(op, False)
            kernel(x, g, self.aux, y, p, 0, False, vjp)
            return
        # (16-bit: raw views, not streamed; smooth members: see STREAM_BYTES)
        stream = self.linear and not self.half and _stream_to(y, x, fresh)
        direct = not stream and into
        kernel, p = (self.direct if direct else self.buffered).get(op) or self.load(op, direct)
        aux = self.aux
        chunks = _chunks(n, self.cost)
        if len(chunks) == 1:
            kernel(x, g, aux, y, p, 0, stream, vjp)
            return
        key = ("map", op, direct, stream, vjp)
        if not self._launch(key, chunks, (x, g, aux, y, p, stream, vjp)):
            args = (Part(x), Part(g), aux, Part(y), p, START, stream, vjp)
            self._split(key, n, self.cost, kernel, args, x.itemsize, chunks)
        may_stream = self.linear and not self.half and y is not x
        self._plan(plan_key, key, chunks, p, stream, fresh and may_stream, y.nbytes, True)

    def _launch(self, key: tuple[Any, ...], chunks: Any, values: tuple[Any, ...]) -> bool:
        """Make a split call as the same kind of call on the same chunks was last made on the
        OpenMP team, straight through its launcher (``values``: the arrays and scalars in the
        layout's order); False where there is none to repeat. (The general path's Python,
        arguments, layout and team lookups, cost about 2.5 µs a split call: relu out= at
        140,000 float32 elements on 2 threads took 12.2 µs against PyTorch's 7.7.)"""
        ready = self._ready.get(key)
        if ready is None or ready[0] is not chunks or ready[1] != team.generation[0]:
            return False
        ready[2](*ready[3], *values)
        return True

    def _plan(
        self,
        plan_key: tuple[Any, ...] | None,
        key: tuple[Any, ...],
        chunks: Any,
        p: np.ndarray,
        stream: bool,
        fresh: bool,
        nbytes: int,
        cached: bool,
    ) -> None:
        """Keep the split call just made on the team (``key``, as :meth:`_launch` has it) under
        ``plan_key``: the call's kind, size, thread count, how its output lies (apart, in
        place) and whether it is fresh. Nothing else that its plan is made from changes in a
        process but what :func:`_unchanged` asks, so the next such call launches it straight
        away, except whether a ``fresh`` output that :func:`_large` takes (``nbytes``,
        ``cached``) is streamed, which its pages decide at each call (:func:`_stream_to`):
        those are not kept. The planning (:func:`whole`, :func:`_stream_to`, :func:`_chunks`,
        :meth:`_launch`) cost about 2 µs of Python a call (relu out= on 2^17 float32 elements,
        2 threads, AMD EPYC, in one process: 10.8 µs without a kept plan, 9.1 with it)."""
        ready = self._ready.get(key)
        if (
            plan_key is None
            or ready is None
            or ready[0] is not chunks
            or ready[1] != team.generation[0]  # (a launch prepared before a fork: not here)
            or len(chunks) < 2
            or (fresh and _large(nbytes, cached))
        ):
            return
        plan = (ready[1], PIECES_TEAM, STREAM_FLOOR, _stream_found, ready[2], ready[3], p, stream)
        if not _unchanged(plan):  # (something pinned: planned each call)
            return
        if len(self._plans) >= 256:
            self._plans.clear()
        self._plans[plan_key] = plan

    def _split(
        self,
        key: tuple[Any, ...],
        n: int,
        cost: int,
        kernel: Any,
        args: tuple[Any, ...],
        itemsize: int,
        chunks: Any,
    ) -> None:
        """A split call the general way (:func:`_spread`), keeping what :meth:`_launch` needs
        to repeat it where it ran on the team."""
        compiled, kinds = self._layout(key, args)
        _spread(n, cost, kernel, args, itemsize, compiled, chunks, kinds)
        if kinds is None:
            return
        bounds, count = _bounds_of(chunks)
        found = team.prepared(compiled, kinds, bounds, count)
        if found is not None:
            self._ready[key] = (chunks, team.generation[0], *found)

    def _layout(self, key: tuple[Any, ...], args: tuple[Any, ...]) -> tuple[Any, Any]:
        """The Numba dispatcher of a split call's kernel and the team's layout of its ``args``,
        found once per kind of call (``key``): the arrays' dtypes are this object's, so the
        layout does not change."""
        found = self._layouts.get(key)
        if found is None:
            if key[0] == "map":
                compiled = _kernel("map", self.member, self.codes_of[key[1]], key[2])
            elif key[0] == "mask_forward":
                compiled = _kernel("mask_forward", self.member, self.bits, key[1])
            else:
                compiled = _kernel("mask_backward", self.bits, 0, self.half)
            found = self._layouts[key] = (compiled, team.layout(compiled, args))
        return found

    def _load_forward(self, direct: bool) -> Any:
        e, m = self._element, np.zeros(1, np.uint8)
        kernel = _kernel("mask_forward", self.member, self.bits, direct)
        args = (e, self.aux, e, m, self.mask_p, self.codes, 0, False)
        loaded = self._mask_forward[direct] = _entry_point(kernel, args)
        return loaded

    def _load_backward(self) -> Any:
        e, m = self._element, np.zeros(1, np.uint8)
        kernel = _kernel("mask_backward", self.bits, 0, self.half)
        self._mask_backward = _entry_point(kernel, (e, m, self.aux, e, self.table, 0, False))
        return self._mask_backward

    def forward(self, x: np.ndarray, y: np.ndarray, mask: np.ndarray, fresh: bool = True) -> None:
        """The mask path: ``y = f(x)`` and ``mask`` = the packed codes of x."""
        n = x.size
        apart = y is not x
        if self.raw is not None:
            x, y = x.view(self.raw), y.view(self.raw)
        plan_key = None
        if n >= WHOLE_BELOW[LINEAR] and (count := threads.get_num_threads()) > 1:
            plan_key = ("mask_forward", n, count, apart, fresh)
            planned = self._plans.get(plan_key)
            if planned is not None and _unchanged(planned):
                planned[4](*planned[5], x, self.aux, y, mask, planned[6], self.codes, planned[7])
                return
        if whole(n, y.nbytes, True):
            direct = apart
            kernel = self._mask_forward.get(direct) or self._load_forward(direct)
            kernel(x, self.aux, y, mask, self.mask_p, self.codes, 0, False)
            return
        # Only the one-pass kernels stream: the others would write through their block buffer,
        # which cost more than it saved (general_relu at 2^24, 1 / 2 threads: float32 13.7 /
        # 7.4 ms streamed against 12.8 / 6.5, float64 26.2 / 14.4 against 22.3 / 10.9)
        # (``apart``, not ``_stream_to``'s ``y is x``: 16-bit views of one array are two)
        stream = self.one_pass and apart and _stream_to(y, x, fresh, not fresh)
        direct = not stream and apart
        kernel = self._mask_forward.get(direct) or self._load_forward(direct)
        aux, p, codes, bits = self.aux, self.mask_p, self.codes, self.bits
        chunks = _chunks(n, True)
        if len(chunks) == 1:
            kernel(x, aux, y, mask, p, codes, 0, stream)
            return
        key = ("mask_forward", direct, stream)
        if not self._launch(key, chunks, (x, aux, y, mask, p, codes, stream)):
            args = (Part(x), aux, Part(y), Part(mask, bits), p, codes, START, stream)
            self._split(key, n, True, kernel, args, x.itemsize, chunks)
        may_stream = self.one_pass and apart
        self._plan(plan_key, key, chunks, p, stream, fresh and may_stream, y.nbytes, not fresh)

    def backward(self, g: np.ndarray, mask: np.ndarray, dx: np.ndarray, fresh: bool = True) -> None:
        """The mask path: ``dx = g·f'`` from the packed codes."""
        n = g.size
        apart = dx is not g  # (before the 16-bit views, which are two objects)
        if self.raw is not None:
            g, dx = g.view(self.raw), dx.view(self.raw)
        plan_key = None
        if n >= WHOLE_BELOW[LINEAR] and (count := threads.get_num_threads()) > 1:
            plan_key = ("mask_backward", n, count, apart, fresh)
            planned = self._plans.get(plan_key)
            if planned is not None and _unchanged(planned):
                planned[4](*planned[5], g, mask, self.aux, dx, planned[6], planned[7])
                return
        kernel = self._mask_backward or self._load_backward()
        if whole(n, dx.nbytes, True):
            kernel(g, mask, self.aux, dx, self.table, 0, False)
            return
        stream = apart and _stream_to(dx, g, fresh, not fresh)
        aux, table, bits = self.aux, self.table, self.bits
        chunks = _chunks(n, True)
        if len(chunks) == 1:
            kernel(g, mask, aux, dx, table, 0, stream)
            return
        key = ("mask_backward", stream)
        if not self._launch(key, chunks, (g, mask, aux, dx, table, stream)):
            args = (Part(g), Part(mask, bits), aux, Part(dx), table, START, stream)
            self._split(key, n, True, kernel, args, g.itemsize, chunks)
        self._plan(plan_key, key, chunks, table, stream, fresh and apart, dx.nbytes, not fresh)


# ---------------------------------------------------------------------------------------------
# The mask path


def _mask_plan(spec: Activation, params: dict[str, Any], work: np.dtype) -> Plan | None:
    """The plan of a mask member whose formula the mask kernels compute (``LINEAR``), or None
    (a new piecewise-linear formula runs the reference mask path until they learn it)."""
    if spec.mask_code is None:
        return None
    the_plan = plan(spec, "forward", params, work)
    return the_plan if the_plan is not None and the_plan.member in _module().LINEAR else None


def mask_bytes(n: int, bits: int) -> int:
    """Bytes of a mask of ``n`` elements at ``bits`` bits each."""
    return -(-n * bits // 8)


def forward_with_mask(
    spec: Activation,
    source: Input,
    params: dict[str, Any],
    bits: int,
    table: np.ndarray,
    out: Any = None,
) -> tuple[Any, Any] | None:
    """``(forward(x), packed codes)`` in one pass, or None if declined.

    ``table`` maps general_relu's pieces (below, between, capped) to codes.
    """
    view = _numpy(source.array)
    if view is None:
        return None
    x, kind = view
    if x.size == 0:
        return None
    work = _work(x.dtype)
    channels = None
    if bits == 1:
        channels = channel_slopes(spec, params, x.shape, x.dtype)
    the_plan = _mask_plan(spec, params, work) if channels is None else None
    if channels is None and the_plan is None:
        return None
    xf = np.ascontiguousarray(x).reshape(-1)
    aux = np.zeros(1, dtype=work)
    if the_plan is not None and the_plan.slopes is not None:
        pattern = the_plan.slopes(x.shape, "C")
        if pattern is None:
            return None
        aux = _periodic(pattern, x.size)
    target = _target(out, x, kind, source.array, "C", (x,))
    if target is None:
        return None
    y = target.flat
    mask_np = np.empty(mask_bytes(x.size, bits), dtype=np.uint8)
    if channels is not None:
        channels_forward(channels, xf, y, mask_np)
        return _with_mask(target.finish(y.reshape(x.shape)), mask_np, kind)
    assert the_plan is not None
    p = the_plan.p.copy()
    p[7] = 1.0 if (_formula_key(spec, params) == "rrelu" and _noisy(params)) else 0.0
    # 16-bit floats as their raw bits: the mask kernels widen and round back in their one pass
    xr, yr, _, finish = _operands(xf, y, None, True)
    # as Calls.forward: only the one-pass kernels stream (p[7], the NaN-is-one code, is set
    # only for rrelu in training, a per-element-slopes member, never one of them)
    one_pass = the_plan.member in _module().ONE_PASS
    stream = one_pass and _streams(y, np.may_share_memory(y, xf))
    kernel = _kernel("mask_forward", the_plan.member, bits, not stream and _disjoint(yr, xr))
    codes = table.astype(np.int64)

    args = (Part(xr), aux, Part(yr), Part(mask_np, bits), p, codes, START, stream)
    _spread(x.size, True, kernel, args, xr.itemsize)
    if finish is not None:
        finish()
    return _with_mask(target.finish(y.reshape(x.shape)), mask_np, kind)


def channels_map(channels: Channels, x: np.ndarray, y: np.ndarray) -> None:
    """prelu's forward with ``channels``' slopes, in one pass: ``x`` and ``y`` flat, C order,
    ``y`` ``x`` itself or disjoint from it. (64 slopes along axis 1 of 2^20 float32 elements,
    out=, 1 thread, Xeon: by the kernels of per-element slopes 0.28 of a copy.) 16-bit floats
    are taken as their raw bits."""
    if channels.aux is None:  # (a period longer than PATTERN: relukit.nn's fused kernel)
        channels_forward(channels, x, y, np.empty(mask_bytes(x.size, 1), dtype=np.uint8))
        return
    x, y = _raw(x), _raw(y)
    aux, p = channels.aux, channels.p
    _channel_call(
        _kernel("map", _module().SLOPES, _module().FORWARD, False),
        x,
        y,
        (x, x, aux, y, p, 0, False, False),
        lambda stream: (Part(x), Part(x), aux, Part(y), p, START, stream, False),
    )


def _channel_call(
    kernel: Any,
    x: np.ndarray,
    y: np.ndarray,
    whole_args: tuple[Any, ...],
    parts: Callable[[bool], tuple[Any, ...]],
) -> None:
    """A channel kernel's call from ``x`` into ``y``: with ``whole_args`` where it runs whole
    (:func:`whole`: one thread, unstreamed, no plan, as :class:`Calls`' first routes), else
    over the chunks of :func:`_spread` with ``parts(stream)``."""
    if whole(x.size, y.nbytes, LINEAR):
        kernel(*whole_args)
        return
    stream = _streams(y, np.may_share_memory(y, x))
    _spread(x.size, LINEAR, kernel, parts(stream), x.itemsize)


def channels_forward(channels: Channels, x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> None:
    """prelu's forward and mask (one bit per element, ``x > 0``) with ``channels``' slopes: ``x``
    and ``y`` flat, C order, ``y`` ``x`` itself or disjoint from it (16-bit floats: their raw
    bits, the slopes in float32)."""
    if channels.aux is None:  # (a period longer than PATTERN; not for 16-bit floats)
        from relukit.kernels.cpu import slopes as fused

        part, words = one_bit_mask(mask, x.size)
        # (rest, which keep=False leaves unwritten, of y: x may be read-only)
        args = (Part(x), START, *channels.layout, Part(y), words, part, y[:0], False)
        _spread(x.size, LINEAR, fused.prelu_forward, args, x.itemsize)
        return
    x, y = _raw(x), _raw(y)
    aux, p, codes = channels.aux, channels.p, _NO_CODES
    _channel_call(
        _kernel("mask_forward", _module().SLOPES, 1, False),
        x,
        y,
        (x, aux, y, mask, p, codes, 0, False),
        lambda stream: (Part(x), aux, Part(y), Part(mask, 1), p, codes, START, stream),
    )


def channels_backward(channels: Channels, g: np.ndarray, mask: np.ndarray, dx: np.ndarray) -> None:
    """``g·prelu'`` from the mask of :func:`channels_forward`: ``g`` and ``dx`` flat, C order,
    ``dx`` ``g`` itself or disjoint from it (16-bit floats: their raw bits, each product
    formed in float32 and rounded back once)."""
    if channels.aux is None:  # (a period longer than PATTERN; not for 16-bit floats)
        from relukit.kernels.cpu import slopes as fused

        part, words = one_bit_mask(mask, g.size)
        args = (Part(g), START, *channels.layout, words, part, g[:0], Part(dx), dx[:0], False)
        _spread(g.size, LINEAR, fused.prelu_backward, args, g.itemsize)
        return
    half = g.itemsize == 2
    g, dx = _raw(g), _raw(dx)
    aux, table = channels.aux, channels.table
    _channel_call(
        _kernel("mask_backward", 1, _module().CHANNELS, half),
        g,
        dx,
        (g, mask, aux, dx, table, 0, False),
        lambda stream: (Part(g), Part(mask, 1), aux, Part(dx), table, START, stream),
    )


_NO_CODES = np.zeros(3, dtype=np.int64)


def _with_mask(result: Any, mask_np: np.ndarray, kind: str) -> tuple[Any, Any]:
    """``(result, mask)``, the mask a tensor where the input was one."""
    if kind == "torch":
        import torch

        return result, torch.from_numpy(mask_np)
    return result, mask_np


def _formula_key(spec: Activation, params: dict[str, Any]) -> str | None:
    packed = formula(spec, params)
    return None if packed is None else packed[0]


def per_element_slopes(spec: Activation, params: dict[str, Any], wide: bool) -> bool:
    """Does the mask path's code 0 take a per-element slope in float64 (``wide``) or float32:
    prelu but that of one slope (:func:`_one_slope`), rrelu in training?"""
    key = _formula_key(spec, params)
    if key == "prelu":
        return not _one_slope(params, np.dtype(np.float64 if wide else np.float32))
    return key in PER_ELEMENT


def _noisy(params: dict[str, Any]) -> bool:
    """rrelu in training draws per-element slopes (PyTorch: only if upper − lower > 1e-6)."""
    return params["upper"] - params["lower"] > 1e-6


def backward_from_mask(
    spec: Activation,
    grad: Input,
    mask: Any,
    params: dict[str, Any],
    bits: int,
    table: np.ndarray,
    slopes: bool,
    out: Any = None,
) -> Any:
    """``grad_out · f'`` from the packed codes, or None if declined.

    ``table`` holds the derivative on each code (working dtype); with ``slopes`` code 0 takes
    the per-element slope (prelu, rrelu in training) instead.
    """
    view = _numpy(grad.array)
    mview = _numpy_mask(mask)
    if view is None or mview is None or view[1] != mview[1]:
        return None
    g, kind = view
    if g.size == 0:
        return None
    work = _work(g.dtype)
    aux = np.zeros(1, dtype=work)
    channels = None
    if slopes and bits == 1:
        channels = channel_slopes(spec, params, g.shape, g.dtype)
    if slopes and channels is None:
        the_plan = _mask_plan(spec, params, work)
        if the_plan is None or the_plan.slopes is None:
            return None
        pattern = the_plan.slopes(g.shape, "C")
        if pattern is None:
            return None
        aux = _periodic(pattern, g.size)
    gf = np.ascontiguousarray(g).reshape(-1)
    m = mview[0]
    target = _target(out, g, kind, grad.array, "C", (g, m))
    if target is None:
        return None
    dx = target.flat
    if channels is not None:
        channels_backward(channels, gf, m, dx)
        return target.finish(dx.reshape(g.shape))
    full = np.zeros(4, dtype=work)
    full[: table.size] = table
    gr, dr, _, finish = _operands(gf, dx, None, True)  # 16-bit: raw bits, one pass
    stream = _streams(dx, np.may_share_memory(dx, gf))
    kernel = _kernel("mask_backward", bits, int(slopes), dx.itemsize == 2)

    args = (Part(gr), Part(m, bits), aux, Part(dr), full, START, stream)
    _spread(g.size, True, kernel, args, gr.itemsize)
    if finish is not None:
        finish()
    return target.finish(dx.reshape(g.shape))


def _numpy_mask(mask: Any) -> tuple[np.ndarray, str] | None:
    if type(mask) is np.ndarray:
        return (np.ascontiguousarray(mask), "numpy") if mask.dtype == np.uint8 else None
    if type(mask).__module__.startswith("torch"):
        import torch

        if (
            isinstance(mask, torch.Tensor)
            and mask.device.type == "cpu"
            and mask.dtype == torch.uint8
            and not mask.requires_grad
        ):
            return np.ascontiguousarray(mask.numpy()), "torch"
    return None


def split(x: np.ndarray, mask: np.ndarray, rest: np.ndarray, nan_passes: bool, keep: bool) -> int:
    """Pack the codes ``x > 0`` (``not x <= 0`` with ``nan_passes``) of 1-D ``x`` into
    ``mask`` and, with ``keep``, copy the elements of code 0 into ``rest``; their count."""
    return int(_kernel("split")(x, mask, rest, nan_passes, keep))


def expand(mask: np.ndarray, values: np.ndarray, fill: float, out: np.ndarray) -> None:
    """``out = fill`` where the mask's bit is 1, the next of ``values`` where it is 0."""
    _kernel("expand")(mask, values, out.dtype.type(fill), out)


def scale(src: np.ndarray, mask: np.ndarray, slopes: np.ndarray, out: np.ndarray) -> None:
    """``out = src`` where the mask's bit is 1, ``src·`` the next slope where it is 0."""
    _kernel("scale")(src, mask, slopes, out)


def stream_copy(x: np.ndarray, y: np.ndarray) -> None:
    """``y[...] = x`` (same shape and dtype, C-contiguous) with the kernels' threads and, from
    :func:`stream_bytes`, streaming stores: the copy ``relukit bench`` takes as a limit."""
    kernel = _kernel("copy")
    xr, yr = _raw(x.reshape(-1)), _raw(y.reshape(-1))
    stream = _streams(y, False)

    _spread(xr.size, True, kernel, (Part(xr), Part(yr), stream), xr.itemsize)


def math_function(name: str, x: np.ndarray) -> np.ndarray:
    """The float32 kernels' own float64 ``name`` (exp, expm1, log1p, phi or tanh) of an
    array, as float64."""
    k = _module()
    code = {"exp": k.EXP, "expm1": k.EXPM1, "log1p": k.LOG1P, "phi": k.PHI, "tanh": k.TANH_FUNCTION}
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1)
    y = np.empty_like(flat)
    _kernel("function", code[name])(flat, y)
    return y.reshape(np.shape(x))


# ---------------------------------------------------------------------------------------------
# Compilation


def warm_up(dtypes: tuple[Any, ...] = (np.float32,)) -> dict[str, float]:
    """Load (or compile) the kernels every member needs for ``dtypes``; seconds per step.

    The first call on a machine compiles (Numba writes its cache next to this module, or under
    ``NUMBA_CACHE_DIR``); later processes load the compiled code from that cache.
    """
    import relukit

    timings: dict[str, float] = {}
    start = time.perf_counter()
    import numba  # noqa: F401

    timings["import numba"] = time.perf_counter() - start
    x = np.linspace(-3, 3, 256)
    for spec in relukit.family():
        if not spec.elementwise:
            continue
        function = relukit.get(spec.name)
        for dtype in dtypes:
            xt = x.astype(dtype)
            begin = time.perf_counter()
            source = Input(xt, np, "float", False)
            params = function.params
            for op in ("forward", "derivative", "vjp"):
                run(spec, op, source, params, grad=xt)
            timings[f"{spec.name} {np.dtype(dtype).name}"] = time.perf_counter() - begin
    return timings
