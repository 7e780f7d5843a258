"""``preview``: a sample's temporal image with its skeleton drawn on every tile.

Built from the frames cache (crops, boxes, frame indices) and, where the sample has one,
the skeleton cache (colour-image coordinates of the same frames), laid out like the
stitch cache if there is one (else the stitch defaults). Each tile is labelled with its
video frame index and where its crop box came from, so crops can be checked by eye.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data_manifest.errors import DataError, MissingCacheError
from data_manifest.layouts import Layout
from data_manifest.schemas import FRAMES, SKELETONS, STITCH
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.stages.stitch import (DEFAULT_CANVAS, FRAMES_HINT, compose, stored_crops,
                                    tile_fits)
from pipeline.stages.upstream import open_upstream

ACTOR_COLOURS = ((0, 255, 0), (255, 160, 0), (0, 200, 255), (255, 0, 255))   # BGR
SOURCE_LABELS = {"skeleton": "skel", "nearest-skeleton": "near", "full-frame": "full",
                 "none": "none"}


@dataclass
class Preview:
    image: np.ndarray               # BGR canvas with the skeleton drawn
    frame_indices: list[int]
    crop_source: list[str]
    joints_drawn: int               # joints drawn over all tiles (0: no skeleton)


def _layout_for(workdir: Workdir, num_joints: int) -> Layout | None:
    """The WORKDIR's layout; without one (or another joint count) only joints are drawn,
    never lines of a layout guessed from the joint count."""
    layout = workdir.layout
    return layout if layout is not None and layout.num_joints == num_joints else None


def render_preview(workdir, sample_id: str, *, frames_cache: str = DEFAULT_CACHE_NAME,
                   skeleton_cache: str = DEFAULT_CACHE_NAME,
                   stitch_cache: str = DEFAULT_CACHE_NAME,
                   canvas: tuple[int, int] | None = None, fit: str | None = None) -> Preview:
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    frames = open_upstream(workdir, FRAMES, frames_cache, [], FRAMES_HINT)
    with frames:
        if sample_id not in frames:
            reason = next((f["reason"] for f in frames.failures if f["id"] == sample_id), None)
            if sample_id not in workdir.samples_by_id:
                raise DataError(f"no sample {sample_id!r} in the manifest of {workdir.path}")
            raise DataError(f"sample {sample_id} has no frames"
                            + (f": extract-frames failed ({reason})" if reason else
                               ": run `pipeline extract-frames` first"))
        record = frames.get(sample_id)
        frames_params = frames.spec.params
    crops = stored_crops(record)
    stitch_params = {}
    stitch_dir = workdir.cache_dir(STITCH, stitch_cache)
    if stitch_dir.exists():
        stitch_params = stitch_dir.spec().params
    size = tuple(canvas or stitch_params.get("canvas") or DEFAULT_CANVAS)
    sources = list(record["crop_source"])
    fits = tile_fits(sources, fit or stitch_params.get("fit", "stretch"),
                     stitch_params.get("whole_frame_fit", "crop"))
    image, where = compose(crops, size, fits)

    skeleton = _skeleton_of(workdir, skeleton_cache, sample_id)
    indices = [int(i) for i in record["frame_indices"]]
    drawn = 0
    if skeleton is not None:
        color_xy, frame_index = skeleton
        color_size = frames_params.get("color_size")
        width, height = (int(v) for v in record["video_size"])
        if color_size:
            color_xy = color_xy * np.array([width / color_size[0], height / color_size[1]])
        row_of = {int(f): row for row, f in enumerate(frame_index.tolist())}
        layout = _layout_for(workdir, color_xy.shape[2])
        for crop, place, box, index in zip(crops, where, record["boxes"], indices):
            row = row_of.get(index)
            if row is None:
                continue
            x0, y0, x1, y1 = (int(v) for v in box)
            scale = np.array([crop.shape[1] / (x1 - x0), crop.shape[0] / (y1 - y0)])
            for actor in range(color_xy.shape[1]):
                in_crop = (color_xy[row, actor] - np.array([x0, y0])) * scale
                points = place.map_points(in_crop, crop.shape[1], crop.shape[0])
                drawn += _draw_actor(image, points, layout, ACTOR_COLOURS[actor % 4], place)
    for place, index, source in zip(where, indices, sources):
        label = f"{index} {SOURCE_LABELS.get(source, source)}"
        cv2.putText(image, label, (place.x + 2, place.y + place.height - 4),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
    return Preview(image, indices, sources, drawn)


def _skeleton_of(workdir: Workdir, name: str, sample_id: str):
    try:
        reader = workdir.reader(SKELETONS, name)
    except MissingCacheError:
        return None
    with reader:
        if sample_id not in reader:
            return None
        values = reader.get(sample_id, ["color_xy", "frame_index"])
    return np.asarray(values["color_xy"], dtype=np.float64), np.asarray(values["frame_index"])


def _draw_actor(image: np.ndarray, points: np.ndarray, layout: Layout | None,
                colour: tuple[int, int, int], place) -> int:
    """Draw one actor's joints (V, 2) clipped to its tile; returns joints drawn."""
    tile = image[place.y:place.y + place.height, place.x:place.x + place.width]
    local = points - np.array([place.x, place.y])
    valid = np.isfinite(local).all(axis=1)
    if not valid.any():
        return 0
    pixel = np.zeros_like(local, dtype=np.int64)
    pixel[valid] = np.round(local[valid]).astype(np.int64)
    # draw on the tile view so lines never spill into the neighbouring tiles
    for joint, parent in (layout.draw_edges if layout else ()):
        if valid[joint] and valid[parent]:
            cv2.line(tile, tuple(int(v) for v in pixel[joint]),
                     tuple(int(v) for v in pixel[parent]), colour, 1, cv2.LINE_AA)
    for joint in np.flatnonzero(valid):
        cv2.circle(tile, tuple(int(v) for v in pixel[joint]), 2, colour, -1, cv2.LINE_AA)
    return int(valid.sum())


def write_preview(workdir, sample_id: str, out: str | os.PathLike, **options) -> Preview:
    preview = render_preview(workdir, sample_id, **options)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), preview.image):
        raise DataError("cannot write the preview image (unknown extension?)", path=str(out))
    return preview
