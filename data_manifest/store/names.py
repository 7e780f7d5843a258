"""Names on disk: cache names from users, shard file names, the spec file."""

from __future__ import annotations

import os
import re
from pathlib import Path

SPEC_FILE = "spec.json"
SHARD_PREFIX = "shard-"
TMP_MARK = ".tmp-"

# a letter, digit or underscore first (no hidden names, nothing that reads as an option),
# then letters, digits, '.', '_' and '-': never a separator, never '.' or '..'
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def is_plain_name(name: object) -> bool:
    return isinstance(name, str) and _PLAIN_NAME.fullmatch(name) is not None


def check_cache_name(name: object, what: str = "cache name") -> str:
    """``name`` if it is a plain token that can name a folder of ``WORKDIR/cache/<stage>/``.

    A cache name comes from users (command lines, config files) and becomes a folder that
    ``--rebuild`` deletes, so it must never be a path, empty, or '.'/'..'. Raises
    ValueError naming ``what`` otherwise.
    """
    if not is_plain_name(name):
        raise ValueError(
            f"{what} {name!r} is not a plain name: use 1 to 128 letters, digits, '.', '_' "
            "or '-', starting with a letter, digit or '_' (it names a folder under "
            "WORKDIR/cache/<stage>/, never a path)")
    return name


def shard_file_name(index: int) -> str:
    return f"{SHARD_PREFIX}{index:05d}.h5"


def shard_index_of(path: str | os.PathLike) -> int | None:
    """The index in a published shard file's name; None for any other file."""
    path = Path(path)
    stem = path.stem[len(SHARD_PREFIX):]
    if path.name.startswith(SHARD_PREFIX) and path.suffix == ".h5" and stem.isdigit():
        return int(stem)
    return None
