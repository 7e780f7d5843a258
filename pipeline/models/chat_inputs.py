"""Model inputs for chat VLMs whose transformers processor cannot be built here.

``Qwen2VLProcessor`` (and Qwen2.5-VL's) insists on a video processor that needs
torchvision. Without it, the prompt is rendered with the chat template, each image
placeholder is expanded by hand to as many image tokens as the image processor's patch
grid gives (grid_t * grid_h * grid_w / merge_size**2), and the modality map M-RoPE needs
(``mm_token_type_ids``: 1 on image tokens) is built alongside.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

#: model types whose inputs this module can build
HAND_BUILT_TYPES = ("qwen2_vl", "qwen2_5_vl")
_IMAGE_TOKEN = "<|image_pad|>"


class QwenVLInputs:
    def __init__(self, image_processor, tokenizer):
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_token_id = tokenizer.convert_tokens_to_ids(_IMAGE_TOKEN)

    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict:
        vision = self.image_processor(images=list(images), return_tensors="pt")
        merge = self.image_processor.merge_size
        texts = []
        for prompt, grid in zip(prompts, vision["image_grid_thw"]):
            if prompt.count(_IMAGE_TOKEN) != 1:
                raise ValueError(f"the chat template gave {prompt.count(_IMAGE_TOKEN)} image "
                                 f"placeholders ({_IMAGE_TOKEN}) for one image")
            count = int(grid.prod()) // merge ** 2
            texts.append(prompt.replace(_IMAGE_TOKEN, _IMAGE_TOKEN * count))
        text = self.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
        mm_token_type_ids = (text["input_ids"] == self.image_token_id).to(torch.int64)
        return {**text, "mm_token_type_ids": mm_token_type_ids,
                "pixel_values": vision["pixel_values"], "image_grid_thw": vision["image_grid_thw"]}
