"""A deterministic, resumable, process-aware index sampler.

The order of an epoch depends only on ``(seed, epoch)``. With several processes, global
batch ``s`` is ``order[s*B:(s+1)*B]`` and process ``r`` takes its ``r``-th slice of it, so
the samples that make up each global batch do not depend on the process count. Resuming
part-way through an epoch skips whole batches without touching the data.

With ``tag_epoch`` it yields ``(epoch, index)`` pairs, which ``SkeletonDataset`` accepts:
the epoch that seeds augmentation then reaches persistent DataLoader workers, whose copy
of the dataset never sees ``set_epoch``.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from torch.utils.data import Sampler


class EpochSampler(Sampler):
    def __init__(self, size: int, local_batch: int, *, shuffle: bool, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0, drop_last: bool = False,
                 tag_epoch: bool = False):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} out of range for {num_replicas} processes")
        self.size = size
        self.local_batch = local_batch
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.tag_epoch = tag_epoch
        self.epoch = 0
        self.skip_batches = 0
        global_batch = local_batch * num_replicas
        if drop_last:
            self.total = (size // global_batch) * global_batch
            if self.total == 0:
                raise ValueError(f"{size} samples do not fill one batch of {global_batch}; "
                                 "lower the batch size or set run.drop_last=false")
        elif num_replicas == 1:
            self.total = size
        else:
            # every process must see the same number of equally sized batches
            self.total = math.ceil(size / global_batch) * global_batch

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Choose the epoch's order; ``skip_batches`` resumes after that many batches."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def global_order(self) -> np.ndarray:
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        else:
            order = np.arange(self.size)
        if self.total > self.size:   # wrap around to fill the last batch of every process
            order = np.concatenate([order, order[:self.total - self.size]])
        return order[:self.total]

    def local_indices(self) -> np.ndarray:
        order = self.global_order()
        global_batch = self.local_batch * self.num_replicas
        chunks = []
        for start in range(0, self.total, global_batch):
            batch = order[start:start + global_batch]
            share = math.ceil(len(batch) / self.num_replicas)
            chunks.append(batch[self.rank * share:(self.rank + 1) * share])
        local = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
        return local[self.skip_batches * self.local_batch:]

    def num_batches(self) -> int:
        """Batches per epoch for this process, counted from the epoch's start."""
        per_process = self.total // self.num_replicas if self.num_replicas > 1 else self.total
        return math.ceil(per_process / self.local_batch)

    def __iter__(self) -> Iterator[int | tuple[int, int]]:
        if self.tag_epoch:
            return iter((self.epoch, int(i)) for i in self.local_indices())
        return iter(int(i) for i in self.local_indices())

    def __len__(self) -> int:
        return len(self.local_indices())
