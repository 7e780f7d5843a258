"""Sharded HDF5 caches: one directory per stage cache, one file per shard.

Layout of a cache directory (``WORKDIR/cache/<stage>/<name>/``)::

    spec.json          what made the cache (stage, params, fingerprint, upstream caches)
    shard-00000.h5     one file per shard, published by atomic rename
    ...

A shard file stores every field as one concatenated dataset plus offsets, so ragged
per-sample arrays (e.g. T x M x V x C skeletons) need no padding on disk::

    /<field>/data      sample values concatenated along axis 0
    /<field>/offsets   (n + 1,) int64; sample i is data[offsets[i]:offsets[i + 1]]

and its attributes record the stage, schema version, fingerprint, params, the ids stored
(in order) and the samples that failed with their reasons. A shard file that exists under
its final name is complete: writers write to a hidden temporary sibling
(``.<name>.tmp-<host>-<pid>``), flush it to disk and ``os.replace`` it into place only after
closing it.

Every write of a shard gets a new random ``token``, and a shard built from upstream caches
records the tokens of the upstream shards it read (``upstream_tokens``). The fingerprint
says a shard was made with the right settings; the tokens say it was made from the
upstream shards as they are now, so rewriting upstream shard k (``--retry-failures``)
makes downstream shard k unfinished even though every fingerprint is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import h5py
import numpy as np

from data_manifest.errors import DamagedShardError, MissingCacheError, StaleCacheError

SCHEMA_VERSION = 1
SPEC_FILE = "spec.json"
_SHARD_PREFIX = "shard-"
_TMP_MARK = ".tmp-"


def fingerprint_of(stage: str, params: Mapping[str, Any], manifest_digest: str,
                   upstream: Mapping[str, str] | None = None) -> str:
    """A stable hash of everything that determines a cache's content."""
    payload = json.dumps(
        {"stage": stage, "params": params, "manifest": manifest_digest,
         "upstream": dict(upstream or {}), "schema": SCHEMA_VERSION},
        sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class CacheSpec:
    """What made a cache. Two caches with equal fingerprints hold the same content."""

    stage: str
    params: dict[str, Any]
    manifest_digest: str
    upstream: dict[str, str] = field(default_factory=dict)   # "<stage>/<name>" -> fingerprint
    schema_version: int = SCHEMA_VERSION

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.stage, self.params, self.manifest_digest, self.upstream)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CacheSpec":
        data = dict(data)
        recorded = data.pop("fingerprint", None)
        spec = cls(**data)
        if recorded is not None and recorded != spec.fingerprint:
            raise StaleCacheError(f"spec fingerprint {recorded} does not match its content; "
                                  "the spec file was edited or written by another version")
        return spec


def describe_difference(have: CacheSpec, want: CacheSpec) -> str:
    """Human-readable list of what differs between two specs."""
    lines = []
    if have.stage != want.stage:
        lines.append(f"stage: cache has {have.stage!r}, asked for {want.stage!r}")
    for key in sorted(set(have.params) | set(want.params)):
        a, b = have.params.get(key, "<unset>"), want.params.get(key, "<unset>")
        if a != b:
            lines.append(f"{key}: cache has {a!r}, asked for {b!r}")
    if have.manifest_digest != want.manifest_digest:
        lines.append("manifest: the cache was made for another manifest "
                     f"({have.manifest_digest[:12]} vs {want.manifest_digest[:12]})")
    for key in sorted(set(have.upstream) | set(want.upstream)):
        a, b = have.upstream.get(key), want.upstream.get(key)
        if a != b:
            lines.append(f"upstream {key}: cache built on {a}, now {b}")
    if have.schema_version != want.schema_version:
        lines.append(f"schema version: {have.schema_version} vs {want.schema_version}")
    return "; ".join(lines) or "no visible difference"


def shard_file_name(index: int) -> str:
    return f"{_SHARD_PREFIX}{index:05d}.h5"


def host_name() -> str:
    """This machine's name as it goes into temporary file names."""
    name = socket.gethostname() or "localhost"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def temporary_path(path: str | os.PathLike) -> Path:
    """The hidden sibling a writer on this machine and process writes ``path`` to."""
    path = Path(path)
    return path.with_name(f".{path.name}{_TMP_MARK}{host_name()}-{os.getpid()}")


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
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
    _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = temporary_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- writing


def _to_array(value: Any) -> tuple[np.ndarray, str]:
    """Normalise a field value to an array with a leading (concatenation) axis."""
    if isinstance(value, str):
        return np.array([value], dtype=object), "str"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return np.frombuffer(bytes(value), dtype=np.uint8), "bytes"
    array = np.asarray(value)
    if array.dtype.kind in "US" or array.dtype == object:
        flat = np.array([str(item) for item in array.reshape(-1)], dtype=object)
        return flat, ("str" if array.ndim == 0 else "str_list")
    if array.ndim == 0:
        return array.reshape(1), "scalar"
    return array, "array"


class ShardWriter:
    """Writes one shard file atomically.

    Use as a context manager: values are buffered (a shard is small by design) and written
    to a temporary sibling on a clean exit, then renamed into place. On an exception the
    temporary file is removed and nothing is published.
    """

    def __init__(self, path: str | os.PathLike, spec: CacheSpec, shard_index: int,
                 compression: str | None = None,
                 upstream_tokens: Mapping[str, str] | None = None):
        # upstream_tokens: "<stage>/<name>" -> token of the upstream shard this one is made from
        self.path = Path(path)
        self.spec = spec
        self.shard_index = shard_index
        self.compression = compression
        self.upstream_tokens = dict(upstream_tokens or {})
        self._ids: list[str] = []
        self._failures: list[dict[str, str]] = []
        self._fields: dict[str, list[np.ndarray]] = {}
        self._kinds: dict[str, str] = {}

    def add(self, sample_id: str, values: Mapping[str, Any]) -> None:
        if sample_id in self._ids:
            raise ValueError(f"sample {sample_id} added twice to {self.path.name}")
        if self._ids and set(values) != set(self._fields):
            raise ValueError(f"sample {sample_id} has fields {sorted(values)}, the shard has "
                             f"{sorted(self._fields)}")
        converted = {}
        for name, value in values.items():
            array, kind = _to_array(value)
            previous = self._kinds.get(name)
            if previous is not None:
                if previous != kind:
                    raise ValueError(f"field {name!r} of {sample_id} is {kind}, "
                                     f"earlier samples gave {previous}")
                first = self._fields[name][0]
                if kind == "array" and array.shape[1:] != first.shape[1:]:
                    raise ValueError(f"field {name!r} of {sample_id} has trailing shape "
                                     f"{array.shape[1:]}, earlier samples {first.shape[1:]}")
            converted[name] = (array, kind)
        for name, (array, kind) in converted.items():
            self._kinds[name] = kind
            self._fields.setdefault(name, []).append(array)
        self._ids.append(sample_id)

    def fail(self, sample_id: str, reason: str) -> None:
        self._failures.append({"id": sample_id, "reason": reason})

    @property
    def num_written(self) -> int:
        return len(self._ids)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()

    def commit(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(self.path)
        try:
            with h5py.File(tmp, "w") as handle:
                self._write(handle)
            publish(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def _write(self, handle: h5py.File) -> None:
        attrs = handle.attrs
        attrs["stage"] = self.spec.stage
        attrs["schema_version"] = self.spec.schema_version
        attrs["fingerprint"] = self.spec.fingerprint
        attrs["params"] = json.dumps(self.spec.params, sort_keys=True, default=str)
        attrs["manifest_digest"] = self.spec.manifest_digest
        attrs["upstream"] = json.dumps(self.spec.upstream, sort_keys=True)
        attrs["shard_index"] = self.shard_index
        attrs["sample_ids"] = json.dumps(self._ids)
        attrs["failures"] = json.dumps(self._failures)
        attrs["token"] = uuid.uuid4().hex
        attrs["upstream_tokens"] = json.dumps(self.upstream_tokens, sort_keys=True)
        for name, arrays in self._fields.items():
            group = handle.create_group(name)
            kind = self._kinds[name]
            group.attrs["kind"] = kind
            lengths = np.array([len(a) for a in arrays], dtype=np.int64)
            offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
            np.cumsum(lengths, out=offsets[1:])
            group.create_dataset("offsets", data=offsets)
            if kind in ("str", "str_list"):
                data = np.concatenate(arrays) if arrays else np.array([], dtype=object)
                group.create_dataset("data", data=data.astype(object),
                                     dtype=h5py.string_dtype("utf-8"))
            else:
                data = np.concatenate(arrays, axis=0)
                group.create_dataset("data", data=data,
                                     compression=self.compression if data.size else None)


# --------------------------------------------------------------------------- reading


@dataclass
class _ShardIndex:
    path: Path
    ids: list[str]
    failures: list[dict[str, str]]


def _damaged(path: str | os.PathLike, error: BaseException) -> DamagedShardError:
    try:
        stage = json.loads((Path(path).parent / SPEC_FILE).read_text())["stage"] + " "
    except (OSError, ValueError, KeyError, TypeError):
        stage = ""
    return DamagedShardError(
        f"damaged shard file, it cannot be read ({type(error).__name__}: {error}); re-run "
        f"the {stage}stage: it rewrites damaged shards", path=str(path))


def read_shard_header(path: str | os.PathLike) -> dict[str, Any]:
    """The attributes of a shard file (no field data is read).

    ``token`` and ``upstream_tokens`` are None for shards written before they existed.
    A file that cannot be read raises :class:`DamagedShardError` naming it.
    """
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
        upstream_tokens = attrs.get("upstream_tokens")
        return {
            "stage": str(attrs["stage"]),
            "schema_version": int(attrs["schema_version"]),
            "fingerprint": str(attrs["fingerprint"]),
            "params": json.loads(attrs["params"]),
            "manifest_digest": str(attrs["manifest_digest"]),
            "upstream": json.loads(attrs["upstream"]),
            "shard_index": int(attrs["shard_index"]),
            "sample_ids": json.loads(attrs["sample_ids"]),
            "failures": json.loads(attrs["failures"]),
            "token": str(attrs["token"]) if "token" in attrs else None,
            "upstream_tokens": (None if upstream_tokens is None
                                else json.loads(upstream_tokens)),
        }
    except FileNotFoundError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise _damaged(path, error) from error


def read_shard_token(path: str | os.PathLike) -> str | None:
    """The token of a published shard; None if it has none, is missing or is damaged."""
    try:
        with h5py.File(path, "r") as handle:
            token = handle.attrs.get("token")
    except OSError:
        return None
    return None if token is None else str(token)


class CacheDir:
    """A stage cache directory: its spec, its finished shards and its failures."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    def exists(self) -> bool:
        return self.spec_path.is_file()

    def spec(self) -> CacheSpec:
        if not self.exists():
            raise MissingCacheError(f"no cache at {self.path}")
        return CacheSpec.from_json(json.loads(self.spec_path.read_text()))

    def shard_path(self, index: int) -> Path:
        return self.path / shard_file_name(index)

    def prepare(self, spec: CacheSpec, overwrite: bool = False) -> None:
        """Create the directory for ``spec``, or check that an existing one matches.

        An existing cache made with other parameters is never silently reused or mixed:
        it is an error unless ``overwrite`` is given, which deletes it first.
        """
        if self.exists():
            have = self.spec()
            if have.fingerprint != spec.fingerprint:
                if not overwrite:
                    raise StaleCacheError(
                        f"{self.path} holds a {have.stage} cache made with other settings "
                        f"({describe_difference(have, spec)}). Pass --overwrite to rebuild "
                        "it, or choose another cache name to keep both.")
                shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_temporary_files()
        if not self.exists():
            write_text_atomic(self.spec_path, json.dumps(spec.to_json(), indent=2,
                                                         sort_keys=True, default=str))

    def remove(self) -> None:
        """Delete the whole cache directory (spec, shards, ledger)."""
        if self.path.exists():
            shutil.rmtree(self.path)

    def remove_temporary_files(self) -> list[Path]:
        """Delete shards left half-written by killed writers of *this* machine.

        Temporary files are named ``.<shard>.tmp-<host>-<pid>``; those of other hosts
        (several machines writing one cache on a shared disk) and of live processes here
        are kept. Names from before the host was recorded (``.tmp-<pid>``) count as local.
        """
        removed = []
        here = host_name()
        for path in sorted(self.path.glob(f".{_SHARD_PREFIX}*{_TMP_MARK}*")):
            owner = path.name.rsplit(_TMP_MARK, 1)[-1]
            host, _, pid = owner.rpartition("-")
            if host and host != here:
                continue   # another machine's writer: its pid means nothing here
            if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
                continue   # another live writer on this machine is still at work
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def shard_files(self) -> dict[int, Path]:
        files = {}
        for path in sorted(self.path.glob(f"{_SHARD_PREFIX}*.h5")):
            stem = path.stem[len(_SHARD_PREFIX):]
            if stem.isdigit():
                files[int(stem)] = path
        return files

    def _headers(self, spec: CacheSpec | None = None) -> dict[int, dict[str, Any]]:
        """Headers of the readable shards made with ``spec``'s fingerprint (default: own)."""
        if not self.exists():
            return {}
        fingerprint = (spec or self.spec()).fingerprint
        headers = {}
        for index, path in self.shard_files().items():
            try:
                header = read_shard_header(path)
            except DamagedShardError:
                continue   # not done: the stage rewrites it; damaged_shards() lists it
            if header["fingerprint"] == fingerprint:
                headers[index] = header
        return headers

    def finished_shards(self, spec: CacheSpec | None = None,
                        upstream_tokens_by_shard: Mapping[int, Mapping[str, str]] | None = None
                        ) -> set[int]:
        """Indices of published shards whose fingerprint matches ``spec`` (default: own).

        With ``upstream_tokens_by_shard`` (shard -> {"<stage>/<name>": token of that
        upstream shard now}), a shard built from other upstream writes is not finished.
        Only the upstream caches listed for a shard are compared: an upstream shard that is
        missing now is left to the stage to report. A shard written before tokens were
        recorded counts as built from other writes whenever a token is listed for it.
        """
        done = set()
        for index, header in self._headers(spec).items():
            current = (upstream_tokens_by_shard or {}).get(index) or {}
            recorded = header["upstream_tokens"] or {}
            if all(recorded.get(key) == token for key, token in current.items()):
                done.add(index)
        return done

    def damaged_shards(self) -> list[int]:
        """Indices of shard files that cannot be read (a run of the stage rewrites them)."""
        damaged = []
        for index, path in self.shard_files().items():
            try:
                read_shard_header(path)
            except DamagedShardError:
                damaged.append(index)
        return damaged

    def sample_count(self, spec: CacheSpec | None = None) -> int:
        """Samples stored in the shards made with ``spec`` (default: own)."""
        return sum(len(h["sample_ids"]) for h in self._headers(spec).values())

    def failures(self, spec: CacheSpec | None = None) -> list[dict[str, Any]]:
        """Failed samples recorded in the readable shards made with ``spec`` (default: own)."""
        return [{**failure, "shard": index}
                for index, header in self._headers(spec).items()
                for failure in header["failures"]]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CacheReader:
    """Reads samples by id across the shards of one cache.

    HDF5 files are opened lazily and per process (a reader can be handed to DataLoader
    workers; each opens its own handles). ``expect`` guards against stale caches: a cache
    whose spec differs from the expected one is refused with the differences listed.
    """

    def __init__(self, path: str | os.PathLike, expect: CacheSpec | None = None,
                 expect_stage: str | None = None, shards: Iterable[int] | None = None):
        # shards: index only these shard files (a stage working on shard k of its own
        # cache reads shard k upstream; indexing all of them per shard is quadratic)
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
        self._shards: dict[int, _ShardIndex] = {}
        self._where: dict[str, tuple[int, int]] = {}
        wanted = None if shards is None else set(shards)
        for index, path_ in self.cache.shard_files().items():
            if wanted is not None and index not in wanted:
                continue
            header = read_shard_header(path_)
            if header["fingerprint"] != self.spec.fingerprint:
                continue   # left over from other settings; not part of this cache
            self._shards[index] = _ShardIndex(path_, header["sample_ids"], header["failures"])
            for position, sample_id in enumerate(header["sample_ids"]):
                self._where[sample_id] = (index, position)
        self._pid = os.getpid()
        self._handles: dict[int, h5py.File] = {}
        self._offsets: dict[tuple[int, str], np.ndarray] = {}

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

    # -- data
    def _handle(self, shard: int) -> h5py.File:
        if os.getpid() != self._pid:   # forked into a worker: never reuse the parent's handles
            self._handles, self._offsets, self._pid = {}, {}, os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            handle = h5py.File(self._shards[shard].path, "r")
            self._handles[shard] = handle
        return handle

    def fields(self) -> list[str]:
        if not self._shards:
            return []
        return list(self._handle(next(iter(self._shards))).keys())

    def get(self, sample_id: str, fields: Iterable[str] | None = None) -> dict[str, Any]:
        try:
            shard, position = self._where[sample_id]
        except KeyError:
            raise KeyError(f"sample {sample_id} is not in the {self.spec.stage} cache at "
                           f"{self.cache.path}") from None
        handle = self._handle(shard)
        names = list(fields) if fields is not None else list(handle.keys())
        values = {}
        for name in names:
            group = handle[name]
            key = (shard, name)
            offsets = self._offsets.get(key)
            if offsets is None:
                offsets = group["offsets"][()]
                self._offsets[key] = offsets
            start, stop = int(offsets[position]), int(offsets[position + 1])
            kind = group.attrs["kind"]
            if kind in ("str", "str_list"):
                texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t)
                         for t in group["data"][start:stop]]
                values[name] = texts[0] if kind == "str" else texts
            elif kind == "scalar":
                values[name] = group["data"][start]
            elif kind == "bytes":
                values[name] = group["data"][start:stop].tobytes()
            else:
                values[name] = group["data"][start:stop]
        return values

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        self._offsets.clear()

    def __enter__(self) -> "CacheReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_offsets"] = {}, {}
        return state
