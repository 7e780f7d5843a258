"""``pipeline cache-rgb-features``."""

from __future__ import annotations

import click

from pipeline.cli.model_commands import model_errors_exit, model_stage_options
from pipeline.cli.options import cache_name_option, report_and_exit, user_errors_exit
from pipeline.models.devices import DTYPE_CHOICES
from pipeline.models.image_encoder import OUTPUTS
from pipeline.stages.rgb_features import DEFAULT_ENCODER, cache_rgb_features


@click.command("cache-rgb-features")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--encoder", default=DEFAULT_ENCODER,
              help="Hub id or local directory of an image backbone (ResNet, ConvNeXt, ViT, "
                   "... with an image-classification class in transformers).")
@click.option("--output", default="pooled", type=click.Choice(OUTPUTS),
              help="pooled = the backbone's pooled feature (2048-d for ResNet-50); logits = "
                   "the classifier's ImageNet logits (1000-d, like the paper's InceptionV3).")
@click.option("--batch-size", default=32, type=click.IntRange(1), help="Images per forward pass.")
@click.option("--device", default="auto", help="cpu, cuda, cuda:1, ...; auto = CUDA if available.")
@click.option("--dtype", default="float32", type=click.Choice(DTYPE_CHOICES),
              help="Model precision; auto = float32 on CPU, bfloat16/float16 on GPU.")
@click.option("--image-size", type=click.IntRange(16),
              help="Shorter side fed to the encoder.  [default: the checkpoint's processor "
                   "size, e.g. 224]")
@click.option("--keep-aspect", is_flag=True,
              help="Feed the whole image at its aspect ratio (no centre crop).")
@click.option("--revision",
              help="Hub branch, tag or commit to pin.  [default: the repository's default "
                   "branch]")
@cache_name_option("--name", "cache_name",
                   help="Name of the output cache.  [default: derived from the encoder and "
                        "the output, e.g. resnet-50-1a2b3c4d]")
@cache_name_option("--stitch-cache", default="default", help="Which stitch cache to read.")
@click.option("--trust-remote-code", is_flag=True,
              help="Allow an encoder that needs Python code from its own repository.")
@model_stage_options
@model_errors_exit
@user_errors_exit
def cache_rgb_features_command(workdir, encoder, output, batch_size, device, dtype,
                               image_size, keep_aspect, revision, cache_name, stitch_cache,
                               trust_remote_code, skip_failures, retry_failures,
                               overwrite, no_progress, rebuild):
    """Cache one image-backbone feature vector per temporal image (the FAM's CNN feature).

    Runs in one process (there is no -j: each worker would load its own model). Exit
    status: 1 if samples failed, 2 on a usage or model error, 3 if the model ran out of
    memory or failed on a batch.
    """
    result = cache_rgb_features(
        workdir, encoder, output=output, batch_size=batch_size, device=device,
        dtype=dtype, image_size=image_size, keep_aspect=keep_aspect, revision=revision,
        cache_name=cache_name, stitch_cache=stitch_cache,
        trust_remote_code=trust_remote_code, overwrite=overwrite,
        retry_failures=retry_failures, progress=not no_progress, rebuild=rebuild)
    click.echo(f"cache: {result.cache_path}")
    report_and_exit(result, skip_failures)
