"""Output paths checked before any work starts: a folder or a file that can be written.

Both checks write nothing they leave behind: a folder or file that did not exist is created to
prove it can be, then removed again. A path under ``/proc``, under a file, or in a read-only
place is refused with a one-line :class:`relukit.UserValueError` (a ``ValueError``) naming
the path and the reason.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> base = Path(tempfile.mkdtemp())
    >>> check_folder(base / "new" / "report", "report folder") == base / "new" / "report"
    True
    >>> (base / "new").exists()
    False
    >>> _ = (base / "file").write_text("x")
    >>> check_folder(base / "file" / "sub", "report folder")
    Traceback (most recent call last):
    ...
    relukit.UserValueError: report folder '.../file/sub' cannot be created: '.../file' is a file
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from relukit.errors import UserValueError

__all__ = ["check_file", "check_folder"]


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _blocking_file(path: Path) -> Path | None:
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def check_folder(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a folder files can be written in; ValueError otherwise. Nothing is left
    behind."""
    folder = Path(path)
    blocking = _blocking_file(folder)
    if blocking == folder:
        raise UserValueError(f"{what} {str(path)!r} is a file, not a folder")
    if blocking is not None:
        raise UserValueError(f"{what} {str(path)!r} cannot be created: {str(blocking)!r} is a file")
    created = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".relukit-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        raise UserValueError(f"{what} {str(path)!r} cannot be written: {_reason(error)}") from None
    finally:
        for made in created:
            try:
                made.rmdir()
            except OSError:
                break
    return folder


def check_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a file that can be written (its folder must exist); ValueError otherwise.
    An existing file is opened for appending and left as it was; a new one is created and
    removed."""
    file = Path(path)
    if file.is_dir():
        raise UserValueError(f"{what} {str(path)!r} is a folder, not a file")
    blocking = _blocking_file(file.parent)
    if blocking is not None:
        raise UserValueError(f"{what} {str(path)!r} cannot be written: {str(blocking)!r} is a file")
    if not file.parent.is_dir():
        raise UserValueError(
            f"{what} {str(path)!r} cannot be written: no folder {str(file.parent)!r}"
        )
    existed = file.exists()
    try:
        with file.open("ab"):
            pass
    except OSError as error:
        raise UserValueError(f"{what} {str(path)!r} cannot be written: {_reason(error)}") from None
    if not existed:
        file.unlink(missing_ok=True)
    return file
