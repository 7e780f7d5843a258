"""Helpers shared by the model/export/predict tests: reference files and tiny models."""

from __future__ import annotations

from pathlib import Path

import os

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE_NPZ = SHARED / "reference" / "ctrgcn_reference_ntu60.npz"
REFERENCE_KEYS = SHARED / "reference" / "ctrgcn_reference_keys.txt"
NTU_SKELETON = SHARED / "data" / "ntu" / "S001C001P001R001A001.skeleton"


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """One intra-op thread for these tests: on a machine shared by many processes,
    OpenMP's busy-waiting threads make small convolutions 20-100x slower (measured:
    0.09 s with 1 thread vs 2-17 s with 2 at load 11). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def subprocess_env() -> dict[str, str]:
    """Environment for child Python processes, with the same single-thread setting."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def reference_arrays() -> dict[str, np.ndarray]:
    with np.load(REFERENCE_NPZ, allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def reference_state_dict() -> dict[str, torch.Tensor]:
    arrays = reference_arrays()
    return {key[len("state_dict/"):]: torch.from_numpy(np.array(value))
            for key, value in arrays.items() if key.startswith("state_dict/")}


def reference_key_shapes() -> dict[str, tuple[int, ...]]:
    """name -> shape from ``ctrgcn_reference_keys.txt`` (tab-separated name, shape, dtype)."""
    shapes = {}
    for line in REFERENCE_KEYS.read_text().splitlines():
        if not line.strip():
            continue
        name, shape, _ = line.split("\t")
        shapes[name] = tuple(int(part) for part in shape.strip("()").split(",") if part.strip())
    return shapes


def is_buffer_key(name: str) -> bool:
    return name.endswith(("running_mean", "running_var", "num_batches_tracked"))


def make_run_dir(root: Path, preset: str = "nw-ucla", seed: int = 0,
                 checkpoints: tuple[str, ...] = ("best", "last"), window: int | None = 16,
                 data: dict | None = None, skeletons: dict | None = None,
                 run: dict | None = None, **model_overrides) -> Path:
    """A run directory like the trainer writes: config.yaml + checkpoints/{best,last}.pt
    with a randomly initialised backbone (BN statistics perturbed so eval mode matters).
    ``window`` (frames) is small by default to keep tests fast; None keeps the preset's.
    ``data``: more ``data`` settings (e.g. the WORKDIR); ``run``: ``run`` settings (e.g.
    its mixed precision); ``skeletons``: the skeleton cache params the checkpoints record
    (none by default)."""
    from train.checkpoint import FORMAT, VERSION, checkpoint_path, save_checkpoint
    from train.config import resolve_config
    from train.modeling import build_backbone, model_info

    updates = [{"model": model_overrides}] if model_overrides else []
    if window is not None:
        updates.append({"data": {"window": window}})
    if data:
        updates.append({"data": data})
    if run:
        updates.append({"run": run})
    config = resolve_config(preset=preset, updates=updates)
    run_dir = root / "run"
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    torch.manual_seed(seed)
    model = build_backbone(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
        for name, parameter in model.named_parameters():
            if name.endswith("alpha"):
                parameter.fill_(0.3)
    for which in checkpoints:
        save_checkpoint(checkpoint_path(run_dir, which), {
            "format": FORMAT, "version": VERSION, "kind": which,
            "model": model.state_dict(), "model_info": model_info(config), "objective": {},
            "config": config.to_dict(), "class_names": None, "epoch": 1, "best": None,
            "metrics": None, **({"skeletons": skeletons} if skeletons else {})})
    return run_dir
