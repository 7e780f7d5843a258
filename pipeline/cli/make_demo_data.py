"""``pipeline make-demo-data``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import user_errors_exit
from pipeline.cli.sizes import SIZE
from pipeline.synthetic.demo_dataset import DEFAULT_VIDEO_SIZE, make_demo_dataset


@click.command("make-demo-data")
@click.argument("root", type=click.Path(file_okay=False, path_type=Path))
@click.option("--num-classes", default=6, type=click.IntRange(1, 60),
              help="Actions A001.. to generate (NTU60 labels 0..N-1; 50-60 have two "
                   "actors).")
@click.option("--samples-per-class", default=8, type=click.IntRange(1, 272),
              help="Clips per action, cycling over performers 1-8 and cameras 1-3 so both "
                   "NTU60 splits have train and test samples.")
@click.option("--min-frames", default=40, type=click.IntRange(12),
              help="Shortest clip. At least 12: in a file with several bodies (two-actor "
                   "actions, added noise bodies), NTU's denoising drops those seen in 11 "
                   "frames or fewer.")
@click.option("--max-frames", default=60, type=click.IntRange(12), help="Longest clip.")
@click.option("--video-size", type=SIZE, default="x".join(map(str, DEFAULT_VIDEO_SIZE)),
              help="Size of the rendered videos (the skeletons' colour coordinates match "
                   "it).")
@click.option("--no-video", is_flag=True, help="Write skeleton files only.")
@click.option("--seed", default=0, type=int, help="Same seed, same files.")
@click.option("--overwrite", is_flag=True,
              help="Write into a ROOT that already has files (same-named files are "
                   "replaced, others left alone).")
@user_errors_exit
def make_demo_data(root, num_classes, samples_per_class, min_frames, max_frames, video_size,
                   no_video, seed, overwrite):
    """Write a small NTU-style demo dataset (skeletons and videos) into ROOT.

    Then: `pipeline manifest ntu60 ROOT WORKDIR` and the stages as for real NTU data.
    """
    if root.exists() and any(root.iterdir()) and not overwrite:
        raise click.UsageError(f"{root} is not empty; pass --overwrite to write into it")
    if min_frames > max_frames:
        raise click.BadParameter("--min-frames is larger than --max-frames")
    make_demo_dataset(root, num_classes=num_classes, samples_per_class=samples_per_class,
                      seed=seed, frames=(min_frames, max_frames),
                      video_size=None if no_video else video_size)
    count = num_classes * samples_per_class
    click.echo(f"{count} demo samples ({num_classes} classes x {samples_per_class}) in "
               f"{root}" + ("" if no_video else " with videos"))
