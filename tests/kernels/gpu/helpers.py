"""Inputs with every special value, and bit-for-bit comparison that lets NaN be any NaN."""

from __future__ import annotations

import pytest
import torch

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
SIZES = (1, 7, 8, 9, 100, 2047, 2048, 2049, 4999)

SPECIALS = (
    0.0,
    -0.0,
    1.0,
    -1.0,
    6.0,
    3.0,
    0.5,
    -0.3,
    0.7,
    float("inf"),
    -float("inf"),
    float("nan"),
    1e-30,
    -1e-30,
    2.5,
    1e30,
    -1e30,
)


def kernel_device() -> str:
    """Where the kernels under test run: "cpu" in Triton's interpreter (``TRITON_INTERPRET=1``,
    as the test suite sets it), else "cuda" (the whole module is skipped without a GPU).

    The oracle always runs on the CPU, so on a GPU the tests also check that masks made on
    one device are read on the other.
    """
    pytest.importorskip("triton")
    from relukit.kernels.gpu import launch

    if launch.interpreted():
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip(
            "Triton compiles here (TRITON_INTERPRET=0) but there is no CUDA device",
            allow_module_level=True,
        )
    return "cuda"


def inputs(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """``n`` values: the special ones first, then random ones at several scales."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64) * 4
    specials = torch.tensor(SPECIALS, dtype=torch.float64)
    k = min(n, len(SPECIALS))
    x[:k] = specials[:k]
    return x[torch.randperm(n, generator=g)].to(dtype)


def assert_same(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Same dtype, shape and bits, except that a NaN may be any NaN (payload and sign)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    nan = torch.isnan(expected)
    assert torch.equal(torch.isnan(actual), nan), "NaN in different places"
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}[actual.element_size()]
    a = actual.masked_fill(nan, 0).reshape(-1).view(ints)
    e = expected.masked_fill(nan, 0).reshape(-1).view(ints)
    differ = (a != e).nonzero()
    assert differ.numel() == 0, (
        f"{differ.numel()} elements differ, first at {differ[0].item()}: "
        f"{actual.reshape(-1)[differ[0]].item()} vs {expected.reshape(-1)[differ[0]].item()}"
    )
