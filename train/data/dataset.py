"""The skeleton Dataset over a WORKDIR's skeleton cache, and the split it trains on.

Each item is a dict::

    {"x": float32 (C, W, V, M), "label": int, "id": str, "index": int, **extras}

``extras`` are further per-sample arrays joined by sample id (e.g. cached RGB or LLM
features for co-learning): any object with ``get(sample_id) -> array`` and
``missing(ids) -> list[str]`` (see ``SampleSource``; ``train.mmcl.features`` has the
feature caches' sources). HDF5 files are opened lazily in each process (``CacheReader``),
so the dataset can be handed to DataLoader workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data_manifest import schemas
from data_manifest.errors import DataError, MissingCacheError
from data_manifest.sample import Sample
from data_manifest.splits import select
from data_manifest.store import CacheReader
from data_manifest.workdir import Workdir
from train.cache_binding import cache_record
from train.config import TrainConfig, model_layout, unresolved
from train.data.feeders import Feeder, build_feeder
from train.data.fit import DataFacts, check_fits, fill_auto, fill_protocol, read_facts
from train.data.transforms import sample_rng
from train.errors import ConfigError, TrainError

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


class SampleSource(Protocol):
    """Per-sample extra data, joined to skeleton samples by id."""

    def get(self, sample_id: str) -> Any: ...

    def missing(self, sample_ids: Sequence[str]) -> list[str]: ...


class SkeletonDataset(Dataset):
    def __init__(self, reader: CacheReader, samples: Sequence[Sample], feeder: Feeder, *,
                 train: bool, seed: int = 0, repeat: int = 1,
                 extras: Mapping[str, SampleSource] | None = None):
        if not samples:
            raise TrainError("the dataset has no samples")
        self.reader = reader
        self.samples = list(samples)
        self.ids = [sample.id for sample in self.samples]
        self.labels = np.array([sample.label for sample in self.samples], dtype=np.int64)
        self.feeder = feeder
        self.train = train
        self.seed = seed
        self.repeat = repeat
        self.extras = dict(extras or {})
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Augmentations are drawn from ``(seed, epoch, index)``: set before each epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples) * self.repeat

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Item ``index`` of the current epoch, or of ``epoch`` for ``(epoch, index)``."""
        epoch = self.epoch
        if isinstance(index, tuple):
            epoch, index = index
        position = index % len(self.samples)
        sample_id = self.ids[position]
        joints = self.reader.get(sample_id, ["joints"])["joints"]
        rng = sample_rng(self.seed, epoch, index) if self.train else None
        try:
            x = self.feeder(joints, self.train, rng)
        except ValueError as error:
            raise DataError(str(error), sample_id=sample_id) from error
        item = {"x": torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                "label": int(self.labels[position]), "id": sample_id, "index": position}
        for name, source in self.extras.items():
            value = source.get(sample_id)
            item[name] = torch.from_numpy(np.ascontiguousarray(value)) \
                if isinstance(value, np.ndarray) else value
        return item


# --------------------------------------------------------------------------- splits


@dataclass
class SplitSamples:
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    skipped: dict[str, str] = field(default_factory=dict)   # id -> why it is not used

    def part(self, name: str) -> list[Sample]:
        if name not in PARTS:
            raise ValueError(f"split part must be one of {', '.join(PARTS)}, not {name!r}")
        return getattr(self, name)


def holdout(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample],
                                                                            list[Sample]]:
    """Split off ``fraction`` of each class (deterministic in ``seed``): (kept, held out)."""
    if fraction <= 0:
        return list(samples), []
    by_label: dict[int, list[Sample]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample)
    held: set[str] = set()
    for label, members in sorted(by_label.items()):
        members = sorted(members, key=lambda s: s.id)
        order = np.random.default_rng([seed, label, 7]).permutation(len(members))
        count = int(round(fraction * len(members)))
        held.update(members[i].id for i in order[:count])
    if not held:
        raise ConfigError(f"data.val_fraction {fraction} holds out no sample; raise it")
    return ([s for s in samples if s.id not in held], [s for s in samples if s.id in held])


def open_skeletons(workdir: Workdir, config: TrainConfig) -> CacheReader:
    """The WORKDIR's skeleton cache, with a clear error when the stage has not run."""
    try:
        return workdir.reader(schemas.SKELETONS, config.data.skeleton_cache)
    except MissingCacheError as error:
        raise TrainError(f"{workdir.path} has no skeleton cache {config.data.skeleton_cache!r} "
                         f"({error}); build it with the pipeline's skeleton stage first "
                         "(see `pipeline --help`)") from error


def split_samples(workdir: Workdir, reader: CacheReader, config: TrainConfig) -> SplitSamples:
    """Train / val / test samples of the config's protocol that the cache holds.

    Samples the skeleton stage recorded as failed are skipped (and listed); samples the
    cache does not know at all mean the stage did not finish, which is an error.
    """
    samples = workdir.samples
    failed = {f["id"]: f.get("reason", "failed") for f in reader.failures}
    missing = [s.id for s in samples if s.id not in reader and s.id not in failed]
    if missing:
        raise TrainError(f"the skeleton cache of {workdir.path} is incomplete: {len(missing)} "
                         f"samples are neither stored nor recorded as failed (e.g. "
                         f"{', '.join(missing[:5])}); finish the skeleton stage first")
    try:
        train = select(samples, config.data.protocol, "train")
        test = select(samples, config.data.protocol, "test")
    except ValueError as error:
        raise ConfigError(f"data.protocol: {error}") from error
    skipped = {s.id: failed[s.id] for s in train + test if s.id in failed}
    train = [s for s in train if s.id not in failed]
    test = [s for s in test if s.id not in failed]
    if skipped:
        log.warning("%d samples skipped: the skeleton stage failed on them (e.g. %s)",
                    len(skipped), ", ".join(list(skipped)[:3]))
    for name, part in (("train", train), ("test", test)):
        if not part:
            raise TrainError(f"the {name} part of protocol {config.data.protocol!r} has no "
                             f"usable samples in {workdir.path} ({len(samples)} samples in "
                             "the manifest)")
    train, val = holdout(train, config.data.val_fraction, config.run.seed)
    return SplitSamples(train=train, val=val, test=test, skipped=skipped)


@dataclass
class DataBundle:
    """Datasets of one run, sharing one skeleton reader."""

    workdir: Workdir
    reader: CacheReader
    split: SplitSamples
    feeder: Feeder
    config: TrainConfig              # with its auto values filled in from the data
    facts: DataFacts
    extras: dict[str, SampleSource] = field(default_factory=dict)

    @property
    def class_names(self) -> list[str]:
        """The WORKDIR's class names for the model's classes ([] if it has none)."""
        names = self.facts.class_names or ()
        return list(names[:self.config.model.num_classes]) if names else []

    def skeleton_record(self) -> dict[str, Any]:
        """The identity of the skeleton cache read here (see :mod:`train.cache_binding`)."""
        return cache_record(self.workdir, schemas.SKELETONS, self.config.data.skeleton_cache,
                            self.reader)

    def dataset(self, part: str, train: bool | None = None) -> SkeletonDataset:
        """The dataset of one part; training augmentation (and repeat) on ``train`` only."""
        samples = self.split.part(part)
        if not samples:
            raise TrainError(f"the {part} part has no samples"
                             + (" (set data.val_fraction to hold some out)"
                                if part == "val" else ""))
        augment = (part == "train") if train is None else train
        return SkeletonDataset(self.reader, samples, self.feeder, train=augment,
                               seed=self.config.run.seed,
                               repeat=self.config.data.repeat if augment else 1,
                               extras=self.extras if part == "train" else {})


def load_data(config: TrainConfig, extras: Mapping[str, SampleSource] | None = None,
              skip_missing: bool = False) -> DataBundle:
    """Open the WORKDIR of ``config.data.workdir``, fill in the config's ``auto`` values
    from it and check that the two fit (every mismatch in one error).

    Training samples missing from an ``extras`` source are an error listing them, or are
    dropped (and counted in ``split.skipped``) with ``skip_missing``. Only the train part
    carries extras: evaluation runs the backbone alone.
    """
    if not config.data.workdir:
        raise ConfigError("data.workdir is not set: give the WORKDIR with a skeleton cache")
    workdir = Workdir(config.data.workdir)
    config = fill_protocol(config, workdir)
    reader = open_skeletons(workdir, config)
    try:
        split = split_samples(workdir, reader, config)
        used, protocol_problems = split.train + split.val + split.test, []
    except ConfigError as error:     # a protocol for other data: listed with the rest
        split, protocol_problems = None, [str(error)]
        used = [sample for sample in workdir.samples if sample.id in reader]
    facts = read_facts(workdir, reader, used)
    if unresolved(config):
        config = fill_auto(config, facts, reader, split.train if split else used)
    check_fits(config, facts, protocol_problems)
    extras = dict(extras or {})
    for name, source in extras.items():
        for part in ("train",):    # only training steps read extras; evaluation never does
            members = split.part(part)
            absent = set(source.missing([s.id for s in members]))
            if not absent:
                continue
            if not skip_missing:
                listed = ", ".join(sorted(absent)[:10])
                raise TrainError(f"{len(absent)} {part} samples have no {name!r} entry "
                                 f"(e.g. {listed}); build that cache for them or skip them")
            for sample_id in absent:
                split.skipped[sample_id] = f"no {name} entry"
            setattr(split, part, [s for s in members if s.id not in absent])
    feeder = build_feeder(config.data, model_layout(config))
    return DataBundle(workdir=workdir, reader=reader, split=split, feeder=feeder,
                      config=config, facts=facts, extras=extras)


def fit_to_data(config: TrainConfig) -> TrainConfig:
    """``config`` with its ``auto`` values taken from its WORKDIR (unchanged if none)."""
    if not unresolved(config):
        return config
    data = load_data(config)
    data.reader.close()
    return data.config
