"""relukit.kernels.cpu: outputs a few bytes after their input modulo 1 MiB go through the buffer,
on a machine where it pays (host.ALIAS_BUFFER, measured once by host._buffer_pays; pinned to
True by tests/conftest.py but where a test says otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

import relukit
from relukit import threads
from relukit.kernels.cpu import host

MIB = 1 << 20


def placed(n: int, distance: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """x (N(0, 2) values, ±inf and NaN among them) and an empty y starting ``distance`` bytes
    after it, in one buffer."""
    itemsize = np.dtype(dtype).itemsize
    room = np.empty(n * itemsize + distance + 2 * MIB + 64, dtype=np.uint8)
    start = -room.ctypes.data % 64
    x = room[start : start + n * itemsize].view(dtype)
    y = room[start + distance : start + distance + n * itemsize].view(dtype)
    x[:] = 2 * np.random.default_rng(n).standard_normal(n)
    x[:3] = [np.inf, -np.inf, np.nan]
    return x, y


def asked_aliased(monkeypatch) -> list[bool]:
    """host.aliased's answers from now on, in order."""
    answers: list[bool] = []
    ask = host.aliased

    def spy(*arrays):  # type: ignore[no-untyped-def]
        answers.append(ask(*arrays))
        return answers[-1]

    monkeypatch.setattr(host, "aliased", spy)
    return answers


def test_only_an_output_a_little_after_its_input_modulo_1_mib_is_aliased():
    x, _ = placed(1 << 18, 2 * MIB)
    for distance, expected in [(MIB + 16, True), (2 * MIB + 4, True), (MIB + 128, True),
                               (MIB + 192, False), (MIB, False), (MIB + 4096, False),
                               (MIB - 64, False)]:  # fmt: skip
        room = np.empty(x.nbytes + distance, dtype=np.uint8)
        a = room[: x.nbytes].view(np.float32)
        b = room[distance : distance + x.nbytes].view(np.float32)
        assert host.aliased(b, a) is expected, distance
    small = np.empty(1 << 12, dtype=np.float32)
    assert not host.aliased(small[16:], small[:-16])  # below ALIAS_BYTES: never asked
    assert not host.aliased(x, x)  # in place


@pytest.mark.parametrize(
    ("name", "op"),
    [("gelu", "forward"), ("sigmoid", "forward"), ("gelu", "derivative"), ("tanh", "forward")],
)  # fmt: skip
@pytest.mark.parametrize("count", [1, 2])
def test_an_aliased_output_gets_the_same_bits_through_the_buffer(name, op, count, monkeypatch):
    n = (1 << 18) + 37  # (1 MiB and a tail: more than one block, and a partial one)
    if count == 2:  # (split into chunks, each as aliased as the whole)
        monkeypatch.setattr(host, "GRAIN_SMOOTH", 1 << 14)
        monkeypatch.setattr(host, "GRAIN_LINEAR", 1 << 14)
    function = relukit.get(name)
    call = function.derivative if op == "derivative" else function
    x, y = placed(n, 2 * MIB + 16)
    assert host.aliased(y, x)
    want = call(x.copy())
    answers = asked_aliased(monkeypatch)
    with threads.limit(count):
        got = call(x, out=y)
    assert got is y
    np.testing.assert_array_equal(y.view(np.int32), want.view(np.int32))
    assert answers and all(answers)  # (asked where the kernel is chosen, and found aliased)
    # the same distance plus 4 KiB: written directly, the same bits
    x2, y2 = placed(n, 2 * MIB + 4096 + 16)
    assert not host.aliased(y2, x2)
    np.testing.assert_array_equal(call(x2, out=y2).view(np.int32), want.view(np.int32))


@pytest.mark.parametrize(
    ("dtype", "op"),
    [("float64", "forward"), ("float16", "forward"), ("bfloat16", "forward"),
     ("float64", "allocating")],
)  # fmt: skip
def test_other_dtypes_and_fresh_outputs_too(dtype, op, monkeypatch):
    # float64 gelu's centre and tails apart, and the 16-bit floats widened per block, through
    # the buffer; an allocating call's output is asked about too (not NumPy's ufunc's own)
    from relukit.kernels.arrays import bfloat16

    kind = bfloat16() if dtype == "bfloat16" else np.dtype(dtype)
    if kind == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    n = (1 << 19) + 37
    # (the kernels, not a smooth member's table of every 16-bit input, which such a call of
    # TABLE_AFTER elements makes at once)
    monkeypatch.setattr(host, "TABLE_AFTER", 1 << 62)
    after = (((n * np.dtype(kind).itemsize) >> 20) + 1) << 20  # (a whole MiB past x's end)
    x, y = placed(n, after + 16, dtype=kind)
    gelu = relukit.get("gelu")
    want = gelu(x.copy())
    answers = asked_aliased(monkeypatch)
    with threads.limit(1):
        got = gelu(x, out=y) if op == "forward" else gelu(x)
    bits = np.uint16 if np.dtype(kind).itemsize == 2 else np.int64
    np.testing.assert_array_equal(np.asarray(got).view(bits), want.view(bits))
    assert answers  # (asked where the kernel is chosen)
    if op == "forward":
        assert all(answers)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_a_16_bit_call_that_looks_its_results_up_does_not_ask(dtype, monkeypatch):
    # a smooth member's table of every 16-bit input writes y from the table: whether y is
    # aliased changes nothing there, and asking may measure the buffer (host._buffer_pays)
    from relukit.kernels.arrays import bfloat16

    kind = bfloat16() if dtype == "bfloat16" else np.dtype(dtype)
    if kind == np.float16 and not host._f16c():
        pytest.skip("float16 without F16C takes the general path")
    n = (1 << 19) + 37
    after = (((n * 2) >> 20) + 1) << 20  # (a whole MiB past x's end)
    x, y = placed(n, after + 16, dtype=kind)
    assert host.aliased(y, x)
    gelu = relukit.get("gelu")
    want = gelu(x.copy())  # (TABLE_AFTER elements: the table is made)
    assert gelu._fast.calls_checked(x).tables.get("forward") is not None
    answers = asked_aliased(monkeypatch)
    with threads.limit(1):
        got = gelu(x, out=y)
    np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    assert answers == []
    with threads.limit(1):  # (a vjp has no table: its kernel's output is asked about)
        gelu.vjp(x, x)
    assert answers


def test_the_distance_is_the_same_by_the_kernel_and_by_ctypes():
    room = np.zeros(1 << 16, np.float64)
    half = np.zeros(1 << 16, np.float16)
    frozen = room.copy()
    frozen.flags.writeable = False
    grid = room.reshape(256, 256)
    cases = [
        (room[8:], room[:-8]),  # (1-D, C-ordered, writeable: the kernel)
        (room.view(np.float32)[3:], room.view(np.float32)[:-3]),
        (room[:-8], room[8:]),  # (negative)
        (room[::2], room[1::2]),  # (the others: ctypes)
        (grid[1:], grid[:-1]),
        (frozen[4:], frozen[:-4]),
        (room[4:], frozen[:-4]),
        (half[5:], half[:-5]),
    ]
    for y, a in cases:
        assert host._distance(y, a) == y.ctypes.data - a.ctypes.data


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "hardtanh"])
def test_a_one_pass_forward_does_not_ask_whether_its_output_is_aliased(name, monkeypatch):
    # its direct and buffered kernels are one (it writes from its registers): the answer could
    # change nothing, and asking cost a microsecond a call; its derivative still asks
    function = relukit.get(name)
    x, y = placed(1 << 18, MIB + 16)
    assert host.aliased(y, x)
    want = function(x)
    slope = function.derivative(x)
    answers = asked_aliased(monkeypatch)
    for count in (1, 2):
        y.fill(7.0)
        with threads.limit(count):
            assert function(x, out=y) is y
        assert np.array_equal(y.view(np.uint32), want.view(np.uint32)), count
    assert answers == []
    with threads.limit(1):
        function.derivative(x, out=y)
    assert answers and np.array_equal(y.view(np.uint32), slope.view(np.uint32))


def test_where_the_buffer_does_not_pay_an_aliased_output_is_written_directly(monkeypatch):
    monkeypatch.setattr(host, "ALIAS_BUFFER", False)
    n = (1 << 18) + 37
    x, y = placed(n, 2 * MIB + 16)
    assert not host.aliased(y, x)
    sigmoid = relukit.get("sigmoid")
    want = sigmoid(x.copy())
    answers = asked_aliased(monkeypatch)
    for count in (1, 2):
        y.fill(7.0)
        with threads.limit(count):
            assert sigmoid(x, out=y) is y
        np.testing.assert_array_equal(y.view(np.int32), want.view(np.int32))
    assert not any(answers)  # (direct; the ufunc routes need not ask, the buffer declined)


def test_whether_the_buffer_pays_is_measured_once_where_an_output_is_aliased(monkeypatch):
    monkeypatch.setattr(host, "ALIAS_BUFFER", None)
    monkeypatch.setattr(host, "_buffer_measured", [])
    x, y = placed(1 << 18, MIB + 4096)
    assert not host.aliased(y, x)
    assert host._buffer_measured == []  # (not aliased: nothing measured)
    x, y = placed(1 << 18, MIB + 16)
    answer = host.aliased(y, x)
    assert host._buffer_measured == [answer]
    asked = []
    make = host._kernel

    def spy(kind, *codes):  # type: ignore[no-untyped-def]
        if kind == "map":
            asked.append(codes[-1])  # (direct?)
        return make(kind, *codes)

    monkeypatch.setattr(host, "_kernel", spy)
    assert host.aliased(y, x) is answer
    assert asked == []  # (kept: not measured again)
    monkeypatch.setattr(host, "_buffer_measured", [])
    host._buffer_pays()
    assert len(host._buffer_measured) == 1
    assert sorted(asked) == [False, True]  # (the direct and buffered kernels, looked up once)
    # a pinned answer is taken as it is: nothing measured
    monkeypatch.setattr(host, "_buffer_measured", [])
    for pinned in (True, False):
        monkeypatch.setattr(host, "ALIAS_BUFFER", pinned)
        assert host.aliased(y, x) is pinned
    assert host._buffer_measured == [] and len(asked) == 2
