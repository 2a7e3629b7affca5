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
