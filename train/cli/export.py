"""``train export RUN_DIR``: skeleton-only TorchScript and/or ONNX model of a run."""

from __future__ import annotations

import click

from train.cli.common import user_errors_exit
from train.export import EXPORT_FORMATS, export_run
from train.checkpoint import CHECKPOINT_CHOICES


@click.command("export")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--out-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the exported files (default: RUN_DIR/export).")
@click.option("-f", "--format", "formats", type=click.Choice(EXPORT_FORMATS), multiple=True,
              default=("torchscript",),
              help="Export format; repeat for several. ONNX needs "
                   "`pip install 'mmcl-toolkit[onnx]'`.")
@click.option("--checkpoint", default="auto",
              help=f"Which weights: {', '.join(CHECKPOINT_CHOICES)} or a checkpoint path. "
                   "auto = best if it was chosen on a validation part "
                   "(data.val_fraction > 0), else last.")
@user_errors_exit
def command(run_dir: str, out_dir: str | None, formats: tuple[str, ...],
            checkpoint: str) -> None:
    """Export the backbone of RUN_DIR for skeleton-only inference.

    The model takes (N, C, T, V, M) float32 input preprocessed like the run's test feeder
    and returns logits. Each export is checked against the eager model before it is kept;
    its metadata (class names, input shape, run config) travels inside the file and in
    export.json.
    """
    result = export_run(run_dir, out_dir, tuple(dict.fromkeys(formats)), checkpoint)
    for name, path in result.files.items():
        error = result.relative_error[name]
        checked = (f"relative error {error:.1e} vs the eager model" if error is not None
                   else "not run: onnxruntime is not installed")
        click.echo(f"{name}: {path} ({checked})")
    click.echo(f"metadata: {result.out_dir / 'export.json'}")
