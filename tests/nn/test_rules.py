"""The PyTorch rules write the registry's masks: same layout and codes as
``relukit.<member>.forward_with_mask`` on every input that is not NaN (at NaN the rules take
PyTorch's choice, see relukit.nn.rules), and their backward is the registry's vjp there."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import relukit
from relukit.nn.rules import rule

CASES = [
    ("relu", {}),
    ("leaky_relu", {"negative_slope": 0.1}),
    ("leaky_relu", {"negative_slope": -0.5}),
    ("relu6", {}),
    ("hardtanh", {"min_val": -2.0, "max_val": 0.5}),
    ("hardtanh", {"min_val": 0.5, "max_val": 0.5}),
    ("rrelu", {"lower": 0.1, "upper": 0.3}),
    ("general_relu", {}),
    ("general_relu", {"negative_slope": 0.1, "max_value": 3.0, "threshold": 0.5}),
    ("general_relu", {"max_value": 6.0}),
    ("general_relu", {"negative_slope": 1.0, "max_value": 2.0}),
    ("general_relu", {"negative_slope": 1.0}),
    ("general_relu", {"negative_slope": -0.2, "threshold": -1.0}),
]


def finite_and_kinks(n: int = 999) -> np.ndarray:
    x = np.random.default_rng(0).normal(0, 3, n)
    x[:12] = [0.0, -0.0, np.inf, -np.inf, 6.0, -1.0, 1.0, 0.5, -2.0, 3.0, 2.0, 0.5]
    return x


@pytest.mark.parametrize(("member", "kw"), CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rule_masks_and_gradients_are_the_registrys(member, kw, dtype):
    x = finite_and_kinks().astype(dtype)
    g = np.random.default_rng(1).normal(size=x.shape).astype(dtype)
    function = relukit.get(member, **kw)
    expected_y, expected_mask = function.forward_with_mask(x)
    r = rule(*function.spec.kernel(function.params))
    y, mask = r.forward_with_mask(torch.from_numpy(x))
    assert mask.numpy().tolist() == np.asarray(expected_mask).tolist()
    np.testing.assert_array_equal(y.numpy(), expected_y)
    grad = r.backward_from_mask(torch.from_numpy(g), mask).numpy()
    np.testing.assert_array_equal(grad, function.vjp(x, g))
    assert r.bits == function.spec.derivative_bits(function.params)
