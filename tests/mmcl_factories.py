"""Tiny WORKDIRs with feature caches written directly through the shard store."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
from PIL import Image
from torch import nn

from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES, SKELETONS, STITCH
from data_manifest.workdir import MANIFEST_FILE, Workdir, WorkdirInfo

NW_UCLA_CODES = (1, 2, 3, 4, 5, 6, 8, 9, 11, 12)


def make_workdir(root: Path, num_samples: int = 8, num_classes: int = 4,
                 shard_size: int = 4, views: Iterable[int] = (1, 3)) -> Workdir:
    """An NW-UCLA-style WORKDIR: samples cycle through classes, subjects and ``views``."""
    views = tuple(views)
    samples = []
    for index in range(num_samples):
        label = index % num_classes
        subject, episode, view = 1 + index // num_classes, index, views[index % len(views)]
        code = NW_UCLA_CODES[label]
        samples.append(Sample(
            id=f"a{code:02d}_s{subject:02d}_e{episode:02d}_v{view:02d}", dataset="nw-ucla",
            label=label, skeleton=f"all_sqe/a{code:02d}_s{subject:02d}_e{episode:02d}_v{view:02d}"
            "_skeletons.json", meta={"action": code, "subject": subject, "episode": episode,
                                     "view": view}))
    root.mkdir(parents=True, exist_ok=True)
    digest = write_manifest(samples, root / MANIFEST_FILE)
    Workdir.write_info(root, WorkdirInfo(dataset="nw-ucla", source_root=str(root / "source"),
                                         manifest_digest=digest, num_samples=len(samples),
                                         shard_size=shard_size, layout="nw-ucla"))
    return Workdir(root)


def write_cache(workdir: Workdir, stage: str, name: str, params: Mapping[str, Any],
                values: Callable[[int, Sample], Mapping[str, Any]],
                skip: Iterable[str] = (), fail: Mapping[str, str] | None = None,
                upstream: Mapping[str, str] | None = None) -> Path:
    """Write every shard of a cache; ``values(index, sample)`` gives a sample's fields."""
    skip, fail = set(skip), dict(fail or {})
    spec = workdir.spec(stage, dict(params), dict(upstream or {}))
    cache = workdir.cache_dir(stage, name)
    cache.prepare(spec, overwrite=True)
    position = 0
    for shard in range(workdir.num_shards):
        with cache.shard_writer(spec, shard) as writer:
            for sample in workdir.shard_samples(shard):
                if sample.id in fail:
                    writer.fail(sample.id, fail[sample.id])
                elif sample.id not in skip:
                    writer.add(sample.id, values(position, sample))
                position += 1
    return cache.path


def rgb_vector(index: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng([seed, index]).standard_normal(width).astype(np.float32)


def model_params(name: str, revision: str | None = None, model_type: str = "test") -> dict:
    """How the feature stages record a model in a cache spec."""
    return {"name": name, "revision": revision, "model_type": model_type}


def write_rgb_features(workdir: Workdir, name: str = "default", width: int = 16,
                       model: str = "tiny-resnet", seed: int = 0, revision: str | None = None,
                       **kwargs) -> Path:
    params = {"encoder": model_params(model, revision, "resnet"), "output": "pooled"}
    return write_cache(workdir, RGB_FEATURES, name, params,
                       lambda i, s: {"feature": rgb_vector(i, width, seed)}, **kwargs)


def token_lengths(index: int, num_questions: int) -> list[int]:
    """Answer lengths per question, varied (and sometimes zero) to exercise the padding."""
    return [(index + 2 * k) % 4 for k in range(num_questions)]


def llm_values(index: int, width: int, num_questions: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 1000 + index])
    counts = np.array(token_lengths(index, num_questions), dtype=np.int64)
    hidden = (3 * rng.standard_normal((int(counts.sum()), width))).astype(np.float16)
    pooled = np.zeros((num_questions, width), dtype=np.float32)
    start = 0
    for k, count in enumerate(counts):
        if count:
            pooled[k] = hidden[start:start + count].astype(np.float32).mean(axis=0)
        start += count
    return {"answers": [f"answer {index}-{k}" for k in range(num_questions)],
            "token_ids": rng.integers(0, 100, int(counts.sum())).astype(np.int64),
            "token_counts": counts, "hidden": hidden, "pooled": pooled}


def write_llm_features(workdir: Workdir, name: str = "default", width: int = 12,
                       num_questions: int = 2, model: str = "tiny-blip", seed: int = 0,
                       revision: str | None = None,
                       values: Callable[[int, Sample], Mapping[str, Any]] | None = None,
                       **kwargs) -> Path:
    questions = [f"question {k}?" for k in range(num_questions)]
    params = {"model": model_params(model, revision, "blip"), "questions": questions,
              "layer": -1, "hidden_dtype": "float16"}
    return write_cache(workdir, LLM_FEATURES, name, params,
                       values or (lambda i, s: llm_values(i, width, num_questions, seed)),
                       **kwargs)


def jpeg_bytes(index: int, size: tuple[int, int] = (48, 32)) -> bytes:
    rng = np.random.default_rng(index)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def write_stitch(workdir: Workdir, name: str = "default", **kwargs) -> Path:
    return write_cache(workdir, STITCH, name, {"tiles": 5, "canvas": [48, 32]},
                       lambda i, s: {"image": jpeg_bytes(i),
                                     "size": np.array([48, 32], dtype=np.int32)}, **kwargs)


def write_skeletons(workdir: Workdir, name: str = "default", frames: int = 20,
                    persons: int = 1, joints: int = 20, **kwargs) -> Path:
    """Skeleton cache per ``data_manifest.schemas.SKELETON_FIELDS``; motion varies by label."""
    def values(index: int, sample: Sample) -> dict[str, Any]:
        rng = np.random.default_rng(index)
        length = frames - index % 3
        t = np.linspace(0, 1, length, dtype=np.float32)[:, None, None, None]
        base = rng.standard_normal((1, persons, joints, 3)).astype(np.float32) * 0.1
        direction = np.zeros(3, np.float32)
        direction[sample.label % 3] = 1.0 + sample.label // 3
        joints_xyz = base + t * direction
        return {"joints": joints_xyz.astype(np.float32),
                "color_xy": np.full((length, persons, joints, 2), np.nan, np.float32),
                "frame_index": np.arange(length, dtype=np.int32),
                "source_frames": length, "num_actors": persons}
    return write_cache(workdir, SKELETONS, name, {"layout": "nw-ucla"}, values, **kwargs)


class PooledSkeletonModel(nn.Module):
    """A stand-in GCN for unit tests: global feature = MLP of the mean joint position."""

    def __init__(self, num_classes: int = 4, width: int = 256, in_features: int = 3):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(in_features, width), nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.body(x.flatten(2).mean(-1))   # x: (N, C, T, V, M)
        return self.fc(feature), feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]
