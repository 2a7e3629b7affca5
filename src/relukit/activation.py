"""The public face of a member: a callable with ``derivative`` and ``vjp``, parameters bound.

``relukit.relu`` and ``relukit.get("leaky_relu", negative_slope=0.07)`` are instances of the
classes here. Calling one checks the input and the parameters, hands the work to the single
dispatch point (:mod:`relukit.kernels.dispatch`) and returns the result in the caller's array
kind and dtype, writing it into ``out`` when given.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from relukit.errors import UserError, UserTypeError, UserValueError
from relukit.family import Activation, ParameterError
from relukit.kernels import dispatch
from relukit.kernels.arrays import Input, as_input


class Function:
    """A member of the family with its parameters bound (see ``spec`` for the definition)."""

    def __init__(self, spec: Activation, params: dict[str, Any] | None = None) -> None:
        self.spec = spec
        self.params = self._bind(params or {})
        self.__doc__ = _docstring(spec)
        self._fast: Any = None  # dispatch.Fast for these params, made on first call
        self._bound: dict[tuple[Any, ...], Function] = {}  # see _with

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualname(self) -> str:
        return f"relukit.{self.spec.name}"

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._changed().items())
        return f"{self.qualname}({args})" if args else self.qualname

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        """Pickled by reference, as NumPy's ufuncs are: the member's name and the parameters
        that differ from the defaults (``relukit.relu`` comes back as ``relukit.relu`` itself),
        so a member can go to other processes (``ProcessPoolExecutor().map(relukit.relu, …)``)."""
        return (_unpickle, (self.spec.name, self._changed()))

    def _changed(self) -> dict[str, Any]:
        return {
            p.name: self.params[p.name]
            for p in self.spec.parameters
            if not _same(self.params[p.name], p.default)
        }

    def bind(self, **params: Any) -> Function:
        """The same member with ``params`` overriding the bound ones."""
        return type(self)(self.spec, {**self.params, **params})

    def _bind(self, overrides: dict[str, Any]) -> dict[str, Any]:
        base = getattr(self, "params", {})
        try:
            return self.spec.bind({**base, **overrides})
        except ParameterError as error:
            raise ParameterError(f"{self.qualname}: {error}") from None

    def _with(self, params: dict[str, Any]) -> Function | None:
        """This member with the keyword arguments of one call, ``params``, bound over its own:
        made once per distinct set of plain values (bool, int, float, str, None; a float by
        its value and sign, so -0.0 is not 0.0) and kept, so that ``f(x, negative_slope=0.07)``
        takes the same compiled route as a bound ``f`` (checking and binding the parameters,
        and planning a call for a new dict of them, cost some 23 µs a call: leaky_relu on 1,024
        float32 elements, AMD EPYC, 23.9 µs against 1.2 bound). None for other values (arrays,
        tensors, NumPy scalars), which a later call could change in place: those are bound at
        every call. Raises ParameterError as binding them does."""
        key = _params_key(params)
        if key is None:
            return None
        found = self._bound.get(key)
        if found is None:
            found = self.bind(**params)
            if len(self._bound) >= _KEPT_BINDINGS:
                self._bound.clear()
            self._bound[key] = found
        return found

    def _run(
        self,
        op: str,
        x: Any,
        params: dict[str, Any],
        grad: Any = None,
        wrt: str = "x",
        out: Any = None,
    ) -> Any:
        if params and (bound_member := self._with(params)) is not None:
            if op == "vjp":
                return bound_member.vjp(x, grad, wrt=wrt)
            return (bound_member if op == "forward" else getattr(bound_member, op))(x, out=out)
        source = _integers(self.spec, as_input(x, self.qualname), self.qualname)
        bound = self._bind(params) if params else self.params
        grad_array = None
        if op == "vjp":
            grad_array = _as_grad(grad, source, self.qualname)
            if self.spec.elementwise and tuple(grad_array.shape) != tuple(source.array.shape):
                raise UserValueError(
                    f"{self.qualname}: grad_out has shape {tuple(grad_array.shape)}, "
                    f"x has shape {tuple(source.array.shape)}"
                )
        try:
            result = dispatch.run(self.spec, op, source, bound, grad=grad_array, wrt=wrt, out=out)
        except UserError as error:
            raise _named(error, self.qualname) from None
        if out is not None:
            return out if result is out else _write(out, result, source, self.qualname)
        if source.scalar:
            return np.asarray(result)[()]
        return result

    def __call__(self, x: Any, /, *, out: Any = None, **params: Any) -> Any:
        """The forward value at ``x`` (written into ``out`` when given)."""
        return self._run("forward", x, params, out=out)

    def _make_fast(self) -> dispatch.Fast:
        self._fast = dispatch.Fast(self.spec, self.params)
        return self._fast

    def vjp(self, x: Any, grad_out: Any, /, *, wrt: str = "x", **params: Any) -> Any:
        """The vector-Jacobian product ``grad_out · ∂f/∂wrt`` at ``x``.

        ``wrt`` is ``"x"`` (the input) or a parameter that has a gradient (prelu's ``weight``).
        """
        if wrt != "x" and wrt not in self.spec.param_vjps:
            choices = ", ".join(["x", *self.spec.param_vjps])
            raise UserValueError(f"{self.qualname}.vjp: wrt={wrt!r} is not one of: {choices}")
        if not params and wrt == "x":
            result = (self._fast or self._make_fast()).vjp(x, grad_out)
            if result is not None:
                return result
        return self._run("vjp", x, params, grad=grad_out, wrt=wrt)

    def forward_with_mask(self, x: Any, /, *, out: Any = None, **params: Any) -> tuple[Any, Any]:
        """``(f(x), mask)``: the forward and, in the same pass, a packed code per element.

        For the piecewise-linear members (relu, leaky_relu, prelu, rrelu, relu6, hardtanh,
        general_relu) the code says which linear piece each element is in, so the backward
        needs only the mask: a ``uint8`` array (a torch tensor for torch input) of
        ``ceil(n·bits/8)`` bytes, ``bits = spec.derivative_bits(params)`` (1, or 2 for
        general_relu with a negative slope and a cap), elements in C order, little-endian in
        each byte (see :mod:`relukit.kernels.mask`). ``backward_from_mask(grad_out, mask)``
        equals ``vjp(x, grad_out)`` bit for bit for every input that is not NaN; a NaN input gets
        the gradient PyTorch's backward gives it (relu: ``grad_out``, leaky_relu:
        ``negative_slope·grad_out``, hardtanh: 0), since one bit cannot carry NaN. Other
        members raise TypeError.

        >>> import relukit
        >>> y, mask = relukit.leaky_relu.forward_with_mask([-2.0, 3.0], negative_slope=0.5)
        >>> y, mask
        (array([-1.,  3.]), array([2], dtype=uint8))
        """
        if not params:
            done = (self._fast or self._make_fast()).forward_with_mask(x, out)
            if done is not None:
                return done
        elif (bound_member := self._with(params)) is not None:
            return bound_member.forward_with_mask(x, out=out)
        where = f"{self.qualname}.forward_with_mask"
        source = _integers(self.spec, as_input(x, where), where)
        bound = self._bind(params) if params else self.params
        try:
            y, mask = dispatch.run(self.spec, "forward_with_mask", source, bound, out=out)
        except UserError as error:
            raise _named(error, where) from None
        if out is not None:
            return (out if y is out else _write(out, y, source, where)), mask
        return (np.asarray(y)[()] if source.scalar else y), mask

    def backward_from_mask(
        self, grad_out: Any, mask: Any, /, *, out: Any = None, **params: Any
    ) -> Any:
        """The input gradient from ``grad_out`` and the mask of :meth:`forward_with_mask` alone.

        ``grad_out`` has the shape of x (prelu takes the channel of each element from it and
        ``axis``; rrelu in training draws its slopes again from ``seed``, as ``vjp`` does); the
        result has ``grad_out``'s dtype. Equals ``vjp(x, grad_out)`` bit for bit wherever x was
        not NaN (same parameters, ``grad_out`` of x's dtype).

        >>> import relukit
        >>> y, mask = relukit.relu6.forward_with_mask([-1.0, 3.0, 7.0])
        >>> relukit.relu6.backward_from_mask([1.0, 1.0, 1.0], mask)
        array([0., 1., 0.])
        """
        if not params:
            result = (self._fast or self._make_fast()).backward_from_mask(grad_out, mask, out)
            if result is not None:
                return result
        elif (bound_member := self._with(params)) is not None:
            return bound_member.backward_from_mask(grad_out, mask, out=out)
        where = f"{self.qualname}.backward_from_mask"
        source = as_input(grad_out, where, "grad_out")
        bound = self._bind(params) if params else self.params
        try:
            result = dispatch.run(
                self.spec, "backward_from_mask", source, bound, mask=mask, out=out
            )
        except UserError as error:
            raise _named(error, where) from None
        if out is not None:
            return out if result is out else _write(out, result, source, where)
        return np.asarray(result)[()] if source.scalar else result


class ElementwiseFunction(Function):
    """A member whose output has the input's shape: it also has an elementwise ``derivative``."""

    # NumPy arrays straight to the compiled kernels, in one frame (else Function's _run)
    __call__ = dispatch.elementwise_method(
        "forward", "The forward value at ``x`` (written into ``out`` when given)."
    )
    derivative = dispatch.elementwise_method(
        "derivative", "f'(x), elementwise, with the derivative at each kink chosen as documented."
    )


def make(spec: Activation, params: dict[str, Any] | None = None) -> Function:
    """The public callable for ``spec`` with ``params`` bound."""
    cls = ElementwiseFunction if spec.elementwise else Function
    return cls(spec, params)


def _unpickle(name: str, params: dict[str, Any]) -> Function:
    """The member ``name`` with ``params`` (see :meth:`Function.__reduce__`)."""
    import relukit

    if not params:
        public = getattr(relukit, name, None)
        if isinstance(public, Function) and public.spec.name == name:
            return public
    return relukit.get(name, **params)


_KEPT_BINDINGS = 64
"""How many sets of per-call keyword arguments a member keeps bound (:meth:`Function._with`)."""

_PLAIN_TYPES = (bool, int, str, type(None))


def _params_key(params: dict[str, Any]) -> tuple[Any, ...] | None:
    """A key that tells apart every set of plain keyword arguments a call may pass (a float by
    value and sign; a NaN only ever equal to itself), or None where a value is of another type."""
    key: list[Any] = []
    for name, value in params.items():
        kind = type(value)
        if kind is float:
            key.append((name, kind, value, math.copysign(1.0, value)))
        elif kind in _PLAIN_TYPES:
            key.append((name, kind, value))
        else:
            return None
    return tuple(key)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError):
        return False


def _named(error: UserError, where: str) -> UserError:
    """``error`` with the caller's name in front, unless a relukit function already named."""
    return error if str(error).startswith("relukit.") else type(error)(f"{where}: {error}")


def _integers(spec: Activation, source: Input, where: str) -> Input:
    """An integer input as the member takes it: kept (relu, relu6, hardtanh: ``"same"``),
    promoted to float64 (``"float"`` members, and Python ints or lists of them for every
    member, as NumPy's functions promote them), or refused with a TypeError (an integer array
    for a member PyTorch refuses it for)."""
    if source.kind not in ("int", "uint") or spec.integers != "refuse":
        return source
    if source.python:
        return replace(source, array=source.array.astype(np.float64), kind="float")
    raise UserTypeError(
        f"{where}: x has integer dtype {source.array.dtype}; this member needs a "
        "floating-point input (PyTorch refuses it too)"
    )


def _as_grad(grad: Any, source: Input, where: str) -> Any:
    g = as_input(grad, f"{where}.vjp", "grad_out")
    if g.xp is not source.xp and not (g.scalar or isinstance(grad, (list, tuple))):
        raise UserTypeError(
            f"{where}.vjp: grad_out is {type(grad).__name__} but x is {type(source.array).__name__}"
        )
    if g.xp is not source.xp:
        # an integer x keeps grad_out's own dtype: its gradient is promoted, not truncated
        floating = source.kind in ("float", "low")
        dtype = source.array.dtype if floating else None
        return source.xp.asarray(np.asarray(g.array), dtype=dtype)
    return g.array


def _write(out: Any, result: Any, source: Input, where: str) -> Any:
    if type(out) is not type(result):
        raise UserTypeError(
            f"{where}: out is {type(out).__name__} but the result is {type(result).__name__}"
        )
    if tuple(out.shape) != tuple(result.shape):
        raise UserValueError(
            f"{where}: out has shape {tuple(out.shape)}, the result has shape {tuple(result.shape)}"
        )
    if out.dtype != result.dtype:
        raise UserTypeError(
            f"{where}: out has dtype {out.dtype}, the result has dtype {result.dtype}"
        )
    if not getattr(getattr(out, "flags", None), "writeable", True):
        raise UserValueError(f"{where}: out is a read-only array")
    if getattr(out, "requires_grad", False):
        raise UserValueError(
            f"{where}: out is a tensor that requires grad, which cannot be written in place"
        )
    out[...] = result
    return out


def _docstring(spec: Activation) -> str:
    lines = [f"{spec.summary}.", "", f"    f(x) = {spec.formula}", ""]
    if spec.parameters:
        lines.append("Parameters:")
        lines += [f"    {p.name} (default {p.default!r}): {p.doc}" for p in spec.parameters]
        lines.append("")
    if spec.kinks:
        lines.append("Derivative convention at the kinks:")
        lines += [f"    {k.where}: {k.chosen}" for k in spec.kinks]
        lines.append("")
    if spec.limits is not None:
        lines.append("NaN in gives NaN out (forward and derivative); ±inf give the limits.")
    lines += [
        f"Output range: {spec.output_range}.",
        f"Reference: {spec.reference} ({spec.year}).",
        "",
        "Example:",
        spec.example.strip("\n"),
    ]
    return "\n".join(lines)
