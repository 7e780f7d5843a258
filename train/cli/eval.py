"""``train eval RUN_DIR``: accuracy, per-class accuracy, confusion matrix and scores; with
``--class-map``, on another dataset's WORKDIR (cross-dataset transfer)."""

from __future__ import annotations

from pathlib import Path

import click

from train.checkpoint import CHECKPOINT_CHOICES
from train.cli.common import user_errors_exit
from train.config import deep_merge, parse_override
from train.transfer import PAD_CHOICES


@click.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--checkpoint", default="auto",
              help=f"Which weights: {', '.join(CHECKPOINT_CHOICES)} or a checkpoint path. "
                   "auto = best if it was chosen on a validation part "
                   "(data.val_fraction > 0), else last: a best chosen on the test set "
                   "overstates test accuracy.")
@click.option("--part", type=click.Choice(["test", "val", "train", "all"]), default=None,
              help="Split part to score (test-time transform, no augmentation); 'val' is "
                   "the held-out share of train (data.val_fraction). With --class-map: all "
                   "the target's samples, or the train/test part of --protocol.  "
                   "[default: test; all with --class-map]")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder [default: RUN_DIR/eval/<part>-<checkpoint>; with "
                   "--class-map RUN_DIR/eval/transfer-<target>-<digest>-<part>-<checkpoint>].")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score another WORKDIR instead of the run's: of the same skeleton layout "
                   "and classes, or of another dataset with --class-map.")
@click.option("--class-map", "class_map", metavar="NAME|FILE|MAP", default=None,
              help="Cross-dataset evaluation of --workdir: its classes sent to the run's, a "
                   "YAML mapping of 0-based labels or class names (target: run), e.g. "
                   "'{2: 22, 5: 95}', a YAML file or a built-in map (utd-mhad-to-ntu120). "
                   "Its skeletons are converted to the run's layout and persons; scores are "
                   "over all the run's classes; samples of unmapped classes are left out and "
                   "counted. See docs/transfer.md.")
@click.option("--protocol", default=None,
              help="With --class-map and --part train/test: the target's split protocol.  "
                   "[default: the target dataset's own, csv: its split column]")
@click.option("--joint-map", metavar="NAME|FILE", default=None,
              help="With --class-map: the joint mapping from the target's layout to the "
                   "run's.  [default: a built-in mapping (e.g. nw-ucla-to-ntu, also for "
                   "utd-mhad), else joints copied by name]")
@click.option("--pad-persons", type=click.Choice(PAD_CHOICES), default="zero",
              show_default=True,
              help="With --class-map: persons the target lacks are zeros (as MMCL's authors "
                   "did) or copies of the first person (as CTR-GCN's NTU120 data).")
@click.option("--refine", is_flag=True,
              help="With --class-map: score with the run's FRM-refined logits on the "
                   "target's own LLM features (the paper's 'w/ BLIP refine'); needs an MMCL "
                   "run with FRM and a target llm-features cache made as the run's.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a value of the run's config, e.g. --set data.num_workers=0.")
@click.option("--accept-skeletons", metavar="FINGERPRINT", default=None,
              help="Score the run's own skeleton cache although it was rebuilt since the "
                   "run trained on it (give its new fingerprint, as the refusal prints it); "
                   "by default such a cache is refused.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@user_errors_exit
def eval_command(run_dir: Path, checkpoint: str, part: str | None, output: Path | None,
                 workdir: Path | None, class_map: str | None, protocol: str | None,
                 joint_map: str | None, pad_persons: str, refine: bool,
                 overrides: tuple[str, ...], accept_skeletons: str | None,
                 no_progress: bool) -> None:
    """Evaluate a run's checkpoint and write metrics.json, per_class.csv, confusion.csv,
    confusion.png and scores.npz (sample ids with per-class scores)."""
    changes: dict = {}
    for text in overrides:
        changes = deep_merge(changes, parse_override(text))
    if class_map is not None:
        if accept_skeletons is not None:
            raise click.UsageError("--accept-skeletons applies to the run's own skeleton "
                                   "cache, not to --class-map's other WORKDIR")
        _transfer(run_dir, checkpoint, part, output, workdir, class_map, protocol, joint_map,
                  pad_persons, refine, changes, not no_progress)
        return
    transfer_only = [flag for flag, given in (("--protocol", protocol),
                                              ("--joint-map", joint_map),
                                              ("--pad-persons", pad_persons != "zero"),
                                              ("--refine", refine), ("--part all", part == "all"))
                     if given]
    if transfer_only:
        raise click.UsageError(f"{', '.join(transfer_only)}: only with --class-map "
                               "(cross-dataset evaluation)")
    from train.evaluate import evaluate_run

    part = part or "test"
    if workdir is not None:
        changes = deep_merge(changes, {"data": {"workdir": str(workdir.resolve())}})
    result = evaluate_run(run_dir, checkpoint=checkpoint, part=part, output_dir=output,
                          overrides=changes, progress=not no_progress,
                          accept_skeletons=accept_skeletons)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{part}: top-1 {100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}% "
               f"on {result.num_samples} samples")
    worst = sorted((acc, k) for k, acc in enumerate(result.per_class) if acc == acc)[:3]
    if worst:
        click.echo("lowest class accuracy: " + ", ".join(f"{result.class_label(k)} {100 * acc:.1f}%"
                                                         for acc, k in worst))
    click.echo(f"reports: {result.output_dir}")


def _transfer(run_dir, checkpoint, part, output, workdir, class_map, protocol, joint_map,
              pad, refine, changes, progress) -> None:
    if workdir is None:
        raise click.UsageError("--class-map evaluates another dataset: give its WORKDIR "
                               "with --workdir")
    if part == "val":
        raise click.UsageError("--class-map scores --part all, train or test of the target "
                               "(it has no validation part of the run's)")
    from train.transfer.evaluate import evaluate_transfer

    part = part or "all"
    result = evaluate_transfer(run_dir, workdir, class_map, checkpoint=checkpoint, part=part,
                               protocol=protocol, joint_map=joint_map, pad=pad, refine=refine,
                               output_dir=output, overrides=changes, progress=progress)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    refined = " (FRM-refined)" if refine else ""
    click.echo(f"{workdir} ({part}): top-1 {100 * result.top1:.2f}%, top-5 "
               f"{100 * result.top5:.2f}%{refined} over the run's classes on "
               f"{result.num_samples} samples of {len(result.class_map)} mapped classes")
    if result.unrefined is not None:
        click.echo(f"without refinement: top-1 {100 * result.unrefined['top1']:.2f}%, top-5 "
                   f"{100 * result.unrefined['top5']:.2f}%")
    left_out = sum(result.left_out.values())
    if left_out or result.skipped:
        click.echo(f"left out: {left_out} samples of {len(result.left_out)} unmapped classes"
                   + (f"; {result.skipped} whose skeletons failed" if result.skipped else ""))
    for row in result.per_class:
        if row["samples"]:
            name = f" ({row['target_name']})" if row["target_name"] else ""
            click.echo(f"  {row['target_class']}{name} -> {row['run_class']}: top-1 "
                       f"{100 * row['top1']:.1f}%, top-5 {100 * row['top5']:.1f}% of "
                       f"{row['samples']}")
    click.echo(f"reports: {result.output_dir}")
