"""What a WORKDIR holds: its split counts, and per stage cache the shards done, samples,
failures, shards to redo (and why) and settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_manifest.schemas import STAGE_ORDER
from data_manifest.store import (INPUTS_CHANGED, OTHER_PLAN, UPSTREAM_REWRITTEN, CacheSurvey,
                                 is_plain_name)
from data_manifest.workdir import Workdir


@dataclass
class CacheStatus:
    stage: str
    name: str
    path: Path
    fingerprint: str
    params: dict[str, Any]
    shards_done: int      # as a run of the stage counts them (upstream rewrites included)
    shards_total: int
    samples: int
    failures: int
    damaged_shards: int   # shard files that cannot be read; a run of the stage rewrites them
    # shards a run of the stage redoes: built from upstream shards rewritten since, from
    # input files changed since, or made for another shard plan
    outdated_shards: int = 0
    changed_input_shards: int = 0
    other_plan_shards: int = 0

    def line(self) -> str:
        state = "complete" if self.shards_done == self.shards_total else "incomplete"
        text = (f"{self.stage}/{self.name}: {self.shards_done}/{self.shards_total} shards "
                f"({state}), {self.samples} samples, {self.failures} failed, ")
        if self.outdated_shards:
            text += (f"{self.outdated_shards} shard(s) built from since-rewritten upstream "
                     "shards, ")
        if self.changed_input_shards:
            text += (f"{self.changed_input_shards} shard(s) whose input files changed since "
                     "(re-run the stage to redo them), ")
        if self.other_plan_shards:
            text += (f"{self.other_plan_shards} shard(s) made for another shard plan (the "
                     "manifest was rebuilt with another shard size; re-run the stage to "
                     "redo them and delete those past the plan), ")
        if self.damaged_shards:
            text += (f"{self.damaged_shards} damaged shard(s) (re-run the stage to rewrite "
                     "them), ")
        return text + f"fingerprint {self.fingerprint}"


@dataclass
class StageStatus:
    stage: str
    shards_total: int
    caches: list[CacheStatus] = field(default_factory=list)

    def lines(self, show_params: bool = False) -> list[str]:
        if not self.caches:
            return [f"{self.stage}: not started (0/{self.shards_total} shards)"]
        lines = []
        for cache in self.caches:
            lines.append(cache.line())
            if show_params:
                lines.append("    " + json.dumps(cache.params, sort_keys=True, default=str))
        return lines


def cache_status(workdir: Workdir, stage: str, name: str,
                 surveys: dict[Path, CacheSurvey] | None = None) -> CacheStatus:
    """One cache's status from one survey of its shard headers (and of its upstream
    caches' for their tokens); ``surveys``: those made so far in this call, shared."""
    surveys = {} if surveys is None else surveys
    cache = workdir.cache_dir(stage, name)
    spec = cache.spec()
    survey = cache.survey(surveys)
    tokens = workdir.upstream_tokens(spec, range(workdir.num_shards), surveys)
    states = list(survey.states(spec.fingerprint, tokens).values())
    return CacheStatus(stage, name, cache.path, spec.fingerprint, spec.params,
                       states.count(None), workdir.num_shards,
                       survey.sample_count(spec.fingerprint),
                       len(survey.failures(spec.fingerprint)), len(survey.damaged),
                       states.count(UPSTREAM_REWRITTEN), states.count(INPUTS_CHANGED),
                       states.count(OTHER_PLAN))


def workdir_status(path) -> tuple[Workdir, list[StageStatus]]:
    """Every stage after the manifest, in pipeline order, then any other caches found."""
    workdir = Workdir(path)
    cache_root = workdir.path / "cache"
    found = (sorted(p.name for p in cache_root.iterdir() if is_plain_name(p.name))
             if cache_root.is_dir() else [])
    stages = [s for s in STAGE_ORDER if s != "manifest"]
    stages += [s for s in found if s not in stages]
    surveys: dict[Path, CacheSurvey] = {}
    return workdir, [
        StageStatus(stage, workdir.num_shards,
                    [cache_status(workdir, stage, name, surveys)
                     for name in workdir.cache_names(stage)])
        for stage in stages]
