"""A synthetic dataset of "own data": a user layout, class names and skeleton arrays.

What a user with a Kinect v1 dataset in their own joint order would have:
``layout.yaml`` (Kinect v1's 20 joints, head first, see :data:`KINECT_V1_HEAD_FIRST`),
``classes.txt`` (one name per line), ``data.csv`` (``id,label,skeleton,video,split`` with
1-based labels) and one file per sample with one person: ``.npy``, ``.npz``, ``.json``, a
CSV of frames or a MATLAB v7.3 ``.mat``, holding 3-D points (``xyz``, metres) or their 2-D
image projection with a detector-like confidence (``xy-score``, pixels).

The classes come in pairs that share their posture and differ only in tempo (one swing or
three per sequence), at a random phase and with a random body size, position and facing:
a classifier must read the motion, not the mean pose. The same seed gives the same files.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import yaml

KINECT_V1_HEAD_FIRST = {
    "name": "kinect-v1-head-first",
    "description": "Kinect v1 joints, head first (an example of a user's own joint order)",
    "joints": ["head", "shoulder_center", "spine", "hip_center",
               "left_shoulder", "left_elbow", "left_wrist", "left_hand",
               "right_shoulder", "right_elbow", "right_wrist", "right_hand",
               "left_hip", "left_knee", "left_ankle", "left_foot",
               "right_hip", "right_knee", "right_ankle", "right_foot"],
    "parents": {"head": "shoulder_center", "shoulder_center": "spine", "spine": "hip_center",
                "left_shoulder": "shoulder_center", "left_elbow": "left_shoulder",
                "left_wrist": "left_elbow", "left_hand": "left_wrist",
                "right_shoulder": "shoulder_center", "right_elbow": "right_shoulder",
                "right_wrist": "right_elbow", "right_hand": "right_wrist",
                "left_hip": "hip_center", "left_knee": "left_hip",
                "left_ankle": "left_knee", "left_foot": "left_ankle",
                "right_hip": "hip_center", "right_knee": "right_hip",
                "right_ankle": "right_knee", "right_foot": "right_ankle"},
    "center": "spine",
    "flip_pairs": [[f"left_{part}", f"right_{part}"] for part in
                   ("shoulder", "elbow", "wrist", "hand", "hip", "knee", "ankle", "foot")],
}

OWN_CLASSES = ("wave left hand once", "wave left hand three times",
               "wave right hand once", "wave right hand three times",
               "squat once", "squat three times")
FILE_FORMATS = ("npy", "npz", "json", "csv", "mat")
IMAGE_SIZE = (640, 480)
FOCAL = 500.0

_REST = {   # metres, y up, facing the camera; the person's left is +x
    "head": (0, 0.65, 0), "shoulder_center": (0, 0.45, 0), "spine": (0, 0.2, 0),
    "hip_center": (0, 0, 0),
    "left_shoulder": (0.18, 0.42, 0), "left_elbow": (0.22, 0.15, 0),
    "left_wrist": (0.24, -0.08, 0), "left_hand": (0.25, -0.15, 0),
    "left_hip": (0.1, -0.02, 0), "left_knee": (0.11, -0.45, 0),
    "left_ankle": (0.11, -0.85, 0), "left_foot": (0.11, -0.9, 0.08),
}
_REST.update({name.replace("left", "right"): (-x, y, z)
              for name, (x, y, z) in list(_REST.items()) if name.startswith("left")})


def own_sequence(label: int, rng: np.random.Generator, frames: int) -> np.ndarray:
    """(T, 20, 3) float32 metres in camera space, joints in KINECT_V1_HEAD_FIRST order."""
    names = KINECT_V1_HEAD_FIRST["joints"]
    rest = np.array([_REST[name] for name in names], dtype=np.float64)
    index = {name: i for i, name in enumerate(names)}
    cycles = 1.0 if label % 2 == 0 else 3.0
    phase = rng.uniform(0, 2 * np.pi)
    t = np.arange(frames) / frames
    swing = np.sin(2 * np.pi * cycles * t + phase)                  # (T,)
    data = np.repeat(rest[None], frames, axis=0)
    action = label // 2
    if action in (0, 1):                                            # wave: arm up, hand swings
        side = "left" if action == 0 else "right"
        sign = 1.0 if side == "left" else -1.0
        shoulder = rest[index[f"{side}_shoulder"]]
        for joint, reach in (("elbow", 0.25), ("wrist", 0.45), ("hand", 0.52)):
            j = index[f"{side}_{joint}"]
            angle = 0.5 * swing * (reach / 0.52)
            data[:, j, 0] = shoulder[0] + sign * (0.1 + reach * np.sin(angle))
            data[:, j, 1] = shoulder[1] + reach * np.cos(angle)
    else:                                                           # squat: bend the knees
        depth = 0.15 * (1 - swing)                                  # 0 .. 0.3 m
        for name in names:
            j = index[name]
            if "ankle" in name or "foot" in name:
                continue
            data[:, j, 1] -= depth if "knee" not in name else depth / 2
            if "knee" in name:
                data[:, j, 2] -= depth / 2
    height = rng.uniform(0.85, 1.15)
    facing = rng.uniform(-0.5, 0.5)
    rotation = np.array([[np.cos(facing), 0, np.sin(facing)], [0, 1, 0],
                         [-np.sin(facing), 0, np.cos(facing)]])
    position = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.1, 0.1), rng.uniform(2.5, 3.8)])
    data = height * data @ rotation.T + position
    data += rng.normal(0.0, 0.008, size=data.shape)
    return data.astype(np.float32)


def project(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """3-D camera points (T, V, 3) -> (T, V, 3) image x, y in pixels and a confidence."""
    width, height = IMAGE_SIZE
    x = FOCAL * points[..., 0] / points[..., 2] + width / 2
    y = -FOCAL * points[..., 1] / points[..., 2] + height / 2
    score = np.clip(rng.normal(0.85, 0.1, size=x.shape), 0.05, 1.0)
    return np.stack([x, y, score], axis=-1).astype(np.float32)


def write_mat_v73(path: Path, name: str, array: np.ndarray) -> None:
    """A MATLAB v7.3 .mat file (HDF5 with MATLAB's 512-byte header) holding one variable,
    stored column-major as MATLAB stores it."""
    with h5py.File(path, "w", userblock_size=512) as handle:
        dataset = handle.create_dataset(name, data=np.ascontiguousarray(array.T))
        dataset.attrs["MATLAB_class"] = np.bytes_("single")
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: synthetic HDF5 schema 1.00 ."
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM")


def write_skeleton_file(path: Path, array: np.ndarray, file_format: str,
                        channels: str = "xyz") -> Path:
    """``array`` (T, V, C) as a ``file_format`` file at ``path`` (the suffix is set)."""
    path = path.with_suffix({"csv": ".csv"}.get(file_format, f".{file_format}"))
    if file_format == "npy":
        np.save(path, array)
    elif file_format == "npz":
        np.savez(path, joints=array)
    elif file_format == "json":
        path.write_text(json.dumps({"joints": np.round(array, 5).tolist()}))
    elif file_format == "mat":
        write_mat_v73(path, "joints", array)
    elif file_format == "csv":
        axes = {"xyz": ("x", "y", "z"), "xy": ("x", "y"), "xy-score": ("x", "y", "score")}[
            channels]
        header = ["frame"] + [f"{joint}_{axis}" for joint in KINECT_V1_HEAD_FIRST["joints"]
                              for axis in axes]
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for frame, values in enumerate(array):
                writer.writerow([frame] + [f"{v:.6f}" for v in values.reshape(-1)])
    else:
        raise ValueError(f"file_format must be one of {FILE_FORMATS}, not {file_format!r}")
    return path


@dataclass
class OwnDataset:
    root: Path
    csv: Path
    layout: Path
    classes: Path
    files: dict[str, Path]      # sample id -> skeleton file
    labels: dict[str, int]      # sample id -> 0-based label
    splits: dict[str, str]
    frames: dict[str, int]      # sample id -> frame count


def write_own_dataset(root: str | Path, *, per_class: int = 8, seed: int = 0,
                      channels: str = "xyz", file_format: str = "npy",
                      test_every: int = 4, frames: tuple[int, int] = (40, 80)
                      ) -> OwnDataset:
    """Write the dataset under ``root``. ``file_format`` "mixed" cycles over every format;
    every ``test_every``-th sample of a class is
    in the test split; labels in data.csv are 1-based."""
    if channels not in ("xyz", "xy-score"):
        raise ValueError(f"channels must be xyz or xy-score, not {channels!r}")
    root = Path(root)
    (root / "skeletons").mkdir(parents=True, exist_ok=True)
    (root / "layout.yaml").write_text(yaml.safe_dump(KINECT_V1_HEAD_FIRST, sort_keys=False))
    (root / "classes.txt").write_text("".join(f"{name}\n" for name in OWN_CLASSES))
    rng = np.random.default_rng(seed)
    rows, files, labels, splits, lengths = [], {}, {}, {}, {}
    for label in range(len(OWN_CLASSES)):
        for index in range(per_class):
            sample_id = f"c{label:02d}_{index:03d}"
            array = own_sequence(label, rng, int(rng.integers(frames[0], frames[1] + 1)))
            if channels == "xy-score":
                array = project(array, rng)
            fmt = file_format if file_format != "mixed" else \
                FILE_FORMATS[(label + index) % len(FILE_FORMATS)]
            path = write_skeleton_file(root / "skeletons" / sample_id, array, fmt, channels)
            split = "test" if index % test_every == test_every - 1 else "train"
            rows.append([sample_id, label + 1, path.relative_to(root).as_posix(), "", split])
            files[sample_id], labels[sample_id], splits[sample_id] = path, label, split
            lengths[sample_id] = len(array)
    with (root / "data.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "skeleton", "video", "split"])
        writer.writerows(rows)
    return OwnDataset(root, root / "data.csv", root / "layout.yaml", root / "classes.txt",
                      files, labels, splits, lengths)
