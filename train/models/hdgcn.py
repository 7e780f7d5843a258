"""HD-GCN (Lee, Lee, Lee, Lee, ICCV 2023), written for this project.

The reference is the authors' code (jho-lee/HD-GCN, ``model/HDGCN.py`` with the
hierarchical graph of ``graph/ntu_rgb_d_hierarchy.py``); its published NTU60/NTU120
checkpoints import as an identity mapping of names.

CTR-GCN's skeleton (data BN over (M, V, C), ten blocks 64-64-64-64-128/2-128-128-256/2-
256-256, multi-scale temporal convs, global pooling, linear classifier) with another graph
conv, ``HDGraphConv``: for each of the ``L`` level pairs of the hierarchy
(``train.models.hierarchy``) the input is squeezed to a quarter of the output width, sent
through the three subsets of that pair's graph (``PA``, learnable, (L, 3, V, V)) and an
EdgeConv over each joint's 5 nearest joints in feature space, and the four results are
concatenated. The L results are summed (block 1) or weighted by the attention-guided
hierarchy aggregation (A-HA: one sigmoid weight per level and channel, from an EdgeConv
over the levels' mean features).

Attribute names, ``nn.Sequential``/``ModuleList`` layouts and the temporal convs' separate
``bias`` parameters follow the reference on purpose.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from data_manifest.layouts import Layout
from train.models.common import check_options, init_bn, init_conv, width_residual
from train.models.ctrgcn import CTRGCN, CTRGCNBlock
from train.models.hierarchy import hierarchy_graph, hierarchy_groups

EDGE_NEIGHBOURS = 5        # EdgeConv in every graph conv: k nearest joints
LEVEL_NEIGHBOURS = 3       # EdgeConv over the levels in A-HA
OPTIONS: dict[str, Any] = {"com": None,      # centre-of-mass joint (1-based); None: centre
                           "groups": None}   # explicit hierarchy (1-based joint groups)


class TemporalConvSplitBias(nn.Module):
    """Temporal conv without a conv bias, plus a ``bias`` parameter (1, C, 1, 1), then BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, dilation: int = 1):
        super().__init__()
        padding = (kernel_size - 1) * dilation // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1),
                              padding=(padding, 0), stride=(stride, 1),
                              dilation=(dilation, 1), bias=False)
        self.bias = nn.Parameter(torch.zeros(1, out_channels, 1, 1))
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x) + self.bias)


class EdgeConv(nn.Module):
    """For each point, max over its k nearest points (in feature space, itself included)
    of ``LeakyReLU(BN(W [x_neighbour - x_point, x_point]))``."""

    def __init__(self, in_channels: int, out_channels: int, k: int):
        super().__init__()
        self.k = k
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels * 2, out_channels, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(negative_slope=0.2, inplace=True))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
            elif isinstance(module, nn.BatchNorm2d):
                init_bn(module, 1.0)

    def forward_points(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, P) points -> (N, out, P)."""
        n, c, points = x.shape
        inner = -2 * torch.matmul(x.transpose(2, 1), x)
        squares = torch.sum(x ** 2, dim=1, keepdim=True)
        negative_distance = -squares - inner - squares.transpose(2, 1)   # (N, P, P)
        nearest = negative_distance.topk(k=self.k, dim=-1)[1]           # (N, P, k)
        by_point = x.transpose(1, 2)                                     # (N, P, C)
        index = nearest.reshape(n, points * self.k, 1).expand(-1, -1, c)
        neighbours = torch.gather(by_point, 1, index).view(n, points, self.k, c)
        centre = by_point.unsqueeze(2).expand(-1, -1, self.k, -1)
        feature = torch.cat((neighbours - centre, centre), dim=3).permute(0, 3, 1, 2)
        return self.conv(feature).max(dim=-1)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V): the points are the joints, with features averaged over frames."""
        frames = x.shape[2]
        out = self.forward_points(x.mean(dim=2))
        return out.unsqueeze(2).expand(-1, -1, frames, -1)


class AHA(nn.Module):
    """Attention-guided hierarchy aggregation: (N, C, L, T, V) -> (N, C, T, V)."""

    def __init__(self, channels: int, groups: Sequence[Sequence[int]], num_joints: int):
        super().__init__()
        inner = channels // 4
        levels = len(groups) - 1
        # level i is represented by the mean of its two groups' joints
        membership = np.zeros((levels, num_joints), dtype=np.float32)
        for level in range(levels):
            joints = [*groups[level], *groups[level + 1]]
            membership[level, joints] = 1.0 / len(joints)
        self.register_buffer("membership", torch.from_numpy(membership), persistent=False)
        self.conv_down = nn.Sequential(nn.Conv2d(channels, inner, kernel_size=1),
                                       nn.BatchNorm2d(inner), nn.ReLU(inplace=True))
        self.edge_conv = EdgeConv(inner, inner, k=LEVEL_NEIGHBOURS)
        self.aggregate = nn.Conv1d(inner, channels, kernel_size=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary = self.conv_down(x.max(dim=-2)[0])                        # N, C/4, L, V
        levels = torch.einsum("nclv,lv->ncl", summary, self.membership)   # N, C/4, L
        attention = self.aggregate(self.edge_conv.forward_points(levels))
        return (x * self.sigmoid(attention)[:, :, :, None, None]).sum(dim=2)


class HDGraphConv(nn.Module):
    """Graph conv over the hierarchy: per level pair, three subsets plus an EdgeConv."""

    def __init__(self, in_channels: int, out_channels: int, adjacency: np.ndarray,
                 groups: Sequence[Sequence[int]], attention: bool):
        super().__init__()
        num_levels, self.num_subsets = int(adjacency.shape[0]), int(adjacency.shape[1])
        inner = out_channels // (self.num_subsets + 1)
        self.PA = nn.Parameter(torch.from_numpy(adjacency.astype(np.float32)))
        self.conv_down = nn.ModuleList()
        self.conv = nn.ModuleList()
        for _ in range(num_levels):
            self.conv_down.append(nn.Sequential(nn.Conv2d(in_channels, inner, kernel_size=1),
                                                nn.BatchNorm2d(inner),
                                                nn.ReLU(inplace=True)))
            per_subset = [nn.Sequential(nn.Conv2d(inner, inner, kernel_size=1),
                                        nn.BatchNorm2d(inner))
                          for _ in range(self.num_subsets)]
            self.conv.append(nn.ModuleList([*per_subset,
                                            EdgeConv(inner, inner, k=EDGE_NEIGHBOURS)]))
        self.attention = attention
        self.aha = AHA(out_channels, groups, int(adjacency.shape[-1])) if attention \
            else nn.Identity()
        self.down = width_residual(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
            elif isinstance(module, nn.BatchNorm2d):
                init_bn(module, 1.0)
        init_bn(self.bn, 1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = []
        for level, (squeeze, convs) in enumerate(zip(self.conv_down, self.conv)):
            squeezed = squeeze(x)
            parts = []
            for subset, conv in enumerate(convs):
                if subset < self.num_subsets:
                    # out[.., v] = sum_u PA[level, subset, v, u] * squeezed[.., u]
                    spread = torch.einsum("nctu,vu->nctv", squeezed, self.PA[level, subset])
                    parts.append(conv(spread))
                else:
                    parts.append(conv(squeezed))
            levels.append(torch.cat(parts, dim=1))
        stacked = torch.stack(levels, dim=2)                              # N, C, L, T, V
        out = self.aha(stacked) if self.attention else stacked.sum(dim=2)
        return self.relu(self.bn(out) + self.down(x))


class HDGCN(CTRGCN):
    """CTR-GCN's network (data BN over (M, V, C), ten blocks, pooling, classifier) with
    HD-GCN's blocks: the hierarchical graph conv (A-HA from block 2) and temporal convs
    whose bias is a parameter of its own."""

    def __init__(self, num_classes: int, groups: Sequence[Sequence[int]], num_joints: int,
                 num_persons: int = 2, in_channels: int = 3, dropout: float = 0.0):
        adjacency = hierarchy_graph(groups, num_joints)

        def hdgcn_block(index: int, cin: int, cout: int, stride: int) -> nn.Module:
            return CTRGCNBlock(HDGraphConv(cin, cout, adjacency, groups, attention=index > 0),
                               cin, cout, stride=stride, residual=index > 0,
                               temporal_conv=TemporalConvSplitBias)

        super().__init__(num_classes, adjacency, num_persons=num_persons,
                         in_channels=in_channels, dropout=dropout, block=hdgcn_block)
        self.groups = [list(group) for group in groups]   # 0-based, for inspection


def build(num_classes: int, layout: Layout, num_persons: int, in_channels: int,
          dropout: float, options: Mapping[str, Any] | None = None) -> HDGCN:
    settings = check_options("hdgcn", options, OPTIONS)
    com, groups = settings["com"], settings["groups"]
    if com is not None and (isinstance(com, bool) or not isinstance(com, int)):
        raise ValueError(f"model.options.com must be a joint number (1-based), not {com!r}")
    if groups is not None and not (isinstance(groups, (list, tuple)) and all(
            isinstance(group, (list, tuple)) and all(isinstance(j, int) for j in group)
            for group in groups)):
        raise ValueError("model.options.groups must be a list of lists of joint numbers "
                         f"(1-based), not {groups!r}")
    if com is not None and groups is not None:
        raise ValueError("give model.options.com or model.options.groups, not both")
    hierarchy = hierarchy_groups(layout, com, groups)
    if layout.num_joints < EDGE_NEIGHBOURS:
        raise ValueError(f"HD-GCN needs at least {EDGE_NEIGHBOURS} joints, the "
                         f"{layout.name} layout has {layout.num_joints}")
    return HDGCN(num_classes, hierarchy, layout.num_joints, num_persons=num_persons,
                 in_channels=in_channels, dropout=dropout)
