"""Tiny random-weight models saved like real checkpoints, for offline tests and the demo.

Each function writes a directory that ``from_pretrained`` loads exactly as it loads a
downloaded model (config, weights, processor/tokenizer files), so the feature stages run
through the same code a user's model takes. Tokenizers are built locally: a WordPiece
vocabulary for BLIP, a byte-level BPE trained on a few sentences for the Qwen2-VL-style
model. The weights are random (seeded): answers are gibberish, shapes are real.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

# larger than the usual 0.02, so that random models answer differently for different images
_INIT = 0.3

_WORDS = ("yes no the a an people person are is holding objects object whether what "
          "doing cup phone book bag hand hands two one standing sitting walking drinking "
          "water ? . ,").split()

# A ChatML template in the Qwen2-VL style: images become vision_start/image_pad/vision_end.
QWEN_STYLE_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_QWEN_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>")


def make_tiny_blip_vqa(directory: str | os.PathLike, seed: int = 0,
                       image_size: int = 64) -> Path:
    """A 2-layer BLIP VQA model (hidden width 32) with a BertTokenizer and PIL processor."""
    from transformers import BertTokenizer, BlipConfig, BlipForQuestionAnswering, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(_WORDS) + list(letters)
             + ["##" + c for c in letters])
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizer(str(vocab_file), bos_token="[DEC]")   # BLIP's decoder start
    config = BlipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id,
                         pad_token_id=tokenizer.pad_token_id,
                         sep_token_id=tokenizer.sep_token_id, initializer_range=_INIT),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, image_size=image_size, patch_size=16,
                           initializer_range=_INIT),
        projection_dim=32, initializer_range=_INIT)
    torch.manual_seed(seed)
    model = BlipForQuestionAnswering(config)
    model.save_pretrained(directory)
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": image_size, "width": image_size}),
        tokenizer=tokenizer)
    processor.save_pretrained(directory)
    return directory


def _tiny_bpe_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    corpus = [" ".join(_WORDS), "whether the people are holding objects?",
              "system user assistant You are a helpful assistant.",
              "a person is drinking water from a cup", "yes", "no"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=320, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    bpe.train_from_iterator(corpus * 4, trainer)
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=trained["vocab"], merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(_QWEN_SPECIALS)})
    tokenizer.chat_template = QWEN_STYLE_CHAT_TEMPLATE
    return tokenizer


def make_tiny_qwen2_vl(directory: str | os.PathLike, seed: int = 0) -> Path:
    """A 2-layer Qwen2-VL chat model (width 32) with a BPE tokenizer, chat template and
    PIL image processor. Like a real Qwen2-VL checkpoint, its processor cannot be built
    without torchvision, so it exercises the hand-built input path."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_bpe_tokenizer()
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in _QWEN_SPECIALS}
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024,
                         rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]},
                         eos_token_id=ids["<|im_end|>"], pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None, tie_word_embeddings=True,
                         initializer_range=_INIT),
        vision_config=dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
                           initializer_range=_INIT),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [ids["<|im_end|>"], tokenizer.eos_token_id]
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    # few pixels keep the image token count (and the tests) small
    Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 8}
                             ).save_pretrained(directory)
    return directory


def make_tiny_resnet(directory: str | os.PathLike, seed: int = 0, num_labels: int = 10,
                     image_size: int = 64) -> Path:
    """A 2-stage ResNet image classifier (pooled width 16, ``num_labels`` logits)."""
    from transformers import ResNetConfig, ResNetForImageClassification
    from transformers.models.convnext.image_processing_pil_convnext import (
        ConvNextImageProcessorPil)

    directory = Path(directory)
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                          layer_type="basic", num_labels=num_labels)
    torch.manual_seed(seed)
    ResNetForImageClassification(config).save_pretrained(directory)
    ConvNextImageProcessorPil(size={"shortest_edge": image_size}, crop_pct=1.0
                              ).save_pretrained(directory)
    return directory


def make_tiny_models(directory: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """All three, in DIR/blip-vqa, DIR/qwen2-vl and DIR/resnet."""
    directory = Path(directory)
    return {"blip-vqa": make_tiny_blip_vqa(directory / "blip-vqa", seed),
            "qwen2-vl": make_tiny_qwen2_vl(directory / "qwen2-vl", seed),
            "resnet": make_tiny_resnet(directory / "resnet", seed)}
