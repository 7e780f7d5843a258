"""Which frames of a clip to take: m frames equally spaced in time.

The rule (the MMCL reference's): with ``n`` frames and ``m`` wanted, ``interval = n // m``
and frame ``i`` is ``i * interval`` for ``i = 0 .. m-1``; e.g. n=103, m=5 -> 0, 20, 40, 60,
80. A clip shorter than ``m`` frames cannot give ``m`` distinct frames: frame ``i`` is then
``i * n // m`` (e.g. n=3, m=5 -> 0, 0, 1, 1, 2), so every frame is used, in time order,
and some repeat; the selection says so.
"""

from __future__ import annotations

from dataclasses import dataclass


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
