"""How a WORKDIR's skeleton files are read: layout, joint mapping, channels and persons.

A :class:`SkeletonReading` is everything that decides the skeletons cache content besides
the files themselves. It becomes the cache's params (:meth:`SkeletonReading.params`), and it
can be rebuilt from them (:meth:`SkeletonReading.from_params`), so a run that records its
cache's params reads a new file exactly as the cache read its files, without the WORKDIR.

Channels say what the last axis of ``joints`` holds:

- ``xyz``: 3-D positions (NTU and NW-UCLA, Kinect, metric 3-D poses);
- ``xy``: 2-D positions (e.g. image coordinates);
- ``xy-score``: 2-D positions and a detector's confidence per joint (pyskl's 2-D data).

``absent_actor`` says what fills the empty person slots of a single-actor sample:
``zeros``, as CTR-GCN's NTU60 preprocessing leaves them, or ``copy`` of the actor, as its
NTU120 preprocessing does (``align_frames`` in ``data/ntu120/seq_transformation.py``; MMCL's
NTU120 models are trained on that). Datasets default to their reference's rule
(:func:`default_absent_actor`). ``copy`` goes into the params; ``zeros``, what every cache
made before the rule existed holds, stays out of them, so those caches keep their
fingerprints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.ntu_denoise import DEFAULT_SETTINGS, DenoiseSettings
from data_manifest.layouts import (LAYOUTS, JointMapping, Layout, layout_spec, load_joint_map,
                                   load_layout)

CHANNELS = {"xyz": 3, "xy": 2, "xy-score": 3}
SPATIAL_DIMS = {"xyz": 3, "xy": 2, "xy-score": 2}
BUILTIN_FORMAT_VERSION = 1    # ntu60, ntu120, nw-ucla: unchanged since the first caches
OWN_FORMAT_VERSION = 2        # csv: layout, joint mapping, channels, persons from the data
ORIGIN_JOINT = 2              # 1-based: NTU's spine middle, the joint CTR-GCN centres
                              # NW-UCLA on (both datasets' caches are translated by it)
ABSENT_ACTOR_CHOICES = ("zeros", "copy")


def default_absent_actor(dataset: str) -> str:
    """``copy`` for NTU120 (CTR-GCN's NTU120 script), ``zeros`` for everything else."""
    return "copy" if dataset == "ntu120" else "zeros"


def channels_of(count: int) -> str:
    """The default meaning of ``count`` values per joint: 2 -> xy, 3 -> xyz."""
    if count not in (2, 3):
        raise ValueError(f"{count} values per joint; expected 2 (x, y) or 3 (x, y, z or "
                         "x, y, score)")
    return "xy" if count == 2 else "xyz"


@dataclass(frozen=True)
class SkeletonReading:
    dataset: str
    layout: Layout | None = None           # the cache's layout; None: not checked
    joint_map: JointMapping | None = None  # files stored in another layout, remapped
    channels: str | None = None            # None: from each file (2 -> xy, 3 -> xyz)
    max_persons: int | None = None         # None: each file's own persons (no padding)
    absent_actor: str = "zeros"            # a lone actor's empty slots: zeros or copy

    def __post_init__(self) -> None:
        if self.absent_actor not in ABSENT_ACTOR_CHOICES:
            raise ValueError(f"absent_actor must be one of {', '.join(ABSENT_ACTOR_CHOICES)},"
                             f" not {self.absent_actor!r}")
        if self.absent_actor == "copy" and self.max_persons == 1:
            raise ValueError(f"{self.dataset} samples hold one person: absent_actor 'copy' "
                             "does not apply")
        if self.channels is not None and self.channels not in CHANNELS:
            raise ValueError(f"channels must be one of {', '.join(CHANNELS)}, "
                             f"not {self.channels!r}")
        if self.max_persons is not None and self.max_persons < 1:
            raise ValueError(f"max_persons must be at least 1, not {self.max_persons}")
        if self.joint_map is not None and self.joint_map.target != self.layout:
            raise ValueError("the joint mapping does not write the reading's layout")

    @classmethod
    def for_dataset(cls, dataset: str) -> "SkeletonReading":
        """The reading of a built-in dataset (or plain csv data: nothing fixed)."""
        info = dataset_info(dataset)
        if info.layout is None:
            return cls(dataset)
        return cls(dataset, LAYOUTS[info.layout], channels="xyz",
                   max_persons=info.max_persons, absent_actor=default_absent_actor(dataset))

    @property
    def builtin(self) -> bool:
        return dataset_info(self.dataset).layout is not None

    @property
    def stored_layout(self) -> Layout | None:
        """The layout the files hold (the mapping's source when they are remapped)."""
        return self.joint_map.source if self.joint_map is not None else self.layout

    def denoise(self, settings: DenoiseSettings = DEFAULT_SETTINGS) -> DenoiseSettings:
        """NTU .skeleton denoising settings: at most 2 actors, fewer if persons are capped."""
        actors = min(self.max_persons or 2, 2)
        return settings if settings.max_actors == actors else \
            dataclasses.replace(settings, max_actors=actors)

    def params(self, denoise: DenoiseSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
        """Everything that determines the skeletons cache content (its CacheSpec params)."""
        if self.builtin:
            params = {"format_version": BUILTIN_FORMAT_VERSION, "dataset": self.dataset,
                      "max_persons": self.max_persons, "num_joints": self.layout.num_joints,
                      "origin_joint": ORIGIN_JOINT}
            if self.dataset != "nw-ucla":
                params["denoise"] = self.denoise(denoise).params()
            return self._with_absent_actor(params)
        if self.layout is None or self.channels is None or self.max_persons is None:
            raise ValueError("a cache of own data needs its layout, channels and persons")
        return self._with_absent_actor({
            "format_version": OWN_FORMAT_VERSION, "dataset": self.dataset,
            "layout": layout_spec(self.layout), "layout_digest": self.layout.digest,
            "joint_map": self.joint_map.to_dict() if self.joint_map else None,
            "num_joints": self.layout.num_joints, "channels": self.channels,
            "max_persons": self.max_persons, "denoise": self.denoise(denoise).params()})

    def _with_absent_actor(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, "absent_actor": "copy"} if self.absent_actor == "copy" else params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "SkeletonReading":
        """The reading a skeletons cache was made with, from its params."""
        dataset = params.get("dataset")
        absent_actor = params.get("absent_actor", "zeros")
        try:
            if dataset is not None and dataset_info(dataset).layout is not None:
                return dataclasses.replace(cls.for_dataset(dataset), absent_actor=absent_actor)
            joint_map = params.get("joint_map")
            return cls(dataset, load_layout(params["layout"]),
                       load_joint_map(joint_map) if joint_map else None,
                       params["channels"], params["max_persons"], absent_actor)
        except (KeyError, ValueError, TypeError) as error:
            raise DataError(f"skeleton cache params that this version cannot read "
                            f"({type(error).__name__}: {error}); rebuild the skeletons cache"
                            ) from None
