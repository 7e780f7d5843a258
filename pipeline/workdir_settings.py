"""What ``pipeline manifest`` records besides the samples: the skeleton layout (and joint
mapping) of the data, its channels and persons, and the class names.

They are written into the WORKDIR (``layout.yaml``, ``joint_map.yaml``, ``classes.txt``,
``workdir.json``) so every later stage, the trainer and the run it makes need no other
file: the user's YAML files may move or change afterwards.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from data_manifest.classes import class_names as builtin_class_names
from data_manifest.classes import read_class_names
from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.reading import CHANNELS, SPATIAL_DIMS
from data_manifest.layouts import (LAYOUTS, JointMapping, Layout, load_joint_map, load_layout,
                                   resolve_joint_map)
from data_manifest.sample import Sample
from data_manifest.store import write_text_atomic
from data_manifest.workdir import CLASSES_FILE, JOINT_MAP_FILE, LAYOUT_FILE, Workdir
from pipeline.models.pose_estimator import LAYOUT as POSE_LAYOUT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkdirSettings:
    layout: Layout | None = None
    joint_map: JointMapping | None = None
    channels: str | None = None
    max_persons: int | None = None
    class_names: tuple[str, ...] | None = None     # from --classes (not built-in names)

    def differences(self, other: "WorkdirSettings") -> list[str]:
        def name(layout: Layout | None) -> str:
            return layout.name if layout else "none"

        found = []
        if self.layout != other.layout:
            found.append(f"layout {name(other.layout)} -> {name(self.layout)}"
                         if name(other.layout) != name(self.layout) else
                         f"layout {name(self.layout)}: its definition differs (joints, "
                         "parents, centre, origin, flip pairs, drawing or dims)")
        if self.joint_map != other.joint_map:
            found.append("joint mapping")
        if self.channels != other.channels:
            found.append(f"channels {other.channels} -> {self.channels}")
        if self.max_persons != other.max_persons:
            found.append(f"persons {other.max_persons} -> {self.max_persons}")
        if self.class_names != other.class_names:
            found.append("class names")
        return found

    def write(self, workdir: Path) -> None:
        """The settings' files in ``workdir`` (stale ones from earlier settings removed)."""
        files = {LAYOUT_FILE: yaml.safe_dump(self.layout.to_dict(), sort_keys=False)
                 if self.layout else None,
                 JOINT_MAP_FILE: yaml.safe_dump(self.joint_map.to_dict(), sort_keys=False)
                 if self.joint_map else None,
                 CLASSES_FILE: "".join(f"{n}\n" for n in self.class_names)
                 if self.class_names else None}
        for name, text in files.items():
            if text is None:
                (workdir / name).unlink(missing_ok=True)
            else:
                write_text_atomic(workdir / name, text)


def recorded_settings(workdir: Workdir) -> WorkdirSettings:
    names = None
    if (workdir.path / CLASSES_FILE).is_file():
        names = tuple(workdir.class_names or ())
    return WorkdirSettings(workdir.layout, workdir.joint_map, workdir.info.channels,
                           workdir.info.max_persons, names)


def resolve_settings(dataset: str, samples: Sequence[Sample], *,
                     layout: str | os.PathLike | None = None,
                     from_layout: str | os.PathLike | None = None,
                     joint_map: str | os.PathLike | None = None,
                     classes: str | os.PathLike | None = None, label_base: int = 0,
                     channels: str | None = None, max_persons: int | None = None
                     ) -> WorkdirSettings:
    """Check and load the options of ``pipeline manifest``; every problem is one error."""
    info = dataset_info(dataset)
    problems = []
    own = info.layout is None
    if not own:
        given = [flag for flag, value in (("--layout", layout), ("--from-layout", from_layout),
                                          ("--joint-map", joint_map), ("--channels", channels),
                                          ("--max-persons", max_persons)) if value is not None]
        if given:
            problems.append(f"{', '.join(given)}: only for own data (csv); {dataset} is "
                            f"always read in the {info.layout} layout")
    if channels is not None and channels not in CHANNELS:
        problems.append(f"channels must be one of {', '.join(CHANNELS)}, not {channels!r}")
    if max_persons is not None and max_persons < 1:
        problems.append(f"max persons must be at least 1, not {max_persons}")
    target, mapping = (None, None) if own else (LAYOUTS[info.layout], None)
    if own:
        try:
            target, mapping = _layouts(samples, layout, from_layout, joint_map)
        except DataError as error:
            problems.append(str(error))
    names = None
    if classes is not None:
        try:
            names = tuple(read_class_names(classes, label_base))
        except DataError as error:
            problems.append(str(error))
    labels = sorted({s.label for s in samples})
    known = names or builtin_class_names(dataset)
    if known is not None and labels and labels[-1] >= len(known):
        beyond = [str(label + label_base) for label in labels if label >= len(known)]
        problems.append(f"{len(known)} class names, but the data has label(s) "
                        f"{', '.join(beyond[:10])} (labels count from {label_base}; see "
                        "--label-base)")
    if problems:
        raise DataError("cannot build the manifest:\n  - " + "\n  - ".join(problems))
    if target is not None and channels is not None \
            and SPATIAL_DIMS[channels] not in target.dims:
        log.warning("the %s layout's data is usually %s-D; --channels %s gives %d-D points",
                    target.name, "/".join(map(str, target.dims)), channels,
                    SPATIAL_DIMS[channels])
    return WorkdirSettings(target, mapping, channels, max_persons, names)


def _layouts(samples: Sequence[Sample], layout, from_layout, joint_map
             ) -> tuple[Layout | None, JointMapping | None]:
    mapping = load_joint_map(joint_map) if joint_map is not None else None
    target = load_layout(layout) if layout is not None else \
        (mapping.target if mapping else None)
    source = load_layout(from_layout) if from_layout is not None else \
        (mapping.source if mapping else None)
    if target is None:
        skeletons = [s.skeleton for s in samples if s.skeleton]
        if skeletons and all(Path(p).suffix.lower() == ".skeleton" for p in skeletons):
            target = LAYOUTS["ntu"]      # NTU's own file format: its joints are known
        elif not skeletons and source is None:
            target = LAYOUTS[POSE_LAYOUT]     # videos only: what extract-poses estimates
        elif source is not None:
            raise DataError("--from-layout needs --layout (the layout to turn the data into)")
        return target, None
    if source is None:
        return target, None
    return target, resolve_joint_map(source, target, mapping)
