"""general_relu against Keras's relu, ported here, and its mask path at every size.

``keras_relu`` is a line-by-line port of ``keras.src.activations.activations.ReLU.static_call``
(Keras 3) to NumPy, checked below on Keras's own test cases; relukit must give its values for
every finite input, except for the differences listed in ``KERAS_DIFFERENCES``.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import relukit
from relukit.family.differences import KERAS_DIFFERENCES
from relukit.kernels import dispatch


def keras_relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras 3's ``ReLU.static_call`` in NumPy: ``nn.relu`` is ``maximum(x, 0)``, ``nn.relu6``
    ``clip(x, 0, 6)`` and ``nn.leaky_relu`` ``where(x >= 0, x, a·x)`` (the JAX, TensorFlow and
    PyTorch backends; the NumPy backend's ``maximum(x, a·x)`` is wrong for a slope above 1)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        if negative_slope != 0.0:
            if max_value is None and threshold == 0:
                return np.where(x >= 0, x, negative_slope * x)
            negative_part = np.maximum(-x + threshold, 0) if threshold != 0 else np.maximum(-x, 0)
        clip_max = max_value is not None
        if threshold != 0:
            x = x * (x > threshold).astype(x.dtype)
        elif max_value == 6:
            x = np.clip(x, 0, 6)
            clip_max = False
        else:
            x = np.maximum(x, 0)
        if clip_max:
            x = np.clip(x, 0.0, max_value)
        if negative_slope != 0.0:
            x = x - negative_slope * negative_part
    return x


KERAS_CASES = [  # keras/src/activations/activations_test.py: (params, expected)
    ({"negative_slope": 0.5}, [-5.0, -2.5, 0.0, 5.0, 10.0]),
    ({"max_value": 5.0}, [0.0, 0.0, 0.0, 5.0, 5.0]),
    ({"threshold": 5.0}, [-0.0, -0.0, 0.0, 0.0, 10.0]),
    ({"threshold": 5.0, "max_value": 5.0}, [0.0, 0.0, 0.0, 0.0, 5.0]),
    ({"negative_slope": 0.5, "max_value": 5.0, "threshold": 5.0}, [-7.5, -5.0, -2.5, 0.0, 5.0]),
]


@pytest.mark.parametrize(("params", "expected"), KERAS_CASES)
def test_keras_own_cases(params, expected):
    x = np.array([-10, -5, 0.0, 5, 10])
    np.testing.assert_array_equal(keras_relu(x, **params), expected)
    np.testing.assert_array_equal(relukit.general_relu(x, **params), expected)


def test_the_three_points_of_issue_10():
    # x == threshold gives 0 (Keras tests x > threshold)
    assert relukit.general_relu(2.0, threshold=2.0) == 0.0
    assert relukit.general_relu(2.0, threshold=2.0, negative_slope=0.3) == 0.0
    # max_value == threshold is allowed: [0, 0, 0, 0, 5]
    np.testing.assert_array_equal(
        relukit.general_relu([-10.0, -5.0, 0.0, 5.0, 10.0], max_value=5.0, threshold=5.0),
        [0.0, 0.0, 0.0, 0.0, 5.0],
    )
    # threshold < 0 with a cap: (threshold, 0) goes to 0; without a cap it passes through
    assert relukit.general_relu(-1.0, threshold=-2.0, max_value=3.0) == 0.0
    assert relukit.general_relu(-1.0, threshold=-2.0) == -1.0


def test_negative_cap_is_refused_with_its_name():
    with pytest.raises(relukit.ParameterError, match=r"general_relu.*max_value=-1\.0"):
        relukit.get("general_relu", max_value=-1.0, threshold=-2.0)


def test_listed_keras_differences_hold():
    for d in KERAS_DIFFERENCES:
        ours = relukit.general_relu(d.x, **d.params)
        theirs = keras_relu(d.x, **d.params)
        assert np.array_equal(ours, d.relukit, equal_nan=True), d
        assert np.array_equal(theirs, d.keras, equal_nan=True), d
        same = ours == theirs and np.signbit(ours) == np.signbit(theirs)
        assert not same, d


PARAMS = st.fixed_dictionaries(
    {
        "negative_slope": st.sampled_from([0.0, 0.1, 0.5, 1.0, 2.0, -0.5]),
        "max_value": st.sampled_from([None, 0.0, 0.5, 1.0, 3.0, 5.0, 6.0]),
        "threshold": st.sampled_from([0.0, -2.0, -0.5, 0.5, 1.0, 3.0, 5.0, 7.0]),
    }
)


@given(
    params=PARAMS,
    x=hnp.arrays(
        np.float64,
        st.integers(0, 40),
        elements=st.one_of(
            st.sampled_from([0.0, -0.0, 0.5, 1.0, 3.0, 5.0, 6.0, 7.0, -2.0, -0.5]),
            st.floats(-20, 20),
            st.floats(allow_nan=False, allow_infinity=False),
        ),
    ),
)
def test_values_are_keras_values(params, x):
    """Every finite input gives Keras's value (the sign of a zero may differ: listed)."""
    ours = np.asarray(relukit.general_relu(x, **params))
    np.testing.assert_array_equal(ours, keras_relu(x, **params))


@pytest.mark.parametrize(
    "params",
    [
        {"threshold": -2.0, "max_value": 0.0},
        {"threshold": -2.0, "max_value": 0.0, "negative_slope": 0.1},
        {"threshold": 1.0, "max_value": 0.0, "negative_slope": 0.1},
        {"threshold": -1e300, "max_value": 0.0, "negative_slope": 0.5},
        {"threshold": 1e300, "max_value": 1e300},
        {"threshold": 2.0, "max_value": 2.0, "negative_slope": 0.2},
        {"threshold": -0.5, "max_value": 1.0, "negative_slope": -0.5},
        {"threshold": 0.0, "max_value": None, "negative_slope": 1.0},
    ],
)
def test_mask_path_equals_vjp_at_every_size_around_1024(params):
    """Issue 10, item 2: a cap of 0.0 was taken for no cap from 1,024 elements on (where the
    compiled kernels took over, then)."""
    f = relukit.get("general_relu", **params)
    for dtype in (np.float64, np.float32):
        for n in [*range(1, 9), *range(1016, 1033)]:
            x = np.linspace(-3, 3, n).astype(dtype)
            special = [params["threshold"], -0.0, 0.0, params["max_value"] or 1.0]
            x[: min(n, 4)] = special[: min(n, 4)]
            g = np.linspace(0.5, 2.0, n).astype(dtype)
            with dispatch.forced("reference"):
                expected_y = f(x)
                expected = f.vjp(x, g)
            y, mask = f.forward_with_mask(x)
            np.testing.assert_array_equal(y, expected_y, err_msg=f"n={n} {dtype}")
            np.testing.assert_array_equal(f.vjp(x, g), expected, err_msg=f"n={n} {dtype}")
            np.testing.assert_array_equal(
                f.backward_from_mask(g, mask), expected, err_msg=f"n={n} {dtype}"
            )
            np.testing.assert_array_equal(f.derivative(x), f.vjp(x, np.ones_like(x)))
