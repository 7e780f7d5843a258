"""Run a backbone over a dataset and collect per-sample class scores (any process count)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from train.accelerators import autocast
from train.data.collate import collate_samples
from train.data.dataset import SkeletonDataset
from train.data.sampler import EpochSampler
from train.metrics import topk_accuracy


@dataclass
class Scores:
    ids: list[str]
    labels: np.ndarray       # (N,) int64
    scores: np.ndarray       # (N, K) float32, the backbone's logits

    def top(self, k: int) -> float:
        return topk_accuracy(self.scores, self.labels, k)


def eval_loader(dataset: SkeletonDataset, accelerator: Accelerator, *, batch_size: int,
                num_workers: int = 0, persistent: bool = False) -> DataLoader:
    """This process's share of ``dataset`` in order, ``batch_size`` (global) per step.

    ``persistent``: the worker processes (``num_workers > 0``) stay alive between passes,
    so a training run does not start them, and open the shards again, at every evaluated
    epoch; they hold their memory (a copy of the dataset's index and open shard files)
    for the whole run."""
    processes = accelerator.num_processes
    local_batch = max(1, math.ceil(batch_size / processes))
    sampler = EpochSampler(len(dataset), local_batch, shuffle=False,
                           num_replicas=processes, rank=accelerator.process_index)
    return DataLoader(dataset, batch_size=local_batch, sampler=sampler,
                      num_workers=num_workers, collate_fn=collate_samples,
                      generator=torch.Generator(),
                      pin_memory=accelerator.device.type == "cuda",
                      persistent_workers=persistent and num_workers > 0)


def score_dataset(backbone: nn.Module, dataset: SkeletonDataset, accelerator: Accelerator, *,
                  batch_size: int, num_workers: int = 0, progress: bool = False,
                  desc: str = "eval", precision: str = "no",
                  loader: DataLoader | None = None) -> Scores:
    """Logits of every sample once, in dataset order, gathered on every process.

    ``precision``: the mixed precision of the forward pass (``no``, ``bf16``, ``fp16``:
    the run's, see ``train.accelerators``). ``loader``: an ``eval_loader`` of ``dataset``
    to reuse (e.g. with persistent workers); else one is made for this pass."""
    if loader is None:
        loader = eval_loader(dataset, accelerator, batch_size=batch_size,
                             num_workers=num_workers)
    was_training = backbone.training
    backbone.eval()
    logits, indices = [], []
    # a bar beside the loader, not around it: tqdm.auto's wrapper calls iter() on what it
    # wraps, which would start (or reset) the loader's workers twice per pass
    bar = tqdm(total=len(loader), desc=desc, leave=False,
               disable=not (progress and accelerator.is_main_process))
    with torch.no_grad(), autocast(precision, accelerator.device):
        for batch in loader:
            x = batch["x"].to(accelerator.device, non_blocking=True)
            logits.append(backbone(x).float())
            indices.append(batch["index"].to(accelerator.device))
            bar.update(1)
    bar.close()
    backbone.train(was_training)
    all_logits = torch.cat(logits)
    all_indices = torch.cat(indices)
    if accelerator.num_processes > 1:
        all_logits = accelerator.gather(all_logits)
        all_indices = accelerator.gather(all_indices)
    index_array = all_indices.cpu().numpy()
    _, first = np.unique(index_array, return_index=True)   # drop the padding duplicates
    order = index_array[first]
    return Scores(ids=[dataset.ids[i] for i in order], labels=dataset.labels[order],
                  scores=all_logits.cpu().numpy()[first].astype(np.float32))
