"""The target of a cross-dataset evaluation: which samples of another WORKDIR are scored,
and their labels in the run's classes (through a class map)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

from data_manifest.datasets import dataset_info
from data_manifest.sample import Sample
from data_manifest.splits import select
from data_manifest.store import CacheReader
from data_manifest.workdir import Workdir
from train.errors import ConfigError, TrainError

TARGET_PARTS = ("all", "train", "test")


@dataclass
class TargetSamples:
    samples: list[Sample]           # the mapped samples, labels in the run's classes
    target_labels: dict[str, int]   # sample id -> its label in the target's classes
    left_out: dict[int, int]        # target class without a mapping -> its samples
    skipped: dict[str, str] = field(default_factory=dict)   # failed skeletons: id -> why
    protocol: str | None = None     # the target protocol of a train/test part
    empty_classes: list[int] = field(default_factory=list)  # mapped, but without samples


def default_protocol(workdir: Workdir) -> str:
    """The target dataset's own split protocol (the first one it has; csv: its split
    column)."""
    return dataset_info(workdir.dataset).protocols[0]


def target_samples(workdir: Workdir, reader: CacheReader, class_map: dict[int, int], *,
                   part: str = "all", protocol: str | None = None) -> TargetSamples:
    """The samples of ``part`` (``all``, or ``train``/``test`` of ``protocol``, default the
    target's own) that the skeleton cache holds, labelled through ``class_map``; samples of
    unmapped classes are left out and counted. No mapped sample at all is an error."""
    if part not in TARGET_PARTS:
        raise ConfigError(f"the target part must be one of {', '.join(TARGET_PARTS)}, not "
                          f"{part!r}")
    samples = workdir.samples
    failed = {f["id"]: f.get("reason", "failed") for f in reader.failures}
    missing = [s.id for s in samples if s.id not in reader and s.id not in failed]
    if missing:
        raise TrainError(f"the skeleton cache of {workdir.path} is incomplete: {len(missing)} "
                         f"samples are neither stored nor recorded as failed (e.g. "
                         f"{', '.join(missing[:5])}); finish the skeleton stage first")
    if part != "all":
        protocol = protocol or default_protocol(workdir)
        try:
            samples = select(samples, protocol, part)
        except ValueError as error:
            raise ConfigError(f"target protocol: {error}") from error
    else:
        protocol = None
    skipped = {s.id: failed[s.id] for s in samples if s.id in failed}
    usable = [s for s in samples if s.id not in failed]
    where = f"the {part} part of {workdir.path}" if part != "all" else str(workdir.path)
    if not usable:
        raise TrainError(f"{where} has no usable samples ({len(skipped)} failed in the "
                         "skeleton stage)")
    mapped = [dataclasses.replace(s, label=class_map[s.label]) for s in usable
              if s.label in class_map]
    present = Counter(s.label for s in usable)
    if not mapped:
        held = ", ".join(str(label) for label in sorted(present))
        raise TrainError(f"none of the {len(usable)} samples of {where} belongs to a class of "
                         f"the class map (it maps target classes "
                         f"{', '.join(map(str, class_map))}; the samples have classes {held})")
    return TargetSamples(
        samples=mapped, target_labels={s.id: s.label for s in usable if s.label in class_map},
        left_out={label: count for label, count in sorted(present.items())
                  if label not in class_map},
        skipped=skipped, protocol=protocol,
        empty_classes=[label for label in class_map if label not in present])
