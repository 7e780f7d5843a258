"""``pipeline split``."""

from __future__ import annotations

import click

from data_manifest.splits import PROTOCOLS, select
from data_manifest.workdir import Workdir
from pipeline.cli.options import user_errors_exit


@click.command("split")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--protocol", required=True, type=click.Choice(list(PROTOCOLS)),
              help="Split protocol (it must apply to the WORKDIR's dataset).")
@click.option("--part", required=True, type=click.Choice(["train", "test"]),
              help="Which part to list.")
@user_errors_exit
def split(workdir, protocol, part):
    """Print the sample ids of one part of a split protocol, one per line, in manifest order.

    For example: `pipeline split WORKDIR --protocol ntu120-xsub --part test > test.txt`.
    `pipeline status` shows the train/test counts of every protocol that applies. The
    trainer's validation part (data.val_fraction) is held out of the train part at
    training time and is not listed here.
    """
    samples = select(Workdir(workdir).samples, protocol, part)
    if samples:
        click.echo("\n".join(sample.id for sample in samples))
