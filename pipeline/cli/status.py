"""``pipeline status``."""

from __future__ import annotations

import click

from data_manifest.splits import describe_splits
from pipeline.cli.options import user_errors_exit
from pipeline.status import workdir_status


@click.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--params", "show_params", is_flag=True, help="Also print each cache's settings.")
@user_errors_exit
def status(workdir, show_params):
    """Show WORKDIR's train/test counts per split protocol, then every stage: per cache,
    shards done/total, samples, failures, shards to redo and why, damaged shards and
    fingerprint; stages without a cache show as not started.

    A shard counts as done when a run of the stage would skip it: readable, made with the
    cache's settings and for the WORKDIR's shard plan, and built from the upstream shards
    and input files as they are now. `pipeline split` lists a split's sample ids.
    """
    found_workdir, stages = workdir_status(workdir)
    info = found_workdir.info
    click.echo(f"{found_workdir.path}: {info.dataset}, {info.num_samples} samples in "
               f"{found_workdir.num_shards} shard(s) of {info.shard_size}")
    for line in describe_splits(found_workdir.samples):
        click.echo(f"  split {line}")
    for stage in stages:
        for line in stage.lines(show_params):
            click.echo(line)
