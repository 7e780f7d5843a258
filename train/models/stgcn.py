"""ST-GCN (Yan, Xiong, Lin, AAAI 2018), written for this project.

The reference is the authors' code (yysijie/st-gcn, ``net/st_gcn.py``, later
open-mmlab/mmskeleton v0.x), whose published NTU checkpoints (``st_gcn.ntu-xsub.pt``,
``st_gcn.ntu-xview.pt``) take (N, C, T, V, M) input as this toolkit does. pyskl's ST-GCN is
a re-implementation with other names (``backbone.gcn.*``, a separate ``cls_head``) and is
not what this module imports.

Ten blocks (64, 64, 64, 64, 128/2, 128, 128, 256/2, 256, 256; "/2" = temporal stride 2),
each a spatial graph conv over the three subsets of the spatial-configuration partition
(``partitions.stgcn_spatial_partition``), then BN, ReLU, a 9 x 1 temporal conv, BN and
dropout, plus a residual. The graph ``A`` is a buffer; with edge-importance weighting each
block multiplies it by its own learnable mask (``edge_importance.i``, initialised to 1).
Data BN normalises each (joint, channel) over persons and frames (``V * C`` values, not
``M * V * C`` as in CTR-GCN). The classifier is a 1 x 1 conv (``fcn``).

Attribute names and ``nn.Sequential`` layouts follow the reference on purpose, so a
published checkpoint's state dict is exactly this model's (``A`` included).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from data_manifest.layouts import Layout
from train.models.common import check_input, check_options, global_pool
from train.models.partitions import stgcn_spatial_partition

BLOCK_SPECS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1), (64, 1), (64, 1),
    (128, 2), (128, 1), (128, 1),
    (256, 2), (256, 1), (256, 1),
)
FEATURE_DIM = BLOCK_SPECS[-1][0]
TEMPORAL_KERNEL = 9
OPTIONS = {"edge_importance": True}   # learnable per-block masks on the graph


class GraphConv(nn.Module):
    """One 1 x 1 conv to ``K * out`` channels, then a sum over the K adjacency subsets."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int):
        super().__init__()
        self.num_subsets = num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        n, kc, t, v = x.shape
        x = x.view(n, self.num_subsets, kc // self.num_subsets, t, v)
        return torch.einsum("nkctv,kvw->nctw", x, A).contiguous()


class STGCNBlock(nn.Module):
    """Graph conv, then ``tcn`` = BN, ReLU, temporal conv, BN, dropout; residual; ReLU."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int,
                 stride: int = 1, dropout: float = 0.0, residual: bool = True):
        super().__init__()
        self.gcn = GraphConv(in_channels, out_channels, num_subsets)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (TEMPORAL_KERNEL, 1), (stride, 1),
                      ((TEMPORAL_KERNEL - 1) // 2, 0)),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout, inplace=True),
        )
        self.use_residual = residual
        if residual and (in_channels != out_channels or stride != 1):
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels))
        else:
            self.residual = nn.Identity()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x, A))
        if self.use_residual:
            out = out + self.residual(x)
        return self.relu(out)


class STGCN(nn.Module):
    """Data BN over (V, C), ten ST-GCN blocks, global pooling, 1 x 1 conv classifier."""

    classifier_weight = "fcn.weight"   # for checkpoint diagnoses
    graph_keys = ("A", "edge_importance.*")

    def __init__(self, num_classes: int, adjacency: np.ndarray, num_persons: int = 2,
                 in_channels: int = 3, dropout: float = 0.0, edge_importance: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.num_joints = int(adjacency.shape[-1])
        self.num_persons = num_persons
        self.in_channels = in_channels
        self.feature_dim = FEATURE_DIM
        self.register_buffer("A", torch.from_numpy(adjacency.astype(np.float32)))
        num_subsets = int(adjacency.shape[0])
        self.data_bn = nn.BatchNorm1d(in_channels * self.num_joints)
        widths = [in_channels] + [width for width, _ in BLOCK_SPECS]
        # the reference drops out in every block but the first
        self.st_gcn_networks = nn.ModuleList(
            STGCNBlock(widths[i], widths[i + 1], num_subsets, stride,
                       dropout=dropout if i > 0 else 0.0, residual=i > 0)
            for i, (_, stride) in enumerate(BLOCK_SPECS))
        masks = [torch.ones(self.A.shape) for _ in BLOCK_SPECS] if edge_importance else []
        self.edge_importance = nn.ParameterList(nn.Parameter(mask) for mask in masks)
        self.use_edge_importance = edge_importance
        self.fcn = nn.Conv2d(FEATURE_DIM, num_classes, kernel_size=1)
        for module in self.modules():   # the reference trainer's weights_init
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, num_classes) and the global feature (N, 256) they are computed from."""
        check_input(x, self.in_channels, self.num_joints, self.num_persons)
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        if self.use_edge_importance:
            for block, importance in zip(self.st_gcn_networks, self.edge_importance):
                x = block(x, self.A * importance)
        else:
            for block in self.st_gcn_networks:
                x = block(x, self.A)
        feature = global_pool(x, self.num_persons)
        logits = self.fcn(feature[:, :, None, None]).flatten(1)
        return logits, feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def build(num_classes: int, layout: Layout, num_persons: int, in_channels: int,
          dropout: float, options: Mapping[str, Any] | None = None) -> STGCN:
    settings = check_options("stgcn", options, OPTIONS)
    if not isinstance(settings["edge_importance"], bool):
        raise ValueError("model.options.edge_importance must be true or false, not "
                         f"{settings['edge_importance']!r}")
    return STGCN(num_classes, stgcn_spatial_partition(layout), num_persons=num_persons,
                 in_channels=in_channels, dropout=dropout,
                 edge_importance=settings["edge_importance"])
