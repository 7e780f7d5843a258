"""Durable, atomic file writes for run directories and reports.

Write to a temporary sibling, flush and ``fsync`` it, ``os.replace`` it over the target,
then ``fsync`` the folder so the rename itself survives a crash or power loss. Readers see
the old file or the new one, never a truncated one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def fsync_dir(folder: str | os.PathLike) -> None:
    """Persist a folder's entries (a rename into it); a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary binary file, then move it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    data = text.encode("utf-8")
    return write_atomic(path, lambda handle: handle.write(data))
