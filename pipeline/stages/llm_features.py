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
``index % world_size == rank`` on its own device and writes only its own shards. Do not
combine it with ``jobs`` > 1. A single process is the default.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from data_manifest.schemas import LLM_FEATURES, STITCH
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.models.devices import resolve_device, resolve_dtype
from pipeline.models.registry import load_vlm, vlm_kind
from pipeline.models.source import resolve_model
from pipeline.models.vlm import Answer, GenerationSettings
from pipeline.stage_runner import StageResult, run_stage, write_failures_ledger
from pipeline.stages.distributed import current_process_group
from pipeline.stages.feature_names import derived_cache_name
from pipeline.stages.image_batches import ImageBatchTask
from pipeline.stages.temporal_images import open_stitch_cache

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
    def __init__(self, workdir, stitch_name, batch_size, *, model_name: str,
                 revision: str | None, questions: Sequence[str], device: str, dtype: str,
                 settings: GenerationSettings, image_size: int | None, keep_aspect: bool,
                 trust_remote_code: bool):
        super().__init__(workdir, stitch_name, batch_size)
        self.model_name, self.revision = model_name, revision
        self.questions = list(questions)
        self.device, self.dtype, self.settings = device, dtype, settings
        self.image_size, self.keep_aspect = image_size, keep_aspect
        self.trust_remote_code = trust_remote_code

    def load_model(self):
        source = resolve_model(self.model_name, self.revision)
        log.info("loading %s (%s) on %s as %s", source.name, source.revision, self.device,
                 self.dtype)
        return load_vlm(source, device=self.device, dtype=self.dtype, settings=self.settings,
                        image_size=self.image_size, keep_aspect=self.keep_aspect,
                        trust_remote_code=self.trust_remote_code)

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
                       stitch_name: str = DEFAULT_CACHE_NAME,
                       trust_remote_code: bool = False, jobs: int = 1,
                       overwrite: bool = False, retry_failures: bool = False,
                       progress: bool = True, shard_indices: Iterable[int] | None = None,
                       rank: int | None = None, world_size: int | None = None
                       ) -> StageResult:
    """Cache each sample's answers and answer-token features. See the module docstring."""
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    questions = check_questions(questions)
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be at least 1")
    if image_size is not None and image_size < 16:
        raise ValueError("image size must be at least 16 pixels")
    group = current_process_group(rank, world_size)
    device = resolve_device(group.device(device))
    dtype = resolve_dtype(dtype, device)
    shards = group.shards(workdir.num_shards, shard_indices)
    stitch = open_stitch_cache(workdir, stitch_name, shards)
    stitch_fingerprint = stitch.spec.fingerprint
    stitch.close()
    source = resolve_model(model, revision)                 # reads config.json only
    kind = vlm_kind(source, trust_remote_code)
    settings = GenerationSettings(max_new_tokens=max_new_tokens, layer=layer)
    params = {"model": source.describe(), "kind": kind, "dtype": dtype,
              "questions": questions, "generation": settings.describe(), "layer": layer,
              "image_size": image_size, "keep_aspect": keep_aspect,
              "hidden_dtype": "float16"}
    spec = workdir.spec(LLM_FEATURES, params,
                        upstream={f"{STITCH}/{stitch_name}": stitch_fingerprint})
    name = cache_name or derived_cache_name(source.name, questions)
    if group.world_size > 1 and overwrite:   # one process clears the old cache, then all go
        if group.is_main:
            workdir.cache_dir(LLM_FEATURES, name).prepare(spec, overwrite=True)
        group.wait_for_everyone()
        overwrite = False
    # the task loads the very revision the spec records (a hub commit may move meanwhile)
    task = LlmFeatureTask(workdir.path, stitch_name, batch_size, model_name=model,
                          revision=None if source.is_local else source.revision,
                          questions=questions, device=device, dtype=dtype,
                          settings=settings, image_size=image_size, keep_aspect=keep_aspect,
                          trust_remote_code=trust_remote_code)
    result = run_stage(workdir, spec, task, cache_name=name, jobs=jobs, overwrite=overwrite,
                       retry_failures=retry_failures, shard_indices=shards, progress=progress,
                       write_ledger=group.world_size == 1)
    if group.world_size > 1:
        group.wait_for_everyone()
        if group.is_main:        # one complete ledger once every process has finished
            cache = workdir.cache_dir(LLM_FEATURES, name)
            write_failures_ledger(cache, cache.failures())
    return result
