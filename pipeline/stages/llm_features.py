"""Stage ``llm-features``: ask a vision-language model about each temporal image, once.

For every sample and each of K questions the cache stores (``LLM_FEATURE_FIELDS``): the
answer text, its token ids, the answer tokens' hidden states (float16, L x D, from
``layer`` of the language model's ``hidden_states``: 0 = embeddings, -1 = last layer; see
:mod:`pipeline.models.vlm`) and their mean as a float32 D-vector (zeros for an empty
answer). Hidden states beyond float16's range are clipped to +-65504; a NUL character in
an answer text (HDF5 strings cannot hold one) is stored as U+FFFD.

The cache spec records the model's name and revision (hub commit, or a content digest of
a local directory), dtype, layer, questions, generation and image settings; the default
cache name is derived from the model and the questions, so another model or question is
another cache, never an overwrite.

Many GPUs or machines: ``accelerate launch --multi_gpu --num_processes N -m pipeline
cache-llm-features WORKDIR ...`` (add ``--num_machines``/``--machine_rank``/
``--main_process_ip`` for several machines sharing the WORKDIR's file system; ``torchrun
--nproc_per_node N -m pipeline ...`` works too, also on CPUs); each process takes the shards
``index % world_size == rank`` on its own device and writes only its own shards (a Slurm
array works too: see :mod:`pipeline.stages.distributed`). A single process is the default;
the stage takes no ``jobs`` (each worker would load its own model).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from data_manifest.schemas import LLM_FEATURES
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.models.registry import load_vlm, vlm_kind
from pipeline.models.vlm import Answer, GenerationSettings
from pipeline.stage_runner import StageResult, run_stage
from pipeline.stages.distributed import current_process_group
from pipeline.stages.image_batches import ImageBatchTask
from pipeline.stages.model_stage import ModelStagePlan, plan_model_stage

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Salesforce/blip-vqa-base"
DEFAULT_QUESTIONS = ("whether the people are holding objects?",)
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def answer_fields(answers: Sequence[Answer], width: int) -> dict[str, Any]:
    """The cache fields of one sample from its K answers."""
    hidden = [a.hidden.reshape(-1, width) for a in answers]
    pooled = np.stack([h.mean(axis=0) if len(h) else np.zeros(width, np.float32)
                       for h in hidden]).astype(np.float32)
    return {
        # HDF5 strings cannot hold NUL; the token ids keep the exact answer
        "answers": [a.text.replace("\x00", "\ufffd") for a in answers],
        "token_ids": np.concatenate([a.token_ids for a in answers]).astype(np.int64),
        "token_counts": np.array([len(a.token_ids) for a in answers], dtype=np.int64),
        "hidden": np.clip(np.concatenate(hidden), -_FLOAT16_MAX, _FLOAT16_MAX
                          ).astype(np.float16),
        "pooled": pooled,
    }


class LlmFeatureTask(ImageBatchTask):
    def __init__(self, workdir, plan: ModelStagePlan, batch_size: int, *,
                 questions: Sequence[str], settings: GenerationSettings,
                 image_size: int | None, keep_aspect: bool, trust_remote_code: bool):
        super().__init__(workdir, plan, batch_size)
        self.questions = list(questions)
        self.settings = settings
        self.image_size, self.keep_aspect = image_size, keep_aspect
        self.trust_remote_code = trust_remote_code

    def load_model(self):
        plan = self.plan
        log.info("loading %s (%s) on %s as %s", plan.source.name, plan.source.revision,
                 plan.device, plan.dtype)
        return load_vlm(plan.source, device=plan.device, dtype=plan.dtype,
                        settings=self.settings, image_size=self.image_size,
                        keep_aspect=self.keep_aspect, trust_remote_code=self.trust_remote_code)

    def run_batch(self, model, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        return [answer_fields(per_image, model.hidden_size)
                for per_image in model.answer(images, self.questions)]


def check_questions(questions: Iterable[str]) -> list[str]:
    questions = [q.strip() if isinstance(q, str) else q for q in questions]
    if not questions:
        raise ValueError("give at least one question")
    for index, question in enumerate(questions):
        if not isinstance(question, str) or not question:
            raise ValueError(f"question {index + 1} is empty; every --question needs text")
    if len(set(questions)) != len(questions):
        raise ValueError("the same question is given twice")
    return questions


def cache_llm_features(workdir: str | os.PathLike | Workdir, model: str = DEFAULT_MODEL,
                       questions: Sequence[str] = DEFAULT_QUESTIONS, *, batch_size: int = 8,
                       device: str = "auto", dtype: str = "auto", layer: int = -1,
                       max_new_tokens: int = 20, image_size: int | None = None,
                       keep_aspect: bool = False, revision: str | None = None,
                       cache_name: str | None = None,
                       stitch_cache: str = DEFAULT_CACHE_NAME,
                       trust_remote_code: bool = False,
                       overwrite: bool = False, retry_failures: bool = False,
                       progress: bool = True, shard_indices: Iterable[int] | None = None,
                       rank: int | None = None, world_size: int | None = None,
                       rebuild: bool = False) -> StageResult:
    """Cache each sample's answers and answer-token features. See the module docstring."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    questions = check_questions(questions)
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if image_size is not None and image_size < 16:
        raise ValueError("image size must be at least 16 pixels")
    group = current_process_group(rank, world_size)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, layer=layer)
    shards = group.shards(workdir.num_shards, shard_indices)

    def params(source, dtype):
        return {"model": source.describe(), "kind": vlm_kind(source, trust_remote_code),
                "dtype": dtype, "questions": questions, "generation": settings.describe(),
                "layer": layer, "image_size": image_size, "keep_aspect": keep_aspect,
                "hidden_dtype": "float16"}

    plan = plan_model_stage(workdir, LLM_FEATURES, model=model, revision=revision,
                            device=group.device(device), dtype=dtype,
                            stitch_cache=stitch_cache,
                            shards=shards, params=params, cache_name=cache_name,
                            name_parts=[questions])
    task = LlmFeatureTask(workdir.path, plan, batch_size, questions=questions,
                          settings=settings, image_size=image_size, keep_aspect=keep_aspect,
                          trust_remote_code=trust_remote_code)
    return run_stage(workdir, plan.spec, task, cache_name=plan.cache_name,
                     overwrite=overwrite, retry_failures=retry_failures,
                     part=shards, progress=progress, rebuild=rebuild, group=group)
