"""Opening the cache a stage builds on: refused, with what to run, if absent or unfinished."""

from __future__ import annotations

from typing import Iterable, Sequence

from data_manifest.errors import MissingCacheError
from data_manifest.store import CacheReader, ShardPlan
from data_manifest.workdir import Workdir


def shard_list(indices: Iterable[int], shown: int = 10) -> str:
    """``1, 2, 3`` or, past ``shown`` indices, ``0, 1, ..., 9 and 5 more``."""
    indices = list(indices)
    text = ", ".join(str(i) for i in indices[:shown])
    return text + (f" and {len(indices) - shown} more" if len(indices) > shown else "")


def open_upstream(workdir: Workdir, stage: str, name: str, shards: Iterable[int] | None,
                  hint: str) -> CacheReader:
    """WORKDIR's ``stage`` cache ``name``, with every shard in ``shards`` finished.

    ``shards`` None means all of them. ``hint`` says what to run to make or finish the
    cache; it ends both refusals.
    """
    try:
        reader = workdir.reader(stage, name)
    except MissingCacheError:
        others = [other for other in workdir.cache_names(stage) if other != name]
        known = f" (it has {stage} cache(s) {', '.join(others)})" if others else ""
        raise MissingCacheError(f"{workdir.path} has no {stage} cache named {name!r}{known}; "
                                f"{hint}") from None
    wanted = set(range(workdir.num_shards) if shards is None else shards)
    unfinished = sorted(wanted - set(reader.shard_indices))
    if unfinished:
        reader.close()
        other_plan = len(set(unfinished) & set(reader.other_plan))
        why = (f", {other_plan} of them made for another shard plan (the manifest was "
               "rebuilt with another shard size)" if other_plan else "")
        raise MissingCacheError(
            f"the {stage} cache {name!r} is unfinished: it has not finished shard(s) "
            f"{shard_list(unfinished)} ({len(unfinished)} of {len(wanted)}{why}); {hint}")
    return reader


def open_upstream_shard(path: str, stage: str, shard_index: int, sample_ids: Sequence[str],
                        fingerprint: str, running: str) -> CacheReader:
    """Shard ``shard_index`` of the upstream cache at ``path``, as the stage ``running``
    found it when it started: a cache rebuilt meanwhile (other fingerprint) is refused, and
    so is a shard that was not made for ``sample_ids`` (the samples the plan gives it)."""
    plan = ShardPlan({shard_index: sample_ids})
    reader = CacheReader(path, expect_stage=stage, shards=[shard_index], plan=plan)
    if reader.spec.fingerprint != fingerprint:
        reader.close()
        raise MissingCacheError(f"the {stage} cache at {path} changed while {running} was "
                                "running; run it again")
    if reader.other_plan:
        reader.close()
        raise MissingCacheError(f"shard {shard_index} of the {stage} cache at {path} was made "
                                "for another shard plan (the manifest was rebuilt with another "
                                f"shard size); run the {stage} stage again, then {running}")
    return reader


def failure_reasons(reader: CacheReader) -> dict[str, str]:
    """sample id -> why the upstream stage failed for it, over the shards ``reader`` reads."""
    return {failure["id"]: failure["reason"] for failure in reader.failures}
