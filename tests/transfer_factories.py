"""Two datasets of the same motions for the cross-dataset tests: an NTU-format source (25
joints, 2 persons, translated as NTU's caches are) and a UTD-MHAD-like target (20 Kinect
v1 joints head first, one person, metres at the camera's position, MATLAB v5 files with
``d_skel`` of joints x 3 x frames, named ``a<action>_s<subject>_t<trial>_skeleton.mat``).

The motions are :func:`pipeline.synthetic.own_data.own_sequence`'s six classes (a wave of
the left or the right hand, or a squat, once or three times). Each is given the NTU class
that ``utd-mhad-to-ntu120`` sends its UTD-MHAD action to, so a run trained on the source
can be scored on the target through the built-in class map.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
from scipy.io import savemat

from data_manifest import schemas
from data_manifest.layouts import LAYOUTS, NTU, resolve_joint_map
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.splits import NTU120_XSUB_TRAIN_SUBJECTS
from data_manifest.store import ShardWriter
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.synthetic.own_data import own_sequence

UTD = LAYOUTS["utd-mhad"]
# own motion class -> the NTU120 class it is in the source
OWN_TO_NTU = {0: 95, 1: 62, 2: 22, 3: 8, 4: 79, 5: 7}
# UTD-MHAD action code -> the own motion its target files hold (a1 has no NTU class)
UTD_MOTIONS = {3: 2, 6: 0, 7: 1, 24: 3, 25: 5, 27: 4, 1: 2}


def ntu_cache_joints(sequence: np.ndarray) -> np.ndarray:
    """(T, 20, 3) Kinect v1 joints head first -> (T, 2, 25, 3) as an NTU skeleton cache
    stores them: NTU's joints, translated by the spine middle of the first frame, a zero
    second person."""
    joints = resolve_joint_map(UTD, NTU).apply(sequence[:, None].astype(np.float32))
    joints = joints - joints[0, 0, NTU.index("spine_middle")]
    return np.concatenate([joints, np.zeros_like(joints)], axis=1).astype(np.float32)


def make_ntu_source(root: Path, *, per_class: int = 12, seed: int = 0,
                    frames: tuple[int, int] = (40, 70), shard_size: int = 32) -> Path:
    """An ntu120 WORKDIR with a skeleton cache: ``per_class`` samples of each own motion,
    about a quarter of them by ntu120-xsub test performers."""
    train_subjects = sorted(NTU120_XSUB_TRAIN_SUBJECTS)
    test_subjects = [p for p in range(1, 107) if p not in NTU120_XSUB_TRAIN_SUBJECTS]
    rng = np.random.default_rng(seed)
    samples, arrays = [], {}
    for motion, label in OWN_TO_NTU.items():
        for index in range(per_class):
            subjects = test_subjects if index % 4 == 3 else train_subjects
            meta = {"setup": 1, "camera": 1 + index % 3, "performer": subjects[index // 3],
                    "replication": 1, "action": label + 1}
            name = "S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}" \
                   "A{action:03d}".format(**meta)
            samples.append(Sample(id=name, dataset="ntu120", label=label,
                                  skeleton=f"{name}.skeleton", meta=meta))
            length = int(rng.integers(frames[0], frames[1] + 1))
            arrays[name] = ntu_cache_joints(own_sequence(motion, rng, length))
    digest = write_manifest(samples, root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo(dataset="ntu120", source_root=str(root / "source"),
                                         manifest_digest=digest, num_samples=len(samples),
                                         shard_size=shard_size, layout="ntu"))
    workdir = Workdir(root)
    spec = workdir.spec(schemas.SKELETONS, {"synthetic": "ntu-from-kinect-v1"})
    cache = workdir.cache_dir(schemas.SKELETONS)
    cache.prepare(spec)
    for shard in range(workdir.num_shards):
        with ShardWriter(cache.shard_path(shard), spec, shard) as writer:
            for sample in workdir.shard_samples(shard):
                joints = arrays[sample.id]
                writer.add(sample.id, {
                    "joints": joints,
                    "color_xy": np.full(joints.shape[:-1] + (2,), np.nan, np.float32),
                    "frame_index": np.arange(len(joints), dtype=np.int32),
                    "source_frames": len(joints), "num_actors": 1})
    return root


def write_utd_like(root: Path, *, subjects: int = 4, trials: int = 2, seed: int = 1,
                   frames: tuple[int, int] = (40, 70)) -> dict[str, np.ndarray]:
    """UTD-MHAD-like skeleton files under ``root``; returns name -> (T, 20, 3) array."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for code, motion in UTD_MOTIONS.items():
        for subject in range(1, subjects + 1):
            for trial in range(1, trials + 1):
                name = f"a{code}_s{subject}_t{trial}_skeleton"
                sequence = own_sequence(motion, rng, int(rng.integers(frames[0], frames[1] + 1)))
                savemat(root / f"{name}.mat",
                        {"d_skel": np.ascontiguousarray(sequence.transpose(1, 2, 0))})
                written[name] = sequence
    return written


def utd_csv(dataset_root: Path, csv_path: Path) -> Path:
    """The CSV docs/transfer.md's snippet writes for a UTD-MHAD folder (a test keeps the
    two in step): one row per skeleton file, 1-based labels, odd subjects train."""
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "skeleton", "video", "split"])
        for path in sorted(Path(dataset_root).glob("**/a*_s*_t*_skeleton.mat")):
            action, subject, _ = map(int, re.match(r"a(\d+)_s(\d+)_t(\d+)", path.name).groups())
            writer.writerow([path.stem, action, path.resolve(), "",
                             "train" if subject % 2 else "test"])
    return csv_path
