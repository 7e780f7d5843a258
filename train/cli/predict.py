"""``train predict MODEL SKELETON_FILE``: top classes of one skeleton file."""

from __future__ import annotations

import json

import click

from data_manifest.datasets import DATASETS
from train.cli.common import user_errors_exit
from train.predict import predict_file


@click.command("predict")
@click.argument("model", type=click.Path(exists=True))
@click.argument("skeleton_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-k", "--top-k", default=5, type=click.IntRange(1),
              help="How many classes to print.")
@click.option("--dataset", default=None,
              type=click.Choice(sorted(DATASETS)),
              help="Read the file as this dataset's files are read.  [default: as the run's "
                   "skeleton cache read its files: layout, joint mapping, channels, persons]")
@click.option("--checkpoint", default="auto",
              help="For a run directory: auto (best if it was chosen on a validation "
                   "part, else last), best, last or a checkpoint path.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@user_errors_exit
def command(model: str, skeleton_file: str, top_k: int, dataset: str | None,
            checkpoint: str, as_json: bool) -> None:
    """Print the top classes of SKELETON_FILE.

    MODEL is a run directory, an export directory, or an exported .pt (TorchScript) /
    .onnx file. The file is read and preprocessed exactly as in training and evaluation
    (.skeleton for NTU, .json for NW-UCLA; own data: .npy, .npz, .json, .csv of frames or
    v7.3 .mat in the run's layout, see docs/own-data.md).
    """
    prediction = predict_file(model, skeleton_file, top_k=top_k, dataset=dataset,
                              checkpoint=checkpoint)
    click.echo(json.dumps(prediction.to_dict(), indent=2) if as_json else prediction.format())
