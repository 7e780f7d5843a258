"""Skeleton backbones. ``build_model`` is the one entry point the trainer uses.

Every model takes (N, C, T, V, M) and has ``forward(x) -> logits``,
``forward_features(x) -> (logits, global_feature)`` and ``feature_dim`` (the global
feature's width); MMCL's co-learning modules use them and nothing else. The backbones by
name are in ``train.models.registry``; each keeps the parameter names of its published
implementation so its checkpoints import as a checked identity mapping.

``impl`` chooses how a backbone is computed, never what: ``"reference"`` is the eager
model written after the published code (what the checkpoint-import tests compare
against); ``"fast"`` is the backbone's fast path where the registry names one (a subclass
with the same modules and state dict whose forward pass reorders the same math, e.g.
``ctrgcn_fast.py``), else the reference. Checkpoints load into either.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

from data_manifest.layouts import LayoutSpec
from train.models.graph import layout_by_name_or_joints
from train.models.registry import BACKBONES, IMPLS, MODEL_NAMES, effective_impl

if TYPE_CHECKING:   # the package itself stays light: the config reads MODEL_NAMES
    from torch import nn


def build_model(name: str = "ctrgcn", *, num_classes: int, layout: LayoutSpec | None = None,
                num_joints: int | None = None, num_persons: int = 2, in_channels: int = 3,
                dropout: float = 0.0, options: Mapping[str, Any] | None = None,
                impl: str = "fast") -> nn.Module:
    """A freshly initialised backbone for a skeleton ``layout`` (a built-in name, a layout
    YAML path, a layout mapping or a ``Layout``; or the built-in with ``num_joints``).

    ``options`` are the backbone's own settings (``model.options``; unknown keys are
    errors), e.g. ``{"com": 2}`` for HD-GCN's centre of mass.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODEL_NAMES)}")
    if impl not in IMPLS:
        raise ValueError(f"unknown impl {impl!r}; known: {', '.join(IMPLS)}")
    if num_classes < 1 or num_persons < 1 or in_channels < 1:
        raise ValueError("num_classes, num_persons and in_channels must be positive, got "
                         f"{num_classes}, {num_persons}, {in_channels}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    entry = BACKBONES[name]
    target = entry.fast_builder if effective_impl(name, impl) == "fast" else entry.builder
    module_name, function = target.split(":")
    builder = getattr(importlib.import_module(module_name), function)
    return builder(num_classes, layout_by_name_or_joints(layout, num_joints), num_persons,
                   in_channels, dropout, options)


__all__ = ["IMPLS", "MODEL_NAMES", "build_model"]
