"""``pipeline preview``."""

from __future__ import annotations

import click

from data_manifest.workdir import DEFAULT_CACHE_NAME
from pipeline.cli.options import cache_name_option, user_errors_exit
from pipeline.cli.sizes import SIZE
from pipeline.stages.preview import write_preview
from pipeline.stages.stitch import FITS


@click.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.argument("sample_id")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Image file to write (.png or .jpg).")
@click.option("--canvas", type=SIZE, default=None,
              help="Image size.  [default: the stitch cache's, else 480x480]")
@click.option("--fit", type=click.Choice(FITS), default=None,
              help="Tile fit.  [default: the stitch cache's, else stretch]")
@cache_name_option("--frames-cache", default=DEFAULT_CACHE_NAME, help="Frames cache to show.")
@cache_name_option("--skeleton-cache", default=DEFAULT_CACHE_NAME,
                   help="Skeleton cache whose joints are drawn.")
@cache_name_option("--stitch-cache", default=DEFAULT_CACHE_NAME,
                   help="Stitch cache whose layout is used, if it exists.")
@user_errors_exit
def preview(workdir, sample_id, output, canvas, fit, frames_cache, skeleton_cache,
            stitch_cache):
    """Write SAMPLE_ID's temporal image with its skeleton drawn on each tile.

    Each tile is labelled with its video frame index and crop source (skel: this frame's
    joints, near: the nearest frame's, full: whole frame, none: cropping off).
    """
    result = write_preview(workdir, sample_id, output, frames_cache=frames_cache,
                           skeleton_cache=skeleton_cache, stitch_cache=stitch_cache,
                           canvas=canvas, fit=fit)
    click.echo(f"{output}: frames {result.frame_indices}, crops from "
               f"{', '.join(result.crop_source)}; {result.joints_drawn} joints drawn")
