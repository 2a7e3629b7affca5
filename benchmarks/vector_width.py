"""What Numba vectorises at 256 and 512 bits (issue 13): the kernels compiled three ways on one
machine, timed side by side, their machine code counted and their outputs compared.

- ``avx512``: as shipped on an AVX-512 host (LLVM's loop vectoriser told to prefer 512-bit
  vectors in the smooth members' loops, ``intrinsics.vector_width_512``; the float32 centre
  tables of ``vector32`` use AVX-512's two-register permute and compress).
- ``avx512-256``: the same host and instructions, with that preference set to 256 bits
  instead, LLVM's own choice on most AVX-512 cores (it then splits 512-bit vectors into
  256-bit halves).
- ``avx2``: compiled for an AVX2 machine (``vector32.AVX2_HOST``: Haswell and its features,
  FMA, BMI2, F16C, no AVX-512), as relukit is on such hosts: 256-bit vectors at most, and the
  centre tables' lookups and compresses by AVX2's 8-lane permutes. Run on an AVX-512 core,
  this times AVX2 code, not an AVX2 core.

Each configuration runs in its own process with its own Numba cache directory (a temporary one,
removed after: nothing of it reaches the kernels' cache), compiling the forward map kernels of
the members :func:`members` finds in the registry, for float32 and float64, and relu's one-bit
mask forward, then times ``f(x, out=y)`` on 2^16 elements of 3·N(0, 1) in cache, one thread,
best of several calls. It counts the instructions that name a ``zmm`` or ``ymm`` register in
each member's float32 and float64 map kernel, and hashes each output, so that the table shows
whether the three give the same bits. Prints a Markdown table; ``--write`` puts it into
``benchmarks/RESULTS.md`` between its markers.

    python benchmarks/vector_width.py [--write]

About 5 minutes on a quiet 2-core machine (most of it compiling).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
BEGIN = "<!-- benchmarks/vector_width.py: begin (generated) -->"
END = "<!-- benchmarks/vector_width.py: end -->"
DTYPES = ("float32", "float64")
CONFIGS = ("avx512", "avx512-256", "avx2")
N = 1 << 16


def _environment(config: str, cache: str) -> dict[str, str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, RELUKIT_NUM_THREADS="1")
    if config == "avx2":
        from relukit.kernels.cpu.vector32 import AVX2_HOST  # (imports Numba, not the kernels)

        env.update(NUMBA_CPU_NAME=AVX2_HOST[0], NUMBA_CPU_FEATURES=AVX2_HOST[1])
    return env


def _prefer_256() -> None:
    """Make the kernels' ``vector_width_512`` ask for 256-bit vectors: a new intrinsic in its
    place, before the modules that import it are loaded (``host`` loads them lazily; an
    intrinsic's code is fixed when it is defined)."""
    from numba import types
    from numba.extending import intrinsic

    from relukit.kernels.cpu import intrinsics

    @intrinsic
    def vector_width_256(typingctx: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            set.add(builder.function.attributes, '"prefer-vector-width"="256"')
            return context.get_dummy_value()

        return types.void(), codegen

    assert "relukit.kernels.cpu.kernels" not in sys.modules
    intrinsics.vector_width_512 = vector_width_256


def _registers(dispatcher: Any, dtype: str) -> dict[str, int]:
    """Instructions naming a zmm or a ymm register in the compiled signatures of ``dispatcher``
    whose first argument holds ``dtype`` (one dispatcher serves both float widths)."""
    counts = {"zmm": 0, "ymm": 0}
    for signature, text in dispatcher.inspect_asm().items():
        if str(getattr(signature[0], "dtype", "")) != dtype:
            continue
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith((".", "#")) or line.endswith(":"):
                continue
            for name in counts:
                if f"%{name}" in line:
                    counts[name] += 1
    return counts


def members() -> list[str]:
    """The registry's members with a compiled formula of their own, one per formula (the
    first in the registry's order: relu6 stands for hardtanh's, rrelu's is leaky_relu's), at
    their default parameters; prelu and general_relu, whose parameters the host adapts
    (``host.FORMULAS``), are left out."""
    from relukit.family import MEMBERS
    from relukit.kernels.cpu import host
    from relukit.kernels.cpu.kernels import OWN_CODES

    found: dict[str, str] = {}
    for spec in MEMBERS:
        packed = host.formula(spec, spec.bind({})) if spec.elementwise else None
        if packed is not None and packed[0] in OWN_CODES and packed[0] not in host.FORMULAS:
            found.setdefault(packed[0], spec.name)
    return list(found.values())


def child(config: str) -> dict[str, Any]:
    """One configuration's measurements (run in its own process)."""
    if config == "avx512-256":
        _prefer_256()
    import relukit
    from relukit.family import MEMBERS
    from relukit.kernels.cpu import host, intrinsics, vector32

    rng = np.random.default_rng(0)
    base = 3.0 * rng.standard_normal(N)
    found: dict[str, Any] = {
        "avx512_code": bool(vector32.AVX512),
        "fma": intrinsics._host_has("fma"),
        "rows": {},
    }
    for dtype in DTYPES:
        x = base.astype(dtype)
        y = np.empty_like(x)
        masked_member = next(spec.name for spec in MEMBERS if spec.mask_code is not None)
        for name in (*members(), f"{masked_member} mask"):
            member = relukit.get(name.split()[0])
            masked = name.endswith("mask")

            def call(
                member: Any = member, x: np.ndarray = x, y: np.ndarray = y, masked: bool = masked
            ) -> Any:
                return member.forward_with_mask(x, out=y) if masked else member(x, out=y)

            start = time.perf_counter()
            result = call()
            first = time.perf_counter() - start
            digest = hashlib.sha256(np.asarray(y).tobytes())
            if masked:
                digest.update(np.asarray(result[1]).tobytes())
            best = np.inf
            for _ in range(7):
                start = time.perf_counter()
                for _ in range(50):
                    call()
                best = min(best, (time.perf_counter() - start) / 50)
            row: dict[str, Any] = {
                "ns": best / N * 1e9,
                "first_s": first,
                "sha": digest.hexdigest()[:12],
            }
            if not name.endswith("mask"):
                calls = member._fast.last[1]
                calls.load("forward", True)  # (compiled, if the ufunc's loop did not)
                kernel = host._kernel("map", calls.member, calls.codes_of["forward"], True)
                row.update(_registers(kernel, dtype))
            found["rows"][f"{name}/{dtype}"] = row
    return found


def run_all() -> dict[str, Any]:
    results = {}
    for config in CONFIGS:
        with tempfile.TemporaryDirectory(prefix="relukit-vw-") as cache:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child", config],
                env=_environment(config, cache),
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"{config}: the child failed:\n{done.stderr[-2000:]}")
            found = json.loads(done.stdout.strip().splitlines()[-1])
            if found["avx512_code"] != (config != "avx2"):
                raise SystemExit(f"{config}: compiled with AVX-512 {found['avx512_code']}")
            found["seconds"] = time.perf_counter() - start
            results[config] = found
    return results


def table(results: dict[str, Any], seconds: float) -> str:
    cpu = _cpu()
    compiled = ", ".join(f"{c} {results[c]['seconds']:.0f} s" for c in CONFIGS)
    lines = [
        f"{cpu}, 1 thread, `f(x, out=y)` on 2^16 elements of 3·N(0, 1) in cache, ns per element"
        f" (best of 7×50 calls); zmm / ymm: instructions naming such a register in the member's"
        f" map kernel; same bits: the output's hash equals avx512's. `python "
        f"benchmarks/vector_width.py` ({seconds:.0f} s; each configuration compiled afresh in "
        f"{compiled}).",
        "",
        "| member | dtype | avx512 ns | zmm / ymm | avx512-256 ns | zmm / ymm | avx2 ns | zmm /"
        " ymm | 256 / 512 | avx2 / 512 | same bits |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in results["avx512"]["rows"]:
        name, dtype = key.split("/")
        cells = []
        for config in CONFIGS:
            row = results[config]["rows"][key]
            cells.append(f"{row['ns']:.2f}")
            cells.append(f"{row['zmm']} / {row['ymm']}" if "zmm" in row else "-")
        base = results["avx512"]["rows"][key]
        ratios = [results[c]["rows"][key]["ns"] / base["ns"] for c in CONFIGS[1:]]
        same = all(results[c]["rows"][key]["sha"] == base["sha"] for c in CONFIGS[1:])
        lines.append(
            f"| {name} | {dtype} | {' | '.join(cells)} | {ratios[0]:.2f} | {ratios[1]:.2f} | "
            f"{'yes' if same else 'NO'} |"
        )
    return "\n".join(lines)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "this machine"


def write(text: str) -> None:
    path = HERE / "RESULTS.md"
    content = path.read_text("utf-8")
    if BEGIN not in content or END not in content:
        raise SystemExit(f"{path}: the markers {BEGIN!r} and {END!r} are missing")
    head, rest = content.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}", "utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--write", action="store_true", help="into benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    start = time.perf_counter()
    results = run_all()
    text = table(results, time.perf_counter() - start)
    print(text)
    if args.write:
        write(text)


if __name__ == "__main__":
    main()
