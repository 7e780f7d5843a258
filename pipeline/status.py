"""What every stage cache of a WORKDIR holds: shards done, samples, failures, settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_manifest.schemas import STAGE_ORDER
from data_manifest.store import read_shard_header
from data_manifest.workdir import Workdir


@dataclass
class CacheStatus:
    stage: str
    name: str
    path: Path
    fingerprint: str
    params: dict[str, Any]
    shards_done: int
    shards_total: int
    samples: int
    failures: int
    stale_shards: int     # published with another fingerprint (left from other settings)

    def line(self) -> str:
        state = "complete" if self.shards_done == self.shards_total else "incomplete"
        text = (f"{self.stage}/{self.name}: {self.shards_done}/{self.shards_total} shards "
                f"({state}), {self.samples} samples, {self.failures} failed, "
                f"fingerprint {self.fingerprint}")
        if self.stale_shards:
            text += f", {self.stale_shards} stale shard(s)"
        return text


def workdir_status(path) -> tuple[Workdir, list[CacheStatus]]:
    workdir = Workdir(path)
    found = []
    cache_root = workdir.path / "cache"
    stages = sorted(p.name for p in cache_root.iterdir()) if cache_root.is_dir() else []
    stages.sort(key=lambda s: STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER))
    for stage in stages:
        for name in workdir.cache_names(stage):
            cache = workdir.cache_dir(stage, name)
            spec = cache.spec()
            done = samples = failures = stale = 0
            for _, shard in cache.shard_files().items():
                header = read_shard_header(shard)
                if header["fingerprint"] != spec.fingerprint:
                    stale += 1
                    continue
                done += 1
                samples += len(header["sample_ids"])
                failures += len(header["failures"])
            found.append(CacheStatus(stage, name, cache.path, spec.fingerprint, spec.params,
                                     done, workdir.num_shards, samples, failures, stale))
    return workdir, found
