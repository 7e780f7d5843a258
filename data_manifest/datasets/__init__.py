"""Dataset descriptions: naming conventions, label and metadata parsing."""

from __future__ import annotations

from dataclasses import dataclass

from data_manifest.classes import class_names
from data_manifest.layouts import LAYOUTS, Layout


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    layout: str | None        # None: the user's data says (csv)
    num_classes: int | None
    max_persons: int | None   # None: from the user's data
    protocols: tuple[str, ...]

    @property
    def skeleton_layout(self) -> Layout | None:
        return LAYOUTS.get(self.layout) if self.layout else None

    @property
    def classes(self) -> tuple[str, ...] | None:
        return class_names(self.name)


DATASETS: dict[str, DatasetInfo] = {
    "ntu60": DatasetInfo("ntu60", "ntu", 60, 2, ("ntu60-xsub", "ntu60-xview")),
    "ntu120": DatasetInfo("ntu120", "ntu", 120, 2, ("ntu120-xsub", "ntu120-xset")),
    "nw-ucla": DatasetInfo("nw-ucla", "nw-ucla", 10, 1, ("nw-ucla-xview",)),
    "csv": DatasetInfo("csv", None, None, None, ("csv",)),
    # pyskl annotation files: protocols pyskl-<split>, one per pair of the file's split
    # lists (data_manifest.splits)
    "pyskl": DatasetInfo("pyskl", None, None, None, ()),
}


def dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None
