"""Where each field's values lie in a shard file, so most reads need no HDF5 handle.

The writer stores numeric fields as contiguous, uncompressed datasets: the rows of one
sample are one byte range of the file. Once a process has read a shard's layout (through
HDF5, once), a sample's rows are one ``pread`` on a plain file descriptor that the
process's handle pool keeps open (:mod:`.handles`): one system call per read, no open or
close (each a server round trip on NFS), where reading through HDF5 walks its metadata on
every read. Strings and compressed data are read through HDF5.

A layout belongs to one write of a shard: it records the file's identity (device, inode,
size, mtime), and an open file is used only if it has the same identity (a republished
shard is a new file, renamed into place).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np


@dataclass(frozen=True)
class FileIdentity:
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> "FileIdentity":
        return cls(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class FieldLayout:
    kind: str                        # how the writer stored it (writer._to_array)
    offsets: np.ndarray              # sample i is rows offsets[i]:offsets[i + 1]
    dtype: np.dtype | None = None    # None: read through HDF5 (strings, compressed data)
    row_shape: tuple[int, ...] = ()
    address: int | None = None       # byte offset of row 0 in the file

    @property
    def direct(self) -> bool:
        return self.dtype is not None


@dataclass(frozen=True)
class ShardLayout:
    identity: FileIdentity
    fields: dict[str, FieldLayout] = field(default_factory=dict)

    @classmethod
    def of(cls, handle: h5py.File) -> "ShardLayout":
        """The layout of the shard file open in ``handle`` (reads every field's offsets)."""
        identity = FileIdentity.of(os.fstat(handle.id.get_vfd_handle()))
        fields = {}
        for name, group in handle.items():
            data = group["data"]
            direct = (data.dtype.kind in "biuf"
                      and data.id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS)
            fields[name] = FieldLayout(
                str(group.attrs["kind"]), group["offsets"][()],
                data.dtype if direct else None, tuple(data.shape[1:]),
                data.id.get_offset() if direct else None)
        return cls(identity, fields)


def read_rows(fd: int, field: FieldLayout, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a direct field from the shard file open as ``fd``."""
    rows = np.empty((stop - start,) + field.row_shape, dtype=field.dtype)
    if rows.nbytes:
        row_bytes = rows.nbytes // (stop - start)
        got = os.preadv(fd, [memoryview(rows).cast("B")], field.address + start * row_bytes)
        if got != rows.nbytes:
            raise OSError(f"short read: {got} of {rows.nbytes} bytes (truncated file?)")
    return rows


def stored_value(kind: str, rows: Any) -> Any:
    """A field's value as the writer was given it, from its rows (array or HDF5 data)."""
    if kind in ("str", "str_list"):
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in rows]
        return texts[0] if kind == "str" else texts
    if kind == "scalar":
        return rows[0]
    if kind == "bytes":
        return np.asarray(rows).tobytes()
    return rows
