"""Resumable, sharded execution of one pipeline stage.

The shard is the unit of work and of atomicity. A stage supplies a :class:`ShardTask`
that fills a :class:`~data_manifest.store.ShardWriter` for one shard's samples (adding
values, or recording a failure with its reason); the runner skips shards that are already
published with the same fingerprint and built from the current upstream shards (see the
tokens in :mod:`data_manifest.store`), runs the rest in parallel with joblib (each worker
writes its own shards), shows progress, and collects the failures into a ledger.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from joblib import Parallel, delayed
from tqdm.auto import tqdm

from data_manifest.errors import DataError
from data_manifest.sample import Sample
from data_manifest.store import (CacheDir, CacheSpec, ShardWriter, read_shard_header,
                                 write_text_atomic)
from data_manifest.workdir import Workdir

log = logging.getLogger(__name__)
FAILURES_FILE = "failures.jsonl"


class ShardTask:
    """One stage's work on one shard. Subclasses must be picklable (sent to workers).

    ``run_shard`` adds a value or a failure to ``writer`` for every sample; an exception
    escaping it fails the whole shard (nothing is published for it) and stops the run.
    Per-sample problems should be caught and recorded with ``writer.fail``.
    """

    def run_shard(self, shard_index: int, samples: Sequence[Sample],
                  writer: ShardWriter) -> None:
        raise NotImplementedError


class PerSampleTask(ShardTask):
    """A task whose samples are independent: implement ``process``."""

    #: exception types recorded as a sample's failure (bad or unreadable input, values out
    #: of range); anything else (KeyError, TypeError, ...) is a bug and propagates, stopping
    #: the run. Subclasses whose libraries raise other types for bad input extend this.
    expected_errors: tuple[type[BaseException], ...] = (DataError, OSError, ValueError)

    def setup(self, shard_index: int) -> None:
        """Open per-shard resources (readers of upstream caches, ...)."""

    def teardown(self) -> None:
        """Release what ``setup`` opened."""

    def process(self, sample: Sample) -> dict[str, Any]:
        raise NotImplementedError

    def run_shard(self, shard_index, samples, writer):
        self.setup(shard_index)
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

    def summary(self) -> str:
        text = (f"{self.stage}: {self.shards_written} shard(s) written, {self.shards_skipped} "
                f"already done, of {self.shards_total}; {self.samples_written} sample(s) "
                f"stored in this run; {len(self.failures)} failure(s) in the cache")
        return text

    def exit_code(self, skip_failures: bool) -> int:
        return 0 if (skip_failures or not self.failures) else 1


def _write_shard(task: ShardTask, cache_path: str, spec: CacheSpec, shard_index: int,
                 samples: Sequence[Sample], compression: str | None,
                 upstream_tokens: dict[str, str]) -> tuple[int, int]:
    cache = CacheDir(cache_path)
    writer = ShardWriter(cache.shard_path(shard_index), spec, shard_index, compression,
                         upstream_tokens=upstream_tokens)
    task.run_shard(shard_index, samples, writer)
    writer.commit()
    return shard_index, writer.num_written


def distributed_shards(num_shards: int, rank: int, world_size: int) -> list[int]:
    """The shards process ``rank`` of ``world_size`` takes: every world_size-th one."""
    return [index for index in range(num_shards) if index % world_size == rank]


def run_stage(workdir: Workdir, spec: CacheSpec, task: ShardTask, *, cache_name: str,
              jobs: int = 1, overwrite: bool = False, retry_failures: bool = False,
              shard_indices: Iterable[int] | None = None, compression: str | None = None,
              progress: bool = True, write_ledger: bool = True,
              rebuild: bool = False) -> StageResult:
    """Build (or finish building) the cache ``spec`` describes, shard by shard.

    A shard is redone when it is missing or damaged, was made with other settings, or was
    built from upstream shards that have been rewritten since (their tokens differ).
    ``overwrite`` deletes a cache made with other settings; ``rebuild`` deletes the cache
    whatever its settings and builds it from scratch. (With several processes sharing the
    cache, only one may rebuild, before the others start.)
    """
    workdir.check_manifest_unchanged()
    cache = workdir.cache_dir(spec.stage, cache_name)
    if rebuild:
        cache.remove()
    cache.prepare(spec, overwrite=overwrite)
    wanted = list(range(workdir.num_shards)) if shard_indices is None else list(shard_indices)
    upstream_tokens = workdir.upstream_tokens(spec, wanted)
    done = cache.finished_shards(spec, upstream_tokens_by_shard=upstream_tokens)
    if retry_failures:
        done = {i for i in done if not read_shard_header(cache.shard_path(i))["failures"]}
    todo = [index for index in wanted if index not in done]
    log.info("%s: %d of %d shard(s) to do in %s", spec.stage, len(todo), len(wanted),
             cache.path)
    written_samples = 0
    if todo:
        calls = (delayed(_write_shard)(task, str(cache.path), spec, index,
                                       workdir.shard_samples(index), compression,
                                       upstream_tokens[index])
                 for index in todo)
        bar = tqdm(total=len(todo), desc=spec.stage, unit="shard", disable=not progress,
                   dynamic_ncols=True)
        try:
            if jobs == 1:
                results = (call[0](*call[1], **call[2]) for call in calls)
            else:
                results = Parallel(n_jobs=jobs, return_as="generator_unordered")(calls)
            for _, count in results:
                written_samples += count
                bar.update(1)
                bar.set_postfix(samples=written_samples)
        finally:
            bar.close()
    failures = cache.failures(spec)
    if write_ledger:
        write_failures_ledger(cache, failures)
    return StageResult(spec.stage, cache.path, len(wanted), len(wanted) - len(todo), len(todo),
                       written_samples, [f for f in failures if f["shard"] in set(wanted)])


def write_failures_ledger(cache: CacheDir, failures: list[dict[str, Any]]) -> Path:
    path = cache.path / FAILURES_FILE
    write_text_atomic(path, "".join(json.dumps(failure, sort_keys=True) + "\n"
                                    for failure in failures))
    return path
