"""Stage ``extract-poses``: a skeletons cache estimated from the videos, for data without
skeleton files.

MediaPipe Pose (:mod:`pipeline.models.pose_estimator`) looks at every ``stride``-th frame of
each sample's video, decoded with OpenCV one frame at a time, and finds one person per
video (the most prominent; the cache records ``num_actors`` = 1). The result is an ordinary
skeletons cache (:data:`data_manifest.schemas.SKELETON_FIELDS`), so extract-frames crops
around the estimated person and training reads it like any other:

* ``joints`` (T, 1, 33, 3): MediaPipe's world landmarks, in metres, in the
  ``mediapipe-33`` layout. MediaPipe centres them between the hips in every frame, so the
  person's movement across the room is not in ``joints`` (it is in ``color_xy``).
* ``color_xy`` (T, 1, 33, 2): the landmarks in video pixels (like NTU's colour
  coordinates; a landmark MediaPipe places outside the frame keeps its position).
* ``frame_index``: the video frame of each row; ``source_frames``: the frames that decode.
* two fields the file-based stage has not (:data:`~data_manifest.schemas.POSE_FIELDS`):
  ``visibility`` (T, 1, 33), MediaPipe's likelihood that each landmark is visible rather
  than hidden or outside the frame (what a 2-D keypoint score would be; kept because it
  cannot be recovered without running the model again), and ``notes`` (frames without a
  person, a file that declares more frames than decode).

Frames where MediaPipe finds nobody are left out, as NTU's empty frames are (``frame_index``
keeps the original numbering, ``notes`` counts them). A sample fails (recorded with the
reason) when it has no video, when the video is missing, empty, corrupt or has no frame
that decodes, or when no frame of it shows a person.

Skeleton files are never read here. A WORKDIR whose samples have skeleton files keeps its
default skeletons cache for them (extract-skeletons); poses estimated there (every sample
with a video) go into a cache of another name (``cache_name``).
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from data_manifest.errors import DataError
from data_manifest.layouts import LAYOUTS, layout_spec
from data_manifest.sample import Sample
from data_manifest.schemas import SKELETONS
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir
from pipeline.images import IMAGE_ERRORS, describe_image_error
from pipeline.models.pose_estimator import (LAYOUT, NUM_LANDMARKS, PoseEstimator,
                                            PoseSettings, mediapipe_version)
from pipeline.stage_runner import PerSampleTask, StageResult, run_stage
from pipeline.video import open_video

FORMAT_VERSION = 1
PERSONS = 1


def poses_params(dataset: str, stride: int, settings: PoseSettings,
                 estimator_version: str) -> dict[str, Any]:
    """Everything that decides the cache's content (its fingerprint): the model, its
    version and settings, the stride, and the layout, channels and persons it gives."""
    if stride < 1:
        raise ValueError(f"stride must be at least 1, not {stride}")
    layout = LAYOUTS[LAYOUT]
    return {"format_version": FORMAT_VERSION, "source": "extract-poses", "dataset": dataset,
            **settings.params(), "estimator_version": estimator_version,
            "stride": int(stride), "layout": layout_spec(layout),
            "layout_digest": layout.digest, "num_joints": NUM_LANDMARKS, "channels": "xyz",
            "max_persons": PERSONS}


class ExtractPosesTask(PerSampleTask):
    """Estimates one sample's poses; the MediaPipe graph is made once per shard (in the
    worker, in ``setup``: the task itself is pickled to the workers without it)."""

    expected_errors = (DataError,)
    inputs = ("video",)

    def __init__(self, settings: PoseSettings, stride: int, decode_threads: int | None):
        self.settings = settings
        self.stride = stride
        self.decode_threads = decode_threads
        self._estimator: PoseEstimator | None = None

    def setup(self, shard_index: int, samples: Sequence[Sample]) -> None:
        self._estimator = PoseEstimator(self.settings)

    def teardown(self) -> None:
        if self._estimator is not None:
            self._estimator.close()
            self._estimator = None

    def process(self, sample: Sample) -> dict[str, Any]:
        if not sample.video:
            raise DataError("has no video to estimate its pose from", sample_id=sample.id)
        try:
            return self._estimate(sample.video)
        except IMAGE_ERRORS as error:   # an odd file fails its sample, not the whole run
            raise DataError(f"cannot estimate poses from the video "
                            f"({describe_image_error(error)})", path=sample.video) from error

    def _estimate(self, path: str) -> dict[str, Any]:
        estimator = self._estimator
        estimator.start_video()
        indices, poses = [], []
        capture = open_video(path, self.decode_threads)
        try:
            declared = max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
            decoded = 0
            while capture.grab():      # decodes; only the frames looked at are converted
                if decoded % self.stride == 0:
                    ok, frame = capture.retrieve()
                    if not ok or frame is None:
                        raise DataError(f"frame {decoded} does not decode", path=path)
                    pose = estimator.estimate(frame)
                    if pose is not None:
                        indices.append(decoded)
                        poses.append(pose)
                decoded += 1
        finally:
            capture.release()
        if decoded == 0:
            raise DataError("no frame of the video decodes", path=path)
        looked_at = len(range(0, decoded, self.stride))
        if not poses:
            raise DataError(f"MediaPipe Pose found no person in any of the {looked_at} "
                            "frame(s) it looked at", path=path)
        notes = []
        if declared > decoded:
            notes.append(f"the file declares {declared} frames, {decoded} decode")
        if len(poses) < looked_at:
            notes.append(f"{looked_at - len(poses)} of {looked_at} frame(s) without a person: "
                         "left out")
        return {
            "joints": np.stack([p.world for p in poses])[:, None],
            "color_xy": np.stack([p.image_xy for p in poses])[:, None],
            "visibility": np.stack([p.visibility for p in poses])[:, None],
            "frame_index": np.array(indices, dtype=np.int32),
            "source_frames": int(decoded),
            "num_actors": PERSONS,
            "notes": "; ".join(notes),
        }


def check_target(workdir: Workdir, cache_name: str) -> None:
    """Refuse to put estimated poses where the WORKDIR's skeleton files belong, or into
    a default cache whose WORKDIR says another layout (training takes it from there)."""
    if cache_name != DEFAULT_CACHE_NAME:
        return
    with_files = [sample.id for sample in workdir.samples if sample.skeleton]
    if with_files:
        raise DataError(
            f"{len(with_files)} sample(s) of {workdir.path} have skeleton files (e.g. "
            f"{with_files[0]}): its default skeletons cache is theirs (pipeline "
            f"extract-skeletons). Estimated poses ({LAYOUT} layout) go into a cache of their "
            "own: give it a name (extract-poses --name NAME; extract-frames "
            "--skeleton-cache NAME crops from it)")
    layout = workdir.layout
    if layout is None:
        raise DataError(f"{workdir.path} records no skeleton layout, so training could not "
                        f"read estimated poses from it: rebuild its manifest with --layout "
                        f"{LAYOUT} (a manifest of videos only gets it by default)")
    if layout != LAYOUTS[LAYOUT]:
        raise DataError(f"{workdir.path} holds {layout.name} skeletons; estimated poses are "
                        f"{LAYOUT}: give them a cache of their own (extract-poses --name NAME)")


def extract_poses(workdir: Workdir | str | os.PathLike, *, stride: int = 1,
                  min_detection_confidence: float = 0.5,
                  min_tracking_confidence: float = 0.5, smooth_landmarks: bool = True,
                  decode_threads: int | None = None, cache_name: str = DEFAULT_CACHE_NAME,
                  jobs: int = 1, overwrite: bool = False, retry_failures: bool = False,
                  rebuild: bool = False, progress: bool = True,
                  shard_indices: Iterable[int] | None = None) -> StageResult:
    """Build (or finish) ``WORKDIR/cache/skeletons/<cache_name>`` from the videos; see the
    module docstring and :func:`pipeline.stage_runner.run_stage`.

    ``stride``: look at frames 0, stride, 2 * stride, ... (the others are decoded but not
    estimated). ``min_detection_confidence``, ``min_tracking_confidence``,
    ``smooth_landmarks``: MediaPipe Pose's own settings. ``decode_threads``: FFmpeg's
    threads per worker (None: OpenCV's default); it does not change the result.
    """
    workdir = workdir if isinstance(workdir, Workdir) else Workdir(workdir)
    settings = PoseSettings(min_detection_confidence, min_tracking_confidence,
                            smooth_landmarks)
    check_target(workdir, cache_name)
    spec = workdir.spec(SKELETONS, poses_params(workdir.dataset, stride, settings,
                                                mediapipe_version()))
    return run_stage(workdir, spec, ExtractPosesTask(settings, stride, decode_threads),
                     cache_name=cache_name, jobs=jobs, overwrite=overwrite,
                     retry_failures=retry_failures, rebuild=rebuild,
                     shard_indices=shard_indices, progress=progress)
