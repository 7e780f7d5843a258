"""Factories for the feature-stage tests: a WORKDIR with a stitch cache, tiny models."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np
import pytest
import torch
from PIL import Image

from data_manifest.schemas import STITCH
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.manifest_builder import build_manifest

QUESTION = "whether the people are holding objects?"


@pytest.fixture(scope="module", autouse=False)
def one_torch_thread():
    """Tiny models run far faster on one thread than on several fighting for a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def jpeg_bytes(rng: np.random.Generator, width: int = 160, height: int = 48) -> bytes:
    """A random but smooth-ish image (so JPEG keeps it recognisable), as JPEG bytes."""
    small = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def make_workdir(root: Path, num_samples: int = 6, shard_size: int = 2) -> Workdir:
    """A csv-dataset WORKDIR of ``num_samples`` samples (dummy skeleton files)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = ["id,label,skeleton,video"]
    for index in range(num_samples):
        (data / f"s{index:03d}.txt").write_text("0\n")
        lines.append(f"s{index:03d},{index % 3},s{index:03d}.txt,")
    (data / "list.csv").write_text("\n".join(lines) + "\n")
    build_manifest("csv", data / "list.csv", root / "work", shard_size=shard_size)
    return Workdir(root / "work")


def write_stitch_cache(workdir: Workdir, images: Mapping[str, bytes | str] | None = None,
                       *, seed: int = 0, width: int = 160, height: int = 48,
                       name: str = DEFAULT_CACHE_NAME, shards: list[int] | None = None
                       ) -> dict[str, bytes | str]:
    """Write a stitch cache the way the stitch stage does (``STITCH_FIELDS``).

    ``images`` maps sample id -> JPEG bytes, or a str: that sample failed with that reason.
    By default every sample gets a random image. Returns the mapping used.
    """
    rng = np.random.default_rng(seed)
    if images is None:
        images = {s.id: jpeg_bytes(rng, width, height) for s in workdir.samples}
    spec = workdir.spec(STITCH, {"canvas": [width, height], "tiles": 5, "test": True})
    cache = workdir.cache_dir(STITCH, name)
    cache.prepare(spec)
    for index in (range(workdir.num_shards) if shards is None else shards):
        with cache.shard_writer(spec, index) as writer:
            for sample in workdir.shard_samples(index):
                value = images.get(sample.id)
                if isinstance(value, str):
                    writer.fail(sample.id, value)
                elif value is not None:
                    try:
                        size = Image.open(io.BytesIO(value)).size
                    except OSError:                 # a deliberately corrupt image
                        size = (width, height)
                    writer.add(sample.id, {"image": value,
                                           "size": np.array(size, dtype=np.int32)})
    return dict(images)


def tiny_models(root: Path) -> dict[str, Path]:
    """The three tiny models, built once per ``root`` (tests share a session directory)."""
    from pipeline.synthetic.tiny_models import make_tiny_models

    marker = root / ".complete"
    if not marker.exists():
        make_tiny_models(root)
        marker.write_text("ok")
    return {"blip-vqa": root / "blip-vqa", "qwen2-vl": root / "qwen2-vl",
            "resnet": root / "resnet"}


def random_images(count: int, width: int = 160, height: int = 48, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [Image.open(io.BytesIO(jpeg_bytes(rng, width, height))).convert("RGB")
            for _ in range(count)]


def copy_model(source: Path, target: Path, *, without: tuple[str, ...] = ()) -> Path:
    """A copy of a model directory (times kept, like ``cp -p``), minus the files named."""
    import shutil

    shutil.copytree(source, target)
    for name in without:
        (target / name).unlink()
    return target


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny BLIP VQA, Qwen2-VL-style and ResNet models saved once per test module."""
    return tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def workdir(tmp_path) -> Workdir:
    """Five samples in shards of 2, 2 and 1, with a finished 200x48 stitch cache."""
    workdir = make_workdir(tmp_path, num_samples=5, shard_size=2)
    write_stitch_cache(workdir, width=200, height=48)
    return workdir
