"""The single dispatch point between the public functions and the kernels.

Every evaluation goes through :func:`run`, which picks the compiled CPU kernel
(:mod:`relukit.kernels.cpu`) where it takes the call and wins, and the reference kernel
(:mod:`relukit.kernels.reference`, which takes all) everywhere else.

The compiled kernel is chosen for NumPy arrays and CPU torch tensors (those that autograd
tracks through :mod:`relukit.kernels.tracked`, which puts the kernels' values and gradients
in its graph), of dtype float16, bfloat16, float32 or float64, any shape and layout, of any
size from :data:`MIN_ELEMENTS` (one element) up, for every op of the elementwise members (forward,
derivative, vjp with respect to x, forward_with_mask, backward_from_mask). Small arrays take the
compiled code too, so that an element's value never depends on the length of the array it is
in (the reference path rounds the same float64 formulas, but through other float64 functions,
so a result that falls within 1e-13 of a rounding boundary could round the other way); the cost
is loading Numba (about 0.3 s) and the kernels from its cache at the first call. An integer
input that is promoted (see :func:`relukit.kernels.reference.integer_promotion`) is promoted
first and then takes the path its float values would take, so it gives their bits. Parameter
gradients (prelu's ``wrt="weight"``), the structural members (crelu, maxout)
and other array libraries stay on the reference path.

:func:`forced` pins the choice, for tests and benchmarks::

    >>> import numpy as np, relukit
    >>> from relukit.kernels import dispatch
    >>> with dispatch.forced("reference"):
    ...     relukit.relu(np.array([-1.0, 2.0]))
    array([0., 2.])
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import Any

import numpy as np

from relukit import threads
from relukit.errors import UserTypeError, UserValueError
from relukit.family.rectifiers import general_relu_piece_codes
from relukit.family.spec import Activation
from relukit.kernels import mask as mask_path
from relukit.kernels import reference, tracked
from relukit.kernels.arrays import Input, dtype_kind
from relukit.kernels.pages import HUGE_BYTES, empty_array

MIN_ELEMENTS = 1
_BYTES = np.dtype(np.uint8)  # (a dtype object: np.uint8 is converted to one at every use)
MIN_ELEMENTS_16 = 1
BACKENDS = ("auto", "compiled", "reference")

_forced: ContextVar[str] = ContextVar("relukit_backend", default="auto")
_forcing = [0]  # blocks of forced() open in any context: none, and no call need ask _forced
_numba: bool | None = None
_cpu: Any = None
_tables: dict[tuple[int, int], tuple[Any, ...]] = {}
_NONE = (None, None)  # Fast.last before a call
# Below this many elements (and 2^20 bytes) a call is one that a ufunc takes whole on the
# calling thread (host.WHOLE_BELOW, host.SPLIT_BELOW and host.INPLACE_SPLIT_BELOW start there,
# and are never below it), unless a grain is pinned
UFUNC_BELOW = 1 << 13


@contextmanager
def forced(backend: str) -> Iterator[None]:
    """Within the block, use ``backend``: 'compiled' (where it can take the call, whatever the
    size), 'reference', or 'auto' (the default choice)."""
    if backend not in BACKENDS:
        raise UserValueError(f"dispatch.forced: backend={backend!r} is not one of {BACKENDS}")
    token = _forced.set(backend)
    _forcing[0] += 1
    try:
        yield
    finally:
        _forcing[0] -= 1
        _forced.reset(token)


def _has_numba() -> bool:
    global _numba, _cpu
    if _numba is None:
        from relukit.kernels import cpu

        _cpu = cpu
        _numba = cpu.available()
    return _numba


def _size(array: Any) -> int:
    size = getattr(array, "size", None)
    if isinstance(size, int):
        return size
    return math.prod(tuple(array.shape))


def compiled_takes(source: Input) -> bool:
    """True if :func:`run` would try the compiled kernel for this input (by kind and size)."""
    if source.kind not in ("float", "low"):
        return False
    backend = _forced.get()
    if backend == "reference":
        return False
    array = source.array
    if type(array) is not np.ndarray:
        if not type(array).__module__.startswith("torch") or not _has_numba():
            return False
        if _cpu.host.outside_autograd(array):  # (e.g. torch.compile: Dynamo traces the
            return False  # reference path's torch operations, not the mask path's NumPy)
    if backend == "auto":
        limit = MIN_ELEMENTS_16 if source.kind == "low" else MIN_ELEMENTS
        if _size(array) < limit:
            return False
    return _has_numba()


def elementwise_method(op: str, doc: str) -> Any:
    """The public ``__call__`` (``op`` forward) or ``derivative`` of an elementwise member
    (``doc`` its docstring): ``op`` at ``x``, written into ``out`` when given.

    A C-contiguous, aligned, writeable NumPy array of the dtype of the member's previous call
    is taken with its checks inline, in one frame below the caller (on the ufuncs' routes
    below, an F-contiguous or read-only one too). Where the call runs whole
    on this thread (:func:`~relukit.kernels.cpu.host.whole`: below
    :data:`~relukit.kernels.cpu.host.WHOLE_BELOW` elements, or on one thread wherever it would
    not stream; below :data:`~relukit.kernels.cpu.host.SPLIT_BELOW`, or
    :data:`~relukit.kernels.cpu.host.INPLACE_SPLIT_BELOW` in place, for the calls a split
    ufunc may take, below; float32 and float64, an output below the huge pages') it goes to
    the kernel as
    a NumPy ufunc (:meth:`Calls.ufunc <relukit.kernels.cpu.host.Calls.ufunc>`), which makes
    the output and calls the kernel in C; in place to the ufunc made for that (but for one
    element, where NumPy copies first and costs more), and without a ufunc straight to the
    kernel's entry point; other calls through :meth:`Calls.map
    <relukit.kernels.cpu.host.Calls.map>`. Other NumPy arrays go through :class:`Fast`'s
    checks, and everything else through the member's general path (``_run``), which raises
    the errors.

    Once a member's ufunc is made, a call that runs whole on this thread with an output below
    :data:`~relukit.kernels.cpu.host.ALIAS_BYTES` goes to it first, with the fewest checks
    (on 1,024 float32 elements, 1 thread, Xeon, Python 3.11: ``relu(x)`` 1.08 → 0.79 µs
    against ``np.maximum``'s 0.85, ``out=`` 1.29 → 0.92 against 0.79, in place 1.09-1.33 →
    0.70-0.86 against 0.71-0.72 and ``torch.relu_``'s 0.62; calling an instance with a keyword
    argument costs 0.23 µs of that in CPython 3.11, a method call 0.07, and the ufunc itself
    0.42).

    A call that may split over threads (from :data:`~relukit.kernels.cpu.host.SPLIT_BELOW`
    elements up, :data:`~relukit.kernels.cpu.host.INPLACE_SPLIT_BELOW` in place, on more than
    one thread, nothing pinned) and whose output does not stream goes,
    under the same checks, to the ufunc whose loop splits it on the OpenMP team
    (:meth:`Calls.split_ufunc <relukit.kernels.cpu.host.Calls.split_ufunc>`): through Python,
    planned or launched from a kept plan, such a call cost 2.2-2.5 µs more than its launch
    alone, more than PyTorch's whole dispatch (relu on 2^17 float32 elements, 2 threads, AMD
    EPYC, µs, kept plan → split ufunc: out= 9.50 → 8.22 against ``torch.clamp_min(out=)``'s
    7.21, allocating 8.97 → 7.62 against ``torch.relu``'s 7.96, in place 6.26 → 5.06 against
    ``relu_``'s 4.52; ``benchmarks/split_calls.py``). Fresh outputs from
    :data:`~relukit.kernels.cpu.host.ALIAS_BYTES`, streamed ones and 16-bit floats keep the
    planned route. The ufunc splits from twice its own grain
    (:func:`~relukit.kernels.cpu.host.ufunc_grain`, measured on its hand-off, about 1 µs
    against the planned route's 2-5; at most the planned route's grain), so from some 50,000
    float32 elements out= (relu, AMD EPYC; in place from some 70,000) where the planned route
    splits from about 100,000; calls of those sizes that do not take it run whole, by the
    small calls' route.

    What is left is Python's: on 1,024 float32 elements (AMD EPYC, Python 3.11) ``relu(x)``
    takes 1.09 µs against ``np.maximum``'s 1.14 (1.32 through the entry point), ``out=``
    1.33 against 1.13 (out's checks cost 0.25), in place 1.12 µs; at one element 0.85 µs
    against 0.64. Calling an instance costs 0.12 µs and the checks 0.25; the ufunc's call
    0.3, against 0.25 for the entry point's unboxing of its five arrays and 0.25 for a new
    array and its flags in Python.
    """

    def method(self: Any, x: Any, /, *, out: Any = None, **params: Any) -> Any:
        if type(x) is np.ndarray and not params:
            fast = self._fast
            last = _NONE if fast is None else fast.last  # (one read: another thread may set it)
            dtype = x.dtype
            if dtype is last[0] and not _forcing[0]:
                n = x.size
                ndim = x.ndim
                host = _cpu.host
                calls = last[1]
                # one thread, no streaming: host.whole, inline (its call costs 0.06 µs), asked
                # once (below UFUNC_BELOW, SPLIT_BELOW's least, without the thread count; from
                # there on the count is asked here, and Calls.map takes it from here), but
                # with SPLIT_BELOW (INPLACE_SPLIT_BELOW in place) for WHOLE_BELOW: from there
                # on, the calls that a split ufunc may take go to it (the others, below
                # WHOLE_BELOW, back to the small calls' route)
                count = 0
                small = (
                    host.GRAIN_LINEAR is None
                    and host.GRAIN_SMOOTH is None
                    and (
                        n < UFUNC_BELOW
                        or n
                        < (host.INPLACE_SPLIT_BELOW if out is x else host.SPLIT_BELOW)[calls.cost]
                        or (
                            (count := threads.get_num_threads()) == 1
                            and host.alone(x.nbytes, calls.linear, 1)
                        )
                    )
                )
                if (
                    small
                    and ndim
                    and n
                    and (
                        n < UFUNC_BELOW
                        or (
                            x.nbytes < host.ALIAS_BYTES
                            and ((flags := x.flags).c_contiguous or flags.f_contiguous)
                        )
                    )
                ):
                    # the calls that run whole on this thread (below every SPLIT_BELOW, or
                    # host.whole's other cases, and ALIAS_BYTES: no output aliased), first and
                    # with the fewest checks: the kernel as its ufunc once made (any strides:
                    # its loop gathers them into contiguous copies, once per call of the loop,
                    # which NumPy makes for each row of a strided operand: so from UFUNC_BELOW
                    # on, only for a contiguous x and an out of its order) unless a grain is
                    # pinned; in place, the ufunc made for that. A new output has x's order, C
                    # or F, as below: NumPy's for other layouts (its strides' order) is not the
                    # general path's (C), so those go there. (relu on 2^16 float32, out=, 1
                    # thread, Xeon: about 1.0 µs of Python more than the ufunc's own call
                    # below here, 0.4-0.8 here)
                    if out is None:
                        ufunc = calls.ufuncs.get(op)
                        flags = x.flags
                        if ufunc and (flags.c_contiguous or flags.f_contiguous):
                            return ufunc(x)
                    elif out is x:
                        # in place: the ufunc whose loop writes over its input (a
                        # read-only x raises in NumPy, and then in the general path; at
                        # one element NumPy copies, and the kernel below costs less)
                        ufunc = calls.inplace_ufuncs.get(op)
                        if ufunc and n > 1:
                            try:
                                return ufunc(x, x)
                            except ValueError:
                                pass
                    elif (
                        type(out) is np.ndarray
                        and out.dtype is dtype
                        and out.ndim == ndim
                        and out.size == n
                        and (
                            n < UFUNC_BELOW
                            or (out.flags.c_contiguous and flags.c_contiguous)
                            or (out.flags.f_contiguous and flags.f_contiguous)
                        )
                    ):
                        # (an out of x's ndim and size that x broadcasts to has x's shape;
                        # one it does not raises, as a read-only out does: the general path
                        # then raises relukit's error)
                        ufunc = calls.ufuncs.get(op)
                        if ufunc:
                            try:
                                return ufunc(x, out)
                            except ValueError:
                                pass
                elif (
                    count > 1
                    and ndim
                    and (flags := x.flags).aligned
                    and (flags.c_contiguous or flags.f_contiguous)
                ):
                    # a call that splits (count is asked only where nothing is pinned) and
                    # whose output does not stream: the ufunc whose loop splits it on the
                    # OpenMP team, with no Python between (Calls.split_ufunc), under the checks
                    # of the small calls' ufuncs above (a fresh output below ALIAS_BYTES, in
                    # place, or an out of x's order that may take the direct kernel; x aligned,
                    # which NumPy would otherwise hand the loop in buffers); the others, and
                    # every call where there is no such ufunc, go on below
                    inplace = out is x
                    linear = calls.linear
                    ufunc = calls.split_ufuncs.get((op, inplace, count, host.PIECES_TEAM))
                    if ufunc is None:
                        ufunc = calls.split_ufunc(op, inplace, count)
                    if host.team.own[0] and "torch" in sys.modules:
                        host.team.available()  # (PyTorch's team from now on, for its ufuncs too)
                    if not ufunc:
                        pass
                    elif out is None:
                        nbytes = x.nbytes
                        if (
                            nbytes < host.ALIAS_BYTES or calls.writes_fresh_directly(op, nbytes)
                        ) and host.split_unstreamed(nbytes, linear):
                            return ufunc(x)
                    elif inplace:
                        try:
                            return ufunc(x, x)
                        except ValueError:
                            pass
                    elif (
                        type(out) is np.ndarray
                        and out.dtype is dtype
                        and out.shape == x.shape
                        and (
                            (out.flags.c_contiguous and flags.c_contiguous)
                            or (out.flags.f_contiguous and flags.f_contiguous)
                        )
                        and host.split_unstreamed(nbytes := x.nbytes, linear)
                        and calls.writes_directly(op, out, x, nbytes)
                    ):
                        try:
                            return ufunc(x, out)
                        except ValueError:
                            pass
                    # declined (no such ufunc, or a call it does not take): below WHOLE_BELOW
                    # the call runs whole, by the small calls' route below (a ufunc where
                    # there is one: out= of another order, for one, takes it there)
                    small = n < host.WHOLE_BELOW[calls.cost]
                if not (n and x.flags.carray):
                    calls = fast.calls_checked(x)  # (this dtype's: the same Calls, or None)
            else:
                calls = (fast or self._make_fast()).calls_checked(x)
                small = None
                count = 0
            if calls is not None:
                host = _cpu.host
                if small is None:  # (another dtype, or a forced() block: host.whole itself)
                    small = host.whole(x.size, x.nbytes, calls.cost)
                # below ALIAS_BYTES no output can be aliased (host.aliased, without its call)
                few = x.nbytes < host.ALIAS_BYTES
                # a small call: the kernel as a ufunc (Calls.ufunc), NumPy's checks in C (and
                # its allocation, below the huge pages'); in place, the ufunc made for that
                # (NumPy copies one element in place: 0.8 µs a call; the kernel below 0.5)
                inplace = out is x
                if small and x.ndim and (x.size > 1 or not inplace):
                    ufunc = (calls.inplace_ufuncs if inplace else calls.ufuncs).get(op)
                    if ufunc is None:
                        ufunc = calls.ufunc(op, inplace)
                    if ufunc is not False:
                        if inplace:
                            try:
                                return ufunc(x, x)
                            except ValueError:
                                pass  # (read-only: the general path raises relukit's error)
                        elif out is None:
                            # (from ALIAS_BYTES, NumPy's fresh output may lie just after x:
                            # allocated below instead, where host.aliased is asked, but where
                            # the kernel writes it directly wherever it lies)
                            if few or calls.writes_fresh_directly(op, x.nbytes):
                                return ufunc(x)
                        elif (
                            type(out) is np.ndarray
                            and out.dtype is x.dtype
                            and out.shape == x.shape
                            and calls.writes_directly(op, out, x, x.nbytes)
                        ):
                            # (NumPy copies what overlaps and takes any strides, through the
                            # loop's contiguous copies: the same bits; a read-only out raises
                            # in NumPy, and then the general path raises relukit's error)
                            try:
                                return ufunc(x, out)
                            except ValueError:
                                pass
                if out is None:
                    if x.nbytes < HUGE_BYTES:
                        y = np.empty(x.shape, x.dtype)
                    else:
                        y = empty_array(x.shape, x.dtype)
                elif out is x and x.flags.writeable:
                    y = x
                else:
                    y = Fast.written(x, out)
                if y is not None:
                    result, apart = y, y is not x
                    if x.ndim != 1:
                        x = x.reshape(-1)
                        y = y.reshape(-1) if apart else x
                    if small and calls.raw is None:  # Calls.map's small call, written out
                        into = apart and calls.writes_directly(op, y, x, x.nbytes)
                        kernel, p = (calls.direct if into else calls.buffered).get(
                            op
                        ) or calls.load(op, into)
                        kernel(x, x, calls.aux, y, p, 0, False, False)
                    else:
                        calls.map(op, x, x, y, False, out is None, count)
                    return result
            elif op == "forward":  # (prelu's slopes per channel have no Calls)
                done = self._fast.forward_channels(x, out)
                if done is not None:
                    return done
        elif not params and not _forcing[0] and type(x).__module__ == "torch":
            done = _through_numpy(method, self, x, out)
            if done is None and out is None and getattr(x, "requires_grad", False) is True:
                done = tracked.through_numpy(method, self, x, op)
            if done is not None:
                return done
        return self._run(op, x, params, out=out)

    method.__name__ = "__call__" if op == "forward" else op
    method.__qualname__ = f"ElementwiseFunction.{method.__name__}"
    method.__module__ = "relukit.activation"
    method.__doc__ = doc
    return method


def _through_numpy(method: Any, function: Any, x: Any, out: Any) -> Any:
    """A CPU tensor's call by ``method``'s NumPy route, on NumPy views of x and of the
    output (a new tensor, x itself, or ``out``, a tensor like x), or None: the general path
    takes it. Taken by C-contiguous tensors of one element up and below
    ``host.ALIAS_BYTES``, that nothing records (:func:`_plain_view`): the same kernels, so
    the same bits, for less Python (relu, silu and gelu on 1,000 float32 elements, AMD EPYC:
    27-33 µs a call through the general path, 7.6-9.5 this way; ``torch.nn.functional``'s
    1.2, 1.8 and 7.5-8.1). A tensor that requires grad takes it detached, and autograd gets
    the value (:func:`relukit.kernels.tracked.through_numpy`). Not for a member bound to a
    parameter that requires grad (prelu's weight tensor): the general path keeps it in the
    graph, where NumPy would refuse to read it."""
    view = small_view(x)
    if view is None:
        return None
    if function.params and any(_tracks(value, None) for value in function.params.values()):
        return None
    if out is None:
        y, into = new_like(x)
    elif out is x:
        y, into = x, view
    elif type(out) is type(x) and out.dtype == x.dtype and out.shape == x.shape:
        y, into = out, _plain_view(out)
    else:
        return None
    if into is None:
        return None
    method(function, view, out=into)
    if out is not None:
        _cpu.host.written(y)
    return y


def small_view(tensor: Any) -> np.ndarray | None:
    """:func:`_plain_view` of a tensor of at least one dimension and below
    ``host.ALIAS_BYTES`` (the tensors the NumPy route takes), else None."""
    view = _plain_view(tensor)
    if view is None or view.ndim == 0 or view.nbytes >= _cpu.host.ALIAS_BYTES:
        return None
    return view


def new_like(x: Any) -> tuple[Any, np.ndarray]:
    """A new C-contiguous tensor like ``x`` (a tensor :func:`small_view` takes) and its NumPy
    view."""
    torch = _cpu.host._torch()
    # (not pages.empty_tensor: below ALIAS_BYTES no huge pages apply, and asking costs 0.5 µs
    # a call; torch.empty(x.shape, dtype=x.dtype, device="cpu") 2.7 µs, this 1.1)
    y = torch.empty_like(x, memory_format=torch.contiguous_format)
    return y, _cpu.host.tensor_view(y)


def _plain_view(tensor: Any) -> np.ndarray | None:
    """A NumPy view of a CPU tensor that the kernels take and that nothing records (it
    requires no grad, has no tangent, no ``torch.jit.trace`` or ``torch.compile`` is under
    way: :func:`relukit.kernels.cpu.host._numpy`), C-contiguous; else None."""
    if not _has_numba():
        return None
    host = _cpu.host
    if type(tensor) is not host._torch().Tensor or not tensor.is_contiguous():
        return None
    return host.tensor_numpy(tensor)


class Fast:
    """The calls of one bound member on NumPy arrays, straight to the compiled kernels.

    Each method takes a C-contiguous, aligned ``numpy.ndarray`` of float32, float64, float16
    or bfloat16 (and ``out``: None, ``x`` itself, or such an array disjoint from x) and
    returns the result, or None: take :func:`run`, the general path, which also raises the
    errors. The kernels' plan and entry points are found once per dtype
    (:class:`relukit.kernels.cpu.host.Calls`), so a small call costs about what the kernel
    does; the forward and the derivative are :func:`elementwise_method`. Made once per bound
    member, which keeps it.
    """

    def __init__(self, spec: Activation, params: dict[str, Any]) -> None:
        self.spec = spec
        self.params = params
        self._calls: dict[Any, Any] = {}
        # (dtype, Calls) of the latest C-contiguous, aligned, writeable x: one compare finds
        # them again. One attribute, set and read whole, so that a thread calling with another
        # dtype cannot pair one dtype with the other's Calls
        self.last: tuple[Any, Any] = _NONE
        # prelu's slopes per channel for the latest (shape, dtype) of a weight given as numbers
        # (a tuple, which cannot change; the params' own, which may be replaced): (shape,
        # dtype, weight, Channels or None), set and read whole
        self.kept_channels: tuple[Any, Any, Any, Any] = (None, None, None, None)

    def _calls_for(self, x: Any) -> Any:
        """The member's :class:`Calls` for ``x`` (a NumPy array the kernels take as it is), or
        None. Written for the cost of a small call: the checks cost what a Python attribute
        does, and anything unusual (no Calls yet, an empty or read-only array, another dtype or
        layout, a :func:`forced` block) is left to :meth:`calls_checked`."""
        if type(x) is not np.ndarray:
            return None
        last = self.last
        if x.dtype is last[0] and not _forcing[0] and x.flags.carray and x.size:
            return last[1]
        return self.calls_checked(x)

    def calls_checked(self, x: np.ndarray) -> Any:
        """:meth:`_calls_for` with every check: made for a new dtype, asking :func:`forced`."""
        calls = self._calls.get(x.dtype, False)
        if calls is False:
            if x.size == 0:
                return None
            calls = self._calls[x.dtype] = self._make(x.dtype)
        if calls is None or (_forcing[0] and _forced.get() == "reference"):
            return None
        flags = x.flags
        if not (flags.carray or (flags.c_contiguous and flags.aligned)) or x.size == 0:
            return None
        if flags.carray and not _forcing[0]:
            self.last = (x.dtype, calls)
        return calls

    def _make(self, dtype: np.dtype) -> Any:
        if dtype != np.float32 and dtype != np.float64 and dtype_kind(np, dtype) != "low":
            return None
        if not _has_numba() or not self.spec.elementwise:
            return None
        spec, params = self.spec, self.params
        codes = table = None
        if spec.mask_code is not None and spec.mask_derivatives is not None:
            if _cpu.per_element_slopes(spec, params, dtype.itemsize == 8):
                return None
            codes = _piece_codes(spec, params)
            table = _derivative_table(spec, params, dtype.itemsize == 8, False)
        try:
            return _cpu.Calls(spec, params, dtype, codes, table)
        except ValueError:
            return None

    @staticmethod
    def written(x: np.ndarray, out: Any) -> np.ndarray | None:
        """The array to write: a new one, or ``out`` when the kernels can write it directly
        (None: the general path copies into it, or raises)."""
        if out is None:  # (np.empty_like takes twice as long)
            return (
                np.empty(x.shape, x.dtype)
                if x.nbytes < HUGE_BYTES
                else empty_array(x.shape, x.dtype)
            )
        if out is x:
            return out if x.flags.writeable else None
        if type(out) is not np.ndarray or out.dtype is not x.dtype or out.shape != x.shape:
            return None  # (another dtype object of the same dtype: the general path takes it)
        flags = out.flags
        if not flags.carray:  # C-contiguous, aligned and writeable
            return None
        # Two arrays that each own their buffer cannot overlap (np.may_share_memory costs as
        # much as the rest of a small call)
        if flags.owndata and x.flags.owndata:
            return out
        return None if np.may_share_memory(out, x) else out

    def vjp(self, x: Any, grad: Any, out: Any = None) -> Any:
        """``grad · f′(x)`` (into ``out``, an array the caller made for it, when given)."""
        calls = self._calls_for(x)
        if calls is None or type(grad) is not np.ndarray or grad.dtype != x.dtype:
            return None
        flags = grad.flags
        if grad.shape != x.shape or not (flags.c_contiguous and flags.aligned):
            return None
        y = self.written(x, out)
        if y is None or y is x:
            return None
        flat, into = _flats(x, y)
        calls.map("derivative", flat, grad.reshape(-1), into, True)  # (a new y)
        return y

    def forward_with_mask(self, x: Any, out: Any) -> Any:
        found = self._whole(x, out)
        if found is not None:  # (Calls.forward's first route, written out)
            calls, y, flat, into = found
            mask = np.empty(-(-x.size * calls.bits // 8), _BYTES)
            direct = y is not x
            kernel = calls._mask_forward.get(direct) or calls._load_forward(direct)
            kernel(flat, calls.aux, into, mask, calls.mask_p, calls.codes, 0, False)
            return y, mask
        calls = self._calls_for(x)
        if calls is None:
            return self.forward_channels(x, out, True)
        if not calls.masked:
            return None
        y = self.written(x, out)
        if y is None:
            return None
        mask = np.empty(-(-x.size * calls.bits // 8), _BYTES)
        calls.forward(*_flats(x, y), mask, out is None)
        return y, mask

    def backward_from_mask(self, grad: Any, mask: Any, out: Any) -> Any:
        if type(mask) is not np.ndarray or mask.ndim != 1 or not mask.flags.c_contiguous:
            return None
        if mask.dtype is not _BYTES and mask.dtype != _BYTES:
            return None
        found = self._whole(grad, out)
        if found is not None and mask.size == -(-grad.size * found[0].bits // 8):
            calls, dx, flat, into = found  # (Calls.backward's first route, written out)
            kernel = calls._mask_backward or calls._load_backward()
            kernel(flat, mask, calls.aux, into, calls.table, 0, False)
            return dx
        calls = self._calls_for(grad)
        if calls is None:  # (prelu's slopes per channel, one bit, or none)
            if type(grad) is not np.ndarray or mask.size != -(-grad.size // 8):
                return None
            channels = self._channels_for(grad)
            if channels is None:
                return None
        elif not calls.masked or mask.size != -(-grad.size * calls.bits // 8):
            return None
        dx = self.written(grad, out)
        if dx is None:
            return None
        flat, into = _flats(grad, dx)
        if calls is None:
            _cpu.channels_backward(channels, flat, mask, into)
        else:
            calls.backward(flat, mask, into, out is None)
        return dx

    def _whole(self, x: Any, out: Any) -> Any:
        """For a mask-path call that runs whole on this thread, ``(calls, result, x's elements,
        result's elements)`` (flat, 16-bit floats as their raw bits), or None: the other routes
        decide. Such a call (:func:`host.whole <relukit.kernels.cpu.host.whole>`: below
        ``host.WHOLE_BELOW`` elements, whatever the thread count, or on one thread below the
        size that streams; nothing pinned) has a C-contiguous, aligned, writeable NumPy ``x`` of
        the dtype of the previous call, of a member with a mask, and an ``out`` that
        :meth:`written` takes. (On one thread, until a call on more measured WHOLE_BELOW,
        calls from 8,192 elements went through :class:`Calls`, whose checks cost some 0.5 µs
        more: relu's backward_from_mask out= on 2^14 float32 elements, AMD EPYC, 2.6 µs
        against 2.1 and a copy's 0.75.) Written for its cost: forward_with_mask's call
        2.2-2.5 → 1.7-2.2 µs (relu, 1,024 float32 elements, 1-D and 2-D, out=, AMD EPYC,
        Python 3.11), where calling :class:`Calls` took 0.2-0.4 µs more; with
        :meth:`written`'s first case and :func:`_flats` inline and x's flags read once,
        1.94-1.95 → 1.80-1.83 µs, and backward_from_mask's 1.71-1.76 → 1.59-1.62 (relu,
        1,024 float32 elements, out=, 1 thread, old tree against new in alternating
        processes, AMD EPYC, session 33)."""
        last = self.last
        if type(x) is not np.ndarray or x.dtype is not last[0] or _forcing[0]:
            return None
        calls = last[1]
        host = _cpu.host
        n = x.size
        if not (
            calls.masked
            and n > 0
            and host.GRAIN_LINEAR is None
            and host.GRAIN_SMOOTH is None
            and (n < host.WHOLE_BELOW[1] or host.alone(x.nbytes, True))  # (host.LINEAR)
            and (flags := x.flags).carray
        ):
            return None
        if out is None:  # (written's first case, inline)
            y = np.empty(x.shape, x.dtype) if x.nbytes < HUGE_BYTES else self.written(x, out)
        elif out is x:
            y = x  # (carray: writeable)
        elif (
            type(out) is np.ndarray
            and out.dtype is x.dtype
            and out.shape == x.shape
            and (out_flags := out.flags).carray
            and out_flags.owndata
            and flags.owndata
        ):
            y = out  # (written's first case, inline: two arrays that own their buffers)
        else:
            y = self.written(x, out)
            if y is None:
                return None
        if x.ndim != 1:  # (_flats, inline: in place, one object)
            flat = x.reshape(-1)
            into = flat if y is x else y.reshape(-1)
            x = flat
        else:
            into = y
        if calls.raw is not None:
            return calls, y, x.view(calls.raw), into.view(calls.raw)
        return calls, y, x, into

    def forward_channels(self, x: Any, out: Any, with_mask: bool = False) -> Any:
        """prelu's forward with one slope per channel (:meth:`_channels_for`), with its mask
        ``(y, mask)``, or None."""
        channels = self._channels_for(x)
        if channels is None:
            return None
        y = self.written(x, out)
        if y is None:
            return None
        if not with_mask:
            _cpu.channels_map(channels, *_flats(x, y))
            return y
        mask = np.empty(-(-x.size // 8), _BYTES)
        _cpu.channels_forward(channels, *_flats(x, y), mask)
        return y, mask

    def _channels_for(self, x: Any) -> Any:
        """prelu's slopes per channel for ``x`` (:func:`~relukit.kernels.cpu.host.
        channel_slopes`), where ``x`` is a C-contiguous, aligned, writeable NumPy array of
        floats (float32, float64, float16 or bfloat16) and no backend is forced, or None. (The
        general path, which runs the same kernels, checks and converts what the caller gave at
        some 20 µs a call.) A weight given as numbers is looked up once per shape and dtype
        (host.channel_slopes hashes it at every call: 2 µs of a call's 9 at 1,024 float32
        elements, AMD EPYC)."""
        if type(x) is not np.ndarray or _forcing[0] or not x.size or not x.flags.carray:
            return None
        dtype = x.dtype
        kept = self.kept_channels
        weight = self.params.get("weight")
        if kept[1] is dtype and kept[2] is weight and kept[0] == x.shape:
            return kept[3]
        if dtype != np.float32 and dtype != np.float64 and dtype_kind(np, dtype) != "low":
            return None
        if not _has_numba():
            return None
        found = _cpu.channel_slopes(self.spec, self.params, x.shape, dtype)
        if type(weight) is tuple:
            self.kept_channels = (x.shape, dtype, weight, found)
        return found


def _flats(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-D views of C-contiguous ``x`` and ``y``; one object when ``y`` is ``x`` (in place)."""
    if x.ndim == 1:
        return x, y
    flat = x.reshape(-1)
    return flat, (flat if y is x else y.reshape(-1))


def run(
    spec: Activation,
    op: str,
    source: Input,
    params: dict[str, Any],
    grad: Any = None,
    wrt: str = "x",
    *,
    out: Any = None,
    mask: Any = None,
) -> Any:
    """``op`` of ``spec`` at ``source`` with bound ``params``; the result in the caller's kind.

    ``op`` is forward, derivative or vjp (``grad`` the incoming gradient, ``wrt`` x or a
    parameter), forward_with_mask (returns ``(y, mask)``) or backward_from_mask (``source`` is
    the incoming gradient, ``mask`` the packed codes). With ``out`` the result may be written
    into it, in which case ``out`` itself is returned (the caller copies any other result).
    """
    if op in ("forward_with_mask", "backward_from_mask"):
        return _mask_op(spec, op, source, params, mask, out)
    promoted = reference.integer_promotion(source, spec, op, grad)
    if promoted is not None:
        # computed as the same values in the promoted float dtype are, on the same path, so
        # an element's result does not depend on whether it came as an integer
        array = source.xp.astype(source.array, promoted)
        source = replace(source, array=array, kind=dtype_kind(source.xp, array.dtype))
    if compiled_takes(source):
        if wrt == "x" and type(source.array) is not np.ndarray and _tracks(source.array, grad):
            result = tracked.run(spec, op, source, params, grad=grad)
        else:
            from relukit.kernels import cpu

            result = cpu.run(spec, op, source, params, grad=grad, wrt=wrt, out=out)
        if result is not None:
            return result
    return reference.evaluate(spec, op, source, params, grad=grad, wrt=wrt)


def _tracks(array: Any, grad: Any) -> bool:
    """Does x or ``grad`` require grad (a torch tensor that autograd tracks)?"""
    return bool(getattr(array, "requires_grad", False) or getattr(grad, "requires_grad", False))


def _mask_op(
    spec: Activation, op: str, source: Input, params: dict[str, Any], mask: Any, out: Any
) -> Any:
    where = f"relukit.{spec.name}.{op}"
    if spec.mask_code is None or spec.mask_derivatives is None:
        raise UserTypeError(
            f"{where}: {spec.name} is not piecewise linear, so its backward needs x itself "
            "(use vjp); the mask path serves relu, leaky_relu, prelu, rrelu, relu6, hardtanh "
            "and general_relu"
        )
    # (binding checks every parameter again: for prelu's 64 slopes, 25 µs a call)
    bits = _cached(spec, params, 3, lambda: spec.derivative_bits(params))
    if op == "forward_with_mask":
        if compiled_takes(source):
            codes = _cached(spec, params, 0, lambda: _piece_codes(spec, params))
            done = _cpu.forward_with_mask(spec, source, params, bits, codes, out=out)
            if done is not None:
                return done
        return mask_path.forward_with_mask(spec, source, params, bits)
    if source.kind not in ("float", "low"):
        raise UserTypeError(
            f"{where}: grad_out has dtype {source.array.dtype}; it must be floating point"
        )
    mask_path.check_mask(where, mask, source, _size(source.array), bits)
    if compiled_takes(source):
        wide = source.array.dtype.itemsize == 8

        def slopes_and_table() -> tuple[bool, np.ndarray]:
            slopes = _cpu.per_element_slopes(spec, params, wide)
            return slopes, _derivative_table(spec, params, wide, slopes)

        slopes, table = _cached(spec, params, 1 + wide, slopes_and_table)
        done = _cpu.backward_from_mask(spec, source, mask, params, bits, table, slopes, out=out)
        if done is not None:
            return done
    return mask_path.backward_from_mask(spec, source, mask, params, bits)


def mask_kernels(spec: Activation, params: dict[str, Any], dtype: np.dtype) -> Any:
    """The mask path's kernels for contiguous float32/float64 arrays, called directly
    (:class:`relukit.kernels.cpu.host.Calls`: the entry point :mod:`relukit.nn` takes), or None
    where they do not apply (no Numba, a member with per-element slopes, another dtype)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or not _has_numba():
        return None
    if spec.mask_code is None or _cpu.per_element_slopes(spec, params, dtype.itemsize == 8):
        return None
    codes = _piece_codes(spec, params)
    table = _derivative_table(spec, params, dtype.itemsize == 8, False)
    try:
        return _cpu.Calls(spec, params, dtype, codes, table)
    except ValueError:
        return None


def _cached(spec: Activation, params: dict[str, Any], slot: int, make: Any) -> Any:
    """``make()``, remembered per bound member (``params``) and slot."""
    key = (id(params), slot)
    entry = _tables.get(key)
    if entry is None or entry[0] is not params or entry[1] is not spec:
        if len(_tables) >= 512:
            _tables.clear()
        entry = _tables[key] = (params, spec, make())
    return entry[2]


def _piece_codes(spec: Activation, params: dict[str, Any]) -> np.ndarray:
    """general_relu's code for its pieces (below the threshold, between, capped)."""
    if spec.name != "general_relu":
        return np.zeros(3, dtype=np.int64)
    codes = general_relu_piece_codes(params["negative_slope"], params["max_value"])
    return np.array((*codes, 0)[:3], dtype=np.int64)


def _derivative_table(
    spec: Activation, params: dict[str, Any], wide: bool, slopes: bool
) -> np.ndarray:
    """The derivative on each code in the working dtype (code 0 of prelu/rrelu: per element)."""
    work = np.float64 if wide else np.float32
    if slopes:
        # code 1 is x > 0, where both prelu's and rrelu's derivative is 1
        return np.array([np.nan, 1.0], dtype=work)
    like = np.zeros(1, dtype=work)
    values = mask_path.derivatives(spec, reference.Math(np), like, params)
    # (prelu's one slope comes broadcast to like's shape)
    return np.array([np.reshape(v, -1)[0] for v in values], dtype=work)
