"""Durable file I/O: hidden temporary siblings, fsync, atomic publication by rename."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from data_manifest.store.names import TMP_MARK


def host_name() -> str:
    """This machine's name as it goes into temporary file names."""
    name = socket.gethostname() or "localhost"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden sibling a writer on this machine and process writes ``path`` to."""
    path = Path(path)
    return path.with_name(f".{path.name}{TMP_MARK}{host_name()}-{os.getpid()}")


def temporary_owner(path: str | os.PathLike) -> tuple[str, int | None]:
    """(host, pid) of the writer of a temporary file; host '' for names from before the
    host was recorded (``.tmp-<pid>``), pid None when it cannot be read."""
    owner = Path(path).name.rsplit(TMP_MARK, 1)[-1]
    host, _, pid = owner.rpartition("-")
    return host, (int(pid) if pid.isdigit() else None)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def sync_directory(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (not possible on every platform: then skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass   # some file systems refuse to sync a directory; the rename still happened
    finally:
        os.close(fd)


def publish(tmp: Path, path: Path) -> None:
    """Flush ``tmp`` to disk, rename it to ``path`` and make the rename durable, so a power
    loss leaves either the old file or the complete new one, never a truncated one."""
    _fsync_file(tmp)
    os.replace(tmp, path)
    sync_directory(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = temporary_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
