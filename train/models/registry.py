"""The skeleton backbones by name (``model.name``): where each is built, which published
implementation its parameter names follow, and a state-dict key only that one has.

Plain data: the config checks ``model.name`` against it without building anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backbone:
    builder: str          # "module:function" returning the nn.Module
    reference: str        # the public code whose state-dict names the model keeps
    signature_key: str    # a key that tells this backbone's checkpoints apart
    fast_builder: str | None = None   # the same model with a faster forward pass (same
                                      # state dict), built for model.impl=fast


BACKBONES: dict[str, Backbone] = {
    "ctrgcn": Backbone("train.models.ctrgcn:build", "Uason-Chen/CTR-GCN model/ctrgcn.py",
                       "l1.gcn1.alpha", fast_builder="train.models.ctrgcn_fast:build"),
    "stgcn": Backbone("train.models.stgcn:build", "yysijie/st-gcn net/st_gcn.py",
                      "st_gcn_networks.0.gcn.conv.weight"),
    "hdgcn": Backbone("train.models.hdgcn:build", "jho-lee/HD-GCN model/HDGCN.py",
                      "l1.gcn1.conv_down.0.0.weight"),
    "infogcn": Backbone("train.models.infogcn:build", "stnoah1/infogcn model/infogcn.py",
                        "to_joint_embedding.weight"),
}
MODEL_NAMES = tuple(BACKBONES)
IMPLS = ("fast", "reference")   # model.impl: how a backbone is computed, never what


def effective_impl(name: str, impl: str) -> str:
    """The implementation ``model.impl`` gives for backbone ``name``: ``fast`` only where
    the backbone has a fast path, else the reference code runs."""
    entry = BACKBONES.get(name)
    return "fast" if impl == "fast" and entry is not None and entry.fast_builder else \
        "reference"


def backbone_of_checkpoint(keys) -> str | None:
    """The backbone whose signature key is among ``keys`` (state-dict names), if any."""
    keys = set(keys)
    return next((name for name, entry in BACKBONES.items() if entry.signature_key in keys),
                None)
