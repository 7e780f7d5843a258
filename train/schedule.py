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
    """The lr factor of a warm-up then step decay."""

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


class EpochScheduler(LambdaLR):
    """A ``LambdaLR`` whose saved state is its position only: the factor is always the one
    built from the config.

    ``LambdaLR``'s own state dict also holds the factor's fields and restores them over
    the config's, so a run resumed with a longer ``schedule.epochs`` kept annealing towards
    the old end. Loading sets the lr of the epoch in progress from the rebuilt factor.
    Checkpoints written with the saved fields load too (the fields are ignored).
    """

    def state_dict(self) -> dict:
        state = super().state_dict()
        state.pop("lr_lambdas", None)
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        # base_lrs come from the config (optim.lr cannot change on resume)
        self.__dict__.update({key: value for key, value in state_dict.items()
                              if key not in ("lr_lambdas", "base_lrs")})
        self._last_lr = [base * factor(self.last_epoch)
                         for factor, base in zip(self.lr_lambdas, self.base_lrs)]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: ScheduleConfig
                    ) -> EpochScheduler:
    """A per-epoch scheduler: call ``step()`` once at the end of every epoch."""
    if schedule.kind == "cosine":
        return EpochScheduler(optimizer, WarmupCosineFactor(
            schedule.warmup_epochs, schedule.epochs, schedule.min_lr_ratio))
    return EpochScheduler(optimizer, WarmupStepFactor(
        schedule.warmup_epochs, list(schedule.steps), schedule.gamma))
