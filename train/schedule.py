"""The learning-rate schedule: linear warm-up, then step decay or cosine annealing,
changed once per epoch.

For epoch ``e`` (0-based) the factor on the base lr is ``(e + 1) / warmup_epochs`` while
``e < warmup_epochs``, then
- ``step`` (CTR-GCN's): ``gamma ** (number of steps <= e)``;
- ``cosine`` (HD-GCN's): ``r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``r = min_lr_ratio``
  and ``p = (e - warmup) / (epochs - warmup)``, the progress through the epochs after the
  warm-up (held at 1 past the end). HD-GCN anneals per iteration; here the same curve is
  taken at the start of each epoch, so it never depends on the steps per epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.optim.lr_scheduler import LambdaLR

from train.config import ScheduleConfig


@dataclass
class WarmupStepFactor:
    """The lr factor; LambdaLR saves its fields (plain numbers) in its state dict."""

    warmup_epochs: int
    steps: list[int] = field(default_factory=list)
    gamma: float = 0.1

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        return self.gamma ** sum(1 for step in self.steps if epoch >= step)


@dataclass
class WarmupCosineFactor:
    warmup_epochs: int
    epochs: int
    min_ratio: float = 0.001

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        progress = min(1.0, (epoch - self.warmup_epochs)
                       / max(1, self.epochs - self.warmup_epochs))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig) -> LambdaLR:
    """A per-epoch scheduler: call ``step()`` once at the end of every epoch."""
    if schedule.kind == "cosine":
        return LambdaLR(optimizer, WarmupCosineFactor(schedule.warmup_epochs, schedule.epochs,
                                                      schedule.min_lr_ratio))
    return LambdaLR(optimizer, WarmupStepFactor(schedule.warmup_epochs, list(schedule.steps),
                                                schedule.gamma))
