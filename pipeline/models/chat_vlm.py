"""Generic image-text-to-text chat models (Qwen2-VL, LLaVA, SmolVLM, ...).

Loaded with ``AutoModelForImageTextToText``; each question is asked as one user turn
holding the image and the question, rendered with the model's chat template, and
left-padded for batched greedy generation.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from pipeline.models.chat_inputs import HAND_BUILT_TYPES, QwenVLInputs
from pipeline.models.errors import ModelError
from pipeline.models.loading import loading_errors, where_to_load
from pipeline.models.source import ModelSource
from pipeline.models.vlm import Answer, GenerationSettings, check_layer, collect_answers


def _as_set(value) -> set[int]:
    if value is None:
        return set()
    if isinstance(value, (list, tuple, set)):
        return {int(v) for v in value}
    return {int(value)}


class ChatVlm:
    def __init__(self, source: ModelSource, device: str, dtype: torch.dtype,
                 settings: GenerationSettings, trust_remote_code: bool = False):
        from transformers import (AutoImageProcessor, AutoModelForImageTextToText,
                                  AutoProcessor, AutoTokenizer)

        self.source, self.device, self.dtype, self.settings = source, device, dtype, settings
        where, kwargs = where_to_load(source)
        kwargs["trust_remote_code"] = trust_remote_code
        processor = None
        try:
            with loading_errors(source, "processor"):
                processor = AutoProcessor.from_pretrained(where, **kwargs)
            self.tokenizer = processor.tokenizer
            self._inputs = self._processor_inputs(processor)
        except ImportError as error:
            if source.model_type not in HAND_BUILT_TYPES:
                raise ModelError(
                    f"the processor of {source.name} (model_type {source.model_type!r}) needs "
                    f"a library that is not installed ({str(error).strip().splitlines()[0]}). "
                    "Install it, or use a model family whose inputs this toolkit builds "
                    f"without it: {', '.join(HAND_BUILT_TYPES)}, blip (VQA).") from None
            with loading_errors(source, "processor"):
                self.tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
                image_processor = AutoImageProcessor.from_pretrained(where, backend="pil",
                                                                     **kwargs)
            self._inputs = QwenVLInputs(image_processor, self.tokenizer)
        self.chat_template = (getattr(processor, "chat_template", None)
                              or getattr(self.tokenizer, "chat_template", None))
        if not self.chat_template:
            raise ModelError(f"{source.name} has no chat template (neither its processor nor "
                             "its tokenizer defines one), so a question cannot be put to it")
        with loading_errors(source, "weights", as_what="an image-text-to-text model"):
            self.model = AutoModelForImageTextToText.from_pretrained(where, dtype=dtype, **kwargs)
        self.model.to(device).eval()
        text_config = self.model.config.get_text_config()
        check_layer(settings.layer, text_config.num_hidden_layers)
        self.hidden_size = text_config.hidden_size
        generation = self.model.generation_config
        self.pad_token_id = (self.tokenizer.pad_token_id if self.tokenizer.pad_token_id
                             is not None else generation.pad_token_id)
        if self.pad_token_id is None:
            self.pad_token_id = next(iter(_as_set(generation.eos_token_id)), None)
        self.stop_ids = (_as_set(generation.eos_token_id) | _as_set(self.tokenizer.eos_token_id)
                         | _as_set(self.pad_token_id))

    def _processor_inputs(self, processor):
        def build(images: Sequence[Image.Image], prompts: Sequence[str]) -> dict:
            return dict(processor(images=list(images), text=list(prompts), padding=True,
                                  padding_side="left", return_tensors="pt"))
        return build

    def prompt(self, question: str) -> str:
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": question}]}]
        return self.tokenizer.apply_chat_template(
            messages, chat_template=self.chat_template, tokenize=False,
            add_generation_prompt=True)

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]
               ) -> list[list[Answer]]:
        k = len(questions)
        prompts = [self.prompt(q) for q in questions]
        row_images = [image for image in images for _ in range(k)]    # row = image * K + q
        inputs = self._inputs(row_images, prompts * len(images))
        inputs = {name: value.to(self.device) if torch.is_tensor(value) else value
                  for name, value in inputs.items()}
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
        output = self.model.generate(
            **inputs, max_new_tokens=self.settings.max_new_tokens + 1, do_sample=False,
            num_beams=1, pad_token_id=self.pad_token_id, output_hidden_states=True,
            return_dict_in_generate=True)
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        answers = collect_answers(output.sequences, output.hidden_states,
                                  inputs["input_ids"].shape[1], self.stop_ids, self.settings,
                                  decode)
        return [answers[i * k:(i + 1) * k] for i in range(len(images))]
