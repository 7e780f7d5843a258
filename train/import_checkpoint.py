"""``train import``: published weights -> a run directory that eval, predict and export accept.

A reference ``.pt``/``.pth`` (a plain or ``module.``-prefixed state dict, or one inside a
``{"state_dict": ...}`` / ``{"model": ...}`` wrapper; read weights-only) or the reference
``.npz`` is checked key by key and shape by shape against the model of the given config
(preset + overrides) and written in the trainer's checkpoint format::

    RUN_DIR/config.yaml             the resolved config (written last: a failed import
                                    leaves no run behind)
    RUN_DIR/import.json             source file, its sha256, preset, tensor count
    RUN_DIR/checkpoints/last.pt     kind "imported": the weights, the config and the same
                                    ``imported`` record; no optimizer state, no epoch,
                                    no "best" (nothing was selected on any split)

An imported run cannot be resumed (it has no training state): fine-tune it with a new run
started from its weights (``train run NEW --init-from RUN_DIR/checkpoints/last.pt``).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_manifest.classes import class_names
from train import checkpoint as ckpt
from train.config import TrainConfig, absolute_paths
from train.errors import TrainError
from train.export import dataset_of
from train.files import sha256_of, write_text_atomic
from train.modeling import ModelBuilder, build_backbone, model_info
from train.models.reference_import import (CheckpointMismatchError, load_checked,
                                           read_state_dict)

log = logging.getLogger(__name__)


@dataclass
class ImportResult:
    run_dir: Path
    checkpoint: Path           # RUN_DIR/checkpoints/last.pt
    record: dict[str, Any]     # what import.json holds


def import_checkpoint(source: str | os.PathLike, run_dir: str | os.PathLike,
                      config: TrainConfig, model_builder: ModelBuilder | None = None
                      ) -> ImportResult:
    """Check ``source`` against ``config``'s model and write ``run_dir`` (see module doc)."""
    source, run_dir = Path(source).resolve(), Path(run_dir)
    if (run_dir / ckpt.CONFIG_FILE).exists():
        raise TrainError(f"{run_dir} already holds a run ({ckpt.CONFIG_FILE}); import into "
                         "a new run directory")
    config = absolute_paths(config)
    state = read_state_dict(source)
    model = (model_builder or build_backbone)(config)
    try:
        load_checked(model, state, source=str(source))
    except CheckpointMismatchError as error:
        m = config.model
        raise CheckpointMismatchError(
            f"{error}. The config ({_config_name(config)}) builds {m.name} for "
            f"{m.num_classes} classes, layout {m.layout}, {m.num_persons} persons: choose "
            "the preset the checkpoint was trained for (--preset), or change the model "
            "with --set model.num_classes=... (model.layout, model.num_persons)",
            missing=error.missing, unexpected=error.unexpected,
            mismatched=error.mismatched) from error
    record = {"source": str(source), "sha256": sha256_of(source), "preset": config.preset,
              "tensors": len(state)}
    names = class_names(dataset_of(config))
    payload = {"format": ckpt.FORMAT, "version": ckpt.VERSION, "kind": "imported",
               "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "model_info": model_info(config), "objective": {},
               "config": config.to_dict(),
               "class_names": list(names) if names and len(names) == config.model.num_classes
               else None,
               "epoch": None, "metrics": None, "best": None, "imported": record}
    path = ckpt.checkpoint_path(run_dir, "last")
    ckpt.save_checkpoint(path, payload)
    write_text_atomic(run_dir / ckpt.IMPORT_FILE, json.dumps(record, indent=2) + "\n")
    write_text_atomic(run_dir / ckpt.CONFIG_FILE, config.to_yaml())
    log.info("imported %s (%d tensors) into %s", source, len(state), run_dir)
    return ImportResult(run_dir=run_dir, checkpoint=path, record=record)


def _config_name(config: TrainConfig) -> str:
    return f"preset {config.preset}" if config.preset else "no preset"
