"""Stage ``skeletons``: every sample's skeleton file -> denoised, translated joint arrays.

Fields per sample: :data:`data_manifest.schemas.SKELETON_FIELDS`. The cache spec's params
are the WORKDIR's :class:`~data_manifest.formats.reading.SkeletonReading` (dataset, layout
and joint mapping, channels, persons per sample, NTU denoising settings with their
version, the absent-actor rule), so a change of any of them makes the old cache stale
instead of silently reused.

Own data (csv) needs a skeleton layout; its channels and persons per sample are taken from
the files when ``pipeline manifest`` was not given them: a survey reads every file first
(the most common channel count wins, persons = the most persons with data in any file),
recorded in the WORKDIR so later runs and other processes read only the files changed
since (:mod:`pipeline.stages.skeleton_survey`).
A file in another layout, channel count or shape is a recorded failure naming the file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import Counter
from typing import Any, Iterable

from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.load import load_skeleton_sample
from data_manifest.formats.reading import SkeletonReading, channels_of
from data_manifest.layouts import LAYOUTS
from data_manifest.sample import Sample
from data_manifest.schemas import SKELETONS
from data_manifest.store import CacheSpec
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.stage_runner import PerSampleTask, StageResult, run_stage
from pipeline.stages.distributed import current_process_group
from pipeline.stages.skeleton_survey import survey_files

log = logging.getLogger(__name__)
POSES_HINT = "`pipeline extract-poses` estimates poses from videos"


class ExtractSkeletons(PerSampleTask):
    """Reads one sample's skeleton file; bad or unusable files become recorded failures."""

    expected_errors = (DataError, OSError, ValueError)
    inputs = ("skeleton",)

    def __init__(self, reading: SkeletonReading):
        self.reading = reading

    def process(self, sample: Sample) -> dict[str, Any]:
        if sample.dataset != self.reading.dataset:
            raise DataError(f"is a {sample.dataset} sample in a {self.reading.dataset} "
                            "WORKDIR", sample_id=sample.id)
        if not sample.skeleton:
            raise DataError("has no skeleton file" + (f", only a video ({POSES_HINT})"
                                                      if sample.video else ""),
                            sample_id=sample.id)
        return load_skeleton_sample(sample.skeleton, self.reading)


def stage_reading(workdir: Workdir, progress: bool = False) -> SkeletonReading:
    """The WORKDIR's reading with nothing left open: own data's channels and persons come
    from a survey of its files when the manifest did not fix them."""
    reading = workdir.skeleton_reading()
    if reading.builtin:
        return reading
    if reading.layout is None:
        raise DataError(f"{workdir.path} holds own (csv) data without a skeleton layout: "
                        "rebuild its manifest with --layout NAME|FILE (built-in: "
                        f"{', '.join(sorted(LAYOUTS))}; or a YAML file of your own, see "
                        "docs/own-data.md)")
    if reading.channels is not None and reading.max_persons is not None:
        return reading
    paths = [s.skeleton for s in workdir.samples if s.skeleton]
    usable = [item for item in survey_files(workdir.path, paths, reading, progress)
              if item is not None]
    if not usable:
        raise DataError("no sample has a readable skeleton file", path=str(workdir.path))
    channels = reading.channels
    if channels is None:
        counts = Counter(values for _, _, values in usable)
        channels = channels_of(counts.most_common(1)[0][0])
        if len(counts) > 1:
            log.warning("skeleton files hold %s values per joint; taking %s (%s), files "
                        "with another count will be recorded as failures",
                        dict(counts), channels, "--channels sets it")
    persons = reading.max_persons or max(persons for _, persons, _ in usable)
    log.info("own data: %s channels, %d person(s) per sample", channels, persons)
    return dataclasses.replace(reading, channels=channels, max_persons=persons)


def skeleton_spec(workdir: Workdir, reading: SkeletonReading | None = None) -> CacheSpec:
    reading = reading or stage_reading(workdir)
    return workdir.spec(SKELETONS, reading.params())


def extract_skeletons(workdir: Workdir | str | os.PathLike, *, jobs: int = 1,
                      overwrite: bool = False, retry_failures: bool = False,
                      progress: bool = True, shard_indices: Iterable[int] | None = None,
                      cache_name: str = DEFAULT_CACHE_NAME, rebuild: bool = False,
                      absent_actor: str | None = None) -> StageResult:
    """Build (or finish) ``WORKDIR/cache/skeletons/<cache_name>``; see :func:`run_stage`
    (which also says how several processes share the work).

    ``absent_actor``: ``zeros`` or ``copy`` for the empty slots of single-actor samples
    (None: the dataset's rule, ``copy`` for NTU120 and ``zeros`` otherwise, as CTR-GCN;
    see :mod:`data_manifest.formats.reading`).
    """
    if not isinstance(workdir, Workdir):
        workdir = Workdir(workdir)
    dataset_info(workdir.dataset)     # a WORKDIR of an unknown dataset fails here
    if not any(sample.skeleton for sample in workdir.samples):
        raise DataError(f"no sample of {workdir.path} has a skeleton file: {POSES_HINT} "
                        "(`pipeline run --poses` runs it instead of extract-skeletons)")
    reading = stage_reading(workdir, progress)
    if absent_actor is not None:
        reading = dataclasses.replace(reading, absent_actor=absent_actor)
    return run_stage(workdir, skeleton_spec(workdir, reading), ExtractSkeletons(reading),
                     cache_name=cache_name, jobs=jobs, overwrite=overwrite,
                     retry_failures=retry_failures, shard_indices=shard_indices,
                     progress=progress, rebuild=rebuild, group=current_process_group())
