"""Users' skeleton arrays: the checks every array format shares, and ``.npy``/``.npz`` files.

An array is ``(T, V, C)`` (one person) or ``(T, M, V, C)``: frames, persons, joints and
C = 2 or 3 values per joint (x, y / x, y, z / x, y, score). Files are read with
``allow_pickle=False``: a file that needs unpickling is refused, never executed.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from data_manifest.errors import DataError

NPZ_JOINTS_KEY = "joints"
NPZ_SCORES_KEY = "scores"


def as_sequence(array: np.ndarray, path: str, what: str = "array") -> np.ndarray:
    """``array`` as ``(T, M, V, C)`` float32, or a DataError saying what is wrong with it."""
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        kind = array.dtype if isinstance(array, np.ndarray) else type(array).__name__
        raise DataError(f"{what} of {kind} values; expected numbers", path=path)
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4:
        raise DataError(f"{what} of shape {array.shape}; expected (T, V, C) or (T, M, V, C)",
                        path=path)
    if array.shape[3] not in (2, 3):
        raise DataError(f"{what} of shape {array.shape}: the last axis must hold 2 or 3 "
                        "values per joint (x, y / x, y, z / x, y, score)", path=path)
    if 0 in array.shape[:3]:
        raise DataError(f"{what} of shape {array.shape} holds no joints", path=path)
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        frame = int(np.argwhere(~np.isfinite(array))[0][0]) + 1
        raise DataError(f"frame {frame} holds a non-finite value", path=path)
    return array


def with_scores(joints: np.ndarray, scores: np.ndarray, path: str) -> np.ndarray:
    """(..., V, 2) coordinates and (..., V) confidence scores -> (..., V, 3) x, y, score."""
    if joints.shape[-1] != 2 or scores.shape != joints.shape[:-1]:
        raise DataError(f"scores of shape {scores.shape} do not fit joints of shape "
                        f"{joints.shape}: scores go with 2-D points, one per joint", path=path)
    return np.concatenate([joints, scores[..., None].astype(joints.dtype)], axis=-1)


def read_npy(path: str | os.PathLike) -> np.ndarray:
    path = os.fspath(path)
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError("skeleton file not found", path=path) from None
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"not a readable .npy array ({error})", path=path) from None
    if not isinstance(array, np.ndarray):
        raise DataError("expected a .npy array; an .npz archive needs the .npz suffix",
                        path=path)
    return as_sequence(array, path)


def read_npz(path: str | os.PathLike) -> np.ndarray:
    """The archive's only array, or its ``joints`` array (plus ``scores`` if present)."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if NPZ_JOINTS_KEY in names:
                key = NPZ_JOINTS_KEY
            elif len(names) == 1:
                key = names[0]
            else:
                raise DataError(f"an .npz archive with several arrays needs one named "
                                f"{NPZ_JOINTS_KEY!r} (found: {', '.join(names) or 'none'})",
                                path=path)
            joints = archive[key]
            scores = archive[NPZ_SCORES_KEY] if key == NPZ_JOINTS_KEY and \
                NPZ_SCORES_KEY in names else None
    except FileNotFoundError:
        raise DataError("skeleton file not found", path=path) from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"not a readable .npz archive ({error})", path=path) from None
    if scores is not None:
        joints = with_scores(np.asarray(joints), np.asarray(scores), path)
    return as_sequence(joints, path, f"array {key!r}")


def npy_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The shape of a .npy file without reading its data; None if unreadable."""
    try:
        return tuple(np.load(os.fspath(path), mmap_mode="r", allow_pickle=False).shape)
    except (ValueError, OSError, EOFError):
        return None
