"""``pipeline make-tiny-models``."""

from __future__ import annotations

import click

from pipeline.cli.options import user_errors_exit


@click.command("make-tiny-models")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--seed", default=0, type=int, help="Seed of the random weights.")
@user_errors_exit
def make_tiny_models_command(directory, seed):
    """Write tiny random-weight models (BLIP VQA, Qwen2-VL-style chat, ResNet) to DIRECTORY.

    They load offline like downloaded checkpoints (DIRECTORY/blip-vqa, DIRECTORY/qwen2-vl,
    DIRECTORY/resnet), so the feature stages can be tried end to end without a download.
    Their answers are gibberish; the shapes and the code path are real.
    """
    from pipeline.synthetic.tiny_models import make_tiny_models

    for name, path in make_tiny_models(directory, seed=seed).items():
        click.echo(f"{name}: {path}")
