"""A working directory: the manifest, its shard plan and the stage caches.

::

    WORKDIR/
      workdir.json        dataset, source root, manifest digest, shard size, layout name,
                          channels and persons of own data (when given), default protocol
      manifest.jsonl      one sample per line; shard k = lines [k*S, (k+1)*S)
      orphans.jsonl       files that could not be paired when the manifest was built
      layout.yaml         the skeleton layout (a copy: the WORKDIR needs no other file)
      joint_map.yaml      own data stored in another layout: how it becomes layout.yaml's
      classes.txt         class names given to ``pipeline manifest --classes``
      skeleton_survey.json  own data: what each skeleton file holds, with its size and
                          mtime (``pipeline.stages.skeleton_survey``)
      cache/<stage>/<name>/shard-00000.h5 ...

The manifest order fixes which samples go to which shard (the shard plan), for every
stage alike, so shard k of a downstream stage reads shard k of its upstream stage. The
caches of a WORKDIR count only shards made for its plan: after the manifest is rebuilt
with another shard size, old shards are redone, never read as the new shard k.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from data_manifest.classes import class_names, read_class_names
from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.reading import SkeletonReading
from data_manifest.layouts import LAYOUTS, JointMapping, Layout, load_joint_map, load_layout
from data_manifest.manifest import manifest_digest, read_manifest
from data_manifest.sample import Sample
from data_manifest.store import (CACHE_ROOT, INPUTS_CHANGED, UPSTREAM_REWRITTEN, CacheDir,
                                 CacheReader, CacheSpec, CacheSurvey, ShardPlan,
                                 check_cache_name, is_plain_name, outdated_reason,
                                 read_shard_token, write_text_atomic)

log = logging.getLogger(__name__)
WORKDIR_FILE = "workdir.json"
MANIFEST_FILE = "manifest.jsonl"
ORPHANS_FILE = "orphans.jsonl"
LAYOUT_FILE = "layout.yaml"
JOINT_MAP_FILE = "joint_map.yaml"
CLASSES_FILE = "classes.txt"
DEFAULT_SHARD_SIZE = 128
DEFAULT_CACHE_NAME = "default"


@dataclass(frozen=True)
class WorkdirInfo:
    dataset: str
    source_root: str
    manifest_digest: str
    num_samples: int
    shard_size: int
    layout: str | None = None      # name of the skeleton layout (layout.yaml holds it)
    channels: str | None = None    # own data: xyz, xy or xy-score; None: from the files
    max_persons: int | None = None  # own data: persons per sample; None: from the files
    protocol: str | None = None    # the split protocol trained on by default (data.protocol
                                   # auto); None: the dataset's first (pyskl: from --split)
    version: int = 1


class Workdir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        info_path = self.path / WORKDIR_FILE
        if not info_path.is_file():
            raise DataError(f"{self.path} is not a WORKDIR (no {WORKDIR_FILE}); "
                            "build one with `pipeline manifest DATASET ROOT WORKDIR`")
        try:
            self.info = WorkdirInfo(**json.loads(info_path.read_text()))
        except (ValueError, TypeError) as error:
            raise DataError(f"unreadable WORKDIR description ({error})",
                            path=str(info_path)) from error

    @staticmethod
    def write_info(path: str | os.PathLike, info: WorkdirInfo) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path / WORKDIR_FILE, json.dumps(asdict(info), indent=2,
                                                          sort_keys=True))

    @property
    def dataset(self) -> str:
        return self.info.dataset

    @property
    def default_protocol(self) -> str:
        """The split protocol a config's ``data.protocol: auto`` means for this WORKDIR."""
        if self.info.protocol:
            return self.info.protocol
        protocols = dataset_info(self.dataset).protocols
        if not protocols:
            raise DataError(f"{self.path} records no split protocol; rebuild its manifest "
                            "(pipeline manifest ... --split NAME)")
        return protocols[0]

    @cached_property
    def layout(self) -> Layout | None:
        """The skeleton layout: ``layout.yaml``, else the built-in the info names."""
        path = self.path / LAYOUT_FILE
        if path.is_file():
            return load_layout(path)
        return LAYOUTS.get(self.info.layout or "")

    @cached_property
    def joint_map(self) -> JointMapping | None:
        """How own data stored in another layout becomes :attr:`layout`, if it is."""
        path = self.path / JOINT_MAP_FILE
        return load_joint_map(path) if path.is_file() else None

    @cached_property
    def class_names(self) -> list[str] | None:
        """``classes.txt``, else the built-in dataset's names, else None."""
        path = self.path / CLASSES_FILE
        if path.is_file():
            return read_class_names(path)
        names = class_names(self.dataset)
        return list(names) if names is not None else None

    def skeleton_reading(self) -> SkeletonReading:
        """How this WORKDIR's skeleton files are read (own data: channels and persons may
        still be None, to be taken from the files)."""
        if dataset_info(self.dataset).layout is not None:
            return SkeletonReading.for_dataset(self.dataset)
        return SkeletonReading(self.dataset, self.layout, self.joint_map, self.info.channels,
                               self.info.max_persons)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @cached_property
    def samples(self) -> list[Sample]:
        samples = read_manifest(self.manifest_path)
        if len(samples) != self.info.num_samples:
            raise DataError(f"manifest has {len(samples)} samples, {WORKDIR_FILE} says "
                            f"{self.info.num_samples}", path=str(self.manifest_path))
        return samples

    @cached_property
    def samples_by_id(self) -> dict[str, Sample]:
        return {sample.id: sample for sample in self.samples}

    def check_manifest_unchanged(self) -> None:
        """Refuse to work on a manifest edited after the WORKDIR was made."""
        digest = manifest_digest(self.manifest_path)
        if digest != self.info.manifest_digest:
            raise DataError("the manifest was changed after the WORKDIR was made; its caches "
                            "no longer match it. Rebuild with `pipeline manifest ... "
                            "--overwrite`", path=str(self.manifest_path))

    # -- shard plan
    @property
    def num_shards(self) -> int:
        size = self.info.shard_size
        return (self.info.num_samples + size - 1) // size

    def shard_samples(self, index: int) -> list[Sample]:
        if not 0 <= index < self.num_shards:
            raise IndexError(f"shard {index} out of range 0..{self.num_shards - 1}")
        size = self.info.shard_size
        return self.samples[index * size:(index + 1) * size]

    @cached_property
    def plan(self) -> ShardPlan:
        return ShardPlan.of_samples([sample.id for sample in self.samples],
                                    self.info.shard_size)

    # -- caches
    def cache_dir(self, stage: str, name: str = DEFAULT_CACHE_NAME) -> CacheDir:
        """The folder of cache ``name`` of ``stage``; both must be plain names."""
        check_cache_name(stage, "stage name")
        check_cache_name(name, f"{stage} cache name")
        return CacheDir(self.path / CACHE_ROOT / stage / name, plan=lambda: self.plan)

    def cache_names(self, stage: str) -> list[str]:
        """The caches of ``stage`` (folders with a plain name holding a spec file)."""
        root = self.path / CACHE_ROOT / stage
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir()
                      if is_plain_name(p.name) and CacheDir(p).exists())

    def spec(self, stage: str, params: dict[str, Any],
             upstream: dict[str, str] | None = None) -> CacheSpec:
        return CacheSpec(stage=stage, params=params, manifest_digest=self.info.manifest_digest,
                         upstream=dict(upstream or {}))

    def upstream_tokens(self, spec: CacheSpec, shard_indices: Iterable[int],
                        surveys: dict[Path, CacheSurvey] | None = None
                        ) -> dict[int, dict[str, str]]:
        """shard -> {"<stage>/<name>": token} of the upstream shards ``spec`` builds on.

        Upstream caches are the keys of ``spec.upstream``; an upstream shard that is
        missing, damaged or from before tokens existed is left out. Tokens are read from
        each shard file, or with ``surveys`` (surveys made so far, by cache folder) from
        the upstream cache's survey, which is made once and added to them.
        """
        tokens: dict[int, dict[str, str]] = {index: {} for index in shard_indices}
        for key in spec.upstream:
            stage, _, name = key.partition("/")
            if not name:
                continue
            cache = self.cache_dir(stage, name)
            surveyed = cache.survey(surveys).tokens() if surveys is not None else None
            for index, found in tokens.items():
                token = (surveyed.get(index) if surveyed is not None
                         else read_shard_token(cache.shard_path(index)))
                if token is not None:
                    found[key] = token
        return tokens

    def reader(self, stage: str, name: str = DEFAULT_CACHE_NAME,
               expect: CacheSpec | None = None) -> CacheReader:
        """Open a cache of this WORKDIR, refusing one made for another manifest; only the
        shards made for this WORKDIR's shard plan are read. Shards that are outdated
        (built from since-rewritten upstream shards or from input files changed since)
        are read, with a warning saying how many and what to run."""
        cache = self.cache_dir(stage, name)
        spec = cache.spec() if cache.exists() else None
        tokens: dict[int, dict[str, str]] = {}
        if spec is not None and spec.upstream:
            tokens = self.upstream_tokens(spec, range(self.num_shards))
        reader = CacheReader(cache.path, expect=expect, expect_stage=stage, plan=self.plan,
                             outdated=lambda index, header: outdated_reason(
                                 header, tokens.get(index, {})))
        if reader.spec.manifest_digest != self.info.manifest_digest:
            raise DataError(
                f"the {stage} cache {name!r} was made for another manifest "
                f"({reader.spec.manifest_digest[:12]}, this WORKDIR has "
                f"{self.info.manifest_digest[:12]}); rebuild it", path=str(reader.cache.path))
        if reader.outdated:
            reasons = list(reader.outdated.values())
            log.warning(
                "%d of the %d shard(s) of the %s cache %r are outdated (%d built from "
                "since-rewritten upstream shards, %d from input files changed since) and "
                "are read as they are: re-run the %s stage to redo them (e.g. `pipeline run "
                "%s --from %s --to %s`, with the options the cache was made with), then "
                "the stages built on it", len(reasons), len(reader.shard_indices), stage,
                name, reasons.count(UPSTREAM_REWRITTEN), reasons.count(INPUTS_CHANGED),
                stage, self.path, stage, stage)
        return reader
