"""One budget of open shard files per process, shared by every reader in it.

NTU120 has 891 shards per cache and an MMCL run reads three caches in every DataLoader
worker: keeping every file a worker touched open would need about 2,700 descriptors per
worker, past the common ``ulimit -n`` of 1024. The pool keeps at most ``limit`` files open
and closes the least recently used one to open another. A file is open either through
HDF5 (an ``h5py.File``, for headers, layouts and fields HDF5 must decode) or as a plain
read-only descriptor (for the ``pread`` of numeric fields, :mod:`.layout`); each counts
as one open file, as each holds one descriptor. Keeping the plain descriptor saves an
``open`` and ``close`` per read: on NFS each is a round trip to the server.

A reader uses a kept file only if an ``fstat`` of it shows the write it indexed, still in
place (:mod:`.reader`). Handles are never shared across processes: a pool used in a
forked child forgets the parent's handles.

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
HDF5 = "hdf5"
DESCRIPTOR = "descriptor"


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
    """An open shard file: through HDF5 (``handle``, with the ``token`` the file had when
    opened) or as a plain read-only descriptor (``fd``)."""

    handle: h5py.File | None = None
    token: str | None = None
    fd: int | None = None
    users: int = 0
    closing: bool = False     # dropped from the pool while in use: closed on release

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        else:
            os.close(self.fd)


def _open(path: str, kind: str) -> OpenShard:
    if kind == DESCRIPTOR:
        return OpenShard(fd=os.open(path, os.O_RDONLY))
    handle = open_shard_file(path)
    try:
        token = handle.attrs.get("token")
    except BaseException:
        handle.close()
        raise
    return OpenShard(handle, None if token is None else str(token))


class HandlePool:
    def __init__(self, limit: int | None = None):
        self._limit = limit
        # (path, kind) -> open file, least recently used first
        self._open: OrderedDict[tuple[str, str], OpenShard] = OrderedDict()
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

    def acquire(self, path: str | os.PathLike, fresh: bool = False,
                kind: str = HDF5) -> OpenShard:
        """The file at ``path`` open through HDF5 (or, ``kind=DESCRIPTOR``, as a plain
        read-only descriptor), opened if needed and kept open until :meth:`release`.

        ``fresh``: open the file again even if it is open (it may have been replaced since
        it was opened: an open file keeps reading the file it opened).
        """
        key = (str(path), kind)
        self._after_fork()
        with self._lock:
            if fresh:
                self._drop(key)
            entry = self._open.get(key)
            if entry is None:
                self._make_room()
                entry = _open(key[0], kind)
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
                entry.close()

    @contextmanager
    def lease(self, path: str | os.PathLike, kind: str = HDF5) -> Iterator[OpenShard]:
        entry = self.acquire(path, kind=kind)
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
            entry.close()
            excess -= 1

    def close(self, paths: Iterable[str | os.PathLike], kinds: Iterable[str] = (HDF5, DESCRIPTOR)
              ) -> None:
        """Close the files at ``paths`` (those in use are closed when released)."""
        self._after_fork()
        kinds = tuple(kinds)
        with self._lock:
            for path in map(str, paths):
                for kind in kinds:
                    self._drop((path, kind))

    def _drop(self, key: tuple[str, str]) -> None:
        entry = self._open.pop(key, None)
        if entry is None:
            return
        if entry.users:
            entry.closing = True
        else:
            entry.close()


_SHARED = HandlePool()


def shared_pool() -> HandlePool:
    """The pool of this process, shared by every :class:`CacheReader` in it."""
    return _SHARED
