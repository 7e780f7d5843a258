"""Advisory locks that keep a cache from being deleted while a stage writes it.

Every process that writes a cache holds a *shared* lock on it for the whole run, so the
processes of one run (``-j`` workers' parent, ``torchrun`` ranks, Slurm array tasks) write
side by side. Deleting a cache (``--rebuild``, or ``--overwrite`` of a cache made with
other settings) needs the *exclusive* lock: while anyone writes the cache, it is refused
at once with :class:`CacheBusyError`, never waited for. A writer that finds the cache
being deleted waits (with a message) until the deletion is over, which takes seconds.

The lock file sits beside the cache folder (``cache/<stage>/.<name>.lock``), so deleting
the folder cannot delete the lock under its holder; it is never deleted itself (deleting
a lock file lets two processes lock two different files). The kernel drops a lock when its
holder dies, even by ``kill -9``.

Locks are ``flock(2)`` locks. On a local disk they are exact. On NFS, Linux clients
emulate them with NFS byte-range locks, which work across machines when the server runs
a lock manager (NFSv4, or NFSv3 with ``lockd``); mounts with ``nolock`` or
``local_lock=flock`` lock only within one machine. On Lustre they work across machines
only with the ``flock`` mount option (``localflock``: within one machine; the default
``noflock``: not at all). A file system that refuses locks gets a warning and the run goes
on unprotected.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

log = logging.getLogger(__name__)

#: errors of file systems that do not support flock (Lustre without -o flock, some NFS)
_UNSUPPORTED = (errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)
_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
LEDGER_LOCK_FILE = ".failures.lock"


class CacheBusyError(RuntimeError):
    """Another process holds a lock that this operation cannot share."""


def lock_path_for(cache_path: str | os.PathLike) -> Path:
    """The lock file of the cache folder ``cache_path``: a hidden sibling of it."""
    path = Path(cache_path)
    return path.parent / f".{path.name}.lock"


class CacheLock:
    """The lock on one cache; :meth:`hold_shared` to write, :meth:`hold_exclusive` to
    delete. Hold at most one of them; holding the other converts the lock."""

    def __init__(self, cache_path: str | os.PathLike):
        self.cache_path = Path(cache_path)
        self.path = lock_path_for(cache_path)
        self._fd: int | None = None
        self.mode: str | None = None          # "shared", "exclusive" or None

    def _open(self) -> int | None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # read-write: NFS refuses an exclusive lock on a file opened read-only
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        return self._fd

    def _try(self, operation: int) -> bool:
        """Take the lock without waiting; False if another process holds a conflicting one."""
        try:
            fcntl.flock(self._open(), operation | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in _BUSY:
                return False
            if error.errno in _UNSUPPORTED:
                log.warning("cannot lock %s (%s): the file system does not support locks, "
                            "so nothing stops another run from deleting %s while this one "
                            "writes it", self.path, os.strerror(error.errno), self.cache_path)
                return True
            raise
        return True

    def hold_shared(self, poll_s: float = 0.5) -> None:
        """Share the lock with the other writers; wait while a process deletes the cache."""
        if self._try(fcntl.LOCK_SH):
            self.mode = "shared"
            return
        log.warning("waiting: another process is creating, deleting or rebuilding %s (it "
                    "holds %s)", self.cache_path, self.path)
        while not self._try(fcntl.LOCK_SH):
            time.sleep(poll_s)
        self.mode = "shared"

    def hold_exclusive(self, doing: str) -> None:
        """Take the lock alone, or raise :class:`CacheBusyError` saying what was refused."""
        if not self._try(fcntl.LOCK_EX):
            raise CacheBusyError(
                f"cannot {doing} {self.cache_path}: another process is writing it (it holds "
                f"the lock {self.path}). Wait for that run to finish, or stop it, and run "
                "again.")
        self.mode = "exclusive"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)        # closing drops the lock
            self._fd = None
        self.mode = None

    def __enter__(self) -> "CacheLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextmanager
def exclusive_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the lock file ``path`` alone (waiting for its holder) until the block ends; on
    a file system without locks, go on unlocked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            if error.errno not in _UNSUPPORTED:
                raise
        yield
    finally:
        os.close(fd)


def ledger_lock(cache_path: str | os.PathLike):
    """Held by one process at a time while it lists a cache's failures and writes its
    ledger, so the process that writes last has seen every shard the others published.
    (Inside the cache folder: the folder cannot be deleted while a writer holds the cache's
    shared lock.)"""
    return exclusive_lock(Path(cache_path) / LEDGER_LOCK_FILE)
