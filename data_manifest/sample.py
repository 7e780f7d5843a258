"""The sample record: one skeleton sequence (and optionally its video) with its label."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sample:
    """One labelled action sample.

    ``id`` is stable across runs (the dataset's own name, e.g. ``S001C001P001R001A001`` or
    ``a01_s01_e00_v01``) and is the key of every cache. ``meta`` holds the dataset
    metadata the split protocols use: NTU ``setup, camera, performer, replication, action``;
    NW-UCLA ``action, subject, episode, view``. ``split`` is only set for user CSV data that
    carries its own split column.
    """

    id: str
    dataset: str
    label: int
    skeleton: str | None = None
    video: str | None = None
    meta: dict[str, int] = field(default_factory=dict)
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Sample":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown sample fields {sorted(unknown)}")
        return cls(**data)
