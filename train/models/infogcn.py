"""InfoGCN (Chi, Ha, Chi, Lee, Ramani, CVPR 2022), written for this project.

The reference is the authors' code (stnoah1/infogcn, ``model/infogcn.py`` and
``model/modules.py``); checkpoints it saves import as an identity mapping of names.

- Input transform ("k-th mode"): each joint minus its k-th ancestor in the skeleton tree,
  ``I - A^k`` (``partitions.infogcn_relative_matrix``; ``k`` beyond the tree's depth keeps
  the plain joints), then a linear joint embedding to 64 channels plus a learnable
  position embedding per joint, and data BN over (M, V, 64).
- Nine encoding blocks (64, 64, 64, 128/2, 128, 128, 256/2, 256, 256): a self-attention
  graph conv (SA-GC: per head, softmax attention between joints times a learnable shared
  topology, initialised to the identity) and CTR-GCN's multi-scale temporal conv followed
  by a ReLU, plus a residual.
- Information bottleneck head: pooled feature -> ReLU(fc) -> dropout -> ``fc_mu`` and
  ``fc_logvar``; in training the latent ``z`` is sampled around ``mu`` with standard
  deviation ``exp(noise_ratio * logvar)``, in evaluation ``z = mu``; ``decoder(z)`` gives
  the logits. The class prior ``z_prior`` of InfoGCN's loss lives in that loss (objective
  ``infogcn``, ``train.objective_infogcn``), not in the backbone: the reference does not
  save it either.

The global feature (``forward_features``) is the pooled output of the last block (width
256), as for the other backbones; ``forward_latent`` gives the logits with ``z``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from data_manifest.layouts import Layout
from train.models.common import (check_input, check_options, fold_persons, global_pool,
                                 init_bn, init_conv, width_residual)
from train.models.ctrgcn import MultiScaleTemporalConv, block_residual
from train.models.partitions import infogcn_relative_matrix

BASE_CHANNELS = 64
BLOCK_SPECS: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1), (64, 1),
    (128, 2), (128, 1), (128, 1),
    (256, 2), (256, 1), (256, 1),
)
FEATURE_DIM = BLOCK_SPECS[-1][0]
OPTIONS: dict[str, Any] = {
    "k": 1,               # the k-th mode representation (README's joint stream: k=1)
    "num_heads": 3,       # SA-GC heads (n_heads)
    "noise_ratio": 0.5,   # latent sampling noise in training (args.py default)
}


class SelfAttention(nn.Module):
    """Per frame and head, softmax(q k^T / sqrt(d)) between joints: (N*T, H, V, V)."""

    def __init__(self, in_channels: int, hidden: int, num_heads: int):
        super().__init__()
        self.scale = hidden ** -0.5
        self.num_heads = num_heads
        self.to_qk = nn.Linear(in_channels, hidden * num_heads * 2)
        self.ln = nn.LayerNorm(in_channels)
        nn.init.normal_(self.to_qk.weight, 0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        y = self.to_qk(self.ln(x.permute(0, 2, 3, 1)))              # N, T, V, 2 * H * D
        query, key = y.chunk(2, dim=-1)
        query = query.reshape(n * t, v, self.num_heads, -1).transpose(1, 2)
        key = key.reshape(n * t, v, self.num_heads, -1).transpose(1, 2)
        scores = torch.matmul(query, key.transpose(-1, -2)) * self.scale
        return scores.softmax(dim=-1).float()


class SAGraphConv(nn.Module):
    """Self-attention graph conv: sum over heads of conv_d[h]((attention_h * topology_h) x),
    then BN, residual (1x1 conv + BN when the width changes) and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, num_heads: int,
                 num_joints: int):
        super().__init__()
        self.num_heads = num_heads
        self.shared_topology = nn.Parameter(
            torch.eye(num_joints).repeat(num_heads, 1, 1))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, kernel_size=1)
                                    for _ in range(num_heads))
        self.down = width_residual(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                init_conv(module)
            elif isinstance(module, nn.BatchNorm2d):
                init_bn(module, 1.0)
        init_bn(self.bn, 1e-6)
        for conv in self.conv_d:   # CTR-GCN's conv_branch_init
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (out_channels * in_channels
                                                                 * num_heads)))
        self.attn = SelfAttention(in_channels, in_channels // 8, num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        topology = self.attn(x) * self.shared_topology.unsqueeze(0)    # N*T, H, V, V
        by_frame = x.permute(0, 2, 3, 1).reshape(n * t, v, c)
        out = torch.zeros(0)
        for head, conv in enumerate(self.conv_d):
            mixed = torch.matmul(topology[:, head], by_frame)           # N*T, V, C
            z = conv(mixed.view(n, t, v, c).permute(0, 3, 1, 2).contiguous())
            out = z if head == 0 else out + z
        return self.relu(self.bn(out) + self.down(x))


class EncodingBlock(nn.Module):
    """SA-GC, multi-scale temporal conv + ReLU, residual (strided 1x1 conv when needed)."""

    def __init__(self, in_channels: int, out_channels: int, num_heads: int, num_joints: int,
                 stride: int = 1):
        super().__init__()
        self.agcn = SAGraphConv(in_channels, out_channels, num_heads, num_joints)
        self.tcn = MultiScaleTemporalConv(out_channels, out_channels, stride=stride)
        for module in self.tcn.modules():   # the reference leaves PyTorch's defaults here
            if isinstance(module, (nn.Conv2d, nn.BatchNorm2d)):
                module.reset_parameters()
        self.relu = nn.ReLU(inplace=True)
        self.residual = block_residual(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(torch.relu(self.tcn(self.agcn(x))) + self.residual(x))


class InfoGCN(nn.Module):
    """Relative-position input, joint embedding, nine SA-GC blocks, bottleneck head."""

    classifier_weight = "decoder.weight"   # for checkpoint diagnoses
    graph_keys = ("*.shared_topology",)

    def __init__(self, num_classes: int, relative: np.ndarray, num_persons: int = 2,
                 in_channels: int = 3, dropout: float = 0.0, num_heads: int = 3,
                 noise_ratio: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.num_joints = int(relative.shape[0])
        self.num_persons = num_persons
        self.in_channels = in_channels
        self.feature_dim = FEATURE_DIM
        self.latent_dim = FEATURE_DIM
        self.noise_ratio = noise_ratio
        self.register_buffer("A_vector", torch.from_numpy(relative.astype(np.float32)),
                             persistent=False)
        self.to_joint_embedding = nn.Linear(in_channels, BASE_CHANNELS)
        self.pos_embedding = nn.Parameter(torch.randn(1, self.num_joints, BASE_CHANNELS))
        self.data_bn = nn.BatchNorm1d(num_persons * BASE_CHANNELS * self.num_joints)
        widths = [BASE_CHANNELS] + [width for width, _ in BLOCK_SPECS]
        blocks = [EncodingBlock(widths[i], widths[i + 1], num_heads, self.num_joints, stride)
                  for i, (_, stride) in enumerate(BLOCK_SPECS)]
        (self.l1, self.l2, self.l3, self.l4, self.l5,
         self.l6, self.l7, self.l8, self.l9) = blocks
        self.fc = nn.Linear(FEATURE_DIM, FEATURE_DIM)
        self.fc_mu = nn.Linear(FEATURE_DIM, FEATURE_DIM)
        self.fc_logvar = nn.Linear(FEATURE_DIM, FEATURE_DIM)
        self.decoder = nn.Linear(FEATURE_DIM, num_classes)
        self.drop_out = nn.Dropout(dropout)
        for linear in (self.fc, self.fc_mu, self.fc_logvar):
            nn.init.xavier_uniform_(linear.weight, gain=nn.init.calculate_gain("relu"))
        nn.init.normal_(self.decoder.weight, 0.0, math.sqrt(2.0 / num_classes))
        init_bn(self.data_bn, 1.0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, T, V, M) -> the pooled output of the last block, (N, 256)."""
        check_input(x, self.in_channels, self.num_joints, self.num_persons)
        n, c, t, v, m = x.shape
        x = torch.matmul(self.A_vector, x.permute(0, 4, 2, 3, 1))        # N, M, T, V, C
        x = self.to_joint_embedding(x) + self.pos_embedding               # N, M, T, V, 64
        x = x.permute(0, 1, 3, 4, 2).reshape(n, -1, t)                          # N, M*V*64, T
        x = fold_persons(self.data_bn(x), m, v)
        x = self.l1(x)
        x = self.l2(x)
        x = self.l3(x)
        x = self.l4(x)
        x = self.l5(x)
        x = self.l6(x)
        x = self.l7(x)
        x = self.l8(x)
        x = self.l9(x)
        return global_pool(x, m)

    def head(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the latent ``z`` (sampled in training, ``mu`` in evaluation)."""
        hidden = self.drop_out(F.relu(self.fc(feature)))
        mu = self.fc_mu(hidden)
        if self.training:
            std = torch.clamp((self.fc_logvar(hidden) * self.noise_ratio).exp(), max=100.0)
            z = mu + torch.randn_like(std) * std
        else:
            z = mu
        return self.decoder(z), z

    def forward_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the latent ``z`` that InfoGCN's loss pulls towards its class prior."""
        return self.head(self.encode(x))

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, num_classes) and the global feature (N, 256) they come from."""
        feature = self.encode(x)
        return self.head(feature)[0], feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def build(num_classes: int, layout: Layout, num_persons: int, in_channels: int,
          dropout: float, options: Mapping[str, Any] | None = None) -> InfoGCN:
    settings = check_options("infogcn", options, OPTIONS)
    for name in ("k", "num_heads"):
        value = settings[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model.options.{name} must be a positive integer, not {value!r}")
    noise = settings["noise_ratio"]
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or noise < 0:
        raise ValueError(f"model.options.noise_ratio must be a number >= 0, not {noise!r}")
    return InfoGCN(num_classes, infogcn_relative_matrix(layout, settings["k"]),
                   num_persons=num_persons, in_channels=in_channels, dropout=dropout,
                   num_heads=settings["num_heads"], noise_ratio=float(noise))
