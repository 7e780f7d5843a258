"""The built-in demo dataset: a small NTU-style folder with skeletons and matching videos.

``make_demo_dataset(root)`` writes ``SsssCcccPpppRrrrAaaa.skeleton`` files (synthetic NTU
skeletons from :mod:`pipeline.synthetic.ntu_skeleton`) and ``..._rgb.avi`` videos
rendered from them (:mod:`pipeline.synthetic.video`), so every stage of the pipeline has
something to do. The videos are small (640x360 by default); the skeleton files' colour
coordinates are written in that video's pixels, so crops line up without
``--color-size``. Samples of each class cycle over performers 1-8 and cameras 1-3, so the
ntu60-xsub split (performers 3, 6 and 7 test) and the ntu60-xview split (camera 1 test)
both have train and test samples of every class. Odd-numbered actions hold an object of a
class-specific colour in the right hand (something only the RGB stream shows). The same
seed gives the same files.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from pipeline.synthetic.ntu_skeleton import IMAGE_SIZE, generate_sequence, write_ntu_skeleton
from pipeline.synthetic.video import render_video

DEFAULT_VIDEO_SIZE = (640, 360)
# performers in the order samples take them: xsub train 1, 2, 4, 5, 8; test 3, 6, 7
PERFORMER_CYCLE = (1, 3, 2, 6, 4, 7, 5, 8)
TWO_ACTOR_ACTIONS = range(50, 61)
OBJECT_COLOURS = ((0, 200, 255), (255, 80, 0), (0, 220, 0), (200, 0, 200), (0, 0, 255))


def demo_sample_name(index: int, action: int) -> str:
    """Name of the ``index``-th demo sample of ``action`` (unique up to 272 per action)."""
    setup = index // 16 + 1
    if setup > 17:
        raise ValueError("at most 272 demo samples per class (NTU60 has 17 setups)")
    performer = PERFORMER_CYCLE[index % len(PERFORMER_CYCLE)]
    camera = index % 3 + 1
    replication = (index // len(PERFORMER_CYCLE)) % 2 + 1
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


def held_object_colour(action: int) -> tuple[int, int, int] | None:
    return OBJECT_COLOURS[(action // 2) % len(OBJECT_COLOURS)] if action % 2 else None


def make_demo_dataset(root: str | os.PathLike, *, num_classes: int = 6,
                      samples_per_class: int = 8, seed: int = 0,
                      frames: tuple[int, int] = (40, 60),
                      video_size: tuple[int, int] | None = DEFAULT_VIDEO_SIZE,
                      noise_every: int = 7) -> Path:
    """Write the demo dataset under ``root`` and return it.

    ``num_classes`` actions A001.. (NTU60 labels 0..num_classes-1; actions 50-60 have two
    actors), ``samples_per_class`` clips each of ``frames`` (min, max) frames (at least
    12 for extract-skeletons: NTU's denoising drops bodies seen in 11 frames or fewer).
    ``video_size`` None writes skeletons only (colour coordinates then in NTU's
    1920x1080). Every ``noise_every``-th clip also carries a noise body for the denoising
    to remove (0: none).
    """
    if not 1 <= num_classes <= 60:
        raise ValueError(f"num_classes must be in 1..60 (NTU60 actions), not {num_classes}")
    if samples_per_class < 1:
        raise ValueError(f"samples_per_class must be at least 1, not {samples_per_class}")
    low, high = frames
    if not 1 <= low <= high:
        raise ValueError(f"frames must be (min, max) with 1 <= min <= max, not {frames}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    scale = None
    if video_size is not None:
        scale = np.array([video_size[0] / IMAGE_SIZE[0], video_size[1] / IMAGE_SIZE[1]],
                         dtype=np.float32)
    for action in range(1, num_classes + 1):
        for index in range(samples_per_class):
            rng = np.random.default_rng([seed, action, index])
            number = action * samples_per_class + index
            sequence = generate_sequence(
                rng, int(rng.integers(low, high + 1)),
                num_actors=2 if action in TWO_ACTOR_ACTIONS else 1, action=action,
                noise_bodies=int(noise_every > 0 and number % noise_every == noise_every - 1))
            if scale is not None:
                sequence = dataclasses.replace(sequence, color_xy=sequence.color_xy * scale)
            name = demo_sample_name(index, action)
            write_ntu_skeleton(root / f"{name}.skeleton", sequence)
            if video_size is not None:
                render_video(root / f"{name}_rgb.avi", sequence.color_xy, sequence.present,
                             sequence.roles, video_size, depth=sequence.joints[..., 0, 2],
                             seed=int(rng.integers(2**31)),
                             held_colour=held_object_colour(action))
    return root
