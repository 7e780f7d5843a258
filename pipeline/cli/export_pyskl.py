"""``pipeline export-pyskl``."""

from __future__ import annotations

import click

from data_manifest.workdir import DEFAULT_CACHE_NAME
from pipeline.cli.options import cache_name_option, user_errors_exit
from pipeline.export_pyskl import export_pyskl


@click.command("export-pyskl")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--protocol", "protocols", multiple=True, metavar="NAME",
              help="Split protocol whose train/test parts become split lists (repeat for "
                   "several), e.g. ntu60-xsub -> xsub_train/xsub_val, pyskl-xsub -> the "
                   "pyskl file's own lists.  [default: a pyskl WORKDIR's lists, else every "
                   "protocol of the dataset]")
@cache_name_option("--skeleton-cache", default=DEFAULT_CACHE_NAME,
                   help="The skeleton cache to export.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@user_errors_exit
def export_pyskl_command(workdir, out, protocols, skeleton_cache, overwrite, no_progress):
    """Write WORKDIR's skeleton cache as a pyskl annotation file OUT (.pkl).

    Each stored sample becomes an annotation (frame_dir, label, keypoint M x T x V x C,
    keypoint_score for 2-D points with scores, total_frames); split lists come from the
    protocols, the test part named <name>_val as pyskl names it. The pickle holds only
    lists, dicts, numbers, strings and NumPy arrays that NumPy 1.x and 2.x load; it is
    written atomically. See docs/own-data.md.
    """
    report = export_pyskl(workdir, out, protocols=list(protocols) or None,
                          skeleton_cache=skeleton_cache, overwrite=overwrite,
                          progress=not no_progress)
    click.echo(report.summary())
