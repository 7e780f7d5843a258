"""``train ensemble INPUT...``: weighted fusion of several streams' scores by sample id.

INPUTs are ``scores.npz`` files (from ``train eval``) or run directories. With runs, each
is scored on the part to fuse (and, with ``--search-val``, on its validation part, where
the weights are searched), reusing the scores ``train eval`` already wrote for the same
checkpoint: the paper's six-stream ensemble is one command.
"""

from __future__ import annotations

from pathlib import Path

import click

from train.checkpoint import CHECKPOINT_CHOICES
from train.cli.common import user_errors_exit


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers",
                                 param_hint="--weights") from None


@click.command("ensemble")
@click.argument("inputs", nargs=-1, required=True, metavar="SCORES_OR_RUN_DIR...",
                type=click.Path(exists=True, path_type=Path))
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="One weight per input, e.g. 0.6,0.6,0.4,0.4 [default: equal, or "
                   "searched with --search / --search-val].")
@click.option("--search", "heldout", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scores files: the held-out scores file of each stream, same order as "
                   "the inputs (repeat the option); the weights that do best on them are "
                   "used.")
@click.option("--search-val", is_flag=True,
              help="Run directories: search the weights on each run's validation part "
                   "(data.val_fraction > 0, the same for all runs) and apply them to "
                   "--part.")
@click.option("--part", type=click.Choice(["test", "val", "train"]), default="test",
              help="Run directories: the split part whose fused accuracy is reported.")
@click.option("--checkpoint", default="auto",
              help=f"Run directories: which weights ({', '.join(CHECKPOINT_CHOICES)}); auto "
                   "= best if it was chosen on a validation part, else last.")
@click.option("--rescore", is_flag=True,
              help="Run directories: evaluate again even where `train eval` already wrote "
                   "scores for this checkpoint.")
@click.option("--softmax", is_flag=True,
              help="Fuse softmax probabilities instead of raw scores (logits).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the fused scores here (.npz), and beside them (.json) the streams, "
                   "weights and accuracy, which `train compare` reads.")
@click.option("--no-progress", is_flag=True, help="Hide the evaluation progress bars.")
@user_errors_exit
def ensemble_command(inputs: tuple[Path, ...], weights: str | None,
                     heldout: tuple[Path, ...], search_val: bool, part: str,
                     checkpoint: str, rescore: bool, softmax: bool, output: Path | None,
                     no_progress: bool) -> None:
    """Fuse the scores of several streams (joint, bone, joint-motion, bone-motion, or
    several backbones) and report the fused accuracy. INPUTs are all scores.npz files from
    `train eval`, or all run directories."""
    import json

    from train.ensemble import ensemble, ensemble_record
    from train.files import write_text_atomic
    from train.scores_io import load_scores, save_scores

    if output is not None and output.suffix.lower() == ".json":
        raise click.BadParameter("the fused scores are .npz; the .json record is written "
                                 "beside them", param_hint="--output")
    runs = [path.is_dir() for path in inputs]
    if any(runs) and not all(runs):
        raise click.UsageError("give only scores files or only run directories")
    names = [str(path) for path in inputs]
    if all(runs):
        if heldout:
            raise click.UsageError("--search takes scores files; with run directories use "
                                   "--search-val")
        if search_val and part == "val":
            raise click.UsageError("--search-val searches on the val part: report another "
                                   "--part than the one the weights are chosen on")
        from train.run_scores import run_scores
        scored = [run_scores(path, part, checkpoint=checkpoint, rescore=rescore,
                             progress=not no_progress) for path in inputs]
        for item in scored:
            how = "reused" if item.reused else "scored"
            click.echo(f"{item.run_dir}: {part} scores {how} ({item.scores_file})")
        streams = [item.scores for item in scored]
        class_names = scored[0].class_names
        score_files = [item.scores_file for item in scored]
        held, held_files = None, None
        if search_val:
            validation = [run_scores(path, "val", checkpoint=checkpoint, rescore=rescore,
                                     progress=not no_progress) for path in inputs]
            held = [item.scores for item in validation]
            held_files = [item.scores_file for item in validation]
    else:
        if search_val:
            raise click.UsageError("--search-val takes run directories; with scores files "
                                   "give the held-out files with --search")
        loaded = [load_scores(path) for path in inputs]
        streams = [scores for scores, _ in loaded]
        class_names = loaded[0][1]
        score_files = list(inputs)
        held = [load_scores(path)[0] for path in heldout] if heldout else None
        held_files = list(heldout) or None
    result = ensemble(streams, weights=_weights(weights), heldout=held, softmax=softmax,
                      names=names,
                      heldout_names=[str(path) for path in held_files] if held_files else None)
    for name, top1 in zip(names, result.stream_top1):
        click.echo(f"{name}: top-1 {100 * top1:.2f}%")
    if result.heldout_top1 is not None:
        where = "the runs' val part" if search_val else "the held-out set"
        click.echo(f"weights searched on {where}: top-1 there "
                   f"{100 * result.heldout_top1:.2f}%")
    click.echo("weights: " + ", ".join(f"{w:g}" for w in result.weights))
    click.echo(f"fused: top-1 {100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}% on "
               f"{len(result.fused.ids)} samples")
    if output is not None:
        save_scores(output, result.fused, class_names)
        record = ensemble_record(result, score_files, held_files, softmax,
                                 weights is not None)
        write_text_atomic(output.with_suffix(".json"),
                          json.dumps(record, indent=2) + "\n")
        click.echo(f"fused scores: {output}; streams and weights: "
                   f"{output.with_suffix('.json')}")
