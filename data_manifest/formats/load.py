"""One skeleton file -> the per-sample fields of the skeletons cache.

Used by ``pipeline extract-skeletons`` (whole datasets) and by ``train predict`` (one file),
so both see exactly the same preprocessing. Supported files:

- NTU ``.skeleton`` text (NTU datasets, and user CSV data): denoised, up to 2 actors,
  translated by joint 2 of actor 1's first frame (see :mod:`.ntu_denoise`);
- NW-UCLA ``.json`` (NW-UCLA, and user CSV data): one person, translated by joint 2 of the
  first frame (as CTR-GCN's NW-UCLA loader centres it);
- ``.npy`` arrays (user CSV data) of shape (T, V, C) or (T, M, V, C), C = 2 or 3, read with
  ``allow_pickle=False``. They are taken as they are (no translation): 2D points get z = 0.
  Frames where every person is all zeros (padding) are removed.

Colour-image coordinates exist only for ``.skeleton`` files; other formats give NaN.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.ntu_denoise import DEFAULT_SETTINGS, DenoiseSettings, denoise_ntu
from data_manifest.formats.ntu_skeleton import NUM_JOINTS as NTU_JOINTS
from data_manifest.formats.ntu_skeleton import read_ntu_skeleton
from data_manifest.formats.nw_ucla import NUM_JOINTS as NW_UCLA_JOINTS
from data_manifest.formats.nw_ucla import read_nw_ucla_json
from data_manifest.schemas import SKELETON_FIELDS

FORMAT_VERSION = 1
SUFFIXES = {".skeleton": "ntu", ".json": "nw-ucla", ".npy": "npy"}
ORIGIN_JOINT = 2          # 1-based: spine middle (NTU) / the joint CTR-GCN centres NW-UCLA on


def file_kind(path: str | os.PathLike, dataset: str) -> str:
    """Which reader a file of ``dataset`` needs: "ntu", "nw-ucla" or "npy"."""
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


def skeleton_params(dataset: str, num_joints: int,
                    denoise: DenoiseSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """Everything that determines the skeletons cache content (goes into its CacheSpec)."""
    max_persons = dataset_info(dataset).max_persons
    params = {"format_version": FORMAT_VERSION, "dataset": dataset,
              "max_persons": max_persons, "num_joints": num_joints,
              "origin_joint": ORIGIN_JOINT}
    if dataset != "nw-ucla":     # NTU .skeleton files may occur: their denoising matters
        params["denoise"] = dataclasses.replace(denoise, max_actors=max_persons).params()
    return params


def load_skeleton_sample(path: str | os.PathLike, dataset: str,
                         denoise: DenoiseSettings = DEFAULT_SETTINGS) -> dict[str, Any]:
    """The :data:`~data_manifest.schemas.SKELETON_FIELDS` of one skeleton file.

    ``joints`` is (T, M, V, 3) float32 with M = the dataset's max persons (2 for NTU and
    CSV data, 1 for NW-UCLA). Bad files raise :class:`DataError` naming the file (and line).
    """
    max_persons = dataset_info(dataset).max_persons
    kind = file_kind(path, dataset)
    if kind == "ntu":
        if max_persons != denoise.max_actors:
            denoise = dataclasses.replace(denoise, max_actors=max_persons)
        result = denoise_ntu(read_ntu_skeleton(path), denoise)
        values = {"joints": result.joints, "color_xy": result.color_xy,
                  "frame_index": result.frame_index, "source_frames": result.source_frames,
                  "num_actors": result.num_actors}
    elif kind == "nw-ucla":
        required = NW_UCLA_JOINTS if dataset == "nw-ucla" else None
        skeletons = read_nw_ucla_json(path, num_joints=required)[:, None]   # (T, 1, V, 3)
        values = _from_array(skeletons, max_persons, os.fspath(path), translate=True)
    else:
        values = _from_array(_read_npy(path, max_persons), max_persons, os.fspath(path),
                             translate=False)
    assert set(values) == set(SKELETON_FIELDS)
    return values


def _read_npy(path: str | os.PathLike, max_persons: int) -> np.ndarray:
    """A user's array as (T, M, V, 3) float32."""
    path = os.fspath(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError("skeleton file not found", path=path) from None
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"not a readable .npy array ({error})", path=path) from None
    if not isinstance(array, np.ndarray):
        raise DataError("expected a .npy array (an .npz archive is not supported)", path=path)
    if array.dtype.kind not in "fiu":
        raise DataError(f"array of {array.dtype} values; expected numbers", path=path)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise DataError(f"array of shape {array.shape}; expected (T, V, C) or (T, M, V, C)",
                        path=path)
    frames, persons, joints, channels = array.shape
    if channels not in (2, 3):
        raise DataError(f"array of shape {array.shape}: the last axis must hold 2 or 3 "
                        "coordinates", path=path)
    if frames == 0 or joints == 0:
        raise DataError(f"array of shape {array.shape} holds no joints", path=path)
    if persons > max_persons:
        raise DataError(f"array of shape {array.shape} has {persons} persons; at most "
                        f"{max_persons} are supported", path=path)
    array = array.astype(np.float32)
    if channels == 2:
        array = np.concatenate([array, np.zeros(array.shape[:3] + (1,), np.float32)], axis=3)
    if not np.isfinite(array).all():
        frame = int(np.argwhere(~np.isfinite(array))[0][0]) + 1
        raise DataError(f"frame {frame} holds a non-finite value", path=path)
    return array


def _from_array(joints: np.ndarray, max_persons: int, path: str, translate: bool
                ) -> dict[str, Any]:
    """Fields of a (T, M', V, 3) array: drop empty frames, translate, pad M' to M."""
    source_frames = joints.shape[0]
    present = np.any(joints != 0, axis=(2, 3))                    # (T, M')
    keep = np.flatnonzero(present.any(axis=1))
    if len(keep) == 0:
        raise DataError("every joint position is zero: no skeleton data", path=path)
    joints, present = joints[keep], present[keep]
    if translate:   # by the origin joint of the first person's first frame with data
        person = int(np.argmax(present.any(axis=0)))
        origin = joints[int(np.argmax(present[:, person])), person, ORIGIN_JOINT - 1].copy()
        joints = joints.copy()
        joints[present] -= origin
    padding = max_persons - joints.shape[1]
    if padding:
        joints = np.concatenate(
            [joints, np.zeros((joints.shape[0], padding) + joints.shape[2:], np.float32)],
            axis=1)
    return {"joints": np.ascontiguousarray(joints, dtype=np.float32),
            "color_xy": np.full(joints.shape[:3] + (2,), np.nan, dtype=np.float32),
            "frame_index": keep.astype(np.int32), "source_frames": int(source_frames),
            "num_actors": int(present.any(axis=0).sum())}


def peek_num_joints(path: str | os.PathLike) -> int | None:
    """The joint count of a user's skeleton file, read cheaply; None if unreadable."""
    path = os.fspath(path)
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".skeleton":
            return NTU_JOINTS
        if suffix == ".json":
            return int(read_nw_ucla_json(path, num_joints=None).shape[1])
        if suffix == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            return int(shape[-2]) if len(shape) in (3, 4) else None
    except (DataError, ValueError, OSError, EOFError):
        return None
    return None
