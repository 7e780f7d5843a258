"""Stage ``rgb-features``: one image-backbone feature vector per temporal image (the FAM's
CNN input).

``output="pooled"`` (default) stores the backbone's pooled feature (e.g. 2048-d for
ResNet-50); ``output="logits"`` stores the ImageNet classifier's logits (1000-d), the
feature the paper took from InceptionV3. Field ``feature`` (``RGB_FEATURE_FIELDS``),
float32 (D,). The spec records the encoder's name and revision, output, dtype and image
settings; the default cache name is derived from the encoder and the output.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from PIL import Image

from data_manifest.schemas import RGB_FEATURES, STITCH
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.models.devices import DTYPES, resolve_device, resolve_dtype
from pipeline.models.image_encoder import OUTPUTS, ImageEncoder, check_encoder
from pipeline.models.source import resolve_model
from pipeline.stage_runner import StageResult, run_stage
from pipeline.stages.feature_names import derived_cache_name
from pipeline.stages.image_batches import ImageBatchTask
from pipeline.stages.temporal_images import open_stitch_cache

DEFAULT_ENCODER = "microsoft/resnet-50"


class RgbFeatureTask(ImageBatchTask):
    def __init__(self, workdir, stitch_name, batch_size, *, encoder: str,
                 revision: str | None, output: str, device: str, dtype: str,
                 image_size: int | None, keep_aspect: bool, trust_remote_code: bool):
        super().__init__(workdir, stitch_name, batch_size)
        self.encoder, self.revision, self.output = encoder, revision, output
        self.device, self.dtype = device, dtype
        self.image_size, self.keep_aspect = image_size, keep_aspect
        self.trust_remote_code = trust_remote_code

    def load_model(self):
        return ImageEncoder(resolve_model(self.encoder, self.revision), device=self.device,
                            dtype=DTYPES[self.dtype], output=self.output,
                            image_size=self.image_size, keep_aspect=self.keep_aspect,
                            trust_remote_code=self.trust_remote_code)

    def run_batch(self, model, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        return [{"feature": row} for row in model.encode(images)]


def cache_rgb_features(workdir: str | os.PathLike | Workdir,
                       encoder: str = DEFAULT_ENCODER, *, output: str = "pooled",
                       batch_size: int = 32, device: str = "auto", dtype: str = "float32",
                       image_size: int | None = None, keep_aspect: bool = False,
                       revision: str | None = None, cache_name: str | None = None,
                       stitch_name: str = DEFAULT_CACHE_NAME,
                       trust_remote_code: bool = False, jobs: int = 1,
                       overwrite: bool = False, retry_failures: bool = False,
                       progress: bool = True, shard_indices: Iterable[int] | None = None
                       ) -> StageResult:
    """Cache a feature vector per temporal image. See the module docstring.

    ``dtype`` defaults to float32 everywhere (a CNN is cheap, and float32 features are
    what the cache stores); ``auto`` gives bfloat16/float16 on a GPU.
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, not {output!r}")
    if image_size is not None and image_size < 16:
        raise ValueError("image size must be at least 16 pixels")
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    shards = None if shard_indices is None else list(shard_indices)
    stitch = open_stitch_cache(workdir, stitch_name, shards)
    stitch_fingerprint = stitch.spec.fingerprint
    stitch.close()
    source = resolve_model(encoder, revision)
    check_encoder(source, output, trust_remote_code)
    params = {"encoder": source.describe(), "output": output, "dtype": dtype,
              "image_size": image_size, "keep_aspect": keep_aspect}
    spec = workdir.spec(RGB_FEATURES, params,
                        upstream={f"{STITCH}/{stitch_name}": stitch_fingerprint})
    name = cache_name or derived_cache_name(source.name, output)
    task = RgbFeatureTask(workdir.path, stitch_name, batch_size, encoder=encoder,
                          revision=None if source.is_local else source.revision,
                          output=output, device=device, dtype=dtype, image_size=image_size,
                          keep_aspect=keep_aspect, trust_remote_code=trust_remote_code)
    return run_stage(workdir, spec, task, cache_name=name, jobs=jobs, overwrite=overwrite,
                     retry_failures=retry_failures, shard_indices=shards, progress=progress)
