"""FAM, the feature alignment module: RGB feature -> GCN width, aligned contrastively.

An MLP (``in -> out -> out`` with a ReLU between, as the reference's 1000 -> 256 -> 256)
maps the temporal image's feature to the width of the GCN's global skeleton feature; the
symmetric contrastive loss then pulls each sample's two views together against the other
samples of the batch. With several processes the batch is the global one (``gather``):
both features are gathered from every process first, so the negatives and the loss do not
depend on how many GPUs share the batch.
"""

from __future__ import annotations

import torch
from torch import nn

from train.mmcl.contrastive import DEFAULT_TAU, gather_batch, symmetric_contrastive_loss


class FeatureAlignment(nn.Module):
    def __init__(self, in_features: int, out_features: int, tau: float = DEFAULT_TAU):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"FAM widths must be positive, got {in_features} -> "
                             f"{out_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.tau = tau
        self.mlp = nn.Sequential(
            nn.Linear(in_features, out_features),
            nn.ReLU(),
            nn.Linear(out_features, out_features),
        )

    def forward(self, skeleton_feature: torch.Tensor, rgb_feature: torch.Tensor,
                gather: bool = True) -> torch.Tensor:
        """Contrastive loss between (N, out) skeleton and (N, in) RGB features; with
        ``gather``, over the batches of all processes together (see ``gather_batch``)."""
        if rgb_feature.ndim != 2 or rgb_feature.shape[1] != self.in_features:
            raise ValueError(f"FAM expects RGB features of width {self.in_features}, got "
                             f"shape {tuple(rgb_feature.shape)}")
        if skeleton_feature.ndim != 2 or skeleton_feature.shape[1] != self.out_features:
            raise ValueError(f"FAM expects global skeleton features of width "
                             f"{self.out_features} (the GCN's last block), got shape "
                             f"{tuple(skeleton_feature.shape)}")
        projected = self.mlp(rgb_feature.to(self.mlp[0].weight.dtype))
        if gather:
            skeleton_feature, projected = gather_batch(skeleton_feature), gather_batch(projected)
        return symmetric_contrastive_loss(skeleton_feature, projected, self.tau)
