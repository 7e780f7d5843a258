"""BLIP visual question answering (``BlipForQuestionAnswering``), the paper's model.

The model's own ``generate`` lets the answer decoder attend to the question's padding
positions (it passes an all-ones mask; and in transformers 5.x the decoder's
cross-attention drops any mask it is given), so a padded batch answers differently from
one question at a time. Here the three parts are called directly: the vision encoder once
per image (shared by its K questions), the question encoder on the padded batch (its
self-attention mask works), and the answer decoder once per question length, on question
states cut to that length, so it never sees padding and batching changes nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from pipeline.models.images import keep_aspect_size
from pipeline.models.loading import loading_errors, where_to_load
from pipeline.models.source import ModelSource
from pipeline.models.vlm import Answer, GenerationSettings, check_layer, collect_answers


def _load_processor(source: ModelSource):
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    where, kwargs = where_to_load(source)
    try:
        processor = AutoProcessor.from_pretrained(where, **kwargs)
        return processor.image_processor, processor.tokenizer
    except (ImportError, OSError, ValueError, TypeError, AttributeError):
        pass    # no processor config, or one naming a torchvision-only class: load the parts
    with loading_errors(source, "processor"):
        return (AutoImageProcessor.from_pretrained(where, backend="pil", **kwargs),
                AutoTokenizer.from_pretrained(where, **kwargs))


class BlipVqa:
    def __init__(self, source: ModelSource, device: str, dtype: torch.dtype,
                 settings: GenerationSettings, image_size: int | None = None,
                 keep_aspect: bool = False):
        from transformers import BlipForQuestionAnswering

        self.source, self.device, self.dtype, self.settings = source, device, dtype, settings
        where, kwargs = where_to_load(source)
        self.image_processor, self.tokenizer = _load_processor(source)
        with loading_errors(source, "weights"):
            self.model = BlipForQuestionAnswering.from_pretrained(where, dtype=dtype, **kwargs)
        self.model.to(device).eval()
        text_config = self.model.config.text_config
        check_layer(settings.layer, text_config.num_hidden_layers)
        self.hidden_size = text_config.hidden_size
        self.patch_size = self.model.config.vision_config.patch_size
        self.image_size = image_size or int(self.image_processor.size["height"])
        self.keep_aspect = keep_aspect
        self.stop_ids = {text_config.sep_token_id, text_config.pad_token_id}

    def _pixel_groups(self, images: Sequence[Image.Image]) -> list[tuple[list[int], torch.Tensor]]:
        """Images grouped by their input size (one group unless --keep-aspect)."""
        sizes = []
        for image in images:
            if self.keep_aspect:
                width, height = keep_aspect_size(image.width, image.height, self.image_size,
                                                 self.patch_size)
            else:
                width = height = self.image_size
            sizes.append((width, height))
        groups = []
        for size in dict.fromkeys(sizes):
            members = [i for i, s in enumerate(sizes) if s == size]
            pixels = self.image_processor(
                [images[i] for i in members], size={"height": size[1], "width": size[0]},
                return_tensors="pt")["pixel_values"]
            groups.append((members, pixels))
        return groups

    @torch.inference_mode()
    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]
               ) -> list[list[Answer]]:
        results: list[list[Answer] | None] = [None] * len(images)
        for members, pixels in self._pixel_groups(images):
            answers = self._answer_group(pixels, questions)
            k = len(questions)
            for position, index in enumerate(members):
                results[index] = answers[position * k:(position + 1) * k]
        return results

    def _answer_group(self, pixels: torch.Tensor, questions: Sequence[str]) -> list[Answer]:
        model, k = self.model, len(questions)
        image_embeds = model.vision_model(
            pixel_values=pixels.to(self.device, self.dtype),
            interpolate_pos_encoding=True)[0]
        image_embeds = image_embeds.repeat_interleave(k, dim=0)   # row = image * K + question
        text = self.tokenizer(list(questions) * len(pixels), padding=True, return_tensors="pt",
                              return_token_type_ids=False)
        input_ids = text["input_ids"].to(self.device)
        mask = text["attention_mask"].to(self.device)
        image_mask = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=self.device)
        question_embeds = model.text_encoder(
            input_ids=input_ids, attention_mask=mask, encoder_hidden_states=image_embeds,
            encoder_attention_mask=image_mask, return_dict=False)[0]
        lengths = mask.sum(dim=1).tolist()
        answers: list[Answer | None] = [None] * len(lengths)
        for length in sorted(set(lengths)):
            rows = [r for r, n in enumerate(lengths) if n == length]
            group = self._decode(question_embeds[rows, :length])
            for row, answer in zip(rows, group):
                answers[row] = answer
        return answers

    def _decode(self, question_embeds: torch.Tensor) -> list[Answer]:
        model = self.model
        text_config = model.config.text_config
        bos = torch.full((len(question_embeds), 1), model.decoder_start_token_id,
                         device=self.device)
        output = model.text_decoder.generate(
            input_ids=bos, encoder_hidden_states=question_embeds,
            eos_token_id=text_config.sep_token_id, pad_token_id=text_config.pad_token_id,
            max_new_tokens=self.settings.max_new_tokens + 1, do_sample=False, num_beams=1,
            output_hidden_states=True, return_dict_in_generate=True)
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True).strip()
        return collect_answers(output.sequences, output.hidden_states, 1, self.stop_ids,
                               self.settings, decode)
