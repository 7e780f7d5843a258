"""Users' skeleton JSON: an array ``[T][V][C]`` / ``[T][M][V][C]``, or an object holding it
under ``joints`` (or ``skeletons``, as NW-UCLA's files do), optionally with ``scores``
(``[T][V]`` / ``[T][M][V]``, one confidence per 2-D point)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.arrays import as_sequence, with_scores
from data_manifest.formats.source import read_source_json

ARRAY_KEYS = ("joints", "skeletons")


def read_json_skeleton(path: str | os.PathLike) -> np.ndarray:
    """(T, M, V, C) float32."""
    path = os.fspath(path)
    content = read_source_json(path)
    scores = None
    if isinstance(content, dict):
        key = next((k for k in ARRAY_KEYS if k in content), None)
        if key is None:
            raise DataError(f"a JSON object needs a {' or '.join(map(repr, ARRAY_KEYS))} key "
                            f"(keys: {', '.join(sorted(content)) or 'none'})", path=path)
        values, what = content[key], f"{key!r}"
        if "scores" in content:
            scores = _numbers(content["scores"], "'scores'", path)
    elif isinstance(content, list):
        values, what = content, "the array"
    else:
        raise DataError(f"expected a JSON array or object, found {type(content).__name__}",
                        path=path)
    joints = _numbers(values, what, path)
    if scores is not None:
        joints = with_scores(joints, scores, path)
    return as_sequence(joints, path, what)


def _numbers(values: Any, what: str, path: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float32)
    except (ValueError, TypeError):
        raise DataError(f"{what} must be a nested array of numbers; it is ragged or holds "
                        "non-numbers", path=path) from None
