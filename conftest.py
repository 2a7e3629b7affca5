"""Run relukit's Triton kernels in Triton's interpreter on CPU tensors during tests.

Triton reads ``TRITON_INTERPRET`` when it is first imported, so it is set here, before any
test imports it, unless the environment already sets it (``TRITON_INTERPRET=0`` on a machine
with a GPU runs the CUDA tests of ``tests/kernels/gpu`` compiled). The doctests of
``relukit.kernels.gpu`` use CPU tensors and so run only in the interpreter.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")

# Without Triton (not on Linux) the kernels' modules cannot be imported for their doctests;
# their tests skip themselves.
collect_ignore_glob = [] if importlib.util.find_spec("triton") else ["src/relukit/kernels/gpu/*"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ["TRITON_INTERPRET"] == "1":
        return
    skip = pytest.mark.skip(reason="CPU-tensor example: runs in Triton's interpreter only")
    for item in items:
        if item.nodeid.startswith("src/relukit/kernels/gpu/"):
            item.add_marker(skip)
