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


def score_dataset(backbone: nn.Module, dataset: SkeletonDataset, accelerator: Accelerator, *,
                  batch_size: int, num_workers: int = 0, progress: bool = False,
                  desc: str = "eval") -> Scores:
    """Logits of every sample once, in dataset order, gathered on every process."""
    processes = accelerator.num_processes
    local_batch = max(1, math.ceil(batch_size / processes))
    sampler = EpochSampler(len(dataset), local_batch, shuffle=False,
                           num_replicas=processes, rank=accelerator.process_index)
    loader = DataLoader(dataset, batch_size=local_batch, sampler=sampler,
                        num_workers=num_workers, collate_fn=collate_samples,
                        generator=torch.Generator(),
                        pin_memory=accelerator.device.type == "cuda")
    was_training = backbone.training
    backbone.eval()
    logits, indices = [], []
    bar = tqdm(loader, desc=desc, leave=False,
               disable=not (progress and accelerator.is_main_process))
    with torch.no_grad(), accelerator.autocast():
        for batch in bar:
            x = batch["x"].to(accelerator.device, non_blocking=True)
            logits.append(backbone(x).float())
            indices.append(batch["index"].to(accelerator.device))
    backbone.train(was_training)
    all_logits = torch.cat(logits)
    all_indices = torch.cat(indices)
    if processes > 1:
        all_logits = accelerator.gather(all_logits)
        all_indices = accelerator.gather(all_indices)
    index_array = all_indices.cpu().numpy()
    _, first = np.unique(index_array, return_index=True)   # drop the padding duplicates
    order = index_array[first]
    return Scores(ids=[dataset.ids[i] for i in order], labels=dataset.labels[order],
                  scores=all_logits.cpu().numpy()[first].astype(np.float32))
