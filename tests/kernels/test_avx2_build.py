"""The kernels compiled for an AVX2 host (no AVX-512) give the bits this host's build gives.

A child process compiles them for Haswell (``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``) in a
cache directory of its own and runs them here, on a core that has AVX2 too: the float32
centre tables then take their 8-lane permutes and their table of masks
(:mod:`relukit.kernels.cpu.vector32`), the loops 256-bit vectors.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from relukit.kernels.cpu import vector32
from relukit.kernels.cpu.intrinsics import _host_has

CASES = [
    ("gelu", {}),
    ("gelu", {"approximate": "tanh"}),
    ("silu", {}),
    ("sigmoid", {}),
    ("tanh", {}),
]

CHILD = """
import hashlib, json, sys
import numpy as np
import relukit
from relukit.kernels.cpu import vector32

cases = json.loads(sys.argv[1])
x = np.load(sys.argv[2])
found = {"avx512": vector32.AVX512, "avx2": vector32.AVX2, "bits": []}
for name, params in cases:
    f = relukit.get(name, **params)
    for y in (f(x), f.derivative(x)):
        found["bits"].append(hashlib.sha256(np.asarray(y).tobytes()).hexdigest())
print(json.dumps(found))
"""


def _inputs() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = np.concatenate(
        [
            3.0 * rng.standard_normal(20_000),
            rng.uniform(-20.0, 20.0, 4_000),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3e38, -3e38],
        ]
    )
    return x.astype(np.float32)


def _runs_haswell_code() -> bool:
    """Does this host have every feature the Haswell build may use?"""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    features = vector32.AVX2_HOST[1].split(",")
    return all(_host_has(feature.lstrip("+")) for feature in features)


@pytest.mark.skipif(
    not _runs_haswell_code(), reason="runs Haswell's code: an x86-64 host with its features"
)
def test_the_avx2_build_gives_this_host_s_bits(tmp_path):
    import hashlib

    import relukit

    x = _inputs()
    np.save(tmp_path / "x.npy", x)
    env = dict(
        os.environ,
        NUMBA_CACHE_DIR=str(tmp_path / "cache"),
        NUMBA_CPU_NAME=vector32.AVX2_HOST[0],
        NUMBA_CPU_FEATURES=vector32.AVX2_HOST[1],
        RELUKIT_NUM_THREADS="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(CASES), str(tmp_path / "x.npy")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["avx512"] is False and child["avx2"] is True
    here = []
    for name, params in CASES:
        f = relukit.get(name, **params)
        for y in (f(x), f.derivative(x)):
            here.append(hashlib.sha256(np.asarray(y).tobytes()).hexdigest())
    assert child["bits"] == here
