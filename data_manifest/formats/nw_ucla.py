"""Reader for NW-UCLA skeleton JSON: ``{"file_name": ..., "skeletons": [T][20][3]}``."""

from __future__ import annotations

import os

import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.source import read_source_json

NUM_JOINTS = 20


def read_nw_ucla_json(path: str | os.PathLike) -> np.ndarray:
    """The ``skeletons`` array as (T, 20, 3) float32 (one person). Own data in JSON is read
    by :mod:`.json_skeleton`."""
    path = os.fspath(path)
    content = read_source_json(path)
    if not isinstance(content, dict):
        raise DataError(f"expected a JSON object with a 'skeletons' key, found a "
                        f"{type(content).__name__}", path=path)
    if "skeletons" not in content:
        raise DataError(f"no 'skeletons' key (keys: {', '.join(sorted(content)) or 'none'})",
                        path=path)
    try:
        skeletons = np.asarray(content["skeletons"], dtype=np.float32)
    except (ValueError, TypeError):
        raise DataError("'skeletons' must be a [frames][joints][3] array of numbers; it is "
                        "ragged or holds non-numbers", path=path) from None
    if skeletons.shape[:1] == (0,):
        raise DataError("'skeletons' has no frames", path=path)
    if skeletons.ndim != 3 or skeletons.shape[2] != 3:
        raise DataError(f"'skeletons' must have shape [frames][joints][3], found "
                        f"{list(skeletons.shape)}", path=path)
    if skeletons.shape[1] != NUM_JOINTS:
        raise DataError(f"'skeletons' has {skeletons.shape[1]} joints per frame, expected "
                        f"{NUM_JOINTS}", path=path)
    if not np.isfinite(skeletons).all():
        frame = int(np.argwhere(~np.isfinite(skeletons))[0][0]) + 1
        raise DataError(f"'skeletons' frame {frame} holds a non-finite value", path=path)
    return skeletons
