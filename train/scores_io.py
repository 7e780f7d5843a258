"""Scores files: per-sample class scores keyed by sample id, as ``.npz`` (never pickle).

Arrays: ``ids`` (N,) unicode, ``labels`` (N,) int64, ``scores`` (N, K) float32 (the
backbone's logits), ``class_names`` (K,) unicode (may be empty). Load with
``numpy.load(path, allow_pickle=False)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from train.errors import TrainError
from train.files import write_atomic
from train.scoring import Scores


def save_scores(path: str | os.PathLike, scores: Scores,
                class_names: Sequence[str] | None = None) -> Path:
    arrays = {"ids": np.array(scores.ids, dtype=np.str_),
              "labels": np.asarray(scores.labels, dtype=np.int64),
              "scores": np.asarray(scores.scores, dtype=np.float32),
              "class_names": np.array(list(class_names or []), dtype=np.str_)}
    return write_atomic(path, lambda handle: np.savez(handle, **arrays))


def load_scores(path: str | os.PathLike) -> tuple[Scores, list[str]]:
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"no scores file at {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = [str(i) for i in data["ids"]]
            labels = data["labels"].astype(np.int64)
            values = data["scores"].astype(np.float32)
            names = [str(n) for n in data["class_names"]] if "class_names" in data else []
    except (OSError, ValueError, KeyError) as error:
        raise TrainError(f"{path} is not a scores file ({error}); `train eval` writes them"
                         ) from error
    if values.ndim != 2 or len(ids) != values.shape[0] or len(labels) != len(ids):
        raise TrainError(f"{path}: ids, labels and scores disagree in length "
                         f"({len(ids)}, {len(labels)}, {values.shape})")
    if len(set(ids)) != len(ids):
        raise TrainError(f"{path}: sample ids are not unique")
    return Scores(ids=ids, labels=labels, scores=values), names
