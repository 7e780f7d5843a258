"""What the model feature stages (rgb-features, llm-features) settle before any work.

The device and dtype, the stitch cache they read (checked finished for the shards to do),
the model (only its config is read), the cache spec with the stitch cache as upstream,
and the cache name (derived from the model and the settings that change its output,
unless given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from data_manifest.schemas import STITCH
from data_manifest.store import CacheSpec
from data_manifest.workdir import Workdir
from pipeline.models.devices import resolve_device, resolve_dtype
from pipeline.models.source import ModelSource, resolve_model
from pipeline.stages.feature_names import derived_cache_name
from pipeline.stages.temporal_images import open_stitch_cache

#: why the model stages take no ``jobs``: say so wherever someone may ask for it
NO_JOBS_MESSAGE = ("the model stages run in one process: each worker would load its own "
                   "model; use `accelerate launch` (or torchrun) for several processes / GPUs")


@dataclass(frozen=True)
class ModelStagePlan:
    device: str
    dtype: str
    source: ModelSource
    stitch_cache: str
    stitch_spec: CacheSpec
    spec: CacheSpec
    cache_name: str


def plan_model_stage(workdir: Workdir, stage: str, *, model: str, revision: str | None,
                     device: str, dtype: str, stitch_cache: str,
                     shards: Iterable[int] | None,
                     params: Callable[[ModelSource, str], dict[str, Any]],
                     cache_name: str | None, name_parts: Sequence[Any]) -> ModelStagePlan:
    """``params(source, dtype)`` checks that the model suits the stage (raising
    :class:`~pipeline.models.errors.ModelError`) and gives the spec's parameters."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    with open_stitch_cache(workdir, stitch_cache, shards) as stitch:
        stitch_spec = stitch.spec
    source = resolve_model(model, revision)                 # reads config.json only
    spec = workdir.spec(stage, params(source, dtype),
                        upstream={f"{STITCH}/{stitch_cache}": stitch_spec.fingerprint})
    name = cache_name or derived_cache_name(source.name, *name_parts)
    return ModelStagePlan(device, dtype, source, stitch_cache, stitch_spec, spec, name)
