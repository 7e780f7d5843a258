"""Stage ``extract-frames``: m person crops per sample, equally spaced over its video.

Per sample (fields in :data:`data_manifest.schemas.FRAME_FIELDS`):

* frames: ``m`` frames chosen by :func:`pipeline.video.select_frames` over the frame
  count the video declares (interval = count // m); only those frames are decoded, from
  the key frame before each when PyAV is installed (see :mod:`pipeline.video.methods`).
  ``sampling="keyframe"`` takes the nearest key frame instead of each chosen frame when
  one is less than half the spacing away (see :mod:`pipeline.video.selection`): 5 decoded
  frames instead of 15-27 per NTU clip, for frames up to 6 frames (0.2 s) from the chosen
  ones there; ``frame_indices`` records the frames used, and the boxes are those frames'.
* crops: with ``crop="skeleton"`` the box around all actors' colour-image joints of that
  frame plus a margin (:mod:`pipeline.crop`), falling back to the nearest frame with
  coordinates, then to the whole frame; ``crop="none"`` keeps whole frames.
* each crop is shrunk to at most ``max_side`` pixels on its longer side and stored as a
  JPEG (about 25x smaller than raw uint8 and faster to write; see
  ``benchmarks/bench_extract_frames.py``).

Documented fallbacks (the sample is stored, ``notes`` says what happened): a video with
fewer frames than m (frames repeat, in time order); a sample without a skeleton, or
whose skeleton failed its stage (whole frames); a skeleton longer or shorter than the
video (frames are chosen over the video; a frame without skeleton borrows the nearest
skeleton frame's box); colour coordinates outside the image (the box is clamped, frames
with none inside borrow or use the whole frame). Errors (the sample fails, recorded in the
ledger with the file and reason): no video, a missing, empty, unreadable or corrupt file,
a video with no frames, a chosen frame that does not decode (truncated file), and any
OpenCV or numpy error on the sample's file (a ``cv2.error`` or ``ValueError`` from decoding,
resizing or encoding: recorded with the video's name, so a re-run does not stop there).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from data_manifest.errors import DataError
from data_manifest.sample import Sample
from data_manifest.schemas import FRAMES, SKELETONS
from data_manifest.store import CacheDir, CacheReader, open_shard_file
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.crop import CropChoice, SkeletonBoxes, full_frame
from pipeline.images import IMAGE_ERRORS, describe_image_error, encode_jpeg, fit_within
from pipeline.stage_runner import PerSampleTask, StageResult, run_stage
from pipeline.stages.distributed import current_process_group
from pipeline.stages.upstream import failure_reasons, open_upstream, open_upstream_shard
from pipeline.video import keyframe_tolerance, open_reader, resolve_method, select_frames
from pipeline.video.methods import PYAV_HINT

CROP_MODES = ("skeleton", "none")
SAMPLINGS = ("exact", "keyframe")
SELECTION_RULE = "equal-interval: i * (n // m); n < m: i * n // m"


def frames_params(*, num_frames: int, crop: str, margin: float, max_side: int | None,
                  jpeg_quality: int, color_size: tuple[int, int] | None,
                  sampling: str = "exact") -> dict[str, Any]:
    """The settings that decide the cache's content (its fingerprint)."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, not {num_frames}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, not {sampling!r}")
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}, not {crop!r}")
    if margin < 0:
        raise ValueError(f"margin must not be negative, not {margin}")
    if max_side is not None and max_side < 1:
        raise ValueError("max_side must be positive (or None to keep crops as they are)")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, not {jpeg_quality}")
    skeleton_crop = crop == "skeleton"
    return {
        "num_frames": int(num_frames),
        "selection": SELECTION_RULE,
        "sampling": sampling,
        "crop": crop,
        "margin": float(margin) if skeleton_crop else None,
        "color_size": list(color_size) if (skeleton_crop and color_size) else None,
        "max_side": int(max_side) if max_side else None,
        "jpeg_quality": int(jpeg_quality),
    }


class ExtractFramesTask(PerSampleTask):
    expected_errors = (DataError,)
    inputs = ("video",)

    def __init__(self, params: dict[str, Any], skeleton_cache: str | None,
                 skeleton_fingerprint: str | None, method: str, decode_threads: int | None):
        self.params = params
        self.skeleton_cache = skeleton_cache
        self.skeleton_fingerprint = skeleton_fingerprint
        self.method = method
        self.decode_threads = decode_threads
        self._skeletons: CacheReader | None = None
        self._skeleton_failures: dict[str, str] = {}

    def setup(self, shard_index: int, samples: Sequence[Sample]) -> None:
        if self.skeleton_cache is None:
            return
        self._skeletons = open_upstream_shard(self.skeleton_cache, SKELETONS, shard_index,
                                              [sample.id for sample in samples],
                                              self.skeleton_fingerprint, "extract-frames")
        self._skeleton_failures = failure_reasons(self._skeletons)

    def teardown(self) -> None:
        if self._skeletons is not None:
            self._skeletons.close()
            self._skeletons = None

    def process(self, sample: Sample) -> dict[str, Any]:
        if sample.video is None:
            raise DataError("the sample has no video file", sample_id=sample.id)
        try:
            return self._extract(sample)
        except IMAGE_ERRORS as error:   # an odd file fails its sample, not the whole run
            raise DataError(f"cannot take frames from the video ({describe_image_error(error)})",
                            path=sample.video) from error

    def _extract(self, sample: Sample) -> dict[str, Any]:
        num_frames = self.params["num_frames"]
        notes: list[str] = []
        with open_reader(sample.video, self.method, self.decode_threads) as video:
            info = video.info
            frame_count = info.frame_count
            if frame_count == 0:   # some containers do not declare it: count
                frame_count = video.count_frames()
                if frame_count == 0:
                    raise DataError("the video has no frames", path=sample.video)
                notes.append(f"the file does not declare its frame count; {frame_count} "
                             "frames decode")
            if info.width < 1 or info.height < 1:
                raise DataError(f"the video reports a frame size of {info.width}x"
                                f"{info.height}", path=sample.video)
            selection = select_frames(frame_count, num_frames)
            if selection.repeated:
                notes.append(f"the video has {frame_count} frame(s), fewer than "
                             f"{num_frames}: frames repeated")
            used = selection.indices
            if self.params["sampling"] == "keyframe":
                used = self._nearest_keyframes(video, selection.indices, frame_count,
                                               notes)
            boxes = self._skeleton_boxes(sample, info.width, info.height, frame_count, notes)
            crops: dict[int, tuple[CropChoice, bytes]] = {}
            for index, frame in video.frames(used):
                if frame.shape[1] != info.width or frame.shape[0] != info.height:
                    raise DataError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, "
                                    f"the video says {info.width}x{info.height}",
                                    path=sample.video)
                choice = (boxes.choose(index) if boxes is not None
                          else CropChoice(full_frame(info.width, info.height), "none"))
                x0, y0, x1, y1 = choice.box
                crop = fit_within(frame[y0:y1, x0:x1], self.params["max_side"])
                crops[index] = (choice, encode_jpeg(crop, self.params["jpeg_quality"]))
        chosen = [crops[index] for index in used]
        jpegs = [data for _, data in chosen]
        sources = [choice.source for choice, _ in chosen]
        return {
            "jpeg": np.frombuffer(b"".join(jpegs), dtype=np.uint8),
            "jpeg_lengths": np.array([len(data) for data in jpegs], dtype=np.int64),
            "frame_indices": np.array(used, dtype=np.int64),
            "boxes": np.array([choice.box for choice, _ in chosen], dtype=np.int32),
            "crop_source": sources,
            "video_frames": int(frame_count),
            "video_size": np.array([info.width, info.height], dtype=np.int32),
            "notes": "; ".join(notes),
        }

    def _nearest_keyframes(self, video, indices: tuple[int, ...], frame_count: int,
                           notes: list[str]) -> tuple[int, ...]:
        tolerance = keyframe_tolerance(frame_count, self.params["num_frames"])
        used = video.nearest_keyframes(indices, tolerance)
        keyframes = video.keyframes()
        if keyframes is None:
            notes.append("the stream has no usable key-frame index: exact frames")
            return used
        keyframes = set(keyframes)
        exact = sum(1 for index in used if index not in keyframes)
        if exact:
            notes.append(f"{exact} of {len(used)} chosen frame(s) have no key frame within "
                         f"{tolerance} frames: decoded exactly")
        return used

    def _skeleton_boxes(self, sample: Sample, width: int, height: int, frame_count: int,
                        notes: list[str]) -> SkeletonBoxes | None:
        if self.params["crop"] == "none":
            return None
        empty = SkeletonBoxes(np.zeros((0, 1, 1, 2)), np.zeros(0), width, height, 0.0)
        if self._skeletons is None or sample.id not in self._skeletons:
            if sample.id in self._skeleton_failures:    # no file, or no person in the video
                notes.append("its skeleton failed "
                             f"({self._skeleton_failures[sample.id]}): whole frames")
            elif not sample.skeleton:
                notes.append("no skeleton file: whole frames")
            else:
                notes.append("not in the skeleton cache: whole frames")
            return empty
        values = self._skeletons.get(sample.id, ["color_xy", "frame_index", "source_frames"])
        source_frames = int(values["source_frames"])
        if source_frames > frame_count:
            notes.append(f"the skeleton has {source_frames} frames, the video {frame_count}: "
                         "its last frames are not used")
        elif source_frames < frame_count:
            notes.append(f"the skeleton has {source_frames} frames, the video {frame_count}: "
                         "later frames borrow the nearest skeleton frame's box")
        color_size = self.params["color_size"]
        scale = (1.0, 1.0) if not color_size else (width / color_size[0],
                                                    height / color_size[1])
        boxes = SkeletonBoxes(values["color_xy"], values["frame_index"], width, height,
                              self.params["margin"], scale)
        if boxes.frames_with_boxes == 0:
            notes.append("no colour-image joint coordinates inside the image: whole frames")
        return boxes


def samples_with_notes(cache: CacheDir) -> dict[str, str]:
    """sample id -> notes, for the samples of a frames cache that took a fallback."""
    noted = {}
    for index, header in cache.headers().items():
        if not header["sample_ids"]:
            continue
        # one read per shard (layout: see data_manifest.store.writer)
        with open_shard_file(cache.shard_path(index)) as handle:
            texts = handle["notes/data"][()]
        for sample_id, text in zip(header["sample_ids"], texts):
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            if text:
                noted[sample_id] = text
    return noted


SKELETON_HINT = ("skeleton crops need it: run `pipeline extract-skeletons WORKDIR` first "
                 "(for videos without skeleton files: `pipeline extract-poses WORKDIR`), or "
                 "use --crop none")


def skeleton_cache_for(workdir: Workdir, name: str, shards: list[int]) -> CacheReader:
    """The skeleton cache to crop from; every shard to be done must be finished in it."""
    return open_upstream(workdir, SKELETONS, name, shards, SKELETON_HINT)


def frames_spec(workdir: Workdir, params: dict[str, Any], skeleton_cache: str,
                shards: list[int]):
    """The frames cache spec (with the skeleton cache's fingerprint when cropping by it)."""
    upstream = {}
    skeleton_path = None
    if params["crop"] == "skeleton":
        with skeleton_cache_for(workdir, skeleton_cache, shards) as reader:
            upstream[f"{SKELETONS}/{skeleton_cache}"] = reader.spec.fingerprint
            skeleton_path = str(reader.cache.path)
    return workdir.spec(FRAMES, params, upstream), skeleton_path


def extract_frames(workdir, *, num_frames: int = 5, crop: str = "skeleton",
                   margin: float = 0.1, max_side: int | None = 480, jpeg_quality: int = 90,
                   color_size: tuple[int, int] | None = None, sampling: str = "exact",
                   skeleton_cache: str = DEFAULT_CACHE_NAME,
                   cache_name: str = DEFAULT_CACHE_NAME, method: str = "auto",
                   decode_threads: int | None = None, jobs: int = 1, overwrite: bool = False,
                   retry_failures: bool = False, rebuild: bool = False,
                   progress: bool = True, shard_indices=None) -> StageResult:
    """Build (or finish) WORKDIR's frames cache ``cache_name``; see the module docstring.

    ``margin``: fraction of the person box's longer side added on every side.
    ``color_size``: (width, height) of the image the colour coordinates refer to, when the
    videos were resized (NTU's are 1920x1080); None: the video's own size.
    ``sampling``: "exact" (the chosen frames) or "keyframe" (the nearest key frame to each,
    see the module docstring; needs PyAV).
    ``method``/``decode_threads``: how frames are reached (:data:`pipeline.video.METHODS`)
    and FFmpeg's threads per worker (None: FFmpeg's default, one per CPU); they do not
    change the result.
    ``overwrite``/``rebuild``: delete a cache made with other settings / delete it whatever
    its settings, and build it again.
    """
    resolved = resolve_method(method)    # an unknown method, or index without PyAV, fails
    if sampling == "keyframe" and resolved != "index":
        raise ValueError("--sampling keyframe needs the key-frame index: "
                         + (PYAV_HINT if method == "auto" else
                            f"use --method index or auto, not {method}"))
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    params = frames_params(num_frames=num_frames, crop=crop, margin=margin,
                           max_side=max_side, jpeg_quality=jpeg_quality,
                           color_size=color_size, sampling=sampling)
    group = current_process_group()
    shards = group.shards(workdir.num_shards, shard_indices)
    spec, skeleton_path = frames_spec(workdir, params, skeleton_cache, shards)
    task = ExtractFramesTask(params, skeleton_path, spec.upstream.get(
        f"{SKELETONS}/{skeleton_cache}"), method, decode_threads)
    return run_stage(workdir, spec, task, cache_name=cache_name, jobs=jobs,
                     overwrite=overwrite, retry_failures=retry_failures,
                     rebuild=rebuild, part=shards, progress=progress, group=group)
