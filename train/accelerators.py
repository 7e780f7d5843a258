"""The Accelerator of a training run, the one scoring shares, and mixed precision.

accelerate keeps one state per process and refuses an ``Accelerator`` of another mixed
precision once one exists. Training makes one per process with the run's precision
(``make_accelerator``). Scoring (``train eval``, ``train ensemble RUN...``, transfer
evaluation) may score runs trained in different precisions one after the other, so it
joins whatever state the process has (``scoring_accelerator``: devices and processes only)
and applies each run's precision itself with ``autocast`` around the forward pass, as
accelerate's own ``Accelerator.autocast`` would.
"""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
from accelerate import Accelerator, DistributedDataParallelKwargs

from train.config import TrainConfig
from train.errors import ConfigError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(setting: str) -> str:
    """``run.mixed_precision`` as it runs here: ``no``, ``bf16`` or ``fp16``."""
    if setting == "auto":
        if torch.cuda.is_available():
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "no"
    if setting == "fp16" and not torch.cuda.is_available():
        # accelerate would quietly train in fp32 instead
        raise ConfigError("run.mixed_precision=fp16 needs a GPU; on the CPU use bf16 or no")
    return setting


def make_accelerator(config: TrainConfig, trackers: list | None = None) -> Accelerator:
    """The run's Accelerator; ``trackers`` (``train.tracking``) go to ``log_with``."""
    handlers = [DistributedDataParallelKwargs(
        find_unused_parameters=config.run.find_unused_parameters)]
    # cpu=True on CPU-only machines lets `accelerate launch`/`torchrun` run several CPU
    # processes (gloo); otherwise accelerate treats them as independent single runs.
    return Accelerator(mixed_precision=resolve_precision(config.run.mixed_precision),
                       kwargs_handlers=handlers, cpu=not torch.cuda.is_available(),
                       log_with=trackers or None)


def scoring_accelerator() -> Accelerator:
    """An Accelerator for scoring: the process's devices and processes, whatever mixed
    precision its state already has (scoring applies each run's own, see ``autocast``)."""
    return Accelerator(cpu=not torch.cuda.is_available())


def autocast(precision: str, device: torch.device) -> ContextManager:
    """Mixed precision ``precision`` (``no``, ``bf16``, ``fp16``) for a forward pass."""
    if precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
