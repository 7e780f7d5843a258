"""Batching of sample dicts: tensors stacked, ids kept, ragged extras padded."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def collate_samples(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of sample dicts into one batch dict.

    - tensors / arrays of one shape: stacked along a new first axis;
    - tensors whose first axis differs (e.g. token-level features): zero-padded to the
      longest, with ``<name>_lengths`` (int64) giving each sample's length;
    - ints: an int64 tensor; strings (``id``): a list, in batch order.
    """
    if not items:
        raise ValueError("cannot collate an empty batch")
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        first = values[0]
        if isinstance(first, str):
            batch[key] = list(values)
        elif isinstance(first, (bool, int, np.integer)):
            batch[key] = torch.tensor([int(v) for v in values], dtype=torch.int64)
        elif isinstance(first, (float, np.floating)):
            batch[key] = torch.tensor([float(v) for v in values], dtype=torch.float32)
        else:
            tensors = [torch.as_tensor(v) for v in values]
            shapes = {tuple(t.shape) for t in tensors}
            if len(shapes) == 1:
                batch[key] = torch.stack(tensors)
            else:
                batch[key], batch[f"{key}_lengths"] = _pad(key, tensors)
    return batch


def _pad(key: str, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    trailing = {tuple(t.shape[1:]) for t in tensors}
    if len(trailing) != 1 or tensors[0].dim() == 0:
        raise ValueError(f"field {key!r}: samples differ in more than their first axis "
                         f"({sorted(tuple(t.shape) for t in tensors)})")
    lengths = torch.tensor([t.shape[0] for t in tensors], dtype=torch.int64)
    padded = tensors[0].new_zeros((len(tensors), int(lengths.max())) + tensors[0].shape[1:])
    for row, tensor in enumerate(tensors):
        padded[row, :tensor.shape[0]] = tensor
    return padded, lengths
