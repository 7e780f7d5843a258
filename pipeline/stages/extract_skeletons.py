"""Stage ``skeletons``: every sample's skeleton file -> denoised, translated joint arrays.

Fields per sample: :data:`data_manifest.schemas.SKELETON_FIELDS`. The cache spec's params
hold the dataset, the joint count (``num_joints``; for CSV data the joint count shared by the
user's files), the persons per sample and the denoising settings with their version, so a
change of any of them makes the old cache stale instead of silently reused.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Any, Iterable

from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.load import load_skeleton_sample, peek_num_joints, skeleton_params
from data_manifest.formats.ntu_skeleton import NUM_JOINTS as NTU_JOINTS
from data_manifest.formats.nw_ucla import NUM_JOINTS as NW_UCLA_JOINTS
from data_manifest.sample import Sample
from data_manifest.schemas import SKELETONS
from data_manifest.store import CacheSpec
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.stage_runner import PerSampleTask, StageResult, run_stage
from pipeline.stages.distributed import current_process_group

log = logging.getLogger(__name__)


class ExtractSkeletons(PerSampleTask):
    """Reads one sample's skeleton file; bad or unusable files become recorded failures."""

    expected_errors = (DataError, OSError, ValueError)

    def __init__(self, dataset: str, num_joints: int):
        self.dataset = dataset
        self.num_joints = num_joints

    def process(self, sample: Sample) -> dict[str, Any]:
        if sample.dataset != self.dataset:
            raise DataError(f"is a {sample.dataset} sample in a {self.dataset} WORKDIR",
                            sample_id=sample.id)
        if not sample.skeleton:
            raise DataError("has no skeleton file", sample_id=sample.id)
        values = load_skeleton_sample(sample.skeleton, self.dataset)
        found = values["joints"].shape[2]
        if found != self.num_joints:
            raise DataError(f"has {found} joints per person; the other samples of this "
                            f"WORKDIR have {self.num_joints}", path=sample.skeleton)
        return values


def dataset_num_joints(workdir: Workdir) -> int:
    """Joints per person: fixed for NTU and NW-UCLA, the most common count for CSV data."""
    dataset = workdir.dataset
    if dataset in ("ntu60", "ntu120"):
        return NTU_JOINTS
    if dataset == "nw-ucla":
        return NW_UCLA_JOINTS
    counts = Counter(peek_num_joints(s.skeleton) for s in workdir.samples if s.skeleton)
    counts.pop(None, None)
    if not counts:
        raise DataError("no sample has a readable skeleton file", path=str(workdir.path))
    (num_joints, _), *others = counts.most_common()
    if others:
        log.warning("skeleton files have different joint counts %s; samples without %d "
                    "joints will be recorded as failures", dict(counts), num_joints)
    return num_joints


def skeleton_spec(workdir: Workdir, num_joints: int | None = None) -> CacheSpec:
    if num_joints is None:
        num_joints = dataset_num_joints(workdir)
    return workdir.spec(SKELETONS, skeleton_params(workdir.dataset, num_joints))


def extract_skeletons(workdir: Workdir | str | os.PathLike, *, jobs: int = 1,
                      overwrite: bool = False, retry_failures: bool = False,
                      progress: bool = True, shard_indices: Iterable[int] | None = None,
                      cache_name: str = DEFAULT_CACHE_NAME, rebuild: bool = False
                      ) -> StageResult:
    """Build (or finish) ``WORKDIR/cache/skeletons/<cache_name>``; see :func:`run_stage`
    (which also says how several processes share the work)."""
    if not isinstance(workdir, Workdir):
        workdir = Workdir(workdir)
    dataset_info(workdir.dataset)     # a WORKDIR of an unknown dataset fails here
    num_joints = dataset_num_joints(workdir)
    spec = skeleton_spec(workdir, num_joints)
    return run_stage(workdir, spec, ExtractSkeletons(workdir.dataset, num_joints),
                     cache_name=cache_name, jobs=jobs, overwrite=overwrite,
                     retry_failures=retry_failures, shard_indices=shard_indices,
                     progress=progress, rebuild=rebuild, group=current_process_group())
