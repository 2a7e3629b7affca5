"""``relukit bench``: the kernels' speed as a fraction of what the machine's memory can move.

Elementwise activations are memory-bound, so each measurement is set against the machine's own
limit for the same bytes, timed side by side with it (in the same interleaved rounds as each
op, so that a noisy moment of the machine slows both): a copy (the best of ``np.copyto``,
``torch.Tensor.copy_`` and relukit's streaming-store copy) for ops that write a new array, and an
in-place read-modify-write (the best of ``np.negative(z, out=z)`` and ``z.neg_()``) for ops
that write over their input (the limit's own rows are its first timing, before the members').
In place, a member that changes its own output (``f(f(x)) ≠ f(x)``: gelu, silu, elu,
leaky_relu, …) would otherwise be timed on its output of its output, and so on: values that
shrink into subnormals, which cost Intel cores a microcode assist per element (gelu in place on
2^16 float32, Xeon: 515 µs against 42 out=). For those, every in-place timer (relukit's, the
peers', the limit's) first copies x back into the array, and the best time of that copy alone,
timed in the same rounds, is taken off each.
Each op is also timed in its peers: NumPy, PyTorch on the CPU (same thread count), and numexpr
and JAX when they are installed.

Every implementation of a (member, op, dtype, size) is timed in turn, then again, ``repeats``
times (interleaved, so that all see the same machine state), and the best time is kept; a time
is the mean over enough back-to-back calls to last at least ``min_time``. Bytes count what the
op must read and write (``forward``: ``2·n·itemsize``; the mask: ``n·bits/8``).

>>> from relukit.bench import BenchConfig, run
>>> report = run(BenchConfig(sizes=(1024,), members=("relu",), ops=("forward_out",), repeats=1,
...                          min_time=1e-4, compile_cost=False))
>>> sorted({row["kind"] for row in report.rows})
['limit', 'peer', 'relukit']
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import relukit
from relukit import threads
from relukit.errors import UserValueError
from relukit.family import lookup
from relukit.kernels import dispatch

MEMBERS = ("relu", "leaky_relu", "relu6", "elu", "gelu", "silu")
OPS = (
    "forward",
    "forward_out",
    "forward_inplace",
    "derivative",
    "forward_with_mask",
    "backward_from_mask",
)
MASKED = tuple(name for name in MEMBERS if lookup(name).mask_code is not None)
DTYPES = ("float32", "float64", "bfloat16", "float16")
QUICK_SIZES = (2**10, 2**16)
FULL_SIZES = tuple(2**k for k in range(10, 27, 2))

Timer = Callable[[], Any]


@dataclass(frozen=True)
class BenchConfig:
    """What ``relukit bench`` measures (see the module docstring)."""

    sizes: tuple[int, ...] = FULL_SIZES
    dtypes: tuple[str, ...] = ("float32",)
    members: tuple[str, ...] = MEMBERS
    ops: tuple[str, ...] = OPS
    repeats: int = 5
    min_time: float = 0.02
    threads: int | None = None
    json_path: str | None = None
    png_path: str | None = None
    compile_cost: bool = True

    @classmethod
    def quick(cls, **changes: Any) -> BenchConfig:
        """A few seconds: two sizes, float32, relu and gelu, two repeats."""
        base = {
            "sizes": QUICK_SIZES,
            "members": ("relu", "gelu"),
            "repeats": 2,
            "min_time": 0.002,
            "compile_cost": False,
        }
        return cls(**{**base, **changes})

    @classmethod
    def from_options(
        cls,
        *,
        quick: bool = False,
        sizes: str | None = None,
        dtypes: str | None = None,
        repeats: int | None = None,
        json_path: str | None = None,
        png_path: str | None = None,
        threads: int | None = None,
    ) -> BenchConfig:
        """The configuration the command line describes: ``sizes`` like ``"2^10,2^20,5000"``,
        ``dtypes`` like ``"float32,bfloat16"``; unset options keep the (quick) defaults."""
        changes: dict[str, Any] = {"json_path": json_path, "png_path": png_path}
        if sizes is not None:
            changes["sizes"] = tuple(_parse_size(s) for s in sizes.split(",") if s.strip())
        if dtypes is not None:
            changes["dtypes"] = tuple(d.strip() for d in dtypes.split(",") if d.strip())
        if repeats is not None:
            changes["repeats"] = repeats
        if threads is not None:
            changes["threads"] = threads
        config = cls.quick(**changes) if quick else cls(**changes)
        config.check()
        return config

    def check(self) -> None:
        """ValueError naming the bad field, TypeError for wrong kinds."""
        if not self.sizes or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.sizes
        ):
            raise UserValueError(f"relukit bench: sizes={self.sizes!r} must be integers >= 1")
        for name in self.dtypes:
            if name not in DTYPES:
                raise UserValueError(f"relukit bench: dtype {name!r} is not one of {DTYPES}")
        for name in self.members:
            if name not in MEMBERS:
                raise UserValueError(f"relukit bench: member {name!r} is not one of {MEMBERS}")
        for name in self.ops:
            if name not in OPS:
                raise UserValueError(f"relukit bench: op {name!r} is not one of {OPS}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise UserValueError(f"relukit bench: repeats={self.repeats!r} must be an integer >= 1")
        if not self.min_time > 0:
            raise UserValueError(f"relukit bench: min_time={self.min_time!r} must be > 0")
        if self.threads is not None and (
            isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1
        ):
            raise UserValueError(f"relukit bench: threads={self.threads!r} must be an integer >= 1")


def _parse_size(text: str) -> int:
    text = text.strip()
    try:
        if "^" in text:
            base, exponent = text.split("^", 1)
            return int(base) ** int(exponent)
        return int(text)
    except ValueError:
        raise UserValueError(
            f"relukit bench: size {text!r} is not an integer or a power like 2^20"
        ) from None


@dataclass
class Report:
    """The rows of a run, the machine they came from, and the tables to print."""

    config: BenchConfig
    machine: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[dict[str, Any]] = field(default_factory=list)
    compile: dict[str, float] = field(default_factory=dict)

    def table(self) -> Any:
        """A rich Table of relukit's rows (smallest, middle and largest size)."""
        from rich.table import Table

        sizes = sorted({row["size"] for row in self.rows})
        shown = {sizes[0], sizes[len(sizes) // 2], sizes[-1]}
        table = Table(
            title=f"relukit bench ({self.machine['cpu']}, {self.machine['threads']} threads)"
        )
        for column in (
            "member",
            "op",
            "dtype",
            "n",
            "time",
            "GB/s",
            "Melem/s",
            "× limit",
            "best peer",
            "× peer",
        ):
            table.add_column(column, justify="left" if column in ("member", "op") else "right")
        for row in self.rows:
            if row["kind"] != "relukit" or row["size"] not in shown:
                continue
            table.add_row(
                row["member"],
                row["op"],
                row["dtype"],
                _size(row["size"]),
                _seconds(row["seconds"]),
                f"{row['gbps']:.1f}",
                f"{row['elements_per_s'] / 1e6:.0f}",
                _ratio(row["ratio_limit"]),
                row["best_peer"] or "-",
                _ratio(row["ratio_peer"]),
            )
        return table

    def target_table(self) -> Any:
        """A rich Table of the issue's targets that this run measured."""
        from rich.table import Table

        table = Table(title="targets")
        for column in ("target", "measured", "needed", "met"):
            table.add_column(column)
        for target in self.targets:
            table.add_row(
                target["target"],
                f"{target['ratio']:.2f}",
                f"{target['needed']:.2f}",
                "yes" if target["met"] else "NO",
            )
        return table

    def to_json(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "machine": self.machine,
            "compile": self.compile,
            "targets": self.targets,
            "rows": self.rows,
        }


# ---------------------------------------------------------------------------------------------
# Machine


def machine_info() -> dict[str, Any]:
    """CPU model, cores, library versions, date and load average."""
    import numba
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in text.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "cpu": cpu,
        "cores": threads.cores(),
        "threads": threads.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_before": _load(),
    }


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# Timing


WARM_CALLS = 3


def _calibrate(fn: Timer, min_time: float) -> int:
    """How many back-to-back calls last at least ``min_time``, after :data:`WARM_CALLS` calls
    untimed. (A route's first calls may do once what later ones do not: the first call of a
    dtype makes its kernels, the second its ufunc that splits calls and measures that ufunc's
    grain, some 10 ms. With one call before, that second call alone outlasted ``--quick``'s
    2 ms, the count stayed 1, and the op was timed one call at a time, each after the others'
    timers had let the OpenMP team fall asleep: gelu allocating on 2^16 float32 elements, AMD
    EPYC, 54-72 µs against 13-16 in a batch.)"""
    for _ in range(WARM_CALLS):
        fn()
    count = 1
    while True:
        start = time.perf_counter()
        for _ in range(count):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_time or count >= 1 << 20:
            return count
        count = max(count * 2, int(count * min_time / max(elapsed, 1e-9)) + 1)


def _time(fn: Timer, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - start) / count


def _best(timers: dict[str, Timer], repeats: int, min_time: float) -> dict[str, float]:
    """The best per-call time of each timer, over ``repeats`` interleaved rounds."""
    counts = {name: _calibrate(fn, min_time) for name, fn in timers.items()}
    best = {name: math.inf for name in timers}
    for _ in range(repeats):
        for name, fn in timers.items():
            best[name] = min(best[name], _time(fn, counts[name]))
    return best


# ---------------------------------------------------------------------------------------------
# The implementations


class Arrays:
    """The arrays of one (dtype, size), shared by every member and op."""

    def __init__(self, dtype: str, n: int) -> None:
        import ml_dtypes
        import torch

        self.dtype = dtype
        self.np_dtype = np.dtype(ml_dtypes.bfloat16) if dtype == "bfloat16" else np.dtype(dtype)
        rng = np.random.default_rng(n)
        self.n = n
        self.x = rng.standard_normal(n).astype(self.np_dtype)
        self.g = rng.standard_normal(n).astype(self.np_dtype)
        self.y = np.empty_like(self.x)
        self.z = self.x.copy()
        self.y.fill(0)
        self.torch_dtype = getattr(torch, dtype)
        self.tx = _torch(self.x, self.torch_dtype)
        self.ty = _torch(self.y, self.torch_dtype)
        self.tz = _torch(self.z, self.torch_dtype)
        self.tg = _torch(self.g, self.torch_dtype)
        self.tb = torch.empty(n, dtype=torch.bool)
        self.ones = torch.ones(n, dtype=self.torch_dtype)

    @property
    def itemsize(self) -> int:
        return self.np_dtype.itemsize


def _torch(array: np.ndarray, dtype: Any) -> Any:
    import torch

    if array.dtype.itemsize == 2 and array.dtype != np.float16:
        return torch.from_numpy(array.view(np.int16)).view(dtype)
    return torch.from_numpy(array)


def _numpy_ok(a: Arrays) -> bool:
    return a.dtype != "bfloat16"


def limits(a: Arrays) -> dict[str, dict[str, Timer]]:
    """The machine's limit: copies and in-place read-modify-writes of the same arrays."""
    from relukit.kernels import cpu

    copies: dict[str, Timer] = {
        "np.copyto": lambda: np.copyto(a.y, a.x),
        "torch copy_": lambda: a.ty.copy_(a.tx),
        "relukit streaming copy": lambda: cpu.stream_copy(a.x, a.y),
    }
    rmw: dict[str, Timer] = {"torch neg_": lambda: a.tz.neg_()}
    if _numpy_ok(a):
        rmw["np.negative in place"] = lambda: np.negative(a.z, out=a.z)
    return {"copy": copies, "rmw": rmw}


def relukit_timer(member: str, op: str, a: Arrays, mask: Any) -> Timer | None:
    function = relukit.get(member)
    if op == "forward":
        return lambda: function(a.x)
    if op == "forward_out":
        return lambda: function(a.x, out=a.y)
    if op == "forward_inplace":
        return lambda: function(a.z, out=a.z)
    if op == "derivative":
        return lambda: function.derivative(a.x, out=a.y)
    if member not in MASKED:
        return None
    if op == "forward_with_mask":
        return lambda: function.forward_with_mask(a.x, out=a.y)
    return lambda: function.backward_from_mask(a.g, mask, out=a.y)


def peer_timers(member: str, op: str, a: Arrays) -> dict[str, Timer]:
    """What one would write without relukit, in NumPy, PyTorch (numexpr, JAX if installed)."""
    import torch
    import torch.nn.functional as F

    peers: dict[str, Timer] = {}
    x, y, z, tx, ty, tz = a.x, a.y, a.z, a.tx, a.ty, a.tz
    torch_name = lookup(member).torch_name
    if op == "forward" and torch_name is not None:  # the registry's torch peer
        function = getattr(F, torch_name)
        peers[f"F.{torch_name}"] = lambda: function(tx)
    aten = torch.ops.aten
    np_ok = _numpy_ok(a)
    if member == "relu":
        if np_ok:
            peers.update(
                {
                    "forward": {
                        "np.maximum": lambda: np.maximum(x, 0),
                        "np.where": lambda: np.where(x > 0, x, 0),
                    },
                    "forward_out": {"np.maximum(out=)": lambda: np.maximum(x, 0, out=y)},
                    "forward_inplace": {"np.maximum(out=x)": lambda: np.maximum(z, 0, out=z)},
                    "derivative": {"np.greater(out=)": lambda: np.greater(x, 0, out=y)},
                    "forward_with_mask": {
                        "np.maximum + np.packbits": lambda: (
                            np.maximum(x, 0, out=y),
                            np.packbits(x > 0, bitorder="little"),
                        )
                    },
                }.get(op, {})
            )
        peers.update(
            {
                "forward_out": {"torch.clamp_min(out=)": lambda: torch.clamp_min(tx, 0, out=ty)},
                "forward_inplace": {"torch.relu_": lambda: torch.relu_(tz)},
                "derivative": {
                    "aten.threshold_backward": lambda: aten.threshold_backward(a.ones, tx, 0)
                },
                "forward_with_mask": {
                    "torch.clamp_min(out=) + bool mask": lambda: (
                        torch.clamp_min(tx, 0, out=ty),
                        torch.gt(tx, 0, out=a.tb),
                    )
                },
                "backward_from_mask": {
                    "aten.threshold_backward": lambda: aten.threshold_backward(a.tg, ty, 0)
                },
            }.get(op, {})
        )
    elif member == "leaky_relu":
        if np_ok and op == "forward":
            peers["np.where"] = lambda: np.where(x > 0, x, x * 0.01)
        peers.update(
            {
                "forward_out": {
                    "leaky_relu(out=)": lambda: torch.ops.aten.leaky_relu.out(tx, 0.01, out=ty)
                },
                "forward_inplace": {"F.leaky_relu_": lambda: F.leaky_relu_(tz, 0.01)},
                "derivative": {
                    "aten.leaky_relu_backward": lambda: aten.leaky_relu_backward(
                        a.ones, tx, 0.01, False
                    )
                },
                "forward_with_mask": {
                    "leaky_relu(out=) + bool mask": lambda: (
                        torch.ops.aten.leaky_relu.out(tx, 0.01, out=ty),
                        torch.gt(tx, 0, out=a.tb),
                    )
                },
                "backward_from_mask": {
                    "aten.leaky_relu_backward": lambda: aten.leaky_relu_backward(
                        a.tg, tx, 0.01, False
                    )
                },
            }.get(op, {})
        )
    elif member == "relu6":
        if np_ok:
            peers.update(
                {
                    "forward": {"np.clip": lambda: np.clip(x, 0, 6)},
                    "forward_out": {"np.clip(out=)": lambda: np.clip(x, 0, 6, out=y)},
                    "forward_inplace": {"np.clip(out=x)": lambda: np.clip(z, 0, 6, out=z)},
                }.get(op, {})
            )
        peers.update(
            {
                "forward_out": {"torch.clamp(out=)": lambda: torch.clamp(tx, 0, 6, out=ty)},
                "forward_inplace": {"torch.clamp_": lambda: torch.clamp_(tz, 0, 6)},
                "derivative": {
                    "aten.hardtanh_backward": lambda: aten.hardtanh_backward(a.ones, tx, 0, 6)
                },
                "forward_with_mask": {
                    "torch.clamp(out=) + bool mask": lambda: (
                        torch.clamp(tx, 0, 6, out=ty),
                        torch.gt(tx, 0, out=a.tb),
                    )
                },
                "backward_from_mask": {
                    "aten.hardtanh_backward": lambda: aten.hardtanh_backward(a.tg, tx, 0, 6)
                },
            }.get(op, {})
        )
    else:
        peers.update(_smooth_peers(member, op, a, np_ok))
    peers.update(_optional_peers(member, op, a))
    return peers


def _smooth_peers(member: str, op: str, a: Arrays, np_ok: bool) -> dict[str, Timer]:
    import scipy.special
    import torch
    import torch.nn.functional as F

    x, y, tx, ty, tz = a.x, a.y, a.tx, a.ty, a.tz
    aten = torch.ops.aten
    table: dict[str, dict[str, dict[str, Timer]]] = {
        "elu": {
            "forward_out": {"elu(out=)": lambda: aten.elu.out(tx, out=ty)},
            "forward_inplace": {"F.elu_": lambda: F.elu_(tz)},
            "derivative": {
                "aten.elu_backward": lambda: aten.elu_backward(a.ones, 1.0, 1.0, 1.0, False, tx)
            },
        },
        "gelu": {
            "forward_out": {"gelu(out=)": lambda: aten.gelu.out(tx, out=ty)},
            "derivative": {"aten.gelu_backward": lambda: aten.gelu_backward(a.ones, tx)},
        },
        "silu": {
            "forward_out": {"silu(out=)": lambda: aten.silu.out(tx, out=ty)},
            "forward_inplace": {"F.silu(inplace)": lambda: F.silu(tz, inplace=True)},
            "derivative": {"aten.silu_backward": lambda: aten.silu_backward(a.ones, tx)},
        },
    }
    peers = dict(table[member].get(op, {}))
    if np_ok and op == "forward":
        numpy_forward = {
            "elu": lambda: np.where(x > 0, x, np.expm1(x)),
            "gelu": lambda: x * 0.5 * (1 + scipy.special.erf(x * np.sqrt(0.5))),
            "silu": lambda: x / (1 + np.exp(-x)),
        }
        peers["numpy/scipy"] = numpy_forward[member]
    if np_ok and op == "forward_out" and member == "silu":

        def silu_out() -> None:
            np.negative(x, out=y)
            np.exp(y, out=y)
            np.add(y, 1, out=y)
            np.divide(x, y, out=y)

        peers["numpy (out=)"] = silu_out
    return peers


def _optional_peers(member: str, op: str, a: Arrays) -> dict[str, Timer]:
    peers: dict[str, Timer] = {}
    if op != "forward" or not _numpy_ok(a):
        return peers
    try:
        import numexpr
    except ImportError:
        numexpr = None
    if numexpr is not None and member in ("relu", "silu"):
        expression = {"relu": "where(x > 0, x, 0)", "silu": "x / (1 + exp(-x))"}[member]
        peers["numexpr"] = lambda: numexpr.evaluate(expression, local_dict={"x": a.x})
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return peers
    jx = jnp.asarray(a.x)
    function = {
        "relu": jax.nn.relu,
        "leaky_relu": jax.nn.leaky_relu,
        "relu6": jax.nn.relu6,
        "elu": jax.nn.elu,
        "gelu": lambda v: jax.nn.gelu(v, approximate=False),
        "silu": jax.nn.silu,
    }[member]
    compiled = jax.jit(function)
    peers["jax (jit)"] = lambda: compiled(jx).block_until_ready()
    return peers


def op_bytes(op: str, n: int, itemsize: int, bits: int = 1) -> int:
    """Bytes an op must move: read x (or g), write y, and the mask."""
    base = 2 * n * itemsize
    if op in ("forward_with_mask", "backward_from_mask"):
        return base + math.ceil(n * bits / 8)
    return base


# ---------------------------------------------------------------------------------------------
# The run


def run(config: BenchConfig) -> Report:
    """Measure everything ``config`` asks for; write JSON/PNG if asked; return the report.

    The output paths are checked before anything is measured (ValueError: a figure that does
    not end in .png or .svg, or a path that cannot be written)."""
    config.check()
    check_outputs(config)
    context = threads.limit(config.threads) if config.threads else _nothing()
    with context:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(threads.get_num_threads())
        try:
            report = Report(config, machine_info())
            if config.compile_cost:
                report.compile = compile_cost()
            for dtype in config.dtypes:
                for n in config.sizes:
                    _measure(report, config, Arrays(dtype, n))
            report.machine["load_after"] = _load()
        finally:
            torch.set_num_threads(torch_threads)
    report.targets = targets(report.rows)
    if config.json_path:
        Path(config.json_path).write_text(json.dumps(report.to_json(), indent=1), "utf-8")
    if config.png_path:
        plot(report, config.png_path)
    return report


def check_outputs(config: BenchConfig) -> None:
    """ValueError unless ``config``'s JSON and figure paths can be written; nothing is left
    behind."""
    from relukit._outputs import check_file
    from relukit.plot import check_path

    if config.json_path:
        check_file(config.json_path, "--json file")
    if config.png_path:
        check_path(config.png_path)
        check_file(config.png_path, "--png file")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _measure(report: Report, config: BenchConfig, a: Arrays) -> None:
    limit_timers = limits(a)
    flat = {
        f"limit:{kind}:{name}": fn for kind, d in limit_timers.items() for name, fn in d.items()
    }
    limit_best = _best(flat, config.repeats, config.min_time)
    limit_bytes = op_bytes("forward", a.n, a.itemsize)
    for key, seconds in limit_best.items():
        _, kind, name = key.split(":", 2)
        report.rows.append(
            _row("-", kind, a, name, "limit", seconds, 2 * a.n * a.itemsize, None, None, None)
        )
    for member in config.members:
        mask = None
        if member in MASKED:
            with dispatch.forced("auto"):
                _, mask = relukit.get(member).forward_with_mask(a.x)
        for op in config.ops:
            ours = relukit_timer(member, op, a, mask)
            if ours is None:
                continue
            a.z[...] = a.x
            timers = {"relukit": ours}
            peers = peer_timers(member, op, a)
            timers.update({f"peer:{name}": fn for name, fn in peers.items()})
            side = limit_timers["rmw" if op == "forward_inplace" else "copy"]
            timers.update({f"limit:{name}": fn for name, fn in side.items()})
            refreshed = op == "forward_inplace" and not _idempotent(member, a)
            if refreshed:
                timers = {name: _refreshing(a, fn) for name, fn in timers.items()}
                timers["refresh"] = lambda: np.copyto(a.z, a.x)
            best = _best(timers, config.repeats, config.min_time)
            if refreshed:  # each call's own time: less the copy that gave it fresh values
                copy = best.pop("refresh")
                best = {name: max(seconds - copy, 1e-9) for name, seconds in best.items()}
            size = op_bytes(op, a.n, a.itemsize)
            limit = limit_bytes / min(best[f"limit:{name}"] for name in side) / 1e9
            peer_times = {k[5:]: v for k, v in best.items() if k.startswith("peer:")}
            fastest = min(peer_times, key=lambda k: peer_times[k]) if peer_times else None
            for name, seconds in peer_times.items():
                report.rows.append(
                    _row(member, op, a, name, "peer", seconds, size, None, None, limit)
                )
            report.rows.append(
                _row(
                    member,
                    op,
                    a,
                    "relukit",
                    "relukit",
                    best["relukit"],
                    size,
                    fastest,
                    peer_times.get(fastest) if fastest else None,
                    limit,
                )
            )


def _idempotent(member: str, a: Arrays) -> bool:
    """Does relukit's ``member`` give the same bits on its own output of ``a.x``?"""
    function = relukit.get(member)
    once = np.asarray(function(a.x))
    twice = np.asarray(function(once))
    unsigned = np.dtype(f"u{a.itemsize}")
    return bool(np.array_equal(once.view(unsigned), twice.view(unsigned)))


def _refreshing(a: Arrays, fn: Timer) -> Timer:
    """``fn`` on fresh values: ``a.z`` (and ``a.tz``, its view) copied back from ``a.x`` first."""

    def timer() -> Any:
        np.copyto(a.z, a.x)
        return fn()

    return timer


def _row(
    member: str,
    op: str,
    a: Arrays,
    impl: str,
    kind: str,
    seconds: float,
    size: int,
    peer: str | None,
    peer_seconds: float | None,
    limit_gbps: float | None,
) -> dict[str, Any]:
    gbps = size / seconds / 1e9
    return {
        "member": member,
        "op": op,
        "dtype": a.dtype,
        "size": a.n,
        "impl": impl,
        "kind": kind,
        "seconds": seconds,
        "bytes": size,
        "gbps": gbps,
        "elements_per_s": a.n / seconds,
        "ratio_limit": gbps / limit_gbps if limit_gbps else None,
        "best_peer": peer,
        "ratio_peer": peer_seconds / seconds if peer_seconds else None,
    }


def targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets (float32, largest size; 2^24 for the smooth members; 1,024 for the
    call overhead) that the rows allow to check."""
    f32 = [r for r in rows if r["dtype"] == "float32"]
    if not f32:
        return []
    big = max(r["size"] for r in f32)
    found: list[dict[str, Any]] = []

    def pick(member: str, op: str, size: int, impl: str | None = None) -> dict[str, Any] | None:
        for r in f32:
            same = r["member"] == member and r["op"] == op and r["size"] == size
            if same and ((impl is None and r["kind"] == "relukit") or r["impl"] == impl):
                return r
        return None

    def add(name: str, ratio: float | None, needed: float) -> None:
        if ratio is not None and math.isfinite(ratio):
            found.append({"target": name, "ratio": ratio, "needed": needed, "met": ratio >= needed})

    out = pick("relu", "forward_out", big)
    if out:
        add(f"relu out= vs copy (n={_size(big)})", out["ratio_limit"], 0.9)
    inplace = pick("relu", "forward_inplace", big)
    if inplace:
        add(f"relu in place vs read-modify-write (n={_size(big)})", inplace["ratio_limit"], 0.9)
        torch_inplace = pick("relu", "forward_inplace", big, "torch.relu_")
        if torch_inplace:
            add("relu in place vs torch.relu_", torch_inplace["seconds"] / inplace["seconds"], 1.0)
    alloc = pick("relu", "forward", big)
    if alloc:
        peers = [pick("relu", "forward", big, name) for name in ("np.maximum", "F.relu")]
        times = [p["seconds"] for p in peers if p]
        if times:
            add(
                "relu allocating vs faster of np.maximum, F.relu",
                min(times) / alloc["seconds"],
                1.0,
            )
    for op in ("forward_with_mask", "backward_from_mask"):
        row = pick("relu", op, big)
        if row:
            add(f"relu {op} vs copy", row["ratio_limit"], 0.85)
    mid = 2**24 if any(r["size"] == 2**24 for r in f32) else big
    for member, torch_name in (
        ("gelu", "gelu(out=)"),
        ("silu", "silu(out=)"),
        ("elu", "elu(out=)"),
    ):
        row, peer = pick(member, "forward_out", mid), pick(member, "forward_out", mid, torch_name)
        if row and peer:
            add(f"{member} out= vs PyTorch (n={_size(mid)})", peer["seconds"] / row["seconds"], 1.0)
    small = min(r["size"] for r in f32)
    if small == 1024:
        row, peer = pick("relu", "forward", small), pick("relu", "forward", small, "np.maximum")
        if row and peer:
            add("relu call at 1,024 elements vs np.maximum", peer["seconds"] / row["seconds"], 1.0)
    return found


# ---------------------------------------------------------------------------------------------
# Compile cost


def compile_cost() -> dict[str, float]:
    """Seconds to first call, in fresh processes: Numba compiling into an empty cache, then
    loading from that cache (what every later process pays). The first split call (relu's
    forward_with_mask on 2^22 float32 elements, 2 threads, after a relu call of that size)
    pays for the OpenMP team's trampoline and launcher, where there is a team (PyTorch
    imported)."""
    code = (
        "import json, time, numpy as np\n"
        "t = time.perf_counter()\n"
        "import relukit\n"
        "imported = time.perf_counter() - t\n"
        "x = np.ones(1 << 12, dtype=np.float32)\n"
        "from relukit.kernels import dispatch\n"
        "t = time.perf_counter()\n"
        "relukit.relu(x)\n"
        "first = time.perf_counter() - t\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('torch'):\n"
        "    import torch\n"
        "large = np.ones(1 << 22, dtype=np.float32)\n"
        "with relukit.threads.limit(2):\n"
        "    relukit.relu(large)\n"
        "    t = time.perf_counter()\n"
        "    relukit.relu.forward_with_mask(large)\n"
        "    split = time.perf_counter() - t\n"
        "from relukit.kernels import cpu\n"
        "t = time.perf_counter()\n"
        "cpu.warm_up((np.float32, np.float64))\n"
        "every = time.perf_counter() - t\n"
        "print(json.dumps({'import relukit': imported, 'first relu call': first, "
        "'first split call (relu forward_with_mask, 2^22, 2 threads)': split, "
        "'every member, float32 and float64': every}))\n"
    )
    result: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "cached"):
            done = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            for key, value in json.loads(done.stdout.strip().splitlines()[-1]).items():
                result[f"{key} ({label})"] = value
    return result


# ---------------------------------------------------------------------------------------------
# Output


def plot(report: Report, path: str) -> None:
    """Throughput against size, one panel per (member, op), float32 (or the first dtype)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtype = (
        "float32" if any(r["dtype"] == "float32" for r in report.rows) else report.rows[0]["dtype"]
    )
    rows = [r for r in report.rows if r["dtype"] == dtype]
    panels = sorted(
        {(r["member"], r["op"]) for r in rows if r["kind"] != "limit"},
        key=lambda mo: (MEMBERS.index(mo[0]), OPS.index(mo[1])),
    )
    columns = min(4, len(panels)) or 1
    lines = math.ceil(len(panels) / columns) or 1
    figure, axes = plt.subplots(
        lines, columns, figsize=(4.2 * columns, 3.2 * lines), squeeze=False, sharex=True
    )
    copy = _series([r for r in rows if r["kind"] == "limit" and r["op"] == "copy"])
    rmw = _series([r for r in rows if r["kind"] == "limit" and r["op"] == "rmw"])
    for ax, (member, op) in zip(axes.flat, panels, strict=False):
        mine = [r for r in rows if r["member"] == member and r["op"] == op]
        for impl in sorted({r["impl"] for r in mine}):
            sizes, values = _series([r for r in mine if r["impl"] == impl])
            style = {"lw": 2.2, "color": "black"} if impl == "relukit" else {"lw": 1, "alpha": 0.8}
            ax.plot(sizes, values, marker=".", label=impl, **style)
        limit = rmw if op == "forward_inplace" else copy
        ax.plot(*limit, ls="--", color="grey", label="machine limit")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{member} {op}", fontsize=9)
        ax.set_ylabel("GB/s")
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    figure.suptitle(f"relukit bench, {dtype}, {report.machine['cpu']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def _series(rows: list[dict[str, Any]]) -> tuple[list[int], list[float]]:
    best: dict[int, float] = {}
    for r in rows:
        best[r["size"]] = max(best.get(r["size"], 0.0), r["gbps"])
    sizes = sorted(best)
    return sizes, [best[s] for s in sizes]


def markdown(report: Report) -> str:
    """The run as Markdown: machine, compile cost, targets and relukit's rows."""
    m = report.machine
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} threads; Python {m['python']}, "
        f"NumPy {m['numpy']}, Numba {m['numba']}, PyTorch {m['torch']}; {m['date']}.",
        f"Load average (1, 5, 15 min) before: {m['load_before']}, after: {m.get('load_after')}.",
        "",
    ]
    if report.compile:
        lines += ["| first call | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.2f} |" for k, v in report.compile.items()]
        lines.append("")
    if report.targets:
        lines += ["| target | measured | needed | met |", "|---|---|---|---|"]
        lines += [
            f"| {t['target']} | {t['ratio']:.2f} | {t['needed']:.2f} | "
            f"{'yes' if t['met'] else 'no'} |"
            for t in report.targets
        ]
        lines.append("")
    lines += [
        "| member | op | dtype | n | time | GB/s | × limit | best peer | × peer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        if r["kind"] != "relukit":
            continue
        lines.append(
            f"| {r['member']} | {r['op']} | {r['dtype']} | {_size(r['size'])} | "
            f"{_seconds(r['seconds'])} | {r['gbps']:.1f} | {_ratio(r['ratio_limit'])} | "
            f"{r['best_peer'] or '-'} | {_ratio(r['ratio_peer'])} |"
        )
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    exponent = math.log2(n)
    return f"2^{int(exponent)}" if exponent.is_integer() else str(n)


def _seconds(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s >= 1e-3 else f"{s * 1e6:.1f} µs"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"
