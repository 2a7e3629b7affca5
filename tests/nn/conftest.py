"""One intra-op thread per test process: tests run two processes on two cores (``-n 2``), and
PyTorch's default of one thread per core would make them fight over the cores."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def one_bit_path_at_every_size() -> Iterator[None]:
    """The tests use small tensors; they test the one-bit path, which runs below
    ``native_below`` only when it is 0 (tests of the native path set it themselves)."""
    import relukit.nn

    before = relukit.nn.native_setting()
    relukit.nn.set_native_below(0)
    yield
    relukit.nn.set_native_below(before)
