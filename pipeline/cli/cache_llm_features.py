"""``pipeline cache-llm-features``."""

from __future__ import annotations

import click

from pipeline.cli.model_commands import model_errors_exit, model_stage_options
from pipeline.cli.options import cache_name_option, report_and_exit, user_errors_exit
from pipeline.models.devices import DTYPE_CHOICES
from pipeline.stages.llm_features import DEFAULT_MODEL, DEFAULT_QUESTIONS, cache_llm_features


@click.command("cache-llm-features")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--model", default=DEFAULT_MODEL,
              help="Hugging Face hub id or local directory (save_pretrained) of a BLIP VQA "
                   "model or an image-text-to-text chat model (Qwen2-VL, LLaVA, SmolVLM, ...).")
@click.option("--question", "questions", multiple=True, default=DEFAULT_QUESTIONS,
              help="Instruction asked about each temporal image; repeat for K questions.")
@click.option("--batch-size", default=8, type=click.IntRange(1),
              help="Images per forward pass (each with all its questions). Lower it when "
                   "the GPU runs out of memory.")
@click.option("--device", default="auto",
              help="cpu, cuda, cuda:1, ...; auto = CUDA if available (under accelerate "
                   "launch: each process's own GPU).")
@click.option("--dtype", default="auto", type=click.Choice(DTYPE_CHOICES),
              help="Model precision; auto = float32 on CPU, bfloat16 (or float16) on GPU.")
@click.option("--layer", default=-1, type=int,
              help="Which hidden_states entry to store: 0 = token embeddings, i = output of "
                   "decoder layer i, -1 = last layer.")
@click.option("--max-new-tokens", default=20, type=click.IntRange(1),
              help="Longest answer kept, in tokens (greedy decoding).")
@click.option("--image-size", type=click.IntRange(16),
              help="BLIP only: input size in pixels.  [default: the checkpoint's processor "
                   "size, e.g. 384]")
@click.option("--keep-aspect", is_flag=True,
              help="BLIP only: keep the image's aspect ratio (height = image size) instead of "
                   "squashing it square; position embeddings are interpolated.")
@click.option("--revision",
              help="Hub branch, tag or commit to pin.  [default: the repository's default "
                   "branch]")
@cache_name_option("--name", "cache_name",
                   help="Name of the output cache.  [default: derived from the model and "
                        "the questions, e.g. blip-vqa-base-1a2b3c4d]")
@cache_name_option("--stitch-cache", default="default", help="Which stitch cache to read.")
@click.option("--trust-remote-code", is_flag=True,
              help="Allow a model that needs Python code from its own repository. Only for "
                   "repositories you trust.")
@model_stage_options
@model_errors_exit
@user_errors_exit
def cache_llm_features_command(workdir, model, questions, batch_size, device, dtype, layer,
                               max_new_tokens, image_size, keep_aspect, revision, cache_name,
                               stitch_cache, trust_remote_code, skip_failures,
                               retry_failures, overwrite, no_progress, rebuild):
    """Ask a vision-language model about each temporal image; cache answers and features.

    Runs the model once per sample and question; training later reads only the cache
    (WORKDIR/cache/llm-features/NAME). Finished shards are skipped: a re-run with nothing
    to do does not load the model. For many GPUs or machines, launch with
    `accelerate launch --multi_gpu --num_processes N -m pipeline cache-llm-features ...`:
    each process takes every N-th shard and writes only those (there is no -j: each
    worker would load its own model). Exit status: 1 if samples failed, 2 on a usage or
    model error, 3 if the model ran out of memory or failed on a batch.
    """
    result = cache_llm_features(
        workdir, model, questions, batch_size=batch_size, device=device, dtype=dtype,
        layer=layer, max_new_tokens=max_new_tokens, image_size=image_size,
        keep_aspect=keep_aspect, revision=revision, cache_name=cache_name,
        stitch_cache=stitch_cache, trust_remote_code=trust_remote_code, overwrite=overwrite,
        retry_failures=retry_failures, progress=not no_progress, rebuild=rebuild)
    click.echo(f"cache: {result.cache_path}")
    report_and_exit(result, skip_failures)
