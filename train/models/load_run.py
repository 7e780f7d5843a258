"""Open a finished (or running) run directory for inference: config + backbone weights.

A run directory holds ``config.yaml`` (the resolved config) and ``checkpoints/best.pt`` /
``checkpoints/last.pt`` (see ``train.checkpoint``) whose ``"model"`` entry is the backbone's
state dict. Checkpoints are chosen by ``train.checkpoint.resolve_checkpoint``, read with
``torch.load(weights_only=True)`` and checked key by key before loading.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from train.checkpoint import (CONFIG_FILE, TEST_SELECTED_WARNING, load_checkpoint,
                              resolve_checkpoint, selected_on)
from train.config import TrainConfig, load_yaml
from train.errors import CheckpointError, ConfigError
from train.modeling import build_backbone, model_info
from train.models.reference_import import load_checked, unwrap_state_dict

log = logging.getLogger(__name__)

# model_info entries that decide the weights' names and shapes (dropout does not), with
# the value meant when a checkpoint from before the entry existed lacks it
WEIGHT_SHAPING = {"name": None, "num_classes": None, "layout": None, "num_persons": None,
                  "in_channels": None, "options": {}}


@dataclass
class LoadedRun:
    model: nn.Module          # in eval mode
    config: TrainConfig
    checkpoint: Path
    class_names: list[str] | None   # as the trainer recorded them, if it did
    skeletons: dict | None = None   # the params of the skeleton cache it trained on


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The resolved config a run directory recorded."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory: {CONFIG_FILE} is missing")
    try:
        return TrainConfig.from_dict(load_yaml(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def checkpoint_config(payload: dict, run_dir: str | Path, path: Path) -> TrainConfig:
    """The config a checkpoint was trained with: its ``config`` entry, else the run's
    ``config.yaml`` (e.g. a checkpoint file written by other tools into the run)."""
    recorded = payload.get("config")
    if recorded is None:
        if not (Path(run_dir) / CONFIG_FILE).is_file():
            raise CheckpointError(f"{path} holds no 'config' entry and {run_dir} has no "
                                  f"{CONFIG_FILE} to fall back on: the run's settings are "
                                  "unknown; evaluate it from its own run directory")
        log.info("%s has no config entry; using %s", path, Path(run_dir) / CONFIG_FILE)
        return read_run_config(run_dir)
    if not isinstance(recorded, dict):
        raise CheckpointError(f"{path}: its 'config' entry is a {type(recorded).__name__}, "
                              "not a mapping")
    try:
        return TrainConfig.from_dict(recorded)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its 'config' entry is not a valid config "
                              f"({error})") from error


def checkpoint_weights(payload: dict, path: Path) -> dict:
    """The backbone state dict of a trainer checkpoint, or a clear error naming the file."""
    if payload.get("model") is None:
        raise CheckpointError(f"{path} holds no 'model' entry (the backbone weights)")
    return unwrap_state_dict({"model": payload["model"]}, str(path))


def load_run(run_dir: str | Path, checkpoint: str | Path = "auto",
             impl: str | None = None) -> LoadedRun:
    """The run's backbone with the chosen checkpoint's weights, in eval mode; ``impl``
    overrides the run's ``model.impl`` (the weights load into either)."""
    config = read_run_config(run_dir)
    if impl is not None:
        config = copy.deepcopy(config)
        config.model.impl = impl
    path = resolve_checkpoint(run_dir, checkpoint)
    payload = load_checkpoint(path)
    if checkpoint == "best" and payload.get("kind") == "best" and selected_on(payload) == "test":
        log.warning("%s", TEST_SELECTED_WARNING.format(path=path))
    recorded = payload.get("model_info")
    expected = {key: value for key, value in model_info(config).items()
                if key in WEIGHT_SHAPING}
    if isinstance(recorded, dict):
        recorded = {key: recorded.get(key, WEIGHT_SHAPING[key]) for key in expected}
    if isinstance(recorded, dict) and recorded != expected:
        differences = ", ".join(f"{key}: {recorded[key]!r} in the checkpoint, "
                                f"{value!r} in {CONFIG_FILE}"
                                for key, value in expected.items() if recorded[key] != value)
        raise CheckpointError(f"{path} was not made by this run's model ({differences})")
    model = build_backbone(config)
    load_checked(model, checkpoint_weights(payload, path), source=str(path))
    names = payload.get("class_names")
    if not (isinstance(names, list) and len(names) == config.model.num_classes):
        names = None
    skeletons = payload.get("skeletons")
    return LoadedRun(model=model.eval(), config=config, checkpoint=path, class_names=names,
                     skeletons=skeletons if isinstance(skeletons, dict) else None)
