"""Which frames of a clip to take: m frames equally spaced in time.

The rule (the MMCL reference's): with ``n`` frames and ``m`` wanted, ``interval = n // m``
and frame ``i`` is ``i * interval`` for ``i = 0 .. m-1``; e.g. n=103, m=5 -> 0, 20, 40, 60,
80. A clip shorter than ``m`` frames cannot give ``m`` distinct frames: frame ``i`` is then
``i * n // m`` (e.g. n=3, m=5 -> 0, 0, 1, 1, 2), so every frame is used, in time order,
and some repeat; the selection says so.

Key-frame sampling (``--sampling keyframe``) then moves each chosen frame to the nearest
key frame, which decodes on its own, when one is less than half the spacing away (else
the frame stays): with NTU's key frame every 12 frames and 5 frames of 103 (spacing 20),
0, 20, 40, 60, 80 become 0, 24, 36, 60, 84.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class FrameSelection:
    indices: tuple[int, ...]
    frame_count: int

    @property
    def repeated(self) -> bool:
        return len(set(self.indices)) < len(self.indices)


def select_frames(frame_count: int, num_frames: int) -> FrameSelection:
    if num_frames < 1:
        raise ValueError(f"the number of frames to take must be at least 1, not {num_frames}")
    if frame_count < 1:
        raise ValueError(f"cannot choose frames from a clip of {frame_count} frames")
    if frame_count >= num_frames:
        interval = frame_count // num_frames
        indices = tuple(i * interval for i in range(num_frames))
    else:
        indices = tuple(i * frame_count // num_frames for i in range(num_frames))
    return FrameSelection(indices, frame_count)


def keyframe_tolerance(frame_count: int, num_frames: int) -> int:
    """How far key-frame sampling may move a chosen frame: less than half the spacing
    between chosen frames, so that two never land on the same key frame (0 when
    the clip has no more frames than are chosen)."""
    spacing = frame_count // num_frames
    return max((spacing - 1) // 2, 0)


def nearest_keyframes(indices: Sequence[int], keyframes: Sequence[int],
                      max_distance: int) -> tuple[int, ...]:
    """Each index moved to the nearest of ``keyframes`` (increasing; the earlier on a
    tie), when one is at most ``max_distance`` frames away; otherwise kept."""
    moved = []
    for index in indices:
        position = bisect.bisect_left(keyframes, index)
        near = keyframes[max(position - 1, 0):position + 1]
        best = min(near, key=lambda key: (abs(key - index), key), default=None)
        moved.append(best if best is not None and abs(best - index) <= max_distance
                     else index)
    return tuple(moved)
