"""Person crop boxes from the skeleton's colour-image joint coordinates.

The box of a frame is the bounding box of every actor's joints in that frame, grown by
``margin`` times its longer side on each side (joints are centres: the head joint is the
middle of the head), at least ``MIN_SIDE`` pixels, and clamped to the image. Joints
outside the image are clamped with it; a frame whose joints all fall outside the image, or
that has no coordinates (no body, NaN, a dataset without colour coordinates), has no box
of its own. Such a frame borrows the box of the nearest frame (in the original frame
numbering) that has one, then falls back to the whole frame; the source is recorded as
``skeleton``, ``nearest-skeleton`` or ``full-frame`` (``none`` when cropping is off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_SIDE = 16
CROP_SOURCES = ("skeleton", "nearest-skeleton", "full-frame", "none")
WHOLE_FRAME_SOURCES = ("full-frame", "none")    # crops that are the whole video frame

Box = tuple[int, int, int, int]   # x0, y0, x1, y1; ends exclusive


@dataclass(frozen=True)
class CropChoice:
    box: Box
    source: str
    skeleton_frame: int | None = None   # original frame whose coordinates gave the box


def full_frame(width: int, height: int) -> Box:
    return (0, 0, width, height)


def person_box(points: np.ndarray, width: int, height: int, margin: float) -> Box | None:
    """Box around ``points`` (..., 2) in pixels, or None if no finite point is in the image."""
    xy = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    xy = xy[np.isfinite(xy).all(axis=1)]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    if not inside.any():
        return None
    x_min, y_min = xy.min(axis=0)
    x_max, y_max = xy.max(axis=0)
    pad = margin * max(x_max - x_min, y_max - y_min)
    x0, y0 = x_min - pad, y_min - pad
    x1, y1 = x_max + pad + 1, y_max + pad + 1     # +1: the last joint's pixel is inside
    x0, x1 = _at_least(x0, x1, MIN_SIDE)
    y0, y1 = _at_least(y0, y1, MIN_SIDE)
    box = (max(int(np.floor(x0)), 0), max(int(np.floor(y0)), 0),
           min(int(np.ceil(x1)), width), min(int(np.ceil(y1)), height))
    return box if box[2] > box[0] and box[3] > box[1] else None


def _at_least(start: float, stop: float, side: float) -> tuple[float, float]:
    missing = side - (stop - start)
    if missing > 0:
        start, stop = start - missing / 2, stop + missing / 2
    return start, stop


class SkeletonBoxes:
    """Crop boxes for video frames from one sample's skeleton.

    ``color_xy`` (T, M, V, 2) holds pixel coordinates (NaN where absent) and
    ``frame_index`` (T,) the original frame of each row; ``scale`` maps the coordinates'
    pixel grid onto the video's (for videos resized after recording).
    """

    def __init__(self, color_xy: np.ndarray, frame_index: np.ndarray, width: int,
                 height: int, margin: float, scale: tuple[float, float] = (1.0, 1.0)):
        xy = np.asarray(color_xy, dtype=np.float64) * np.asarray(scale, dtype=np.float64)
        self.width, self.height = width, height
        self._boxes: dict[int, Box] = {}
        for row, frame in enumerate(np.asarray(frame_index).tolist()):
            box = person_box(xy[row], width, height, margin)
            if box is not None:
                self._boxes[int(frame)] = box
        self._frames = np.array(sorted(self._boxes), dtype=np.int64)

    @property
    def frames_with_boxes(self) -> int:
        return len(self._frames)

    def choose(self, frame: int) -> CropChoice:
        box = self._boxes.get(frame)
        if box is not None:
            return CropChoice(box, "skeleton", frame)
        if len(self._frames):
            # nearest frame with a box; on a tie the earlier one
            nearest = int(self._frames[np.argmin(np.abs(self._frames - frame))])
            return CropChoice(self._boxes[nearest], "nearest-skeleton", nearest)
        return CropChoice(full_frame(self.width, self.height), "full-frame")
