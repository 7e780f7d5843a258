"""A run is bound to the caches it reads.

When a run starts it records the identity of its skeleton cache (:func:`cache_record`: the
WORKDIR, cache name and path, fingerprint and spec); every checkpoint carries the record
(``"skeletons"``, see :mod:`train.checkpoint`) and ``RUN_DIR/data.json`` shows it. Reading
that cache again (resuming, ``train eval`` on the run's own WORKDIR) compares the record
with the cache as it is now and refuses a cache rebuilt since, saying what changed
(:func:`check_binding`). Another WORKDIR or another cache name is an explicit choice of
the user and is not refused. The MMCL objective binds the co-learning feature caches the
same way (``MMCLObjective.check_checkpoint``), with the same wording
(:func:`fingerprint_change`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from data_manifest.store import CacheReader
from data_manifest.workdir import Workdir
from train.config import mapping_differences
from train.errors import CheckpointError

_SHOWN_CHANGES = 6


def cache_record(workdir: Workdir, stage: str, name: str, reader: CacheReader
                 ) -> dict[str, Any]:
    """What identifies the cache a run reads (plain types: it goes into checkpoints)."""
    return {"stage": stage, "name": name, "workdir": str(Path(workdir.path).resolve()),
            "path": str(Path(reader.cache.path).resolve()),
            "fingerprint": reader.spec.fingerprint, "spec": reader.spec.to_json()}


def same_cache(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Both records name one cache (same WORKDIR, stage and name), whatever its content."""
    return all(recorded.get(key) == current.get(key) for key in ("workdir", "stage", "name"))


def fingerprint_change(cache: str, where: str, old: str, new: str) -> str:
    return f"{cache}: {where} was trained on fingerprint {old}, the cache is now {new}"


def binding_problem(recorded: Mapping[str, Any] | None, current: Mapping[str, Any],
                    where: str) -> str | None:
    """Why ``current`` is not the cache ``recorded`` describes, or None if it is (or if
    nothing was recorded: checkpoints from before runs recorded their caches)."""
    if not recorded or recorded.get("fingerprint") == current["fingerprint"]:
        return None
    label = f"the {current['stage']} cache {current['name']!r} of {current['workdir']}"
    text = fingerprint_change(label, where, str(recorded.get("fingerprint")),
                              current["fingerprint"])
    changes = [line for line in mapping_differences(recorded.get("spec") or {},
                                                    current["spec"])
               if not line.startswith("fingerprint:")]
    if changes:
        more = len(changes) - _SHOWN_CHANGES
        text += (" (changed: " + "; ".join(changes[:_SHOWN_CHANGES])
                 + (f"; and {more} more" if more > 0 else "") + ")")
    return text


def check_binding(recorded: Mapping[str, Any] | None, current: Mapping[str, Any],
                  where: str, advice: str) -> None:
    """Refuse a cache rebuilt since ``recorded`` was written (``advice``: what to do)."""
    problem = binding_problem(recorded, current, where)
    if problem is not None:
        raise CheckpointError(f"{problem}. {advice}")
