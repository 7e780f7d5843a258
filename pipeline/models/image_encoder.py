"""Image backbones (ResNet, ConvNeXt, ViT, ... through the transformers Auto classes).

``output="pooled"``: the backbone's pooled feature (``pooler_output``, flattened; the mean
of the last hidden state where a model has no pooler), e.g. 2048-d for ResNet-50.
``output="logits"``: the ImageNet classifier's logits (1000-d), like the paper's
InceptionV3 logits; needs a checkpoint with a classification head.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from pipeline.models.errors import ModelError
from pipeline.models.images import keep_aspect_size
from pipeline.models.loading import loading_errors, where_to_load
from pipeline.models.source import ModelSource, check_remote_code

OUTPUTS = ("pooled", "logits")


def _classifier_types() -> dict[str, str]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
    return dict(MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)


def check_encoder(source: ModelSource, output: str, trust_remote_code: bool = False) -> None:
    """Clear errors for an encoder the stage cannot run, before any weights are loaded."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    check_remote_code(source, trust_remote_code)
    if source.needs_remote_code:
        return
    types = _classifier_types()
    if source.model_type not in types:
        raise ModelError(
            f"{source.name} (model_type {source.model_type or 'missing'!r}) is not a supported "
            f"image encoder. Supported: image backbones with an AutoModelForImageClassification "
            f"class in transformers ({len(types)} types, e.g. resnet, convnext, convnextv2, "
            "efficientnet, regnet, vit, swin), e.g. microsoft/resnet-50, "
            "facebook/convnext-tiny-224")
    if output == "logits" and not any(a.endswith("ForImageClassification")
                                      for a in source.architectures):
        raise ModelError(f"{source.name} has no classification head "
                         f"(architectures {list(source.architectures)}), so it has no "
                         "logits; use --output pooled")


class ImageEncoder:
    def __init__(self, source: ModelSource, *, device: str, dtype: torch.dtype,
                 output: str = "pooled", image_size: int | None = None,
                 keep_aspect: bool = False, trust_remote_code: bool = False):
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

        check_encoder(source, output, trust_remote_code)
        self.source, self.device, self.dtype, self.output = source, device, dtype, output
        where, kwargs = where_to_load(source)
        kwargs["trust_remote_code"] = trust_remote_code
        with loading_errors(source, "processor"):
            self.processor = AutoImageProcessor.from_pretrained(where, backend="pil", **kwargs)
        has_head = any(a.endswith("ForImageClassification") for a in source.architectures)
        # a classifier checkpoint is loaded whole (its backbone gives the pooled feature)
        model_class = AutoModelForImageClassification if has_head else AutoModel
        with loading_errors(source, "weights"):
            self.model = model_class.from_pretrained(where, dtype=dtype, **kwargs)
        self.model.to(device).eval()
        self.backbone = self.model.base_model if has_head else self.model
        self.keep_aspect = keep_aspect
        size = self.processor.size
        default = size.get("shortest_edge") or size.get("height")
        self.image_size = int(image_size or default)

    def _inputs(self, images: Sequence[Image.Image]) -> list[tuple[list[int], torch.Tensor]]:
        """Pixel batches grouped by input size.

        Default: the checkpoint's own preprocessing, with the shorter side at
        ``image_size`` (ResNet/ConvNeXt processors may centre-crop). ``keep_aspect``:
        the whole image, height ``image_size``, width by aspect ratio, no crop.
        """
        if not self.keep_aspect:
            size = dict(self.processor.size)
            for key in ("shortest_edge", "height", "width"):
                if key in size:
                    size[key] = self.image_size
            pixels = self.processor(list(images), size=size, return_tensors="pt")["pixel_values"]
            return [(list(range(len(images))), pixels)]
        sizes = [keep_aspect_size(i.width, i.height, self.image_size, 1) for i in images]
        groups = []
        for target in dict.fromkeys(sizes):
            members = [n for n, s in enumerate(sizes) if s == target]
            resized = [images[n].resize(target, Image.BICUBIC) for n in members]
            pixels = self.processor(resized, do_resize=False, do_center_crop=False,
                                    return_tensors="pt")["pixel_values"]
            groups.append((members, pixels))
        return groups

    @torch.inference_mode()
    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, D) float32 features, one row per image, in order."""
        rows: list[np.ndarray | None] = [None] * len(images)
        for members, pixels in self._inputs(images):
            pixels = pixels.to(self.device, self.dtype)
            net = self.model if self.output == "logits" else self.backbone
            out = net(pixel_values=pixels)
            if self.output == "logits":
                features = out.logits
            elif getattr(out, "pooler_output", None) is not None:
                features = out.pooler_output
            else:
                hidden = out.last_hidden_state
                features = hidden.mean(dim=tuple(range(1, hidden.ndim - 1))) if hidden.ndim == 3 \
                    else hidden.mean(dim=(2, 3))
            features = features.reshape(len(members), -1).float().cpu().numpy()
            for position, index in enumerate(members):
                rows[index] = features[position]
        return np.stack(rows).astype(np.float32)
