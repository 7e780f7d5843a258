"""``train ensemble SCORES...``: weighted fusion of several streams' scores by sample id."""

from __future__ import annotations

from pathlib import Path

import click

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
@click.argument("scores", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="One weight per scores file, e.g. 0.6,0.6,0.4,0.4 [default: equal, or "
                   "searched with --search].")
@click.option("--search", "heldout", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Held-out scores file of each stream, same order as SCORES (repeat the "
                   "option); the weights that do best on them are used.")
@click.option("--softmax", is_flag=True,
              help="Fuse softmax probabilities instead of raw scores (logits).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the fused scores here (.npz), and beside them (.json) the streams, "
                   "weights and accuracy, which `train compare` reads.")
@user_errors_exit
def ensemble_command(scores: tuple[Path, ...], weights: str | None,
                     heldout: tuple[Path, ...], softmax: bool, output: Path | None) -> None:
    """Fuse the scores.npz files of several streams (e.g. joint, bone, joint-motion,
    bone-motion from `train eval`) and report the fused accuracy."""
    import json

    from train.ensemble import ensemble, ensemble_record
    from train.files import write_text_atomic
    from train.scores_io import load_scores, save_scores

    if output is not None and output.suffix.lower() == ".json":
        raise click.BadParameter("the fused scores are .npz; the .json record is written "
                                 "beside them", param_hint="--output")
    streams = [load_scores(path)[0] for path in scores]
    class_names = load_scores(scores[0])[1]
    held = [load_scores(path)[0] for path in heldout] if heldout else None
    result = ensemble(streams, weights=_weights(weights), heldout=held, softmax=softmax)
    for path, top1 in zip(scores, result.stream_top1):
        click.echo(f"{path}: top-1 {100 * top1:.2f}%")
    if result.heldout_top1 is not None:
        click.echo(f"weights searched on the held-out set: top-1 there "
                   f"{100 * result.heldout_top1:.2f}%")
    click.echo("weights: " + ", ".join(f"{w:g}" for w in result.weights))
    click.echo(f"fused: top-1 {100 * result.top1:.2f}%, top-5 {100 * result.top5:.2f}% on "
               f"{len(result.fused.ids)} samples")
    if output is not None:
        save_scores(output, result.fused, class_names)
        record = ensemble_record(result, scores, heldout, softmax, weights is not None)
        write_text_atomic(output.with_suffix(".json"),
                          json.dumps(record, indent=2) + "\n")
        click.echo(f"fused scores: {output}; streams and weights: "
                   f"{output.with_suffix('.json')}")
