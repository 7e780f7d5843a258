"""Plain functional ops for the independent re-implementations of published backbones
(``tests/reference_*.py``): each reads its weights by the reference's state-dict names
from a ``TrackedState``, so a test can check that every published tensor was used."""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

BN_EPS = 1e-5                     # nn.BatchNorm default, kept by every reference


class TrackedState(dict):
    """A state dict that remembers which keys were read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def unread(self) -> list[str]:
        return sorted(key for key in self if key not in self.read
                      and not key.endswith("num_batches_tracked"))


def bn(x: torch.Tensor, s: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """BatchNorm in evaluation mode (running statistics), any of 1-d/2-d inputs."""
    return F.batch_norm(x, s[f"{prefix}.running_mean"], s[f"{prefix}.running_var"],
                        s[f"{prefix}.weight"], s[f"{prefix}.bias"], False, 0.0, BN_EPS)


def conv(x: torch.Tensor, s: Mapping[str, torch.Tensor], prefix: str, stride=1, padding=0,
         dilation=1, bias: bool = True) -> torch.Tensor:
    return F.conv2d(x, s[f"{prefix}.weight"], s[f"{prefix}.bias"] if bias else None,
                    stride, padding, dilation)


def linear(x: torch.Tensor, s: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    return F.linear(x, s[f"{prefix}.weight"], s[f"{prefix}.bias"])


def bn_keys(prefix: str, width: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (width,), f"{prefix}.bias": (width,),
            f"{prefix}.running_mean": (width,), f"{prefix}.running_var": (width,),
            f"{prefix}.num_batches_tracked": ()}


def random_state(shapes: Mapping[str, tuple[int, ...]], seed: int,
                 special: Callable[[str, tuple[int, ...], torch.Generator],
                                   torch.Tensor | None] = lambda *_: None
                 ) -> dict[str, torch.Tensor]:
    """A reference-format state dict of random values of a trained-looking scale:
    BN statistics away from (0, 1), weights scaled by their fan-in. ``special`` gives the
    value of keys it knows (graphs, embeddings), or None."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        value = special(key, shape, generator)
        if value is None:
            value = _generic(key, shape, generator)
        state[key] = value
    return state


def _generic(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    def randn(scale: float = 1.0) -> torch.Tensor:
        return torch.randn(shape, generator=generator) * scale

    if key.endswith("num_batches_tracked"):
        return torch.tensor(1000)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=generator) + 0.5
    if key.endswith("running_mean"):
        return randn(0.1)
    if len(shape) >= 2:                                   # conv / linear weights
        return randn(1.0 / math.sqrt(math.prod(shape[1:])))
    if key.endswith("weight"):                            # BN / LayerNorm scale
        return 1.0 + randn(0.1)
    return randn(0.1)                                     # biases
