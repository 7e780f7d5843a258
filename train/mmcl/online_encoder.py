"""Optional: an image encoder fine-tuned with the GCN on the cached temporal images.

The reference runs and fine-tunes its ImageNet InceptionV3 on the stitched image in every
training step. That is what this option reproduces; it is off by default because frozen
features cached once by ``pipeline cache-rgb-features`` make co-learning nearly free.

Two encoders: ``small-cnn``, a plain convolutional stack defined here (no extra
dependency), and ``transformers``, an image backbone (ResNet, ConvNeXt, ...) loaded from a
local directory / hub id or built from a config dict. transformers is imported lazily, only
when that encoder is built, so training with cached features never imports it.
"""

from __future__ import annotations

import io
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image
from torch import nn

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
ENCODER_KINDS = ("small-cnn", "transformers")
DEFAULT_IMAGE_SIZE = (299, 299)   # the reference feeds InceptionV3 299 px images


def decode_image(jpeg: bytes, size: tuple[int, int] = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """JPEG bytes -> (3, H, W) float32, resized to ``size`` (H, W), ImageNet-normalised."""
    with Image.open(io.BytesIO(jpeg)) as image:
        image = image.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32) / 255.0
    return ((pixels - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1).copy()


class SmallCNN(nn.Module):
    """Four stride-2 conv blocks, global average pooling, a linear head."""

    def __init__(self, out_features: int = 1000, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU()]
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, out_features)
        self.out_features = out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images).mean(dim=(2, 3)))


class TransformersImageEncoder(nn.Module):
    """A transformers vision backbone; its pooled output (or mean hidden state) is the feature."""

    def __init__(self, backbone: nn.Module, out_features: int):
        super().__init__()
        self.backbone = backbone
        self.out_features = out_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        output = self.backbone(pixel_values=images)
        pooled = getattr(output, "pooler_output", None)
        if pooled is None:
            hidden = output.last_hidden_state
            pooled = hidden.mean(dim=(2, 3)) if hidden.ndim == 4 else hidden.mean(dim=1)
        return pooled.flatten(1)


def _build_transformers(settings: Mapping[str, Any]) -> TransformersImageEncoder:
    from transformers import AutoConfig, AutoModel   # only when this option is on

    source = settings.get("name_or_path")
    config = settings.get("config")
    if (source is None) == (config is None):
        raise ValueError("the transformers image encoder needs exactly one of "
                         "'name_or_path' (a local directory or hub id) or 'config' "
                         "(a dict with 'model_type' and its settings)")
    if source is not None:
        backbone = AutoModel.from_pretrained(source)
    else:
        config = dict(config)
        model_type = config.pop("model_type", None)
        if model_type is None:
            raise ValueError("the image encoder's 'config' needs a 'model_type' "
                             "(e.g. 'resnet', 'convnext')")
        backbone = AutoModel.from_config(AutoConfig.for_model(model_type, **config))
    size = settings.get("image_size", DEFAULT_IMAGE_SIZE)
    with torch.no_grad():
        width = TransformersImageEncoder(backbone, 0).eval()(torch.zeros(1, 3, *size)).shape[1]
    return TransformersImageEncoder(backbone, int(width))


def build_online_encoder(settings: Mapping[str, Any]) -> nn.Module:
    """Build the encoder ``settings['kind']`` names; it has an ``out_features`` width."""
    settings = dict(settings)
    kind = settings.get("kind", "small-cnn")
    if kind == "small-cnn":
        unknown = set(settings) - {"kind", "out_features", "widths", "image_size"}
        if unknown:
            raise ValueError(f"unknown small-cnn encoder setting(s) {sorted(unknown)}")
        return SmallCNN(int(settings.get("out_features", 1000)),
                        tuple(settings.get("widths", (32, 64, 128, 256))))
    if kind == "transformers":
        unknown = set(settings) - {"kind", "name_or_path", "config", "image_size"}
        if unknown:
            raise ValueError(f"unknown transformers encoder setting(s) {sorted(unknown)}")
        return _build_transformers(settings)
    raise ValueError(f"unknown image encoder kind {kind!r}; choose one of "
                     f"{', '.join(ENCODER_KINDS)}")
