"""Opening published shard files and parsing their header (the file attributes).

Published shards are never modified in place (a rewrite replaces the file by rename), so
they are opened without HDF5's file locking: it buys nothing here and fails on many
NFS/Lustre mounts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import h5py

from data_manifest.errors import DamagedShardError
from data_manifest.store.names import SPEC_FILE


def open_shard_file(path: str | os.PathLike) -> h5py.File:
    """A read-only handle on a published shard file, without HDF5 file locking."""
    return h5py.File(path, "r", locking=False)


def damaged(path: str | os.PathLike, error: BaseException) -> DamagedShardError:
    try:
        stage = json.loads((Path(path).parent / SPEC_FILE).read_text())["stage"] + " "
    except (OSError, ValueError, KeyError, TypeError):
        stage = ""
    return DamagedShardError(
        f"damaged shard file, it cannot be read ({type(error).__name__}: {error}); re-run "
        f"the {stage}stage: it rewrites damaged shards", path=str(path))


def _optional_json(attrs: Mapping[str, Any], key: str) -> Any:
    value = attrs.get(key)
    return None if value is None else json.loads(value)


def header_from_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The header of an open shard file (raises KeyError/ValueError if it is incomplete).

    ``token``, ``upstream_tokens``, ``plan`` and ``inputs`` are None for shards written
    before they were recorded.
    """
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
        "upstream_tokens": _optional_json(attrs, "upstream_tokens"),
        "plan": str(attrs["plan"]) if "plan" in attrs else None,
        "inputs": _optional_json(attrs, "inputs"),
    }


def read_shard_header(path: str | os.PathLike) -> dict[str, Any]:
    """The attributes of a shard file (no field data is read); see :func:`header_from_attrs`.

    A file that cannot be read raises :class:`DamagedShardError` naming it.
    """
    try:
        with open_shard_file(path) as handle:
            return header_from_attrs(dict(handle.attrs))
    except FileNotFoundError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise damaged(path, error) from error


def read_shard_token(path: str | os.PathLike) -> str | None:
    """The token of a published shard; None if it has none, is missing or is damaged."""
    try:
        with open_shard_file(path) as handle:
            token = handle.attrs.get("token")
    except OSError:
        return None
    return None if token is None else str(token)
