"""One budget of open shard files per process, shared by every reader in it.

NTU120 has 891 shards per cache and an MMCL run reads three caches in every DataLoader
worker: keeping every file a worker touched open would need about 2,700 descriptors per
worker, past the common ``ulimit -n`` of 1024. The pool keeps at most ``limit`` files open
and closes the least recently used one to open another. Handles are never shared across
processes: a pool used in a forked child forgets the parent's handles.

The limit is ``MMCL_MAX_OPEN_SHARDS`` if set, else an eighth of this process's open-file
limit (``ulimit -n``), between 4 and 128.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import h5py

from data_manifest.store.header import open_shard_file

LIMIT_ENV = "MMCL_MAX_OPEN_SHARDS"
DEFAULT_MAX = 128
DEFAULT_MIN = 4


def default_limit() -> int:
    text = os.environ.get(LIMIT_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{LIMIT_ENV}={text!r} must be a positive integer")
        return int(text)
    try:
        import resource
    except ImportError:          # not a POSIX system
        return DEFAULT_MAX
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return DEFAULT_MAX
    return max(DEFAULT_MIN, min(DEFAULT_MAX, soft // 8))


@dataclass
class OpenShard:
    """An open shard file and the token it had when opened."""

    handle: h5py.File
    token: str | None
    users: int = 0
    closing: bool = False     # dropped from the pool while in use: closed on release


class HandlePool:
    def __init__(self, limit: int | None = None):
        self._limit = limit
        self._open: OrderedDict[str, OpenShard] = OrderedDict()   # least recent first
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self.peak = 0             # most files open at once in this process

    @property
    def limit(self) -> int:
        if self._limit is None:    # decided on first use, under the limits then in force
            self._limit = default_limit()
        return self._limit

    @limit.setter
    def limit(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"the open-file limit must be at least 1, not {value}")
        self._limit = value

    def __len__(self) -> int:
        self._after_fork()
        return len(self._open)

    def _after_fork(self) -> None:
        if os.getpid() != self._pid:   # a forked child: the parent's handles are not ours
            self._open, self._lock = OrderedDict(), threading.Lock()
            self._pid, self.peak = os.getpid(), 0

    def acquire(self, path: str | os.PathLike, fresh: bool = False) -> OpenShard:
        """The open file at ``path`` (opened if needed), kept open until :meth:`release`.

        ``fresh``: open the file again even if it is open (it may have been replaced since
        it was opened: an open handle keeps reading the file it opened).
        """
        key = str(path)
        self._after_fork()
        with self._lock:
            if fresh:
                self._drop(key)
            entry = self._open.get(key)
            if entry is None:
                self._make_room()
                handle = open_shard_file(key)
                token = handle.attrs.get("token")
                entry = OpenShard(handle, None if token is None else str(token))
                self._open[key] = entry
                self.peak = max(self.peak, len(self._open))
            else:
                self._open.move_to_end(key)
            entry.users += 1
        return entry

    def release(self, entry: OpenShard) -> None:
        with self._lock:
            entry.users -= 1
            if entry.closing and not entry.users:
                entry.handle.close()

    @contextmanager
    def lease(self, path: str | os.PathLike) -> Iterator[OpenShard]:
        entry = self.acquire(path)
        try:
            yield entry
        finally:
            self.release(entry)

    def _make_room(self) -> None:
        excess = len(self._open) + 1 - self.limit
        for key in list(self._open):
            if excess <= 0:
                return
            entry = self._open[key]
            if entry.users:       # in use by another thread: kept
                continue
            del self._open[key]
            entry.handle.close()
            excess -= 1

    def close(self, paths: Iterable[str | os.PathLike]) -> None:
        """Close the files at ``paths`` (those in use are closed when released)."""
        self._after_fork()
        with self._lock:
            for key in map(str, paths):
                self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._open.pop(key, None)
        if entry is None:
            return
        if entry.users:
            entry.closing = True
        else:
            entry.handle.close()


_SHARED = HandlePool()


def shared_pool() -> HandlePool:
    """The pool of this process, shared by every :class:`CacheReader` in it."""
    return _SHARED
