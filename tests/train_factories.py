"""Factories for the trainer tests: tiny WORKDIRs with synthetic skeleton caches, a tiny
stand-in backbone and configs that train in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from data_manifest import schemas
from data_manifest.classes import NW_UCLA_ACTION_CODES
from data_manifest.layouts import LAYOUTS
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.workdir import Workdir, WorkdirInfo
from train.config import TrainConfig, model_layout, resolve_config

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def synthetic_joints(label: int, frames: int, persons: int, joints: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(T, M, V, 3) float32 motion whose limb group and speed depend on the label.

    The class signal (which joints swing, how fast) survives rotation, scaling and
    normalisation, so a few epochs of a small model can learn it.
    """
    base = np.random.default_rng(joints).normal(0.0, 0.3, size=(joints, 3)) \
        + np.array([0.0, 1.0, 3.0]) + rng.normal(0.0, 0.02, size=(joints, 3))
    t = np.arange(frames) / max(frames - 1, 1)
    group = np.arange(joints) % 3 == label % 3
    speed = 1.0 + 2.0 * (label // 3)
    phase = rng.uniform(0, 2 * np.pi)
    swing = 0.6 * np.sin(2 * np.pi * speed * t + phase)
    data = np.repeat(base[None], frames, axis=0)
    data[:, group, 1] += swing[:, None]
    data[:, group, 0] += 0.5 * swing[:, None]
    data += rng.normal(0.0, 0.01, size=data.shape)
    out = np.zeros((frames, persons, joints, 3), dtype=np.float32)
    out[:, 0] = data
    if persons > 1:
        out[:, 1] = data + np.array([0.8, 0.0, 0.0])
    return out


def _ucla_samples(num_classes: int, per_class_view: int) -> list[Sample]:
    samples = []
    for label in range(num_classes):
        action = NW_UCLA_ACTION_CODES[label]
        for view in (1, 2, 3):
            for index in range(per_class_view):
                subject, episode = 1 + index % 10, index // 10
                name = f"a{action:02d}_s{subject:02d}_e{episode:02d}_v{view:02d}"
                samples.append(Sample(id=name, dataset="nw-ucla", label=label,
                                      skeleton=f"{name}.json",
                                      meta={"action": action, "subject": subject,
                                            "episode": episode, "view": view}))
    return samples


def _ntu_samples(num_classes: int, per_class_view: int) -> list[Sample]:
    samples = []
    for label in range(num_classes):
        for camera in (1, 2, 3):
            for index in range(per_class_view):
                meta = {"setup": 1, "camera": camera, "performer": 1 + index,
                        "replication": 1, "action": label + 1}
                name = "S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}" \
                       "A{action:03d}".format(**meta)
                samples.append(Sample(id=name, dataset="ntu60", label=label,
                                      skeleton=f"{name}.skeleton", meta=meta))
    return samples


def make_workdir(root: Path, *, dataset: str = "nw-ucla", num_classes: int = 3,
                 per_class_view: int = 4, frames: tuple[int, int] = (20, 40),
                 shard_size: int = 16, seed: int = 0, failed: Iterable[str] = (),
                 skip_shards: Iterable[int] = (), with_skeletons: bool = True,
                 nan_ids: Iterable[str] = (), skeleton_params: dict | None = None,
                 cache_name: str = "default") -> Path:
    """A WORKDIR with a manifest and (unless ``with_skeletons=False``) a skeleton cache.

    ``failed``: ids recorded as failed by the skeleton stage; ``skip_shards``: shards never
    written (an unfinished stage); ``nan_ids``: samples whose joints hold NaN;
    ``skeleton_params``: the cache's spec params (other params: another fingerprint);
    ``cache_name``: the skeleton cache's name (an existing one is replaced).
    """
    root = Path(root)
    if dataset == "nw-ucla":
        samples, layout, persons = _ucla_samples(num_classes, per_class_view), "nw-ucla", 1
    else:
        samples, layout, persons = _ntu_samples(num_classes, per_class_view), "ntu", 2
    digest = write_manifest(samples, root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo(dataset=dataset, source_root=str(root / "source"),
                                         manifest_digest=digest, num_samples=len(samples),
                                         shard_size=shard_size, layout=layout))
    if not with_skeletons:
        return root
    workdir = Workdir(root)
    spec = workdir.spec(schemas.SKELETONS, skeleton_params or {"synthetic": True})
    cache = workdir.cache_dir(schemas.SKELETONS, cache_name)
    cache.prepare(spec, overwrite=True)
    rng = np.random.default_rng(seed)
    failed, skip_shards, nan_ids = set(failed), set(skip_shards), set(nan_ids)
    joints_count = LAYOUTS[layout].num_joints
    for shard in range(workdir.num_shards):
        if shard in skip_shards:
            continue
        with cache.shard_writer(spec, shard) as writer:
            for sample in workdir.shard_samples(shard):
                if sample.id in failed:
                    writer.fail(sample.id, "synthetic failure")
                    continue
                length = int(rng.integers(frames[0], frames[1] + 1))
                joints = synthetic_joints(sample.label, length, persons, joints_count, rng)
                if sample.id in nan_ids:
                    joints[:] = np.nan
                writer.add(sample.id, {
                    "joints": joints,
                    "color_xy": np.full(joints.shape[:-1] + (2,), np.nan, dtype=np.float32),
                    "frame_index": np.arange(length, dtype=np.int32),
                    "source_frames": length, "num_actors": persons})
    return root


class TinyGCN(nn.Module):
    """A stand-in backbone with the trainer's model interface, fast on a CPU."""

    def __init__(self, num_classes: int, num_joints: int, in_channels: int = 3,
                 hidden: int = 16, dropout: float = 0.0):
        super().__init__()
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints)
        self.temporal = nn.Conv2d(in_channels, hidden, kernel_size=(5, 1), padding=(2, 0))
        self.norm = nn.BatchNorm2d(hidden)
        self.joints = nn.Linear(hidden * num_joints, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, t, v, m = x.shape
        h = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        h = self.data_bn(h).reshape(n * m, v, c, t).permute(0, 2, 3, 1)
        h = torch.relu(self.norm(self.temporal(h))).mean(dim=2)          # (N*M, H, V)
        feature = torch.relu(self.joints(h.flatten(1))).reshape(n, m, -1).mean(dim=1)
        return self.fc(self.drop(feature)), feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def tiny_builder(config: TrainConfig) -> nn.Module:
    return TinyGCN(config.model.num_classes, model_layout(config).num_joints,
                   in_channels=config.model.in_channels, dropout=config.model.dropout)


def tiny_config(workdir: Path, *, preset: str = "nw-ucla", epochs: int = 2,
                overrides: Iterable[str] = (), **updates: Any) -> TrainConfig:
    """A config that trains in seconds: short window, small batch, no workers or bar."""
    base = [f"data.workdir={workdir}", "data.window=16", "data.num_workers=0",
            "data.repeat=1", "optim.batch_size=4", "optim.test_batch_size=8",
            f"schedule.epochs={epochs}", "schedule.warmup_epochs=1", "schedule.steps=[]",
            "optim.lr=0.05", "run.progress=false"]
    if preset == "nw-ucla":
        base.append("model.num_classes=3")
    return resolve_config(preset, overrides=[*base, *overrides], updates=[updates])


def write_legacy_test_selected_best(run_dir: Path) -> Path:
    """The best.pt an earlier version wrote for a run without a validation part: last.pt's
    weights chosen as best on the test set. Runs of those versions still exist."""
    from train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint

    last = load_checkpoint(checkpoint_path(run_dir, "last"))
    metrics = last["metrics"]
    best = {"metric": "test_top1", "value": metrics["test_top1"], "epoch": metrics["epoch"],
            "selected_on": "test"}
    keep = ("format", "version", "model", "model_info", "objective", "objective_inputs",
            "config", "class_names", "skeletons", "skeleton_cache", "epoch")
    path = checkpoint_path(run_dir, "best")
    save_checkpoint(path, {**{key: last[key] for key in keep if key in last}, "kind": "best",
                           "best": best, "metrics": metrics, "selected_on": "test"})
    return path
