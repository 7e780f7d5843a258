"""Build the backbone a config describes (the one place the trainer calls the model zoo)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from train.config import TrainConfig
from train.errors import ConfigError
from train.models.registry import effective_impl

ModelBuilder = Callable[[TrainConfig], nn.Module]


def model_info(config: TrainConfig) -> dict[str, Any]:
    """The arguments of ``train.models.build_model`` for this config (saved in checkpoints
    and model.json); ``impl`` is the implementation that runs (``reference`` for backbones
    without a fast path, whatever ``model.impl`` asks)."""
    m = config.model
    return {"name": m.name, "num_classes": m.num_classes, "layout": m.layout,
            "num_persons": m.num_persons, "in_channels": m.in_channels, "dropout": m.dropout,
            "options": dict(m.options), "impl": effective_impl(m.name, m.impl)}


def build_backbone(config: TrainConfig, impl: str | None = None) -> nn.Module:
    """The config's backbone; ``impl`` overrides ``model.impl`` (e.g. ``"reference"`` for
    TorchScript export, which scripts the eager model)."""
    from train.models import build_model
    info = model_info(config)
    if impl is not None:
        info["impl"] = impl
    name = info.pop("name")
    try:
        return build_model(name, **info)
    except ValueError as error:
        raise ConfigError(f"model: {error}") from error


def backbone_outline(config: TrainConfig) -> nn.Module:
    """The config's backbone built on the meta device (no memory, no initialisation), to
    read attributes such as ``feature_dim`` before the real one exists."""
    with torch.device("meta"):
        return build_backbone(config)
