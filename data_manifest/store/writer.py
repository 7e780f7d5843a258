"""Writing one shard file atomically.

A shard file stores every field as one concatenated dataset plus offsets, so ragged
per-sample arrays (e.g. T x M x V x C skeletons) need no padding on disk::

    /<field>/data      sample values concatenated along axis 0
    /<field>/offsets   (n + 1,) int64; sample i is data[offsets[i]:offsets[i + 1]]

Its attributes (the header) record the stage, schema version, fingerprint, params, the
ids stored (in order), the samples that failed with their reasons, a new random
``token``, the digest of the ids planned for the shard (``plan``), the tokens of the
upstream shards it was built from and the size/mtime of its input files.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from data_manifest.store.files import publish, temporary_path
from data_manifest.store.plan import plan_digest
from data_manifest.store.spec import CacheSpec


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
    to a hidden temporary sibling on a clean exit, flushed and renamed into place. On an
    exception the temporary file is removed and nothing is published.

    ``planned_ids``: the samples the shard plan gives this shard (see
    :mod:`data_manifest.store.plan`); a sample outside it is refused. ``upstream_tokens``:
    "<stage>/<name>" -> token of the upstream shard this one is made from. ``inputs``:
    input file path -> [size, mtime_ns] or None, taken before the files were read.
    """

    def __init__(self, path: str | os.PathLike, spec: CacheSpec, shard_index: int,
                 compression: str | None = None,
                 upstream_tokens: Mapping[str, str] | None = None, *,
                 planned_ids: Sequence[str] | None = None,
                 inputs: Mapping[str, list[int] | None] | None = None):
        self.path = Path(path)
        self.spec = spec
        self.shard_index = shard_index
        self.compression = compression
        self.upstream_tokens = dict(upstream_tokens or {})
        self.planned_ids = None if planned_ids is None else list(planned_ids)
        self._planned = None if planned_ids is None else set(self.planned_ids)
        self.inputs = None if inputs is None else dict(inputs)
        self._ids: list[str] = []
        self._failures: list[dict[str, str]] = []
        self._fields: dict[str, list[np.ndarray]] = {}
        self._kinds: dict[str, str] = {}

    def _check_planned(self, sample_id: str) -> None:
        if self._planned is not None and sample_id not in self._planned:
            raise ValueError(f"sample {sample_id} is not one of the samples planned for "
                             f"{self.path.name}")

    def add(self, sample_id: str, values: Mapping[str, Any]) -> None:
        self._check_planned(sample_id)
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
        self._check_planned(sample_id)
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
            # a private temporary file: HDF5's file lock would only fail on NFS/Lustre
            with h5py.File(tmp, "w", locking=False) as handle:
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
        if self.planned_ids is not None:
            attrs["plan"] = plan_digest(self.planned_ids)
        if self.inputs is not None:
            attrs["inputs"] = json.dumps(self.inputs, sort_keys=True)
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
