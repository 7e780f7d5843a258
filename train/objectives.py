"""Training objectives: what one step computes from a batch and the backbone.

An objective is an ``nn.Module`` called as ``objective(batch, model)``; it returns the
backbone's logits and a dict of named losses, already weighted: the loop sums them for
``backward`` and logs each by name. Parameters the objective owns (e.g. projection heads of
co-learning losses) train together with the backbone and are saved under ``"objective"``
in checkpoints; inference never needs them.

Objectives are found by name (``objective.name`` in the config) through ``OBJECTIVES``,
``"module:function"`` entries imported only when used. A builder gets the run's config
and returns an ``ObjectivePlan``: the objective, plus any extra per-sample sources the
Dataset must join by sample id (``batch[name]`` in each step), e.g. cached features.
Builders check ``objective.options`` themselves and reject unknown keys.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from train.config import TrainConfig
from train.data.dataset import SampleSource
from train.errors import ConfigError

# objective name -> "module:builder"; builder(config) -> ObjectivePlan
OBJECTIVES: dict[str, str] = {
    "classification": "train.objectives:build_classification",
    "mmcl": "train.mmcl.objective:build_mmcl",
    "infogcn": "train.objective_infogcn:build_infogcn",
}


@dataclass
class StepOutput:
    losses: dict[str, torch.Tensor]    # weighted; summed for backward
    logits: torch.Tensor               # (N, num_classes) of the backbone, for accuracy


@dataclass
class ObjectivePlan:
    objective: nn.Module
    extras: dict[str, SampleSource] = field(default_factory=dict)
    skip_missing: bool = False         # drop samples missing from an extra source
    # what the objective read besides the skeletons (e.g. the feature caches and their
    # specs), plain data recorded in checkpoints as "objective_inputs"
    inputs: dict[str, Any] = field(default_factory=dict)


class ClassificationObjective(nn.Module):
    """Cross-entropy on the backbone's logits (the baseline)."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, batch: dict[str, Any], model: nn.Module) -> StepOutput:
        logits = model(batch["x"])
        loss = F.cross_entropy(logits.float(), batch["label"],
                               label_smoothing=self.label_smoothing)
        return StepOutput(losses={"cls": loss}, logits=logits)


def check_options(name: str, options: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """``known`` defaults updated by ``options``; an unknown option is a ConfigError."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"objective {name!r} has no option {unknown[0]!r} "
                          f"(known: {', '.join(sorted(known)) or 'none'})")
    return {**known, **options}


def build_classification(config: TrainConfig) -> ObjectivePlan:
    options = check_options("classification", config.objective.options,
                            {"label_smoothing": 0.0})
    smoothing = options["label_smoothing"]
    if not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise ConfigError(f"objective.options.label_smoothing must be in [0, 1), "
                          f"not {smoothing!r}")
    return ObjectivePlan(ClassificationObjective(float(smoothing)))


def build_objective(config: TrainConfig) -> ObjectivePlan:
    name = config.objective.name
    target = OBJECTIVES.get(name)
    if target is None:
        raise ConfigError(f"unknown objective {name!r}; known: {', '.join(sorted(OBJECTIVES))}")
    module_name, attribute = target.split(":")
    builder: Callable[[TrainConfig], ObjectivePlan] = getattr(
        importlib.import_module(module_name), attribute)
    return builder(config)


class TrainingModule(nn.Module):
    """Backbone and objective as one module, so one DDP wrapper syncs both."""

    def __init__(self, backbone: nn.Module, objective: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.objective = objective

    def forward(self, batch: dict[str, Any]) -> StepOutput:
        return self.objective(batch, self.backbone)
