"""Reading samples by id across the shards of one cache.

The reader indexes ids when it opens: for each shard, the ids it stores and the token of
that write. The first read of a shard in a process opens it through HDF5 (via the
process's handle pool, :mod:`.handles`), compares its token with the indexed one and
reads its layout (:mod:`.layout`); later reads of numeric fields are one ``pread`` on a
plain descriptor the pool keeps open, used only if an ``fstat`` of it shows the file the
layout was read from, still in place (a republished file has no link left). A shard
republished since it was indexed (``--retry-failures``, a resumed run) is indexed again
before anything is read from it; one rewritten with other settings or for another shard
plan is refused. An index position is never applied to another write of a shard.
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import h5py

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from data_manifest.store.cachedir import CacheDir
from data_manifest.store.handles import DESCRIPTOR, HDF5, HandlePool, OpenShard, shared_pool
from data_manifest.store.header import damaged, header_from_attrs, read_shard_header
from data_manifest.store.layout import FileIdentity, ShardLayout, read_rows, stored_value
from data_manifest.store.plan import ShardPlan
from data_manifest.store.spec import CacheSpec, describe_difference

log = logging.getLogger(__name__)
_ATTEMPTS = 3     # reads of a shard replaced under them before giving up


@dataclass
class _ShardIndex:
    path: Path
    ids: list[str]
    failures: list[dict[str, str]]
    token: str | None
    plan: str | None          # plan digest a rewrite of the shard must carry (None: any)


def _still_the_write(opened: OpenShard, layout: ShardLayout) -> bool:
    """Whether the open file is the write ``layout`` describes and still the one at its
    path: one ``fstat`` of the kept descriptor (a file republished by rename, or deleted,
    has no link left; on NFS the client may see that only when its cached attributes
    expire, and reads the earlier write, consistently, until then)."""
    fd = opened.fd if opened.fd is not None else opened.handle.id.get_vfd_handle()
    stat = os.fstat(fd)
    return stat.st_nlink > 0 and FileIdentity.of(stat) == layout.identity


class CacheReader:
    """Reads samples by id across the shards of one cache.

    ``expect`` guards against stale caches: a cache whose spec differs from the expected
    one is refused with the differences listed. ``shards``: index only these shard files
    (a stage working on shard k of its own cache reads shard k upstream). ``plan``: only
    shards made for this shard plan are part of the cache (the others are listed in
    ``other_plan``). ``outdated``: shard index, header -> why that indexed shard is
    outdated (``sources.outdated_reason``) or None; the reasons found are in
    ``outdated``, from the headers read to index the cache. The reader can be handed to
    DataLoader workers: each process opens its own files, within its own budget
    (``pool``, default the process's shared pool).
    """

    def __init__(self, path: str | os.PathLike, expect: CacheSpec | None = None,
                 expect_stage: str | None = None, shards: Iterable[int] | None = None,
                 plan: ShardPlan | None = None, pool: HandlePool | None = None,
                 outdated: Callable[[int, dict[str, Any]], str | None] | None = None):
        self.cache = CacheDir(path)
        if not self.cache.exists():
            raise MissingCacheError(f"no cache at {self.cache.path}"
                                    + (f": run the {expect_stage or expect.stage} stage first"
                                       if (expect_stage or expect) else ""))
        self.spec = self.cache.spec()
        if expect_stage is not None and self.spec.stage != expect_stage:
            raise StaleCacheError(f"{self.cache.path} is a {self.spec.stage} cache, "
                                  f"not {expect_stage}")
        if expect is not None and expect.fingerprint != self.spec.fingerprint:
            raise StaleCacheError(
                f"the {self.spec.stage} cache at {self.cache.path} was made with other "
                f"settings ({describe_difference(self.spec, expect)}); rebuild it or point "
                "to the matching cache")
        self._pool = pool
        self._shards: dict[int, _ShardIndex] = {}
        self._where: dict[str, tuple[int, int]] = {}
        self._layouts: dict[int, ShardLayout] = {}   # read in this process, by shard
        self._closer: weakref.finalize | None = None  # closes its files once it is gone
        self.other_plan: list[int] = []   # shards with the right settings, another plan
        self.outdated: dict[int, str] = {}   # indexed shards -> why they are outdated
        files = (self.cache.shard_files() if shards is None else
                 {index: self.cache.shard_path(index) for index in sorted(set(shards))})
        for index, path_ in files.items():
            try:
                header = read_shard_header(path_)
            except FileNotFoundError:
                continue   # not made yet
            if header["fingerprint"] != self.spec.fingerprint:
                continue   # left over from other settings; not part of this cache
            if plan is not None and not plan.matches(index, header):
                self.other_plan.append(index)
                continue
            self._index(index, path_, header, None if plan is None else plan.digest(index))
            reason = outdated(index, header) if outdated is not None else None
            if reason is not None:
                self.outdated[index] = reason

    def _index(self, index: int, path: Path, header: dict[str, Any], plan: str | None) -> None:
        """Index shard ``index``; a sample another shard (or this one) already stores is
        refused: one of them was made for another shard plan, or the cache is damaged."""
        seen: set[str] = set()
        for sample_id in header["sample_ids"]:
            found = self._where.get(sample_id)
            if sample_id in seen or found is not None:
                raise StaleCacheError(
                    f"sample {sample_id} is stored twice in the {self.spec.stage} cache at "
                    f"{self.cache.path}: in shards {index if found is None else found[0]} "
                    f"and {index}. Shards made for another shard plan (the manifest rebuilt "
                    "with another shard size) are mixed in: open the cache through its "
                    "WORKDIR, which reads only the shards of its plan, or re-run the stage, "
                    "which deletes the others")
            seen.add(sample_id)
        for position, sample_id in enumerate(header["sample_ids"]):
            self._where[sample_id] = (index, position)
        self._shards[index] = _ShardIndex(path, header["sample_ids"], header["failures"],
                                          header["token"], plan)

    @property
    def pool(self) -> HandlePool:
        return self._pool if self._pool is not None else shared_pool()

    # -- index
    @property
    def ids(self) -> list[str]:
        return list(self._where)

    @property
    def failures(self) -> list[dict[str, str]]:
        return [f for shard in self._shards.values() for f in shard.failures]

    @property
    def shard_indices(self) -> list[int]:
        return sorted(self._shards)

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._where

    def __len__(self) -> int:
        return len(self._where)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def missing(self, sample_ids: Iterable[str]) -> list[str]:
        return [sample_id for sample_id in sample_ids if sample_id not in self._where]

    # -- opening, bound to the indexed write
    def _reindex(self, index: int, handle: h5py.File) -> None:
        """Index shard ``index`` again from its new write, open in ``handle``."""
        entry = self._shards[index]
        where = f"shard {index} of the {self.spec.stage} cache at {self.cache.path}"
        try:
            header = header_from_attrs(dict(handle.attrs))
        except (KeyError, ValueError, TypeError) as error:
            raise damaged(entry.path, error) from error
        if header["fingerprint"] != self.spec.fingerprint:
            raise StaleCacheError(f"{where} was rewritten with other settings after this "
                                  "reader opened the cache (rebuilt meanwhile); open it again")
        if entry.plan is not None and header["plan"] != entry.plan:
            raise StaleCacheError(f"{where} was rewritten for another shard plan after this "
                                  "reader opened the cache (the manifest was rebuilt); open "
                                  "it again")
        for sample_id in entry.ids:
            if self._where.get(sample_id, (None,))[0] == index:
                del self._where[sample_id]
        self._layouts.pop(index, None)
        self._index(index, entry.path, header, entry.plan)
        log.info("%s was republished since it was indexed: indexed again", where)

    def _open(self, path: Path, fresh: bool = False, kind: str = HDF5) -> OpenShard:
        try:
            return self.pool.acquire(path, fresh=fresh, kind=kind)
        except FileNotFoundError:
            raise self._deleted(path) from None
        except OSError as error:
            raise DataError(f"cannot open the shard file ({error})", path=str(path)) from error

    def _deleted(self, path: Path) -> StaleCacheError:
        return StaleCacheError(f"shard file {path} was deleted after this reader opened the "
                               "cache (rebuilt meanwhile?); open it again")

    def _layout(self, index: int, fresh: bool = False) -> ShardLayout:
        """Shard ``index``'s layout, read (the first time, or ``fresh``) from the file as it
        is now, checked against the indexed write (indexed again if republished)."""
        layout = None if fresh else self._layouts.get(index)
        if layout is not None:
            return layout
        entry = self._shards[index]
        if self._closer is None:
            self._closer = weakref.finalize(self, self.pool.close,
                                            [shard.path for shard in self._shards.values()])
        opened = self._open(entry.path, fresh=fresh)
        try:
            if opened.token != entry.token and not fresh:
                # the pool's handle may predate a republication this reader indexed
                self.pool.release(opened)
                opened = None
                opened = self._open(entry.path, fresh=True)
            if opened.token != entry.token:
                self._reindex(index, opened.handle)
            try:
                layout = ShardLayout.of(opened.handle)
            except (KeyError, ValueError, OSError) as error:
                raise damaged(entry.path, error) from error
        finally:
            if opened is not None:
                self.pool.release(opened)
        self._layouts[index] = layout
        return layout

    # -- data
    def fields(self) -> list[str]:
        if not self._shards:
            return []
        return list(self._layout(next(iter(self._shards))).fields)

    def get(self, sample_id: str, fields: Iterable[str] | None = None) -> dict[str, Any]:
        if sample_id not in self._where:
            raise KeyError(f"sample {sample_id} is not in the {self.spec.stage} cache at "
                           f"{self.cache.path}")
        fresh = False
        for _ in range(_ATTEMPTS):
            layout = self._layout(self._where[sample_id][0], fresh)
            if sample_id not in self._where:   # its shard was republished without it
                raise KeyError(f"sample {sample_id} is no longer in the {self.spec.stage} "
                               f"cache at {self.cache.path}: its shard was rewritten since "
                               "the cache was opened")
            index, position = self._where[sample_id]
            values = self._read(index, layout, position, fields)
            if values is not None:
                return values
            fresh = True    # the file was replaced since its layout was read
        raise StaleCacheError(f"shard {index} of the {self.spec.stage} cache at "
                              f"{self.cache.path} was rewritten {_ATTEMPTS} times while "
                              "being read; is a stage writing it? Try again when it is done")

    def lengths(self, field: str, sample_ids: Iterable[str]) -> list[int]:
        """The number of rows of ``field`` (e.g. frames) of each sample, from the shards'
        offsets: one layout read per shard, no sample's data read."""
        lengths = []
        for sample_id in sample_ids:
            if sample_id not in self._where:
                raise KeyError(f"sample {sample_id} is not in the {self.spec.stage} cache at "
                               f"{self.cache.path}")
            layout = self._layout(self._where[sample_id][0])
            if field not in layout.fields:
                raise KeyError(f"no field {field!r} in the {self.spec.stage} cache at "
                               f"{self.cache.path} (it has {sorted(layout.fields)})")
            if sample_id not in self._where:   # its shard was republished without it
                raise KeyError(f"sample {sample_id} is no longer in the {self.spec.stage} "
                               f"cache at {self.cache.path}")
            position = self._where[sample_id][1]
            offsets = layout.fields[field].offsets
            lengths.append(int(offsets[position + 1] - offsets[position]))
        return lengths

    def _read(self, index: int, layout: ShardLayout, position: int,
              fields: Iterable[str] | None) -> dict[str, Any] | None:
        """The values of sample ``position`` of shard ``index``, or None if the file is not
        the one ``layout`` describes any more."""
        path = self._shards[index].path
        names = list(layout.fields) if fields is None else list(fields)
        unknown = [name for name in names if name not in layout.fields]
        if unknown:
            raise KeyError(f"no field(s) {unknown} in the {self.spec.stage} cache at "
                           f"{self.cache.path} (it has {sorted(layout.fields)})")
        values = {}
        for kind in (DESCRIPTOR, HDF5):
            wanted = [name for name in names
                      if layout.fields[name].direct == (kind == DESCRIPTOR)]
            if not wanted:
                continue
            opened = self._open(path, kind=kind)
            try:
                if not _still_the_write(opened, layout):
                    self.pool.close([path], kinds=[kind])    # opened again next time
                    return None
                for name in wanted:
                    field = layout.fields[name]
                    start, stop = int(field.offsets[position]), int(field.offsets[position + 1])
                    rows = (read_rows(opened.fd, field, start, stop) if kind == DESCRIPTOR
                            else opened.handle[name]["data"][start:stop])
                    values[name] = stored_value(field.kind, rows)
            except OSError as error:
                raise damaged(path, error) from error
            finally:
                self.pool.release(opened)
        return {name: values[name] for name in names}

    def close(self) -> None:
        """Close this reader's files in this process (the index stays usable)."""
        self.pool.close(entry.path for entry in self._shards.values())

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # a pool and its closer never leave their process; layouts are read again there
        state["_layouts"], state["_pool"], state["_closer"] = {}, None, None
        return state
