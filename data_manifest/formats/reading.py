"""How a WORKDIR's skeleton files are read: layout, joint mapping, channels and persons.

A :class:`SkeletonReading` is everything that decides the skeletons cache content besides
the files themselves. It becomes the cache's params (:meth:`SkeletonReading.params`), and it
can be rebuilt from them (:meth:`SkeletonReading.from_params`), so a run that records its
cache's params reads a new file exactly as the cache read its files, without the WORKDIR.

Channels say what the last axis of ``joints`` holds:

- ``xyz``: 3-D positions (NTU and NW-UCLA, Kinect, metric 3-D poses);
- ``xy``: 2-D positions (e.g. image coordinates);
- ``xy-score``: 2-D positions and a detector's confidence per joint (pyskl's 2-D data).
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

    def __post_init__(self) -> None:
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
                   max_persons=info.max_persons)

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
            return params
        if self.layout is None or self.channels is None or self.max_persons is None:
            raise ValueError("a cache of own data needs its layout, channels and persons")
        return {"format_version": OWN_FORMAT_VERSION, "dataset": self.dataset,
                "layout": layout_spec(self.layout), "layout_digest": self.layout.digest,
                "joint_map": self.joint_map.to_dict() if self.joint_map else None,
                "num_joints": self.layout.num_joints, "channels": self.channels,
                "max_persons": self.max_persons, "denoise": self.denoise(denoise).params()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "SkeletonReading":
        """The reading a skeletons cache was made with, from its params."""
        dataset = params.get("dataset")
        try:
            if dataset is not None and dataset_info(dataset).layout is not None:
                return cls.for_dataset(dataset)
            joint_map = params.get("joint_map")
            return cls(dataset, load_layout(params["layout"]),
                       load_joint_map(joint_map) if joint_map else None,
                       params["channels"], params["max_persons"])
        except (KeyError, ValueError, TypeError) as error:
            raise DataError(f"skeleton cache params that this version cannot read "
                            f"({type(error).__name__}: {error}); rebuild the skeletons cache"
                            ) from None
