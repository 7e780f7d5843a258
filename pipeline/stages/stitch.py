"""Stage ``stitch``: the temporal image, m crops side by side in time order.

The canvas (default 480x480, the MMCL reference's) is cut into m equal columns (widths
differ by at most one pixel when m does not divide the width); crop i fills column i,
either stretched to it (``fit="stretch"``, the reference's way) or shrunk/grown to fit
inside it keeping its aspect ratio and centred on black (``fit="pad"``). ``tile`` gives
the column size instead, making the canvas m tiles wide. The result is stored as a JPEG
(fields in :data:`data_manifest.schemas.STITCH_FIELDS`); the cache has its own
fingerprint with the frames cache's as upstream, so a new layout never re-decodes videos.

A sample fails (recorded with the reason, the others go on) when extract-frames failed for
it, when its frames record is damaged (a crop that does not decode), or when OpenCV or
numpy cannot handle its crops (a ``cv2.error`` or ``ValueError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from data_manifest.errors import DataError
from data_manifest.sample import Sample
from data_manifest.schemas import FRAMES, STITCH
from data_manifest.store import CacheReader
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.images import (IMAGE_ERRORS, decode_jpeg, describe_image_error, encode_jpeg,
                             resize_to, split_concatenated)
from pipeline.stage_runner import PerSampleTask, StageResult, run_stage
from pipeline.stages.distributed import current_process_group
from pipeline.stages.upstream import failure_reasons, open_upstream, open_upstream_shard

FITS = ("stretch", "pad")
DEFAULT_CANVAS = (480, 480)


@dataclass(frozen=True)
class Placement:
    """Where a crop lands on the canvas: its top-left corner and drawn size."""
    x: int
    y: int
    width: int
    height: int

    def map_points(self, points: np.ndarray, crop_width: int, crop_height: int) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> canvas pixel coordinates."""
        scale = np.array([self.width / crop_width, self.height / crop_height])
        return np.asarray(points, dtype=np.float64) * scale + np.array([self.x, self.y])


def canvas_size(num_tiles: int, canvas: tuple[int, int] | None = DEFAULT_CANVAS,
                tile: tuple[int, int] | None = None) -> tuple[int, int]:
    """(width, height) of the stitched image; ``tile`` (w, h) wins over ``canvas``."""
    if tile is not None:
        width, height = tile[0] * num_tiles, tile[1]
    elif canvas is not None:
        width, height = canvas
    else:
        raise ValueError("give a canvas or a tile size")
    if width < num_tiles or height < 1:
        raise ValueError(f"a {width}x{height} canvas cannot hold {num_tiles} tiles")
    return int(width), int(height)


def placements(crop_sizes: Sequence[tuple[int, int]], size: tuple[int, int],
               fit: str) -> list[Placement]:
    """Placement of each crop ((width, height) each) on a canvas of ``size``."""
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    width, height = size
    count = len(crop_sizes)
    edges = [round(i * width / count) for i in range(count + 1)]
    result = []
    for (crop_width, crop_height), left, right in zip(crop_sizes, edges, edges[1:]):
        column = right - left
        if fit == "stretch":
            result.append(Placement(left, 0, column, height))
            continue
        scale = min(column / crop_width, height / crop_height)
        drawn_w = max(1, min(column, round(crop_width * scale)))
        drawn_h = max(1, min(height, round(crop_height * scale)))
        result.append(Placement(left + (column - drawn_w) // 2, (height - drawn_h) // 2,
                                drawn_w, drawn_h))
    return result


def compose(crops: Sequence[np.ndarray], size: tuple[int, int],
            fit: str) -> tuple[np.ndarray, list[Placement]]:
    """The stitched BGR image of ``crops`` (time order, left to right)."""
    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    where = placements([(c.shape[1], c.shape[0]) for c in crops], size, fit)
    for crop, place in zip(crops, where):
        canvas[place.y:place.y + place.height, place.x:place.x + place.width] = resize_to(
            crop, place.width, place.height)
    return canvas, where


def stored_crops(values: dict[str, Any]) -> list[np.ndarray]:
    """Decode the crops of one frames-cache record."""
    pieces = split_concatenated(np.asarray(values["jpeg"]), values["jpeg_lengths"])
    return [decode_jpeg(piece, what=f"stored crop {number}")
            for number, piece in enumerate(pieces, 1)]


def stitch_params(*, num_tiles: int, size: tuple[int, int], fit: str,
                  jpeg_quality: int) -> dict[str, Any]:
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, not {jpeg_quality}")
    return {"tiles": int(num_tiles), "canvas": [int(size[0]), int(size[1])], "fit": fit,
            "jpeg_quality": int(jpeg_quality)}


class StitchTask(PerSampleTask):
    expected_errors = (DataError,)

    def __init__(self, params: dict[str, Any], frames_cache: str, frames_fingerprint: str):
        self.params = params
        self.frames_cache = frames_cache
        self.frames_fingerprint = frames_fingerprint
        self._frames: CacheReader | None = None
        self._frame_failures: dict[str, str] = {}

    def setup(self, shard_index: int) -> None:
        self._frames = open_upstream_shard(self.frames_cache, FRAMES, shard_index,
                                           self.frames_fingerprint, "stitch")
        self._frame_failures = failure_reasons(self._frames)

    def teardown(self) -> None:
        if self._frames is not None:
            self._frames.close()
            self._frames = None

    def process(self, sample: Sample) -> dict[str, Any]:
        if sample.id not in self._frames:
            reason = self._frame_failures.get(sample.id, "not in the frames cache")
            raise DataError(f"no frames (extract-frames: {reason})", sample_id=sample.id)
        values = self._frames.get(sample.id, ["jpeg", "jpeg_lengths"])
        try:
            crops = stored_crops(values)
        except DataError as error:
            raise DataError(f"frames cache record is damaged ({error})",
                            sample_id=sample.id) from None
        except IMAGE_ERRORS as error:
            raise DataError(f"frames cache record is damaged ({describe_image_error(error)})",
                            sample_id=sample.id) from error
        size = tuple(self.params["canvas"])
        try:
            image, _ = compose(crops, size, self.params["fit"])
            return {"image": encode_jpeg(image, self.params["jpeg_quality"]),
                    "size": np.array(size, dtype=np.int32)}
        except IMAGE_ERRORS as error:   # an odd crop fails its sample, not the whole run
            raise DataError(f"cannot stitch its crops ({describe_image_error(error)})",
                            sample_id=sample.id) from error


FRAMES_HINT = "run `pipeline extract-frames WORKDIR` first"


def frames_cache_for(workdir: Workdir, name: str, shards: list[int]) -> CacheReader:
    """The frames cache to stitch; every shard to be done must be finished in it."""
    return open_upstream(workdir, FRAMES, name, shards, FRAMES_HINT)


def stitch(workdir, *, canvas: tuple[int, int] | None = DEFAULT_CANVAS,
           tile: tuple[int, int] | None = None, fit: str = "stretch",
           jpeg_quality: int = 90, frames_cache: str = DEFAULT_CACHE_NAME,
           cache_name: str = DEFAULT_CACHE_NAME, jobs: int = 1, overwrite: bool = False,
           retry_failures: bool = False, rebuild: bool = False, progress: bool = True,
           shard_indices=None) -> StageResult:
    """Build (or finish) WORKDIR's stitch cache ``cache_name`` from a frames cache.

    ``canvas`` (width, height) of the temporal image, default 480x480; or ``tile`` (width,
    height) of one frame's column, making the image m tiles wide. ``fit``: ``stretch``
    each crop to its column, or ``pad`` it keeping its aspect ratio. ``overwrite``/``rebuild``:
    delete a cache made with other settings / delete it whatever its settings, and build it
    again.
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    group = current_process_group()
    shards = group.shards(workdir.num_shards, shard_indices)
    with frames_cache_for(workdir, frames_cache, shards) as reader:
        frames_spec = reader.spec
        frames_path = str(reader.cache.path)
    num_tiles = int(frames_spec.params["num_frames"])
    params = stitch_params(num_tiles=num_tiles, size=canvas_size(num_tiles, canvas, tile),
                           fit=fit, jpeg_quality=jpeg_quality)
    spec = workdir.spec(STITCH, params, {f"{FRAMES}/{frames_cache}": frames_spec.fingerprint})
    task = StitchTask(params, frames_path, frames_spec.fingerprint)
    return run_stage(workdir, spec, task, cache_name=cache_name, jobs=jobs,
                     overwrite=overwrite, retry_failures=retry_failures,
                     rebuild=rebuild, shard_indices=shards, progress=progress, group=group)
