"""The interface every vision-language model answers through, and what it returns.

An :class:`Answer` holds the generated answer's tokens and, for each of them, the hidden
state the model computed *with that token as its input* at a chosen layer: index ``layer``
of the ``hidden_states`` tuple transformers returns (0 = token embeddings, ``i`` = output of
decoder layer ``i``, ``-1`` = the last layer, after the final norm where the model has one).
Decoding is greedy. To have a state for the last answer token too, one token more than
``max_new_tokens`` is generated and the answer is cut back; the end-of-sequence token is not
part of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import torch
from PIL import Image

from pipeline.models.errors import ModelError
from pipeline.models.source import ModelSource


@dataclass
class Answer:
    text: str
    token_ids: np.ndarray      # int64 (L,)
    hidden: np.ndarray         # float32 (L, D)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 20
    layer: int = -1

    def describe(self) -> dict:
        return {"decoding": "greedy", "max_new_tokens": self.max_new_tokens,
                "layer": self.layer}


class VisionLanguageModel(Protocol):
    source: ModelSource
    hidden_size: int

    def answer(self, images: Sequence[Image.Image], questions: Sequence[str]
               ) -> list[list[Answer]]:
        """Answers per image, per question (``len(images)`` lists of ``len(questions)``)."""


def check_layer(layer: int, num_layers: int) -> None:
    """``hidden_states`` has num_layers + 1 entries (embeddings first)."""
    if not -(num_layers + 1) <= layer <= num_layers:
        raise ModelError(f"layer {layer} does not exist: this model's decoder has "
                         f"{num_layers} layers, so hidden states 0..{num_layers} "
                         f"(or -1..-{num_layers + 1} from the end)")


def collect_answers(sequences: torch.Tensor, hidden_states, prompt_length: int,
                    stop_ids: set[int], settings: GenerationSettings, decode
                    ) -> list[Answer]:
    """Cut each generated row at its first stop token and gather its tokens' states.

    ``hidden_states[s][layer]`` is (rows, positions, D); at step ``s >= 1`` its last
    position is the state of generated token ``s - 1`` taken as input.
    """
    generated = sequences[:, prompt_length:].cpu().numpy()
    answers = []
    for row, tokens in enumerate(generated):
        length = 0
        while length < len(tokens) and int(tokens[length]) not in stop_ids:
            length += 1
        length = min(length, settings.max_new_tokens)
        ids = tokens[:length].astype(np.int64)
        if length:
            states = torch.stack([hidden_states[step + 1][settings.layer][row, -1]
                                  for step in range(length)])
            hidden = states.float().cpu().numpy()
        else:
            width = hidden_states[0][settings.layer].shape[-1]
            hidden = np.zeros((0, width), dtype=np.float32)
        answers.append(Answer(decode(ids), ids, hidden))
    return answers
