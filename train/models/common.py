"""Pieces the backbones share: option checking, the input check, the (persons, joints,
channels) layout of the input normalisation, the global pooling into the feature, and the
initialisation of convolutions and batch norms that CTR-GCN's family uses."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn


def check_options(model: str, options: Mapping[str, Any] | None,
                  defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``options`` (``model.options``); unknown keys are errors."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise ValueError(f"model {model!r} has no option {unknown[0]!r} (known: {known})")
    return {**defaults, **options}


def check_input(x: torch.Tensor, in_channels: int, num_joints: int,
                num_persons: int) -> None:
    if x.dim() != 5:
        raise ValueError("expected input of shape (N, C, T, V, M), got " + str(list(x.shape)))
    if x.shape[1] != in_channels or x.shape[3] != num_joints or x.shape[4] != num_persons:
        raise ValueError("input (N, C, T, V, M) = " + str(list(x.shape))
                         + " does not match the model's C=" + str(in_channels)
                         + ", V=" + str(num_joints) + ", M=" + str(num_persons))


def persons_joints_channels(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, V, M) -> (N, M*V*C, T), the layout a data BN over (M, V, C) works on."""
    n, c, t, v, m = x.shape
    return x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)


def fold_persons(x: torch.Tensor, num_persons: int, num_joints: int) -> torch.Tensor:
    """(N, M*V*C, T) -> (N*M, C, T, V): every person through the network on its own."""
    n, _, t = x.shape
    return x.view(n, num_persons, num_joints, -1, t).permute(0, 1, 3, 4, 2) \
        .reshape(n * num_persons, -1, t, num_joints)


def global_pool(x: torch.Tensor, num_persons: int) -> torch.Tensor:
    """(N*M, C, T, V) -> mean over frames and joints, then over persons -> (N, C)."""
    return x.reshape(x.shape[0] // num_persons, num_persons, x.shape[1], -1).mean(3).mean(1)


def init_conv(conv: nn.Module) -> None:
    """Kaiming-normal weights (fan out), zero bias: CTR-GCN's ``conv_init``."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def init_bn(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    """Constant ``scale`` weights, zero bias: CTR-GCN's ``bn_init``."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def width_residual(in_channels: int, out_channels: int) -> nn.Module:
    """A graph conv's residual path: 1x1 conv + BN where the width changes, else the
    identity (initialised with the rest of the graph conv)."""
    if in_channels != out_channels:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1),
                             nn.BatchNorm2d(out_channels))
    return nn.Identity()
