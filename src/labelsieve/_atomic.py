"""Atomic file writes: write a temporary file in the target's folder, then ``os.replace``.

A reader never sees a half-written file, and a failed write leaves the old file (or nothing).
Files get the usual permissions (0666 minus the umask), not ``mkstemp``'s 0600.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], *, binary: bool = False) -> Path:
    """Call ``write(fh)`` on a temporary file next to ``path``, then move it onto ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        fh: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="", encoding="utf-8")
        with fh:
            write(fh)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(text))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data), binary=True)


def atomic_write_path(path: str | os.PathLike[str], write: Callable[[str], object], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_name)`` for a temporary file name next to ``path``, then move it onto ``path``.

    For writers that take a file name rather than a handle (pyarrow, pandas' Parquet, matplotlib);
    ``suffix`` is the temporary name's ending (matplotlib reads the format from it). A temporary
    file is hidden (its name starts with a dot).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def replace_directory(staging: str | os.PathLike[str], dest: str | os.PathLike[str]) -> Path:
    """Move the complete directory ``staging`` onto ``dest``.

    An existing ``dest`` is moved aside first and deleted only once the new one is in place, so
    ``dest`` is always either the old or the new directory, never a mix.
    """
    staging, dest = Path(staging), Path(dest)
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
        os.replace(staging, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, dest)
    return dest
