"""A cache folder's lifecycle: spec, shards published so far, finished shards, removal.

Layout of a cache folder (``WORKDIR/cache/<stage>/<name>/``)::

    spec.json          what made the cache (stage, params, fingerprint, upstream caches)
    shard-00000.h5     one file per shard, published by atomic rename
    ...

A shard is finished when a run of its stage would skip it: it is readable, made with the
cache's fingerprint, made for the WORKDIR's shard plan (:mod:`.plan`), and built from the
upstream shards and input files as they are now (:mod:`.sources`).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from data_manifest.cache_names import check_cache_name
from data_manifest.errors import DamagedShardError, DataError, MissingCacheError, StaleCacheError
from data_manifest.store.files import (host_name, pid_alive, sync_directory, temporary_owner,
                                       write_text_atomic)
from data_manifest.store.header import read_shard_header
from data_manifest.store.names import (SHARD_PREFIX, SPEC_FILE, TMP_MARK, shard_file_name,
                                       shard_index_of)
from data_manifest.store.plan import ShardPlan
from data_manifest.store.spec import CacheSpec, describe_difference
from data_manifest.store.survey import CacheSurvey
from data_manifest.store.writer import ShardWriter

CACHE_ROOT = "cache"


class CacheDir:
    """A stage cache folder. With ``plan`` (its WORKDIR's shard plan, or a function giving
    it when first needed), only shards made for that plan count as part of it; without,
    any shard with the right fingerprint does."""

    def __init__(self, path: str | os.PathLike,
                 plan: ShardPlan | Callable[[], ShardPlan] | None = None):
        self.path = Path(path)
        self._plan = plan

    @property
    def plan(self) -> ShardPlan | None:
        if callable(self._plan):
            self._plan = self._plan()
        return self._plan

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

    def shard_writer(self, spec: CacheSpec, index: int, **options: Any) -> ShardWriter:
        """A writer for shard ``index``, bound to the samples the plan gives it."""
        if self.plan is not None:
            options.setdefault("planned_ids", self.plan.ids(index))
        return ShardWriter(self.shard_path(index), spec, index, **options)

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
                self.remove()
        self.path.mkdir(parents=True, exist_ok=True)
        self.remove_temporary_files()
        if not self.exists():
            write_text_atomic(self.spec_path, json.dumps(spec.to_json(), indent=2,
                                                         sort_keys=True, default=str))

    def not_a_cache_folder(self) -> str | None:
        """Why this path is not a cache folder that may be deleted, or None if it is one:
        a real folder holding a spec file at ``.../cache/<stage>/<name>`` with plain names."""
        path = self.path
        if ".." in path.parts:
            return "its path goes through '..'"
        if path.is_symlink():
            return "it is a symbolic link"
        if not self.spec_path.is_file():
            return f"it holds no {SPEC_FILE}, so it is not a cache folder"
        if path.parent.parent.name != CACHE_ROOT:
            return f"it does not lie in a WORKDIR's {CACHE_ROOT}/<stage>/ folder"
        try:
            check_cache_name(path.parent.name, "stage name")
            check_cache_name(path.name)
        except ValueError as error:
            return str(error)
        return None

    def remove(self) -> None:
        """Delete the whole cache folder (spec, shards, ledger). Anything that is not a
        cache folder (see :meth:`not_a_cache_folder`) is refused and left alone."""
        if not os.path.lexists(self.path):
            return
        problem = self.not_a_cache_folder()
        if problem is not None:
            raise DataError(f"refusing to delete it: {problem}", path=str(self.path))
        shutil.rmtree(self.path)

    def remove_temporary_files(self) -> list[Path]:
        """Delete files left half-written by killed writers of *this* machine: shards, the
        spec and the failures ledger.

        Temporary files are named ``.<file>.tmp-<host>-<pid>``; those of other hosts
        (several machines writing one cache on a shared disk) and of live processes here
        are kept. Names from before the host was recorded (``.tmp-<pid>``) count as local.
        """
        removed = []
        here = host_name()
        for path in sorted(self.path.glob(f".*{TMP_MARK}*")):
            host, pid = temporary_owner(path)
            if host and host != here:
                continue   # another machine's writer: its pid means nothing here
            if pid is not None and pid != os.getpid() and pid_alive(pid):
                continue   # another live writer on this machine is still at work
            path.unlink(missing_ok=True)
            removed.append(path)
        return removed

    def shard_files(self) -> dict[int, Path]:
        files = {}
        for path in sorted(self.path.glob(f"{SHARD_PREFIX}*.h5")):
            index = shard_index_of(path)
            if index is not None:
                files[index] = path
        return files

    def leftover_shards(self) -> list[int]:
        """Indices of shard files past the plan (none without a plan): left by a plan with
        more shards, they are no part of the cache and no run of a stage rewrites them."""
        if self.plan is None:
            return []
        return [index for index in self.shard_files() if index not in self.plan]

    def remove_shards(self, indices: Iterable[int]) -> list[Path]:
        """Delete the shard files ``indices``; only with the cache's exclusive lock held
        (``pipeline.cache_lock``), never under a running writer."""
        removed = []
        for index in indices:
            path = self.shard_path(index)
            if os.path.lexists(path):
                path.unlink()
                removed.append(path)
        if removed:
            sync_directory(self.path)
        return removed

    def survey(self, memo: dict[Path, CacheSurvey] | None = None) -> CacheSurvey:
        """Every shard file's header, read once (see :mod:`.survey`); ``memo``: surveys
        already made in this call, by cache folder, to take this one from or add it to."""
        if memo is not None and self.path in memo:
            return memo[self.path]
        found = CacheSurvey(plan=self.plan)
        for index, path in self.shard_files().items():
            try:
                found.headers[index] = read_shard_header(path)
            except DamagedShardError:
                found.damaged.append(index)   # not done: the stage rewrites it
            except FileNotFoundError:
                continue                      # deleted since the folder was listed
        if memo is not None:
            memo[self.path] = found
        return found

    def _fingerprint(self, spec: CacheSpec | None) -> str:
        return (spec or self.spec()).fingerprint

    def headers(self, spec: CacheSpec | None = None) -> dict[int, dict[str, Any]]:
        """Headers of the shards that are part of the cache ``spec`` (default: own): made
        with its fingerprint and, with a plan, for that plan."""
        if not self.exists():
            return {}
        return self.survey().part_of_cache(self._fingerprint(spec))

    def shard_states(self, spec: CacheSpec | None = None,
                     upstream_tokens_by_shard: Mapping[int, Mapping[str, str]] | None = None
                     ) -> dict[int, str | None]:
        """Every readable shard made with ``spec``'s fingerprint (default: own) -> None if
        it is finished, else why a run of its stage redoes it: made for another shard
        plan (``plan.OTHER_PLAN``), built from since-rewritten upstream shards or from
        input files changed since (``sources.UPSTREAM_REWRITTEN`` / ``INPUTS_CHANGED``).

        ``upstream_tokens_by_shard``: shard -> {"<stage>/<name>": token of that upstream
        shard now}; only the upstream caches listed for a shard are compared (an upstream
        shard missing now is left to the stage to report).
        """
        if not self.exists():
            return {}
        return self.survey().states(self._fingerprint(spec), upstream_tokens_by_shard)

    def finished_shards(self, spec: CacheSpec | None = None,
                        upstream_tokens_by_shard: Mapping[int, Mapping[str, str]] | None = None
                        ) -> set[int]:
        """Indices of the shards a run of the stage would skip (see :meth:`shard_states`)."""
        states = self.shard_states(spec, upstream_tokens_by_shard)
        return {index for index, reason in states.items() if reason is None}

    def damaged_shards(self) -> list[int]:
        """Indices of shard files that cannot be read (a run of the stage rewrites them)."""
        return self.survey().damaged

    def sample_count(self, spec: CacheSpec | None = None) -> int:
        """Samples stored in the shards of the cache ``spec`` (default: own)."""
        return sum(len(h["sample_ids"]) for h in self.headers(spec).values())

    def failures(self, spec: CacheSpec | None = None) -> list[dict[str, Any]]:
        """Failed samples recorded in the shards of the cache ``spec`` (default: own)."""
        if not self.exists():
            return []
        return self.survey().failures(self._fingerprint(spec))
