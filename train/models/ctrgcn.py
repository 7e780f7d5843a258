"""CTR-GCN backbone (Chen et al., ICCV 2021), written for this project.

Input (N, C, T, V, M): batch, coordinates, frames, joints, persons. Every person runs through
the same ten blocks; the last block's output is averaged over frames, joints and persons
into the global feature (width 256) that the classifier and MMCL's co-learning modules use.

A block = channel-wise topology refinement graph conv (``CTRGraphConv``) followed by a
multi-scale temporal conv (``MultiScaleTemporalConv``) and a residual connection.

Attribute names (``data_bn``, ``l1``..``l10``, ``gcn1``, ``tcn1``, ``convs``, ``PA``,
``branches``...) and the ``nn.Sequential`` layouts follow the published CTR-GCN code on
purpose: the state dict of this model has exactly the keys of a published checkpoint, so
importing one is a checked identity mapping (see ``reference_import.py``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from data_manifest.layouts import Layout
from train.models.common import (check_input, check_options, fold_persons, global_pool,
                                 init_bn, init_conv, persons_joints_channels,
                                 width_residual)
from train.models.graph import spatial_adjacency

# (output width, temporal stride) of blocks l1..l10.
BLOCK_SPECS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1), (64, 1), (64, 1),
    (128, 2), (128, 1), (128, 1),
    (256, 2), (256, 1), (256, 1),
)
FEATURE_DIM = BLOCK_SPECS[-1][0]
TEMPORAL_KERNEL = 5
TEMPORAL_DILATIONS = (1, 2)
REL_REDUCTION = 8   # CTR relation channels = input channels / 8 inside the network


class TemporalConvBN(nn.Module):
    """(k x 1) convolution over time, with stride and dilation, then batch norm."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, dilation: int = 1):
        super().__init__()
        padding = (kernel_size - 1) * dilation // 2   # keeps T (before stride)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1),
                              padding=(padding, 0), stride=(stride, 1),
                              dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def block_residual(in_channels: int, out_channels: int, stride: int = 1,
                   residual: bool = True) -> nn.Module:
    """A block's residual path: a strided 1x1 temporal conv + BN where the width or the
    frame rate changes, else the identity (also when ``residual`` is off: the block adds
    none)."""
    if residual and (in_channels != out_channels or stride != 1):
        path = TemporalConvBN(in_channels, out_channels, kernel_size=1, stride=stride)
        init_conv(path.conv)
        init_bn(path.bn, 1.0)
        return path
    return nn.Identity()


class MultiScaleTemporalConv(nn.Module):
    """Four parallel branches, each with a quarter of the output channels, concatenated.

    branches[0..1]: 1x1 conv, BN, ReLU, temporal conv (kernel 5, dilation 1 and 2) + BN;
    branches[2]:    1x1 conv, BN, ReLU, max-pool over 3 frames, BN;
    branches[3]:    strided 1x1 conv, BN.

    ``temporal_conv`` builds the dilated convolutions (HD-GCN's keeps its bias apart).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 temporal_conv: Callable[..., nn.Module] = TemporalConvBN):
        super().__init__()
        num_branches = len(TEMPORAL_DILATIONS) + 2
        if out_channels % num_branches:
            raise ValueError(f"out_channels {out_channels} must divide into "
                             f"{num_branches} branches")
        width = out_channels // num_branches

        def squeeze() -> list[nn.Module]:
            return [nn.Conv2d(in_channels, width, kernel_size=1), nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True)]

        branches = [nn.Sequential(*squeeze(), temporal_conv(width, width, TEMPORAL_KERNEL,
                                                            stride, dilation))
                    for dilation in TEMPORAL_DILATIONS]
        branches.append(nn.Sequential(
            *squeeze(),
            nn.MaxPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0)),
            nn.BatchNorm2d(width)))
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=1, stride=(stride, 1)),
            nn.BatchNorm2d(width)))
        self.branches = nn.ModuleList(branches)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class CTRGraphConvSubset(nn.Module):
    """Channel-wise topology refinement for one adjacency subset.

    conv1/conv2 embed the time-averaged input; tanh of their pairwise joint differences,
    lifted to the output channels by conv4 and scaled by ``alpha``, refines the shared
    topology ``A`` into one (V x V) topology per output channel, which aggregates conv3's
    features over joints.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        # Raw coordinates (3 or a few stacked modalities) are too narrow to reduce by 8.
        rel_channels = 8 if in_channels <= 16 else in_channels // REL_REDUCTION
        self.conv1 = nn.Conv2d(in_channels, rel_channels, kernel_size=1)
        self.conv2 = nn.Conv2d(in_channels, rel_channels, kernel_size=1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.conv4 = nn.Conv2d(rel_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor, A: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        query = self.conv1(x).mean(-2)                                # N, R, V
        key = self.conv2(x).mean(-2)                                  # N, R, V
        value = self.conv3(x)                                         # N, C, T, V
        relation = torch.tanh(query.unsqueeze(-1) - key.unsqueeze(-2))   # N, R, V, V
        topology = self.conv4(relation) * alpha + A[None, None]        # N, C, V, V
        # out[n, c, t, u] = sum_v topology[n, c, u, v] * value[n, c, t, v]
        return torch.einsum("ncuv,nctv->nctu", topology, value)


class CTRGraphConv(nn.Module):
    """Sum of the CTR convolutions over the adjacency subsets, BN, residual, ReLU.

    ``PA`` (the subsets, learnable) starts from the skeleton graph; ``alpha`` (shared by the
    subsets) starts at 0, so training begins from the plain graph convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray):
        super().__init__()
        self.convs = nn.ModuleList(CTRGraphConvSubset(in_channels, out_channels)
                                   for _ in range(adjacency.shape[0]))
        self.down = width_residual(in_channels, out_channels)
        self.PA = nn.Parameter(torch.from_numpy(adjacency.astype(np.float32)))
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
            elif isinstance(module, nn.BatchNorm2d):
                init_bn(module, 1.0)
        init_bn(self.bn, 1e-6)   # the block starts close to its residual path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(())
        for index, conv in enumerate(self.convs):
            out = out + conv(x, self.PA[index], self.alpha)
        return self.relu(self.bn(out) + self.down(x))


class CTRGCNBlock(nn.Module):
    """Graph conv, multi-scale temporal conv, block residual (strided 1x1 conv when needed).

    ``graph_conv`` is the block's graph convolution, built by the caller (CTR-GCN's
    ``CTRGraphConv``; HD-GCN passes its own), ``temporal_conv`` builds the dilated
    convolutions of the temporal conv (HD-GCN's keep their bias apart).
    """

    def __init__(self, graph_conv: nn.Module, in_channels: int, out_channels: int,
                 stride: int = 1, residual: bool = True,
                 temporal_conv: Callable[..., nn.Module] = TemporalConvBN):
        super().__init__()
        self.gcn1 = graph_conv
        self.tcn1 = MultiScaleTemporalConv(out_channels, out_channels, stride=stride,
                                           temporal_conv=temporal_conv)
        self.relu = nn.ReLU(inplace=True)
        self.use_residual = residual
        self.residual = block_residual(in_channels, out_channels, stride, residual)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn1(self.gcn1(x))
        if self.use_residual:
            out = out + self.residual(x)
        return self.relu(out)


# builds block ``index`` (0-based) of the ten: (index, in width, out width, stride)
BlockBuilder = Callable[[int, int, int, int], nn.Module]


class CTRGCN(nn.Module):
    """The full network: data BN over (M, V, C), ten blocks, global pooling, classifier.

    ``block`` builds the blocks (default: CTR-GCN's, on the spatial ``adjacency``); HD-GCN
    is this network with blocks of its own graph conv (``train.models.hdgcn``).
    """

    def __init__(self, num_classes: int, adjacency: np.ndarray, num_persons: int = 2,
                 in_channels: int = 3, dropout: float = 0.0,
                 block: BlockBuilder | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.num_joints = int(adjacency.shape[-1])
        self.num_persons = num_persons
        self.in_channels = in_channels
        self.feature_dim = FEATURE_DIM
        self.data_bn = nn.BatchNorm1d(num_persons * self.num_joints * in_channels)

        def ctrgcn_block(index: int, cin: int, cout: int, stride: int) -> nn.Module:
            return CTRGCNBlock(CTRGraphConv(cin, cout, adjacency), cin, cout, stride=stride,
                               residual=index > 0)   # no residual from the raw input

        widths = [in_channels] + [width for width, _ in BLOCK_SPECS]
        blocks = [(block or ctrgcn_block)(i, widths[i], widths[i + 1], stride)
                  for i, (_, stride) in enumerate(BLOCK_SPECS)]
        # Named l1..l10 (not a ModuleList) to keep the published state-dict keys.
        (self.l1, self.l2, self.l3, self.l4, self.l5,
         self.l6, self.l7, self.l8, self.l9, self.l10) = blocks

        self.drop_out = nn.Dropout(dropout)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / num_classes))
        init_bn(self.data_bn, 1.0)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, num_classes) and the global feature (N, 256) they are computed from."""
        check_input(x, self.in_channels, self.num_joints, self.num_persons)
        x = self.data_bn(persons_joints_channels(x))
        x = fold_persons(x, self.num_persons, self.num_joints)
        x = self.l1(x)
        x = self.l2(x)
        x = self.l3(x)
        x = self.l4(x)
        x = self.l5(x)
        x = self.l6(x)
        x = self.l7(x)
        x = self.l8(x)
        x = self.l9(x)
        x = self.l10(x)
        feature = global_pool(x, self.num_persons)
        logits = self.fc(self.drop_out(feature))
        return logits, feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def build(num_classes: int, layout: Layout, num_persons: int, in_channels: int,
          dropout: float, options: Mapping[str, Any] | None = None) -> CTRGCN:
    check_options("ctrgcn", options, {})
    return CTRGCN(num_classes, spatial_adjacency(layout), num_persons=num_persons,
                  in_channels=in_channels, dropout=dropout)
