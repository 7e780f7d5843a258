"""Resumable, sharded execution of one pipeline stage.

The shard is the unit of work and of atomicity. A stage supplies a :class:`ShardTask`
that fills a :class:`~data_manifest.store.ShardWriter` for one shard's samples (adding
values, or recording a failure with its reason); the runner skips shards that are already
published with the same fingerprint, for the WORKDIR's shard plan, and built from the
current upstream shards and input files (see :mod:`data_manifest.store.cachedir`), runs
the rest in worker processes that stop with it (:mod:`pipeline.workers`; each worker
writes its own shards), shows progress, and collects the failures into a ledger.

Several processes may write one cache together (``torchrun`` ranks, Slurm array tasks;
see :mod:`pipeline.stages.distributed`): each takes its part of the shards and holds the
cache's shared lock (:mod:`pipeline.cache_lock`) while it writes, so another run cannot
delete the cache under it. Each process reports the failures of its own shards (and exits
on them); the ledger lists the whole cache's, rewritten by every process as it finishes.
"""

from __future__ import annotations

import json
import logging
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from data_manifest.errors import DataError, StaleCacheError
from data_manifest.sample import Sample
from data_manifest.store import CacheDir, CacheSpec, ShardWriter, input_stats, write_text_atomic
from data_manifest.workdir import Workdir
from pipeline.cache_lock import CacheBusyError, CacheLock, ledger_lock
from pipeline.stages.distributed import ProcessGroup, current_process_group
from pipeline.workers import run_unordered

log = logging.getLogger(__name__)
FAILURES_FILE = "failures.jsonl"


class ShardTask:
    """One stage's work on one shard. Subclasses must be picklable and defined at the top
    level of a module (``-j`` workers are spawned: they import the class by name).

    ``run_shard`` adds a value or a failure to ``writer`` for every sample; an exception
    escaping it fails the whole shard (nothing is published for it) and stops the run.
    Per-sample problems should be caught and recorded with ``writer.fail``.
    """

    #: the Sample fields naming the input files the stage reads (e.g. ``("skeleton",)``):
    #: their size and mtime are recorded with the shard, and a change makes it outdated
    inputs: tuple[str, ...] = ()

    def run_shard(self, shard_index: int, samples: Sequence[Sample],
                  writer: ShardWriter) -> None:
        raise NotImplementedError


class PerSampleTask(ShardTask):
    """A task whose samples are independent: implement ``process``."""

    #: exception types recorded as a sample's failure (bad or unreadable input, values out
    #: of range); anything else (KeyError, TypeError, ...) is a bug and propagates, stopping
    #: the run. Subclasses whose libraries raise other types for bad input extend this.
    expected_errors: tuple[type[BaseException], ...] = (DataError, OSError, ValueError)

    def setup(self, shard_index: int, samples: Sequence[Sample]) -> None:
        """Open per-shard resources (readers of upstream caches, ...)."""

    def teardown(self) -> None:
        """Release what ``setup`` opened."""

    def process(self, sample: Sample) -> dict[str, Any]:
        raise NotImplementedError

    def run_shard(self, shard_index, samples, writer):
        self.setup(shard_index, samples)
        try:
            for sample in samples:
                try:
                    values = self.process(sample)
                except self.expected_errors as error:   # recorded, reported at the end
                    writer.fail(sample.id, _describe(error))
                    continue
                writer.add(sample.id, values)
        finally:
            self.teardown()


def _describe(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, DataError):   # already names the file and says what is wrong
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


@dataclass
class StageResult:
    stage: str
    cache_path: Path
    shards_total: int
    shards_skipped: int
    shards_written: int
    samples_written: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    part: str = ""        # "process 2 of 4 (...)" when several processes share the cache

    def summary(self) -> str:
        where = f" [{self.part}]" if self.part else ""
        return (f"{self.stage}{where}: {self.shards_written} shard(s) written, "
                f"{self.shards_skipped} already done, of {self.shards_total}; "
                f"{self.samples_written} sample(s) stored in this run; {len(self.failures)} "
                f"failure(s) in {'these shards' if self.part else 'the cache'}")

    def exit_code(self, skip_failures: bool) -> int:
        return 0 if (skip_failures or not self.failures) else 1


def _write_shard(task: ShardTask, cache_path: str, spec: CacheSpec, shard_index: int,
                 samples: Sequence[Sample], upstream_tokens: dict[str, str]
                 ) -> tuple[int, int]:
    cache = CacheDir(cache_path)
    inputs = input_stats(path for sample in samples for name in task.inputs
                         if (path := getattr(sample, name)))
    writer = ShardWriter(cache.shard_path(shard_index), spec, shard_index,
                         upstream_tokens=upstream_tokens,
                         planned_ids=[sample.id for sample in samples], inputs=inputs)
    task.run_shard(shard_index, samples, writer)
    writer.commit()
    return shard_index, writer.num_written


def _has_settings(cache: CacheDir, spec: CacheSpec) -> bool:
    """Whether the cache exists and was made with ``spec``'s settings."""
    try:
        return cache.exists() and cache.spec().fingerprint == spec.fingerprint
    except StaleCacheError:      # a spec file edited by hand: made with other settings
        return False


@contextmanager
def cache_for_writing(cache: CacheDir, spec: CacheSpec, *, overwrite: bool = False,
                      rebuild: bool = False) -> Iterator[None]:
    """Prepare ``cache`` for ``spec`` and hold its shared lock until the block ends.

    Creating the cache, and deleting it (``rebuild``, or ``overwrite`` of a cache made with
    other settings), happen under the exclusive lock; a deletion is refused with
    :class:`~pipeline.cache_lock.CacheBusyError` while another process writes the cache.
    When several processes of one run ``overwrite`` or create the cache at once, one does
    it and the others find it done. Shard files past the WORKDIR's shard plan (left by a
    plan with more shards: the manifest rebuilt with a larger shard size) are deleted
    first, under the exclusive lock; while another process writes the cache they are kept,
    for a later run to delete.
    """
    with CacheLock(cache.path) as lock:
        _remove_leftover_shards(cache, lock)
        lock.hold_shared()
        if rebuild or not _has_settings(cache, spec):
            try:
                lock.hold_exclusive("rebuild" if rebuild else "overwrite")
            except CacheBusyError:
                lock.hold_shared()         # the failed conversion dropped it; wait for it
                if rebuild or (overwrite and cache.exists() and not _has_settings(cache, spec)):
                    raise
            else:
                if rebuild:
                    cache.remove()
                cache.prepare(spec, overwrite=overwrite)
                lock.hold_shared()
        cache.prepare(spec)     # refuses a cache another run made with other settings
        yield


def _remove_leftover_shards(cache: CacheDir, lock: CacheLock) -> None:
    leftover = cache.leftover_shards()
    if not leftover:
        return
    try:
        lock.hold_exclusive("delete the shard files past the shard plan of")
    except CacheBusyError:
        log.info("%s: %d shard file(s) past the shard plan are kept while another process "
                 "writes the cache; a later run deletes them", cache.path, len(leftover))
        return
    removed = cache.remove_shards(cache.leftover_shards())
    log.info("%s: deleted %d shard file(s) past the shard plan (made when the manifest had "
             "more shards)", cache.path, len(removed))


def _rebuild_once(cache: CacheDir, spec: CacheSpec, group: ProcessGroup) -> None:
    """With several processes, the first deletes the cache while the others wait."""
    if not group.can_wait_for_everyone:
        raise ValueError(
            f"--rebuild cannot be used by one of several independent processes "
            f"({group.describe()}): each would delete the shards the others have written. "
            f"Delete the cache before starting them (rm -r {cache.path}), then run them "
            "without --rebuild.")
    if group.is_main:
        with cache_for_writing(cache, spec, rebuild=True):
            pass
    group.wait_for_everyone()


def _run_shards(calls: list[tuple], jobs: int) -> Iterator[tuple[int, int]]:
    if jobs == 1:
        return (_write_shard(*call) for call in calls)
    return run_unordered(_write_shard, calls, jobs)


def run_stage(workdir: Workdir, spec: CacheSpec, task: ShardTask, *, cache_name: str,
              jobs: int = 1, overwrite: bool = False, retry_failures: bool = False,
              shard_indices: Iterable[int] | None = None, part: Sequence[int] | None = None,
              progress: bool = True, rebuild: bool = False,
              group: ProcessGroup | None = None) -> StageResult:
    """Build (or finish building) the cache ``spec`` describes, shard by shard.

    A shard is redone when it is missing or damaged, was made with other settings or for
    another shard plan, or was built from upstream shards rewritten since (their tokens
    differ) or from input files changed since (size or mtime).
    ``overwrite`` deletes a cache made with other settings; ``rebuild`` deletes the cache
    whatever its settings and builds it from scratch. Either is refused while another
    process writes the cache. ``group`` (default: from the environment, see
    :mod:`pipeline.stages.distributed`) says which of ``shard_indices`` (default: all)
    this process takes; ``part`` instead: the shards this process takes, already taken
    from ``group`` (by a stage that needed them first).
    """
    workdir.check_manifest_unchanged()
    group = current_process_group() if group is None else group
    cache = workdir.cache_dir(spec.stage, cache_name)
    if part is not None and shard_indices is not None:
        raise ValueError("give run_stage shard_indices or this process's part, not both")
    wanted = list(part) if part is not None else group.shards(workdir.num_shards,
                                                               shard_indices)
    if rebuild and group.world_size > 1:
        _rebuild_once(cache, spec, group)
        rebuild = False
    with cache_for_writing(cache, spec, overwrite=overwrite, rebuild=rebuild):
        upstream_tokens = workdir.upstream_tokens(spec, wanted)
        survey = cache.survey()
        states = survey.states(spec.fingerprint, upstream_tokens)
        done = {index for index, reason in states.items() if reason is None
                and not (retry_failures and survey.headers[index]["failures"])}
        todo = [index for index in wanted if index not in done]
        log.info("%s: %d of %d shard(s) to do in %s%s", spec.stage, len(todo), len(wanted),
                 cache.path, f" ({group.describe()})" if group.world_size > 1 else "")
        written_samples = 0
        if todo:
            calls = [(task, str(cache.path), spec, index, workdir.shard_samples(index),
                      upstream_tokens[index]) for index in todo]
            with tqdm(total=len(todo), desc=spec.stage, unit="shard", disable=not progress,
                      dynamic_ncols=True) as bar, closing(_run_shards(calls, jobs)) as results:
                for _, count in results:
                    written_samples += count
                    bar.update(1)
                    bar.set_postfix(samples=written_samples)
        failures = write_failures_ledger(cache, spec)
    mine = set(wanted)
    return StageResult(spec.stage, cache.path, len(wanted), len(wanted) - len(todo), len(todo),
                       written_samples, [f for f in failures if f["shard"] in mine],
                       group.describe())


def write_failures_ledger(cache: CacheDir, spec: CacheSpec) -> list[dict[str, Any]]:
    """Write the failures recorded in every shard of ``cache`` made with ``spec`` to its
    ledger, and return them. Processes sharing the cache take turns, so the last to write
    has seen every shard the others published."""
    with ledger_lock(cache.path):
        failures = cache.failures(spec)
        write_text_atomic(cache.path / FAILURES_FILE,
                          "".join(json.dumps(failure, sort_keys=True) + "\n"
                                  for failure in failures))
    return failures
