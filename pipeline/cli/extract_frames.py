"""``pipeline extract-frames``."""

from __future__ import annotations

import click

from data_manifest.schemas import FRAMES
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.cli.options import (cache_name_option, report_and_exit, stage_options,
                                  user_errors_exit)
from pipeline.cli.sizes import SIZE
from pipeline.stages.extract_frames import (CROP_MODES, SAMPLINGS,
                                           extract_frames as run_extract_frames,
                                           samples_with_notes)
from pipeline.video.methods import METHODS


@click.command("extract-frames")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("-m", "--num-frames", default=5, type=click.IntRange(1),
              help="Frames per sample, equally spaced: frame i = i * (count // m).")
@click.option("--sampling", type=click.Choice(SAMPLINGS), default="exact",
              help="'exact': the chosen frames; 'keyframe': for each, the nearest key frame "
                   "less than half the spacing away (it decodes on its own: several times "
                   "faster, frames a few frames off; needs PyAV). Recorded in the cache.")
@click.option("--crop", type=click.Choice(CROP_MODES), default="skeleton",
              help="'skeleton': box around the actors' colour-image joints (needs the "
                   "skeleton cache); 'none': whole frames.")
@click.option("--margin", default=0.1, type=click.FloatRange(0),
              help="Added on every side of the person box, as a fraction of its longer "
                   "side.")
@click.option("--max-side", default=480, type=click.IntRange(0),
              help="Shrink crops so their longer side is at most this many pixels (0: keep "
                   "the video's resolution).")
@click.option("--jpeg-quality", default=90, type=click.IntRange(1, 100),
              help="JPEG quality of the stored crops.")
@click.option("--color-size", type=SIZE, default=None,
              help="Size of the image the skeleton's colour coordinates refer to, if the "
                   "videos were resized (NTU: 1920x1080).  [default: the video's size]")
@cache_name_option("--skeleton-cache", default=DEFAULT_CACHE_NAME,
                   help="Name of the skeleton cache to crop from.")
@cache_name_option("--name", "cache_name", default=DEFAULT_CACHE_NAME,
                   help="Name of the frames cache to build (keep several side by side).")
@click.option("--method", type=click.Choice(METHODS), default="auto",
              help="How chosen frames are reached: index (PyAV: decode from the key frame "
                   "before each), grab (OpenCV: decode forward), seek (OpenCV), or auto "
                   "(index when PyAV is installed, else grab, seeking across long gaps). "
                   "Does not change the result.")
@click.option("--decode-threads", type=click.IntRange(1), default=None,
              help="FFmpeg decoding threads per worker; with many -j workers on many "
                   "cores, 1 avoids oversubscription.  [default: FFmpeg's, one per CPU]")
@stage_options
@user_errors_exit
def extract_frames(workdir, num_frames, sampling, crop, margin, max_side, jpeg_quality,
                   color_size, skeleton_cache, cache_name, method, decode_threads, jobs,
                   skip_failures, retry_failures, overwrite, no_progress, rebuild):
    """Take m person crops per sample from its video into WORKDIR/cache/frames/NAME.

    Only the chosen frames are decoded (from the key frame before each, with PyAV), or
    with --sampling keyframe the nearest key frames alone. Samples without a skeleton (or
    whose skeleton has no colour coordinates in a frame) use the nearest frame's box, then
    the whole frame; each crop records which. Failed samples go to the failures ledger.
    """
    result = run_extract_frames(
        workdir, num_frames=num_frames, sampling=sampling, crop=crop, margin=margin,
        max_side=max_side or None, jpeg_quality=jpeg_quality, color_size=color_size,
        skeleton_cache=skeleton_cache, cache_name=cache_name, method=method,
        decode_threads=decode_threads, jobs=jobs, overwrite=overwrite,
        retry_failures=retry_failures, rebuild=rebuild, progress=not no_progress)
    noted = samples_with_notes(Workdir(workdir).cache_dir(FRAMES, cache_name))
    if noted:
        first = next(iter(noted))
        click.echo(f"{len(noted)} sample(s) took a documented fallback (e.g. {first}: "
                   f"{noted[first]}); `pipeline preview` shows a sample's crops")
    report_and_exit(result, skip_failures)
