"""Stage ``stitch``: the temporal image, m crops side by side in time order.

The canvas (default 480x480, the MMCL reference's) is cut into m equal columns (widths
differ by at most one pixel when m does not divide the width); crop i fills column i,
either stretched to it (``fit="stretch"``, the reference's way) or shrunk/grown to fit
inside it keeping its aspect ratio and centred on black (``fit="pad"``). ``tile`` gives
the column size instead, making the canvas m tiles wide.

A whole video frame (extract-frames' ``crop_source`` ``full-frame`` or ``none``: no person
box was known, or cropping was off) is no person crop: stretched into a 96x480 column, a
16:9 frame would shrink people to slivers. It follows ``whole_frame_fit`` instead: ``crop``
(the default) takes the centre of the frame with the column's aspect ratio and scales it
to the column, where a person is most likely to be; ``pad`` letterboxes the whole frame;
``stretch`` treats it as any crop. Whole frames are stored at most ``max_side`` pixels
long by extract-frames (480 by default), so a centre cut of a 16:9 frame for a 96x480
column is 54x270 stored pixels; a larger extract-frames ``--max-side`` keeps more detail. The result is stored as a JPEG
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
from pipeline.crop import WHOLE_FRAME_SOURCES
from pipeline.images import (IMAGE_ERRORS, decode_jpeg, describe_image_error, encode_jpeg,
                             resize_to, split_concatenated)
from pipeline.stage_runner import PerSampleTask, StageResult, run_stage
from pipeline.stages.distributed import current_process_group
from pipeline.stages.upstream import failure_reasons, open_upstream, open_upstream_shard

FITS = ("stretch", "pad")
WHOLE_FRAME_FITS = ("crop", "pad", "stretch")
DEFAULT_CANVAS = (480, 480)


@dataclass(frozen=True)
class Placement:
    """Where a crop lands on the canvas: its top-left corner and drawn size, and the part
    of the crop drawn there (``window`` x0, y0, x1, y1; None: all of it)."""
    x: int
    y: int
    width: int
    height: int
    window: tuple[int, int, int, int] | None = None

    def map_points(self, points: np.ndarray, crop_width: int, crop_height: int) -> np.ndarray:
        """Crop pixel coordinates (..., 2) -> canvas pixel coordinates."""
        x0, y0, x1, y1 = self.window or (0, 0, crop_width, crop_height)
        scale = np.array([self.width / (x1 - x0), self.height / (y1 - y0)])
        return ((np.asarray(points, dtype=np.float64) - np.array([x0, y0])) * scale
                + np.array([self.x, self.y]))


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
               fit: str | Sequence[str]) -> list[Placement]:
    """Placement of each crop ((width, height) each) on a canvas of ``size``; ``fit`` is
    one of :data:`FITS` or ``crop`` (centre cut to the column's aspect ratio), for all
    crops or one per crop."""
    fits = [fit] * len(crop_sizes) if isinstance(fit, str) else list(fit)
    for name in set(fits):
        if name not in WHOLE_FRAME_FITS:     # every fit there is
            raise ValueError(f"fit must be one of {WHOLE_FRAME_FITS}, not {name!r}")
    width, height = size
    count = len(crop_sizes)
    edges = [round(i * width / count) for i in range(count + 1)]
    result = []
    for (crop_width, crop_height), how, left, right in zip(crop_sizes, fits, edges,
                                                           edges[1:]):
        column = right - left
        if how == "stretch":
            result.append(Placement(left, 0, column, height))
        elif how == "crop":
            result.append(Placement(left, 0, column, height,
                                    centre_window(crop_width, crop_height, column / height)))
        else:
            scale = min(column / crop_width, height / crop_height)
            drawn_w = max(1, min(column, round(crop_width * scale)))
            drawn_h = max(1, min(height, round(crop_height * scale)))
            result.append(Placement(left + (column - drawn_w) // 2, (height - drawn_h) // 2,
                                    drawn_w, drawn_h))
    return result


def centre_window(width: int, height: int, aspect: float) -> tuple[int, int, int, int]:
    """The largest centred part of a ``width`` x ``height`` image with width / height =
    ``aspect`` (to a pixel)."""
    if width / height > aspect:
        cut = min(width, max(1, round(height * aspect)))
        left = (width - cut) // 2
        return left, 0, left + cut, height
    cut = min(height, max(1, round(width / aspect)))
    top = (height - cut) // 2
    return 0, top, width, top + cut


def tile_fits(crop_sources: Sequence[str], fit: str, whole_frame_fit: str) -> list[str]:
    """The fit of each crop: ``whole_frame_fit`` for whole frames, ``fit`` for the rest."""
    return [whole_frame_fit if source in WHOLE_FRAME_SOURCES else fit
            for source in crop_sources]


def compose(crops: Sequence[np.ndarray], size: tuple[int, int],
            fit: str | Sequence[str]) -> tuple[np.ndarray, list[Placement]]:
    """The stitched BGR image of ``crops`` (time order, left to right); ``fit`` as in
    :func:`placements`."""
    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    where = placements([(c.shape[1], c.shape[0]) for c in crops], size, fit)
    for crop, place in zip(crops, where):
        if place.window is not None:
            x0, y0, x1, y1 = place.window
            crop = crop[y0:y1, x0:x1]
        canvas[place.y:place.y + place.height, place.x:place.x + place.width] = resize_to(
            crop, place.width, place.height)
    return canvas, where


def stored_crops(values: dict[str, Any]) -> list[np.ndarray]:
    """Decode the crops of one frames-cache record."""
    pieces = split_concatenated(np.asarray(values["jpeg"]), values["jpeg_lengths"])
    return [decode_jpeg(piece, what=f"stored crop {number}")
            for number, piece in enumerate(pieces, 1)]


def stitch_params(*, num_tiles: int, size: tuple[int, int], fit: str,
                  whole_frame_fit: str, jpeg_quality: int) -> dict[str, Any]:
    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    if whole_frame_fit not in WHOLE_FRAME_FITS:
        raise ValueError(f"whole_frame_fit must be one of {WHOLE_FRAME_FITS}, "
                         f"not {whole_frame_fit!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, not {jpeg_quality}")
    return {"tiles": int(num_tiles), "canvas": [int(size[0]), int(size[1])], "fit": fit,
            "whole_frame_fit": whole_frame_fit, "jpeg_quality": int(jpeg_quality)}


class StitchTask(PerSampleTask):
    expected_errors = (DataError,)

    def __init__(self, params: dict[str, Any], frames_cache: str, frames_fingerprint: str):
        self.params = params
        self.frames_cache = frames_cache
        self.frames_fingerprint = frames_fingerprint
        self._frames: CacheReader | None = None
        self._frame_failures: dict[str, str] = {}

    def setup(self, shard_index: int, samples: Sequence[Sample]) -> None:
        self._frames = open_upstream_shard(self.frames_cache, FRAMES, shard_index,
                                           [sample.id for sample in samples],
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
        values = self._frames.get(sample.id, ["jpeg", "jpeg_lengths", "crop_source"])
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
            fits = tile_fits(values["crop_source"], self.params["fit"],
                             self.params["whole_frame_fit"])
            image, _ = compose(crops, size, fits)
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
           whole_frame_fit: str = "crop", jpeg_quality: int = 90, frames_cache: str = DEFAULT_CACHE_NAME,
           cache_name: str = DEFAULT_CACHE_NAME, jobs: int = 1, overwrite: bool = False,
           retry_failures: bool = False, rebuild: bool = False, progress: bool = True,
           shard_indices=None) -> StageResult:
    """Build (or finish) WORKDIR's stitch cache ``cache_name`` from a frames cache.

    ``canvas`` (width, height) of the temporal image, default 480x480; or ``tile`` (width,
    height) of one frame's column, making the image m tiles wide. ``fit``: ``stretch``
    each crop to its column, or ``pad`` it keeping its aspect ratio; ``whole_frame_fit``:
    how whole frames fill theirs (see the module docstring). ``overwrite``/``rebuild``:
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
                           fit=fit, whole_frame_fit=whole_frame_fit,
                           jpeg_quality=jpeg_quality)
    spec = workdir.spec(STITCH, params, {f"{FRAMES}/{frames_cache}": frames_spec.fingerprint})
    task = StitchTask(params, frames_path, frames_spec.fingerprint)
    return run_stage(workdir, spec, task, cache_name=cache_name, jobs=jobs,
                     overwrite=overwrite, retry_failures=retry_failures,
                     rebuild=rebuild, part=shards, progress=progress, group=group)
