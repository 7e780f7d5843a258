"""``pipeline stitch``."""

from __future__ import annotations

import click

from data_manifest.workdir import DEFAULT_CACHE_NAME
from pipeline.cli.options import (cache_name_option, report_and_exit, stage_options,
                                  user_errors_exit)
from pipeline.cli.sizes import SIZE
from pipeline.stages.stitch import DEFAULT_CANVAS, FITS, WHOLE_FRAME_FITS
from pipeline.stages.stitch import stitch as run_stitch


@click.command()
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--canvas", type=SIZE, default="x".join(map(str, DEFAULT_CANVAS)),
              help="Size of the temporal image; the m crops share its width equally.")
@click.option("--tile", type=SIZE, default=None,
              help="Size of one crop's tile instead; the image is then m tiles wide.  "
                   "[default: the canvas split in m]")
@click.option("--fit", type=click.Choice(FITS), default="stretch",
              help="'stretch' each crop to its tile (the reference's way) or 'pad' it, "
                   "keeping its aspect ratio, centred on black.")
@click.option("--whole-frame-fit", type=click.Choice(WHOLE_FRAME_FITS), default="crop",
              help="How a whole video frame (no person box known, or extract-frames --crop "
                   "none) fills its tile: 'crop' its centre to the tile's aspect ratio, 'pad' "
                   "it whole on black, or 'stretch' it (a 16:9 frame in a 96x480 tile makes "
                   "people slivers).")
@click.option("--jpeg-quality", default=90, type=click.IntRange(1, 100),
              help="JPEG quality of the stored image.")
@cache_name_option("--frames-cache", default=DEFAULT_CACHE_NAME,
                   help="Name of the frames cache to stitch.")
@cache_name_option("--name", "cache_name", default=DEFAULT_CACHE_NAME,
                   help="Name of the stitch cache to build (keep several layouts side by "
                        "side).")
@stage_options
@user_errors_exit
def stitch(workdir, canvas, tile, fit, whole_frame_fit, jpeg_quality, frames_cache, cache_name, jobs,
           skip_failures, retry_failures, overwrite, no_progress, rebuild):
    """Paste each sample's m crops left to right into one image: WORKDIR/cache/stitch/NAME.

    Only the frames cache is read: a new layout never decodes the videos again.
    """
    result = run_stitch(workdir, canvas=canvas, tile=tile, fit=fit,
                        whole_frame_fit=whole_frame_fit,
                        jpeg_quality=jpeg_quality, frames_cache=frames_cache,
                        cache_name=cache_name, jobs=jobs, overwrite=overwrite,
                        retry_failures=retry_failures, rebuild=rebuild,
                        progress=not no_progress)
    report_and_exit(result, skip_failures)
