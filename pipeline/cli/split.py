"""``pipeline split``."""

from __future__ import annotations

import click

from data_manifest.splits import PARTS, protocols_of, select
from data_manifest.workdir import Workdir
from pipeline.cli.options import user_errors_exit


@click.command("split")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--protocol", metavar="NAME",
              help="Split protocol: one of the WORKDIR's (`pipeline status` lists them, e.g. "
                   "ntu120-xsub, or pyskl-xsub for a pyskl file's xsub lists).  [default: "
                   "the WORKDIR's default protocol]")
@click.option("--part", required=True, type=click.Choice(PARTS), help="Which part to list.")
@user_errors_exit
def split(workdir, protocol, part):
    """Print the sample ids of one part of a split protocol, one per line, in manifest order.

    For example: `pipeline split WORKDIR --protocol ntu120-xsub --part test > test.txt`.
    `pipeline status` shows the train/test counts of every protocol that applies. The
    trainer's validation part (data.val_fraction) is held out of the train part at
    training time and is not listed here.
    """
    found = Workdir(workdir)
    protocol = protocol or found.default_protocol
    known = protocols_of(found.samples)
    if protocol not in known:
        raise ValueError(f"split protocol {protocol!r} does not apply to {found.path} "
                         f"({found.dataset} data); its protocols: {', '.join(known) or 'none'}")
    samples = select(found.samples, protocol, part)
    if samples:
        click.echo("\n".join(sample.id for sample in samples))
