"""One skeleton file -> the per-sample fields of the skeletons cache.

Used by ``pipeline extract-skeletons`` (whole datasets) and by ``train predict`` (one file),
so both see exactly the same preprocessing. How a file is read is a
:class:`~data_manifest.formats.reading.SkeletonReading` (or a dataset name for its
default). Supported files:

- NTU ``.skeleton`` text (NTU datasets, and own data in the ``ntu`` layout or mapped from
  it): denoised, up to 2 actors, translated by joint 2 of actor 1's first frame (see
  :mod:`.ntu_denoise`);
- NW-UCLA ``.json`` of the ``nw-ucla`` dataset: one person, translated by joint 2 of the
  first frame (as CTR-GCN's NW-UCLA loader centres it);
- own data (``csv`` datasets): ``.npy``, ``.npz`` (:mod:`.arrays`), ``.json``
  (:mod:`.json_skeleton`), ``.csv`` of frames (:mod:`.frames_csv`) and MATLAB v7.3 ``.mat``
  (:mod:`.mat`), arrays ``(T, V, C)`` or ``(T, M, V, C)``. They are kept as given (no
  translation: the trainer's feeders centre them), remapped to the WORKDIR's layout when
  they are stored in another one.

Frames where every person is all zeros (padding) are removed, persons without any data are
dropped, and the persons left are padded with zero persons up to the reading's
``max_persons`` (a file with more keeps its first ``max_persons`` persons with data).
Colour-image coordinates exist only for ``.skeleton`` files; other formats give NaN.

A single-actor sample's empty person slots follow the reading's ``absent_actor``: zeros, or
a copy of the actor's joints (CTR-GCN's NTU120 rule). Single-actor means what the reference
means: for NTU files, denoising kept exactly one body (several non-overlapping bodies merged
into actor 1 leave actor 2 empty, as there); for arrays, one person holds data. The copy is
only in ``joints``: its ``color_xy`` stays NaN and ``num_actors`` stays 1, so frame crops
and person counts still see one person.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.arrays import read_npy, read_npz
from data_manifest.formats.frames_csv import read_frames_csv
from data_manifest.formats.json_skeleton import read_json_skeleton
from data_manifest.formats.mat import read_mat
from data_manifest.formats.ntu_denoise import DEFAULT_SETTINGS, DenoiseSettings, denoise_ntu
from data_manifest.formats.ntu_skeleton import NUM_JOINTS as NTU_JOINTS
from data_manifest.formats.ntu_skeleton import read_ntu_skeleton
from data_manifest.formats.nw_ucla import NUM_JOINTS as NW_UCLA_JOINTS
from data_manifest.formats.nw_ucla import read_nw_ucla_json
from data_manifest.formats.reading import CHANNELS, ORIGIN_JOINT, SkeletonReading
from data_manifest.layouts import LAYOUTS, Layout
from data_manifest.schemas import SKELETON_FIELDS

SUFFIXES = {".skeleton": "ntu", ".npy": "npy", ".npz": "npz", ".json": "json",
            ".csv": "frames-csv", ".mat": "mat"}


def file_kind(path: str | os.PathLike, dataset: str) -> str:
    """Which reader a file of ``dataset`` needs (a value of :data:`SUFFIXES`, or nw-ucla)."""
    dataset_info(dataset)    # unknown dataset names fail here
    if dataset in ("ntu60", "ntu120"):
        return "ntu"
    if dataset == "nw-ucla":
        return "nw-ucla"
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"unsupported skeleton file type {suffix or '(none)'!r}; use "
                        f"{', '.join(SUFFIXES)}", path=os.fspath(path))
    return SUFFIXES[suffix]


def read_array(path: str, kind: str, layout: Layout | None) -> np.ndarray:
    """An own-data file as (T, M, V, C) float32 (``layout`` names a CSV's joint columns)."""
    if kind == "npy":
        return read_npy(path)
    if kind == "npz":
        return read_npz(path)
    if kind == "json":
        return read_json_skeleton(path)
    if kind == "mat":
        return read_mat(path)
    if layout is None:
        raise DataError("a CSV of frames names its columns after the layout's joints: "
                        "give the WORKDIR a layout (pipeline manifest ... --layout)", path=path)
    return read_frames_csv(path, layout.joints)


def load_skeleton_sample(path: str | os.PathLike, reading: SkeletonReading | str,
                         denoise: DenoiseSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The :data:`~data_manifest.schemas.SKELETON_FIELDS` of one skeleton file.

    ``joints`` is (T, M, V, C) float32: V the reading's layout's joints, C its channels
    (3 for NTU and NW-UCLA), M its ``max_persons`` (2 for NTU, 1 for NW-UCLA; own data
    without a limit: the file's persons with data). Bad files raise :class:`DataError`
    naming the file (and line).
    """
    if isinstance(reading, str):
        reading = SkeletonReading.for_dataset(reading)
    path = os.fspath(path)
    kind = file_kind(path, reading.dataset)
    stored = reading.stored_layout
    if kind == "ntu":
        if stored is not None and stored != LAYOUTS["ntu"]:
            raise DataError(f"an NTU .skeleton file holds the ntu layout's joints, but this "
                            f"data is read as {stored.name} (map it from ntu instead)",
                            path=path)
        result = denoise_ntu(read_ntu_skeleton(path), reading.denoise(denoise))
        values = {"joints": result.joints, "color_xy": result.color_xy,
                  "frame_index": result.frame_index, "source_frames": result.source_frames,
                  "num_actors": result.num_actors}
        values = _pad_persons(values, reading.max_persons)
        single = sum(len(bodies) for bodies in result.actor_bodies) == 1
    elif kind == "nw-ucla":
        values = _from_array(read_nw_ucla_json(path)[:, None], path, reading.max_persons,
                             translate=True)
    else:
        values = _from_array(read_array(path, kind, stored), path, reading.max_persons,
                             translate=False)
    if kind != "ntu":   # arrays: one person holds data
        single = values["num_actors"] == 1
    values = _fit(values, reading, path)
    if reading.absent_actor == "copy" and single:
        values["joints"] = _copy_lone_actor(values["joints"])
    assert set(values) == set(SKELETON_FIELDS)
    return values


def _copy_lone_actor(joints: np.ndarray) -> np.ndarray:
    """The one person slot with data repeated into the empty slots (joints only)."""
    present = np.flatnonzero(np.any(joints != 0, axis=(0, 2, 3)))
    filled = joints.copy()
    filled[:] = joints[:, present[0]][:, None]
    return filled


def _fit(values: dict[str, Any], reading: SkeletonReading, path: str) -> dict[str, Any]:
    """Check joints and channels against the reading, then remap to its layout."""
    joints = values["joints"]
    stored = reading.stored_layout
    if stored is not None and joints.shape[2] != stored.num_joints:
        raise DataError(f"has {joints.shape[2]} joints per person; the {stored.name} layout "
                        f"has {stored.num_joints}", path=path)
    if reading.channels is not None and joints.shape[3] != CHANNELS[reading.channels]:
        raise DataError(f"holds {joints.shape[3]} values per joint; this data's channels are "
                        f"{reading.channels} ({CHANNELS[reading.channels]} values)", path=path)
    if reading.joint_map is not None:
        values = {**values, "joints": reading.joint_map.apply(joints),
                  "color_xy": reading.joint_map.apply(values["color_xy"])}
    return values


def _from_array(joints: np.ndarray, path: str, max_persons: int | None, translate: bool
                ) -> dict[str, Any]:
    """Fields of a (T, M', V, C) array: drop empty persons and frames, translate, pad."""
    source_frames = joints.shape[0]
    present = np.any(joints != 0, axis=(2, 3))                    # (T, M')
    persons = np.flatnonzero(present.any(axis=0))
    if len(persons) == 0:
        raise DataError("every joint position is zero: no skeleton data", path=path)
    if max_persons is not None:
        persons = persons[:max_persons]
    joints, present = joints[:, persons], present[:, persons]
    keep = np.flatnonzero(present.any(axis=1))
    joints, present = joints[keep], present[keep]
    if translate:   # by the origin joint of the first person's first frame
        origin = joints[int(np.argmax(present[:, 0])), 0, ORIGIN_JOINT - 1].copy()
        joints = joints.copy()
        joints[present] -= origin
    values = {"joints": np.ascontiguousarray(joints, dtype=np.float32),
              "color_xy": np.full(joints.shape[:3] + (2,), np.nan, dtype=np.float32),
              "frame_index": keep.astype(np.int32), "source_frames": int(source_frames),
              "num_actors": len(persons)}
    return _pad_persons(values, max_persons)


def _pad_persons(values: dict[str, Any], max_persons: int | None) -> dict[str, Any]:
    joints, color = values["joints"], values["color_xy"]
    padding = (max_persons or joints.shape[1]) - joints.shape[1]
    if padding <= 0:
        return values
    shape = (joints.shape[0], padding) + joints.shape[2:]
    return {**values,
            "joints": np.concatenate([joints, np.zeros(shape, np.float32)], axis=1),
            "color_xy": np.concatenate(
                [color, np.full(shape[:3] + (2,), np.nan, np.float32)], axis=1)}


def survey_file(path: str | os.PathLike, reading: SkeletonReading
                ) -> tuple[int, int, int] | None:
    """(joints, persons with data, values per joint) of a file; None if unreadable.

    NTU .skeleton files count as holding 2 persons (up to 2 actors) without being read.
    """
    path = os.fspath(path)
    try:
        kind = file_kind(path, reading.dataset)
        if kind == "ntu":
            return NTU_JOINTS, 2, 3
        if kind == "nw-ucla":
            return NW_UCLA_JOINTS, 1, 3
        array = read_array(path, kind, reading.stored_layout)
    except DataError:
        return None
    persons = int(np.any(array != 0, axis=(0, 2, 3)).sum())
    return array.shape[2], persons, array.shape[3]
