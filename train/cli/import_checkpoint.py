"""``train import CHECKPOINT RUN_DIR``: published weights as a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from train.cli.common import user_errors_exit
from train.config import resolve_config
from train.presets import PRESETS


@click.command("import")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="The recipe the checkpoint was trained with (model size, classes, "
                   "feeder, test-time preprocessing).")
@click.option("--config", "config_files", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config file, applied after the preset (repeatable, in order).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one value, e.g. --set data.modality=bone for a bone-stream "
                   "checkpoint (repeatable; unknown keys are errors).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="WORKDIR that `train eval` scores by default; same as --set "
                   "data.workdir=... [default: none: give it to train eval --workdir]")
@user_errors_exit
def command(checkpoint: Path, run_dir: Path, preset: str | None,
            config_files: tuple[Path, ...], overrides: tuple[str, ...],
            workdir: Path | None) -> None:
    """Import published weights (.pt/.pth state dict, plain or `module.`-prefixed, or
    the reference .npz) into a new RUN_DIR for `train eval`, `train predict` and `train
    export`.

    The file is read weights-only and every key and shape is checked against the model
    the preset (and overrides) describe. RUN_DIR receives config.yaml, import.json (the
    source file and its sha256) and checkpoints/last.pt. Nothing is trained and no "best"
    checkpoint is selected. To fine-tune the weights, start a new run with --init-from.
    """
    from train.import_checkpoint import import_checkpoint

    if not (preset or config_files):
        raise click.UsageError("give the checkpoint's recipe with --preset (or --config)")
    updates = [{"data": {"workdir": str(workdir.resolve())}}] if workdir is not None else []
    config = resolve_config(preset, config_files, overrides, updates)
    result = import_checkpoint(checkpoint, run_dir, config)
    click.echo(f"imported {checkpoint} ({result.record['tensors']} tensors, sha256 "
               f"{result.record['sha256'][:16]}...) into {run_dir}")
    click.echo(f"weights: {result.checkpoint}; evaluate with: train eval {run_dir} "
               + ("" if workdir is not None else "--workdir WORKDIR"))
