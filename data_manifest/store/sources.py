"""What a shard was built from, and whether that has changed since.

A shard records the tokens of the upstream shards it read (``upstream_tokens``: every
write of a shard gets a new random token) and the size and mtime of the input files its
stage declared it reads (``inputs``). Either changing makes the shard outdated: a re-run
of its stage redoes it, and the shards built from it follow through their tokens.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

UPSTREAM_REWRITTEN = "upstream"
INPUTS_CHANGED = "inputs"


def input_stats(paths: Iterable[str]) -> dict[str, list[int] | None]:
    """path -> [size, mtime in ns], or None for a file that does not exist (one stat each)."""
    stats: dict[str, list[int] | None] = {}
    for path in paths:
        try:
            found = os.stat(path)
        except OSError:
            stats[path] = None
        else:
            stats[path] = [found.st_size, found.st_mtime_ns]
    return stats


def inputs_changed(recorded: Mapping[str, Any] | None) -> bool:
    """Whether an input file now has another size or mtime than recorded, or exists now
    where it was missing. A file deleted since does not count: sources may be removed
    once they are cached."""
    for path, then in (recorded or {}).items():
        now = input_stats([path])[path]
        if now is not None and now != then:
            return True
    return False


def upstream_rewritten(recorded: Mapping[str, str] | None, current: Mapping[str, str]) -> bool:
    """Whether an upstream shard listed in ``current`` ("<stage>/<name>" -> its token now)
    is not the write the shard was built from. A shard from before tokens were recorded
    counts as built from other writes whenever a token is listed."""
    recorded = recorded or {}
    return any(recorded.get(key) != token for key, token in current.items())


def outdated_reason(header: Mapping[str, Any], current_upstream: Mapping[str, str]
                    ) -> str | None:
    """Why a shard (made with the right settings and plan) must be redone, or None."""
    if upstream_rewritten(header["upstream_tokens"], current_upstream):
        return UPSTREAM_REWRITTEN
    if inputs_changed(header["inputs"]):
        return INPUTS_CHANGED
    return None
