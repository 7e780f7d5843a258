"""Stage ``rgb-features``: one image-backbone feature vector per temporal image (the FAM's
CNN input).

``output="pooled"`` (default) stores the backbone's pooled feature (e.g. 2048-d for
ResNet-50); ``output="logits"`` stores the ImageNet classifier's logits (1000-d), the
feature the paper took from InceptionV3. Field ``feature`` (``RGB_FEATURE_FIELDS``),
float32 (D,). The spec records the encoder's name and revision, output, dtype and image
settings; the default cache name is derived from the encoder and the output. The stage
takes no ``jobs`` (each worker would load its own model); several processes (``accelerate
launch``, torchrun, a Slurm array) split the shards as :mod:`pipeline.stages.distributed`
says.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from PIL import Image

from data_manifest.schemas import RGB_FEATURES
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.models.devices import DTYPES
from pipeline.models.image_encoder import OUTPUTS, ImageEncoder, check_encoder
from pipeline.stage_runner import StageResult, run_stage
from pipeline.stages.distributed import current_process_group
from pipeline.stages.image_batches import ImageBatchTask
from pipeline.stages.model_stage import ModelStagePlan, plan_model_stage

DEFAULT_ENCODER = "microsoft/resnet-50"


class RgbFeatureTask(ImageBatchTask):
    def __init__(self, workdir, plan: ModelStagePlan, batch_size: int, *, output: str,
                 image_size: int | None, keep_aspect: bool, trust_remote_code: bool):
        super().__init__(workdir, plan, batch_size)
        self.output = output
        self.image_size, self.keep_aspect = image_size, keep_aspect
        self.trust_remote_code = trust_remote_code

    def load_model(self):
        plan = self.plan
        return ImageEncoder(plan.source, device=plan.device, dtype=DTYPES[plan.dtype],
                            output=self.output, image_size=self.image_size,
                            keep_aspect=self.keep_aspect,
                            trust_remote_code=self.trust_remote_code)

    def run_batch(self, model, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        return [{"feature": row} for row in model.encode(images)]


def cache_rgb_features(workdir: str | os.PathLike | Workdir,
                       encoder: str = DEFAULT_ENCODER, *, output: str = "pooled",
                       batch_size: int = 32, device: str = "auto", dtype: str = "float32",
                       image_size: int | None = None, keep_aspect: bool = False,
                       revision: str | None = None, cache_name: str | None = None,
                       stitch_cache: str = DEFAULT_CACHE_NAME,
                       trust_remote_code: bool = False,
                       overwrite: bool = False, retry_failures: bool = False,
                       progress: bool = True, shard_indices: Iterable[int] | None = None,
                       rebuild: bool = False) -> StageResult:
    """Cache a feature vector per temporal image. See the module docstring.

    ``dtype`` defaults to float32 everywhere (a CNN is cheap, and float32 features are
    what the cache stores); ``auto`` gives bfloat16/float16 on a GPU.
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    if image_size is not None and image_size < 16:
        raise ValueError("image size must be at least 16 pixels")
    group = current_process_group()
    shards = group.shards(workdir.num_shards, shard_indices)

    def params(source, dtype):
        check_encoder(source, output, trust_remote_code)
        return {"encoder": source.describe(), "output": output, "dtype": dtype,
                "image_size": image_size, "keep_aspect": keep_aspect}

    plan = plan_model_stage(workdir, RGB_FEATURES, model=encoder, revision=revision,
                            device=group.device(device), dtype=dtype,
                            stitch_cache=stitch_cache,
                            shards=shards, params=params, cache_name=cache_name,
                            name_parts=[output])
    task = RgbFeatureTask(workdir.path, plan, batch_size, output=output,
                          image_size=image_size, keep_aspect=keep_aspect,
                          trust_remote_code=trust_remote_code)
    return run_stage(workdir, plan.spec, task, cache_name=plan.cache_name,
                     overwrite=overwrite, retry_failures=retry_failures,
                     part=shards, progress=progress, rebuild=rebuild, group=group)
