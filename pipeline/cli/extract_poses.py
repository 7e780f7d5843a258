"""``pipeline extract-poses``."""

from __future__ import annotations

import click

from data_manifest.schemas import SKELETONS
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.cli.options import (cache_name_option, report_and_exit, stage_options,
                                  user_errors_exit)
from pipeline.stages.extract_frames import samples_with_notes
from pipeline.stages.extract_poses import extract_poses


@click.command("extract-poses")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--stride", default=1, type=click.IntRange(1),
              help="Estimate every k-th frame (0, k, 2k, ...); the cache keeps each row's "
                   "video frame index.")
@click.option("--min-detection-confidence", default=0.5, type=click.FloatRange(0, 1),
              help="MediaPipe Pose: confidence needed to accept a detected person.")
@click.option("--min-tracking-confidence", default=0.5, type=click.FloatRange(0, 1),
              help="MediaPipe Pose: confidence needed to keep tracking the person from one "
                   "frame to the next (below it, the person is detected again).")
@click.option("--no-smoothing", is_flag=True,
              help="Do not smooth the landmarks over time (MediaPipe smooths by default).")
@click.option("--decode-threads", type=click.IntRange(1), default=None,
              help="FFmpeg decoding threads per worker.  [default: OpenCV's, one per CPU]")
@cache_name_option("--name", "cache_name", default=DEFAULT_CACHE_NAME,
                   help="Name of the skeletons cache to build. A WORKDIR whose samples have "
                        "skeleton files needs another name than the default (theirs).")
@stage_options
@user_errors_exit
def extract_poses_command(workdir, stride, min_detection_confidence, min_tracking_confidence,
                          no_smoothing, decode_threads, cache_name, jobs, skip_failures,
                          retry_failures, overwrite, no_progress, rebuild):
    """Estimate each sample's pose from its video into WORKDIR/cache/skeletons/NAME.

    For data with videos and no skeleton files. MediaPipe Pose (BlazePose, 33 landmarks,
    the mediapipe-33 layout; an optional dependency: scripts/setup.sh installs it) finds
    one person per video: metric 3-D joints, and each joint's position in the video's
    pixels, from which extract-frames crops. Frames without a person are left out (their
    count is in the sample's notes); a video without a person in any frame, or that does
    not decode, is a recorded failure. Re-running the same command finishes an interrupted
    run.
    """
    result = extract_poses(workdir, stride=stride,
                           min_detection_confidence=min_detection_confidence,
                           min_tracking_confidence=min_tracking_confidence,
                           smooth_landmarks=not no_smoothing, decode_threads=decode_threads,
                           cache_name=cache_name, jobs=jobs, overwrite=overwrite,
                           retry_failures=retry_failures, rebuild=rebuild,
                           progress=not no_progress)
    noted = samples_with_notes(Workdir(workdir).cache_dir(SKELETONS, cache_name))
    if noted:
        first = next(iter(noted))
        click.echo(f"{len(noted)} sample(s) have notes (e.g. {first}: {noted[first]})")
    report_and_exit(result, skip_failures)
