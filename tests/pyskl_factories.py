"""pyskl annotation files for the tests, written as pyskl writes them (mmcv's ``dump``:
``pickle`` protocol 2, float16 keypoints, NumPy integer labels)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from data_manifest.formats.load import load_skeleton_sample
from skeleton_factories import REAL_NTU

REAL_ID = REAL_NTU.stem
NUMPY1_FILE = Path(__file__).resolve().parent / "data" / "pyskl_numpy1.pkl"


def write_pickle(path: Path, content: Any, protocol: int = 2) -> Path:
    with open(path, "wb") as handle:
        pickle.dump(content, handle, protocol=protocol)
    return path


def real_ntu_keypoint() -> np.ndarray:
    """The real NTU sample as pyskl's NTU 3-D files hold it: M x T x 25 x 3, float16."""
    values = load_skeleton_sample(REAL_NTU, "ntu60")
    joints = values["joints"][:, :values["num_actors"]]
    return np.ascontiguousarray(joints.transpose(1, 0, 2, 3)).astype(np.float16)


def ntu_3d_content(count: int = 7, seed: int = 0) -> dict[str, Any]:
    """The real NTU sample and ``count`` generated NTU-like ones (1 or 2 persons, the second
    absent in some frames), with NTU60's xsub and xview lists."""
    rng = np.random.default_rng(seed)
    annotations = [dict(frame_dir=REAL_ID, label=np.int64(0), keypoint=real_ntu_keypoint(),
                        total_frames=real_ntu_keypoint().shape[1])]
    for i in range(count):
        persons, frames = 1 + i % 2, 18 + 3 * i
        keypoint = rng.normal(0, 0.4, size=(persons, frames, 25, 3)) + [0, 0, 3]
        if persons == 2:
            keypoint[1, :frames // 3] = 0          # the second person enters later
        annotations.append(dict(
            frame_dir=f"S001C00{1 + i % 3}P00{1 + i % 4}R00{1 + i % 2}A0{10 + i:02d}",
            label=np.int64(1 + i % 4), keypoint=keypoint.astype(np.float16),
            total_frames=frames))
    ids = [a["frame_dir"] for a in annotations]
    split = {"xsub_train": ids[0::2], "xsub_val": ids[1::2],
             "xview_train": ids[:5], "xview_val": ids[5:]}
    return {"split": split, "annotations": annotations}


def coco_2d_content(count: int = 12, classes: int = 3, seed: int = 1,
                    frames: tuple[int, int] = (10, 16)) -> dict[str, Any]:
    """2-D COCO keypoints with scores as pyskl's HRNet files hold them (pixels, 1 or 2
    persons, frames where the second person is not detected: zeros with score 0), with a
    plain train/val pair as FineGYM's file has. Each class moves one wrist up and down at
    its own speed, so a classifier can learn it."""
    rng = np.random.default_rng(seed)
    annotations = []
    for i in range(count):
        persons, length = 1 + i % 2, int(rng.integers(*frames))
        label = i % classes
        base = rng.uniform(200, 400, size=(persons, 1, 17, 2)) + rng.normal(
            0, 20, size=(persons, 1, 17, 1))
        keypoint = np.repeat(base, length, axis=1)
        phase = np.linspace(0, (label + 1) * np.pi, length)
        keypoint[:, :, 9 + label % 2, 1] += 60 * np.sin(phase)[None]
        keypoint += rng.normal(0, 1.5, size=keypoint.shape)
        score = rng.uniform(0.3, 1.0, size=keypoint.shape[:3])
        if persons == 2:
            keypoint[1, -3:] = 0
            score[1, -3:] = 0
        annotations.append(dict(
            frame_dir=f"clip_{i:03d}", label=label, keypoint=keypoint.astype(np.float16),
            keypoint_score=score.astype(np.float16), total_frames=length,
            img_shape=(480, 640), original_shape=(480, 640)))
    ids = [a["frame_dir"] for a in annotations]
    split = {"train": [i for k, i in enumerate(ids) if k % 4 != 3],
             "val": [i for k, i in enumerate(ids) if k % 4 == 3]}
    return {"split": split, "annotations": annotations}


class RunsACommand:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        import os
        return os.system, (self.command,)
