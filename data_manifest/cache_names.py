"""Cache names: plain tokens that name a folder of ``WORKDIR/cache/<stage>/``, never paths.

A cache name comes from users (command lines, config files) and becomes a folder that
``--rebuild`` deletes, so it must never be a path, empty, or '.'/'..'. Kept apart from
:mod:`data_manifest.store` so that checking a config does not load HDF5.
"""

from __future__ import annotations

import re

# a letter, digit or underscore first (no hidden names, nothing that reads as an option),
# then letters, digits, '.', '_' and '-': never a separator, never '.' or '..'
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def is_plain_name(name: object) -> bool:
    return isinstance(name, str) and _PLAIN_NAME.fullmatch(name) is not None


def check_cache_name(name: object, what: str = "cache name") -> str:
    """``name`` if it is a plain name; ValueError naming ``what`` otherwise."""
    if not is_plain_name(name):
        raise ValueError(
            f"{what} {name!r} is not a plain name: use 1 to 128 letters, digits, '.', '_' "
            "or '-', starting with a letter, digit or '_' (it names a folder under "
            "WORKDIR/cache/<stage>/, never a path)")
    return name
