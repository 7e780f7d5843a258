"""Checkpoint files of a run, and loading them safely.

Layout of a run directory::

    RUN_DIR/config.yaml              the resolved config (resuming reads it back)
    RUN_DIR/metrics.jsonl            one line per epoch
    RUN_DIR/data.json                samples per split part, samples left out and why
    RUN_DIR/init.json                what ``model.init_from`` loaded and left fresh (if set)
    RUN_DIR/checkpoints/last.pt      full training state, rewritten every epoch (and every
                                     ``run.checkpoint_every_steps`` steps)
    RUN_DIR/checkpoints/best.pt      weights of the best epoch so far (no optimizer state)
    RUN_DIR/checkpoints/rng-rank<r>.pt   RNG states of process r > 0 (multi-process runs)

Both ``.pt`` files are ``torch.save`` dicts of plain types and tensors only, so they load
with ``torch.load(path, map_location="cpu", weights_only=True)``. Keys:

``format`` (``"mmcl-train-checkpoint"``), ``version`` (1), ``kind`` (``"last"``/``"best"``)
``model``        backbone ``state_dict`` (no ``module.`` prefix), what export/predict load
``model_info``   ``train.models.build_model`` arguments: name, num_classes, layout,
                 num_persons, in_channels, dropout
``objective``    state dict of the training objective's own parameters (may be empty)
``config``       the resolved config as a dict (``TrainConfig.from_dict`` reads it)
``class_names``  list of class names, or None
``epoch``        completed epochs when it was written
``metrics``      the metrics line of that epoch (best) or the last one (last), or None
``best``         ``{"metric", "value", "epoch"}`` so far, or None
``last`` only:   ``optimizer``, ``scheduler``, ``scaler`` (state dicts or None),
                 ``position`` ``{"epoch", "step_in_epoch", "global_step", "totals"}``
                 (resume point: completed epochs and steps into the next one),
                 ``rng`` ``{"torch", "cuda", "numpy", "python"}`` of process 0.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from train.errors import CheckpointError

FORMAT = "mmcl-train-checkpoint"
VERSION = 1
CHECKPOINT_DIR = "checkpoints"


def checkpoint_path(run_dir: str | os.PathLike, kind: str = "last") -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"{kind}.pt"


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(dict(payload), tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a trainer checkpoint on the CPU, or raise ``CheckpointError`` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # torch raises many types for truncated/foreign files
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__}: "
                              f"{str(error).splitlines()[0] if str(error) else ''}); it may "
                              "be truncated or not a trainer checkpoint") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a trainer checkpoint (no format {FORMAT!r}); "
                              "import published weights with the reference importer instead")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, "
                              f"this trainer reads version {VERSION}")
    return payload


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """Load a state dict only if keys and shapes match exactly, naming any mismatch."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
             if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shape mismatch (checkpoint vs model): {', '.join(wrong[:8])}")
        if missing:
            parts.append(f"missing in checkpoint: {', '.join(missing[:8])}")
        if unexpected:
            parts.append(f"not in the model: {', '.join(unexpected[:8])}")
        raise CheckpointError(f"the {what} does not fit the model ({'; '.join(parts)}); was "
                              "it trained with another model or class count?")
    module.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- RNG


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain types (loadable with weights_only)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": _to_lists(random.getstate()),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
