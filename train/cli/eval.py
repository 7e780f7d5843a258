"""``train eval RUN_DIR``: accuracy, per-class accuracy, confusion matrix and scores."""

from __future__ import annotations

from pathlib import Path

import click

from train.checkpoint import CHECKPOINT_CHOICES
from train.cli.common import user_errors_exit
from train.config import deep_merge, parse_override


@click.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", default="auto",
              help=f"Which weights: {', '.join(CHECKPOINT_CHOICES)} or a checkpoint path. "
                   "auto = best if it was chosen on a validation part "
                   "(data.val_fraction > 0), else last: a best chosen on the test set "
                   "overstates test accuracy.")
@click.option("--part", type=click.Choice(["test", "val", "train"]), default="test",
              help="Split part to score (test-time transform, no augmentation); 'val' is "
                   "the held-out share of train (data.val_fraction).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder [default: RUN_DIR/eval/<part>-<checkpoint>].")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score another WORKDIR (same skeleton layout) instead of the run's.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value of the run's config, e.g. --set data.num_workers=0.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@user_errors_exit
def eval_command(run_dir: Path, checkpoint: str, part: str, output: Path | None,
                 workdir: Path | None, overrides: tuple[str, ...], no_progress: bool) -> None:
    """Evaluate a run's checkpoint and write metrics.json, per_class.csv, confusion.csv,
    confusion.png and scores.npz (sample ids with per-class scores)."""
    from train.evaluate import evaluate_run

    changes: dict = {}
    for text in overrides:
        changes = deep_merge(changes, parse_override(text))
    if workdir is not None:
        changes = deep_merge(changes, {"data": {"workdir": str(workdir.resolve())}})
    result = evaluate_run(run_dir, checkpoint=checkpoint, part=part, output_dir=output,
                          overrides=changes, progress=not no_progress)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{part}: top-1 {100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}% "
               f"on {result.num_samples} samples")
    worst = sorted((acc, k) for k, acc in enumerate(result.per_class) if acc == acc)[:3]
    if worst:
        click.echo("lowest class accuracy: " + ", ".join(f"{result.class_label(k)} {100 * acc:.1f}%"
                                                         for acc, k in worst))
    click.echo(f"reports: {result.output_dir}")
