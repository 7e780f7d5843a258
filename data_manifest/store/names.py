"""Names on disk: shard files, their temporary siblings, the spec file. (Cache names are
checked by :mod:`data_manifest.cache_names`.)"""

from __future__ import annotations

import os
from pathlib import Path

SPEC_FILE = "spec.json"
SHARD_PREFIX = "shard-"
TMP_MARK = ".tmp-"


def shard_file_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}.h5"


def shard_index_of(path: str | os.PathLike) -> int | None:
    """The index in a published shard file's name; None for any other file."""
    path = Path(path)
    stem = path.stem[len(SHARD_PREFIX):]
    if path.name.startswith(SHARD_PREFIX) and path.suffix == ".h5" and stem.isdigit():
        return int(stem)
    return None
