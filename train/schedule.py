"""The learning-rate schedule: linear warm-up, then step decay, changed once per epoch.

For epoch ``e`` (0-based) the factor on the base lr is ``(e + 1) / warmup_epochs`` while
``e < warmup_epochs``, then ``gamma ** (number of steps <= e)`` -- CTR-GCN's schedule.
"""

from __future__ import annotations

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


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig) -> LambdaLR:
    """A per-epoch scheduler: call ``step()`` once at the end of every epoch."""
    return LambdaLR(optimizer, WarmupStepFactor(schedule.warmup_epochs, list(schedule.steps),
                                                schedule.gamma))
