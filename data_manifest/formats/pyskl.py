"""pyskl's annotation files (kennymckormick/pyskl, ``tools/data/README.md``): reading one
checked as a whole, and writing one.

A pyskl file is a pickle of ``{'split': {list name: [frame_dir, ...]}, 'annotations':
[annotation, ...]}``; an annotation is a dict with

- ``frame_dir`` (str): the sample's id;
- ``label`` (int): its class, counted from 0;
- ``keypoint`` (float array ``M x T x V x C``): persons, frames, joints, and C = 3 (x, y, z:
  pyskl's NTU 3-D files, 25 Kinect joints, float16) or 2 (x, y: its 2-D HRNet files, 17
  COCO keypoints, in pixels);
- ``total_frames`` (int): T;
- ``keypoint_score`` (``M x T x V``, 2-D data): each keypoint's confidence;
- ``img_shape``, ``original_shape`` ((height, width), 2-D data): the video frame's size,
  which pyskl's 2-D normalisation divides by.

Other keys are ignored (pyskl's Kinetics-400 file, whose keypoints live in separate
``raw_file`` files, is refused for its missing ``keypoint``). The pickle is loaded with
:func:`~data_manifest.formats.safe_pickle.load_data_pickle`: data types only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.safe_pickle import StreamedList, dump_portable, load_data_pickle
from data_manifest.store import publish, temporary_path

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("frame_dir", "label", "keypoint", "total_frames")
SHAPE_KEYS = ("img_shape", "original_shape")
SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class PysklAnnotation:
    id: str
    label: int
    keypoint: np.ndarray                    # (M, T, V, C) as stored
    keypoint_score: np.ndarray | None       # (M, T, V)
    shapes: dict[str, tuple[int, int]]      # img_shape / original_shape: (height, width)

    def joints(self) -> np.ndarray:
        """(T, M, V, C) as the skeleton files of own data hold them (scores not added)."""
        return np.ascontiguousarray(self.keypoint.transpose(1, 0, 2, 3))

    def scores(self) -> np.ndarray | None:
        """(T, M, V), or None."""
        if self.keypoint_score is None:
            return None
        return np.ascontiguousarray(self.keypoint_score.transpose(1, 0, 2))


@dataclass
class PysklFile:
    path: str
    annotations: list[PysklAnnotation]
    split: dict[str, list[str]]             # list name -> frame_dirs, as in the file

    @property
    def num_joints(self) -> int:
        return int(self.annotations[0].keypoint.shape[2])

    @property
    def channels(self) -> str:
        """xyz (C = 3), xy-score (C = 2 with keypoint_score) or xy."""
        first = self.annotations[0]
        if first.keypoint.shape[3] == 3:
            return "xyz"
        return "xy-score" if first.keypoint_score is not None else "xy"


def read_pyskl(path: str | os.PathLike, *, num_classes: int | None = None,
               progress: bool = False) -> PysklFile:
    """Load and check a pyskl file; every problem found is listed in one DataError naming
    the file and each annotation (its position and frame_dir). ``num_classes``: labels
    must be below it."""
    path = os.fspath(path)
    content = load_data_pickle(path, "pyskl annotation file", progress)
    if not isinstance(content, Mapping):
        raise DataError(f"holds a {type(content).__name__}; a pyskl file holds a dict with "
                        "'split' and 'annotations'", path=path)
    missing = [key for key in ("split", "annotations") if key not in content]
    if missing:
        raise DataError(f"missing key(s) {', '.join(map(repr, missing))}; a pyskl file "
                        "holds a dict with 'split' and 'annotations'", path=path)
    problems: list[str] = []
    split = _split_lists(content["split"], problems)
    raw = content["annotations"]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise DataError("'annotations' must be a non-empty list of dicts", path=path)
    annotations, seen = [], set()
    for index, item in enumerate(raw):
        annotation = _annotation(item, index, num_classes, problems)
        if annotation is None:
            continue
        if annotation.id in seen:
            problems.append(f"annotation {index} ({annotation.id}): frame_dir repeats an "
                            "earlier annotation's")
            continue
        seen.add(annotation.id)
        annotations.append(annotation)
    if annotations:
        _check_consistent(annotations, problems)
    if problems:
        shown = problems[:SHOWN_PROBLEMS]
        more = len(problems) - len(shown)
        raise DataError(f"not a usable pyskl file ({len(problems)} problem"
                        f"{'s' if len(problems) > 1 else ''}):\n  - " + "\n  - ".join(shown)
                        + (f"\n  ... and {more} more" if more else ""), path=path)
    unknown = sum(1 for ids in split.values() for i in ids if i not in seen)
    if unknown:
        log.warning("%s: %d frame_dir(s) of the split lists have no annotation; ignored",
                    path, unknown)
    return PysklFile(path, annotations, split)


def _split_lists(value: Any, problems: list[str]) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        problems.append(f"'split' is a {type(value).__name__}; expected a dict of list name "
                        "-> frame_dirs")
        return {}
    lists = {}
    for name, ids in value.items():
        if not isinstance(name, str) or not isinstance(ids, (list, tuple)) \
                or not all(isinstance(i, str) for i in ids):
            problems.append(f"split list {name!r}: expected a name and a list of frame_dir "
                            "strings")
            continue
        lists[name] = list(ids)
    return lists


def _annotation(item: Any, index: int, num_classes: int | None, problems: list[str]
                ) -> PysklAnnotation | None:
    where = f"annotation {index}"
    if not isinstance(item, Mapping):
        problems.append(f"{where}: a {type(item).__name__}, not a dict")
        return None
    sample_id = item.get("frame_dir")
    if isinstance(sample_id, str) and sample_id:
        where += f" ({sample_id})"
    found = len(problems)
    missing = [key for key in REQUIRED_KEYS if key not in item]
    if missing:
        hint = " (pyskl's Kinetics-400 files keep keypoints in separate raw_file files, " \
               "which are not read)" if "keypoint" in missing and "raw_file" in item else ""
        problems.append(f"{where}: missing key(s) {', '.join(map(repr, missing))}{hint}")
        return None
    if not isinstance(sample_id, str) or not sample_id:
        problems.append(f"{where}: frame_dir {sample_id!r} is not a non-empty string")
    label = _integer(item["label"])
    if label is None or label < 0:
        problems.append(f"{where}: label {item['label']!r} is not an integer >= 0 (pyskl "
                        "labels count from 0)")
    elif num_classes is not None and label >= num_classes:
        problems.append(f"{where}: label {label} is out of range: {num_classes} class names "
                        f"give labels 0..{num_classes - 1}")
    keypoint = _numbers(item["keypoint"], f"{where}: keypoint", problems)
    if keypoint is not None and (keypoint.ndim != 4 or keypoint.shape[3] not in (2, 3)
                                 or 0 in keypoint.shape):
        problems.append(f"{where}: keypoint of shape {keypoint.shape}; expected M x T x V x C "
                        "with C = 2 (x, y) or 3 (x, y, z)")
        keypoint = None
    total = _integer(item["total_frames"])
    if keypoint is not None and total != keypoint.shape[1]:
        problems.append(f"{where}: total_frames {item['total_frames']!r} but keypoint holds "
                        f"{keypoint.shape[1]} frames")
    score = None
    if item.get("keypoint_score") is not None:
        score = _numbers(item["keypoint_score"], f"{where}: keypoint_score", problems)
        if score is not None and keypoint is not None and score.shape != keypoint.shape[:3]:
            problems.append(f"{where}: keypoint_score of shape {score.shape} does not fit "
                            f"keypoint of shape {keypoint.shape} (expected {keypoint.shape[:3]})")
        if score is not None and keypoint is not None and keypoint.shape[3] == 3:
            log.warning("%s: keypoint_score with 3-D keypoints is not kept (channels are x, "
                        "y, z)", where)
            score = None
    shapes = {}
    for key in SHAPE_KEYS:
        if item.get(key) is None:
            continue
        shape = item[key]
        values = [_integer(v) for v in shape] if isinstance(shape, (tuple, list)) else []
        if len(values) != 2 or None in values:
            problems.append(f"{where}: {key} {shape!r} is not (height, width)")
        else:
            shapes[key] = (values[0], values[1])
    if len(problems) > found:
        return None
    return PysklAnnotation(sample_id, label, keypoint, score, shapes)


def _integer(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        return int(value)
    return None


def _numbers(value: Any, what: str, problems: list[str]) -> np.ndarray | None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
        problems.append(f"{what} is {kind}, not an array of numbers")
        return None
    if not np.isfinite(value).all():
        problems.append(f"{what} holds NaN or infinite values")
        return None
    return value


def _check_consistent(annotations: list[PysklAnnotation], problems: list[str]) -> None:
    """One joint count, one value count per joint and scores in all or none."""
    def kinds(describe):
        found: dict[Any, list[str]] = {}
        for annotation in annotations:
            found.setdefault(describe(annotation), []).append(annotation.id)
        return found

    for what, describe in (
            ("joints per person (V)", lambda a: a.keypoint.shape[2]),
            ("values per joint (C)", lambda a: a.keypoint.shape[3]),
            ("keypoint_score", lambda a: "with" if a.keypoint_score is not None
             else "without")):
        found = kinds(describe)
        if len(found) > 1:
            problems.append(f"the annotations differ in {what}: " + "; ".join(
                f"{value}: {len(ids)} (e.g. {ids[0]})" for value, ids in found.items()))


def annotation(sample_id: str, label: int, joints: np.ndarray, channels: str,
               shapes: Mapping[str, tuple[int, int]] | None = None) -> dict[str, Any]:
    """A pyskl annotation of (T, M, V, C) joints (a score channel becomes keypoint_score)."""
    keypoint = np.ascontiguousarray(joints.transpose(1, 0, 2, 3), dtype=np.float32)
    item: dict[str, Any] = {"frame_dir": sample_id, "label": int(label),
                            "total_frames": int(keypoint.shape[1])}
    if channels == "xy-score":
        item["keypoint"] = np.ascontiguousarray(keypoint[..., :2])
        item["keypoint_score"] = np.ascontiguousarray(keypoint[..., 2])
    else:
        item["keypoint"] = keypoint
    for key, (height, width) in (shapes or {}).items():
        item[key] = (int(height), int(width))
    return item


def write_pyskl(path: str | os.PathLike, split: Mapping[str, list[str]],
                annotations: Iterable[dict[str, Any]]) -> None:
    """Write a pyskl file atomically (a complete file or none); ``annotations`` are
    written as they come, so they can be made one at a time."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as handle:
            dump_portable({"split": {name: list(ids) for name, ids in split.items()},
                           "annotations": StreamedList(annotations)}, handle)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
