"""Skeleton backbones. ``build_model`` is the one entry point the trainer uses.

Every model takes (N, C, T, V, M) and has ``forward(x) -> logits`` and
``forward_features(x) -> (logits, global_feature)``; MMCL's co-learning modules use both.
"""

from __future__ import annotations

from torch import nn

from train.models.ctrgcn import CTRGCN
from train.models.graph import layout_by_name_or_joints, spatial_adjacency

MODEL_NAMES = ("ctrgcn",)


def build_model(name: str = "ctrgcn", *, num_classes: int, layout: str | None = None,
                num_joints: int | None = None, num_persons: int = 2, in_channels: int = 3,
                dropout: float = 0.0) -> nn.Module:
    """A freshly initialised backbone for a skeleton ``layout`` (or its joint count)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    if num_classes < 1 or num_persons < 1 or in_channels < 1:
        raise ValueError("num_classes, num_persons and in_channels must be positive, got "
                         f"{num_classes}, {num_persons}, {in_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    adjacency = spatial_adjacency(layout_by_name_or_joints(layout, num_joints))
    return CTRGCN(num_classes, adjacency, num_persons=num_persons, in_channels=in_channels,
                  dropout=dropout)


__all__ = ["MODEL_NAMES", "build_model"]
