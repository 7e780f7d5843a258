"""``pipeline status``."""

from __future__ import annotations

import json

import click

from pipeline.cli.options import user_errors_exit
from pipeline.status import workdir_status


@click.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--params", "show_params", is_flag=True, help="Also print each cache's settings.")
@user_errors_exit
def status(workdir, show_params):
    """Show each stage cache of WORKDIR: shards done/total, samples, failures, fingerprint."""
    found_workdir, caches = workdir_status(workdir)
    info = found_workdir.info
    click.echo(f"{found_workdir.path}: {info.dataset}, {info.num_samples} samples in "
               f"{found_workdir.num_shards} shard(s) of {info.shard_size}")
    if not caches:
        click.echo("no stage caches yet")
    for cache in caches:
        click.echo(cache.line())
        if show_params:
            click.echo("    " + json.dumps(cache.params, sort_keys=True, default=str))
