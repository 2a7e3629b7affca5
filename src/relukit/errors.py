"""relukit's own error types: what the caller got wrong, told apart from relukit's own bugs.

Every error relukit raises because of what it was given (a parameter, an input, a file, an
option) is a :class:`UserError`, and also the built-in type that says its kind:
:class:`UserTypeError` (a ``TypeError``: a wrong kind of value) or :class:`UserValueError` (a
``ValueError``: a wrong value; :class:`relukit.ParameterError` is one). Code that catches
``TypeError`` or ``ValueError`` keeps working; the command line prints a ``UserError`` as one
line with exit status 2, and lets any other exception (a bug in relukit) show its traceback.

>>> import relukit
>>> try:
...     relukit.get("leaky_relu", negative_slope="steep")
... except relukit.UserError as error:
...     print(type(error).__name__, isinstance(error, ValueError))
ParameterError True
"""

from __future__ import annotations


class UserError(Exception):
    """An error in what the caller gave relukit (never a bug in relukit itself)."""


class UserTypeError(UserError, TypeError):
    """A value of the wrong kind: not a number, not an array, a dtype no member takes."""


class UserValueError(UserError, ValueError):
    """A value of the right kind that relukit refuses: out of range, wrong shape, a bad file."""


for _error in (UserError, UserTypeError, UserValueError):
    _error.__module__ = "relukit"  # tracebacks say relukit.UserValueError, where users find it
