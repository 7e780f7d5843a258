"""A config and its data: filling in ``auto`` values, and checking that the two agree.

``fill_protocol`` and ``fill_auto`` take what the ``custom`` preset leaves ``auto`` from the
WORKDIR and its skeleton cache: the split protocol (the WORKDIR's default), the layout, the
class count (its class names, else the largest label + 1), the persons per sample, the
channels and their count, and the window (the median length of the training samples,
read from the shards' offsets). Only a new run is fitted: ``config.yaml`` records the
values found, and a resumed run reads them back instead of fitting again.
``check_fits`` lists every way the data and the config disagree in one error, instead of
one per attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from data_manifest.formats.reading import CHANNELS, channels_of
from data_manifest.layouts import Layout, layout_spec
from data_manifest.sample import Sample
from data_manifest.store import CacheReader
from data_manifest.workdir import Workdir
from train.config import AUTO, TrainConfig, model_layout, unresolved
from train.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataFacts:
    """What a WORKDIR's skeleton cache holds."""

    workdir: str
    layout: Layout | None          # the WORKDIR's (None: an old WORKDIR that does not say)
    num_joints: int
    num_persons: int
    channels: str                  # xyz, xy or xy-score
    class_names: tuple[str, ...] | None
    top_label: int                 # the largest label of the samples used

    def describe(self) -> dict:
        return {"layout": self.layout.name if self.layout else None,
                "joints": self.num_joints, "persons": self.num_persons,
                "channels": self.channels, "class_names": list(self.class_names or [])}


def read_facts(workdir: Workdir, reader: CacheReader, samples: Sequence[Sample]) -> DataFacts:
    shape = reader.get(samples[0].id, ["joints"])["joints"].shape      # (T, M, V, C)
    channels = reader.spec.params.get("channels") or channels_of(int(shape[3]))
    names = workdir.class_names
    return DataFacts(workdir=str(workdir.path), layout=workdir.layout,
                     num_joints=int(shape[2]), num_persons=int(shape[1]), channels=channels,
                     class_names=tuple(names) if names else None,
                     top_label=max(sample.label for sample in samples))


def fill_protocol(config: TrainConfig, workdir: Workdir) -> TrainConfig:
    """``config`` with ``data.protocol: auto`` set to the WORKDIR's default protocol."""
    if config.data.protocol != AUTO:
        return config
    protocol = workdir.default_protocol
    log.info("data.protocol = %s (the WORKDIR's)", protocol)
    values = config.to_dict()
    values["data"]["protocol"] = protocol
    return TrainConfig.from_dict(values)


def fill_auto(config: TrainConfig, facts: DataFacts, reader: CacheReader,
              train: Sequence[Sample]) -> TrainConfig:
    """``config`` with its ``auto`` values taken from the data (each one logged)."""
    values = config.to_dict()
    data, model = values["data"], values["model"]
    found: dict[str, tuple[object, str]] = {}
    if model["layout"] == AUTO and facts.layout is not None:
        found["model.layout"] = (layout_spec(facts.layout), f"the WORKDIR's "
                                                            f"{facts.layout.name}")
    if data["channels"] == AUTO:
        found["data.channels"] = (facts.channels, "the skeleton cache's")
    if model["in_channels"] == AUTO:
        found["model.in_channels"] = (CHANNELS[facts.channels],
                                      f"values per joint of {facts.channels}")
    if model["num_persons"] == AUTO:
        found["model.num_persons"] = (facts.num_persons, "the skeleton cache's")
    if model["num_classes"] == AUTO:
        found["model.num_classes"] = (
            (len(facts.class_names), "the WORKDIR's class names") if facts.class_names
            else (facts.top_label + 1, "the largest label + 1"))
    if data["window"] == AUTO:
        # from the shards' offsets: one read per shard, not one per sample
        lengths = reader.lengths("frame_index", [s.id for s in train])
        window = max(int(round(float(np.median(lengths)))), 1)
        found["data.window"] = (window, f"median length of {len(lengths)} training samples")
    for key, (value, why) in found.items():
        section, name = key.split(".")
        values[section][name] = value
        shown = value if not isinstance(value, dict) else value.get("name")
        log.info("%s = %s (%s)", key, shown, why)
    fitted = TrainConfig.from_dict(values)
    left = unresolved(fitted)
    if left:
        raise ConfigError(f"{', '.join(left)}: auto, but {facts.workdir} does not say (its "
                          "WORKDIR has no layout); set them")
    return fitted


def check_fits(config: TrainConfig, facts: DataFacts, problems: Sequence[str] = ()) -> None:
    """Every way the data and the config disagree, in one :class:`ConfigError` (after the
    ``problems`` already found)."""
    problems = list(problems)
    d, m = config.data, config.model
    where = facts.workdir
    try:
        layout = model_layout(config)
    except ConfigError as error:
        problems.append(str(error))
        layout = None
    if layout is not None:
        if facts.layout is not None and facts.layout != layout:
            problems.append(f"model.layout is {layout.name!r} but {where} holds "
                            f"{facts.layout.name!r} skeletons")
        if facts.num_joints != layout.num_joints:
            problems.append(f"the skeletons in {where} have {facts.num_joints} joints, the "
                            f"{layout.name!r} layout of the config has {layout.num_joints}")
        if d.random_flip and not layout.flip_pairs:
            problems.append(f"data.random_flip needs left/right joint pairs: the "
                            f"{layout.name} layout has no flip_pairs")
    if facts.num_persons != m.num_persons:
        persons = f"{facts.num_persons} person{'s' if facts.num_persons != 1 else ''}"
        problems.append(f"the skeletons in {where} hold {persons}, model.num_persons is "
                        f"{m.num_persons}")
    if d.channels != facts.channels:
        problems.append(f"data.channels is {d.channels} but the skeletons hold "
                        f"{facts.channels}")
    if m.in_channels != CHANNELS[facts.channels]:
        problems.append(f"model.in_channels is {m.in_channels}, the skeletons hold "
                        f"{CHANNELS[facts.channels]} values per joint ({facts.channels})")
    if d.feeder != "custom" and facts.channels != "xyz":
        problems.append(f"data.feeder {d.feeder} works on 3-D points (xyz); {facts.channels} "
                        "data needs data.feeder=custom (the custom preset)")
    if facts.top_label >= m.num_classes:
        problems.append(f"labels go up to {facts.top_label} but model.num_classes is "
                        f"{m.num_classes}")
    if facts.class_names is not None and len(facts.class_names) < m.num_classes:
        problems.append(f"{where} names only {len(facts.class_names)} classes, "
                        f"model.num_classes is {m.num_classes}")
    if problems:
        raise ConfigError(f"the config does not fit the data ({len(problems)} problem"
                          f"{'s' if len(problems) > 1 else ''}; use the preset that matches "
                          "the data, e.g. custom for own data):\n  - " + "\n  - ".join(problems))
