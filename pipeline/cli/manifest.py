"""``pipeline manifest``."""

from __future__ import annotations

import click

from data_manifest.datasets import DATASETS
from data_manifest.workdir import DEFAULT_SHARD_SIZE
from pipeline.cli.options import user_errors_exit
from pipeline.manifest_builder import REQUIRE_CHOICES, build_manifest


@click.command()
@click.argument("dataset", type=click.Choice(sorted(DATASETS)))
@click.argument("root", type=click.Path(path_type=str))
@click.argument("workdir", type=click.Path(file_okay=False, path_type=str))
@click.option("--video-root", type=click.Path(exists=True, file_okay=False),
              help="Where the videos are, if not under ROOT.  [default: ROOT]")
@click.option("--require", type=click.Choice(REQUIRE_CHOICES), default="skeleton",
              help="Which files a sample must have to be listed; others are reported as "
                   "orphans.")
@click.option("--ignore-list", type=click.Path(exists=True, dir_okay=False),
              help="File of sample names to leave out (e.g. NTU's missing-skeleton list).")
@click.option("--shard-size", default=DEFAULT_SHARD_SIZE, type=click.IntRange(1),
              help="Samples per cache shard (the unit of work and of resuming).")
@click.option("--overwrite", is_flag=True,
              help="Replace an existing, different manifest of this WORKDIR.")
@user_errors_exit
def manifest(dataset, root, workdir, video_root, require, ignore_list, shard_size,
             overwrite):
    """Build WORKDIR/manifest.jsonl for DATASET from the files under ROOT.

    DATASET is ntu60, ntu120, nw-ucla, or csv (then ROOT is a CSV file with columns
    id,label,skeleton,video[,split], paths relative to the CSV). Skeleton files and videos
    are paired by sample name; files left unpaired are listed in WORKDIR/orphans.jsonl.
    """
    report = build_manifest(dataset, root, workdir, video_root=video_root, require=require,
                            ignore_list=ignore_list, shard_size=shard_size,
                            overwrite=overwrite)
    click.echo(report.summary())
