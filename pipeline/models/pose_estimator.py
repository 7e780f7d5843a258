"""MediaPipe Pose (BlazePose GHUM 3D, 33 landmarks) on video frames, offline.

MediaPipe is optional. Release 0.10.14 is the one used: the last whose wheel ships the Pose
solution with the models of ``model_complexity=1`` (BlazePose Full); later releases keep
only the Tasks API, whose models are downloaded at run time. Its wheel asks for jax,
opencv-contrib-python and sounddevice, which the Pose solution never imports, so it is
installed without its dependencies plus the few it needs (:data:`INSTALL_HINT`;
``scripts/setup.sh`` does it). It needs protobuf 4.x (it fails with protobuf 5 or later).

One :class:`PoseEstimator` holds one MediaPipe graph in video mode: the person found in a
frame is tracked into the next, and landmarks are smoothed over time. ``start_video``
resets the graph, so nothing carries over from one video to the next and a video's poses
do not depend on which videos the same worker saw before (a reset graph gives the same
landmarks, bit for bit, as a new one). Each graph start makes MediaPipe's C++ code print
notices to the process's stderr (two lines per video, a flood at NTU scale): those known
lines are dropped, anything else it prints then is passed on.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import cv2
import numpy as np

from pipeline.models.errors import ModelError

ESTIMATOR = "mediapipe-pose"
MEDIAPIPE_VERSION = "0.10.14"
MODEL_COMPLEXITY = 1          # BlazePose Full: the landmark model the wheel ships
NUM_LANDMARKS = 33
LAYOUT = "mediapipe-33"       # the built-in layout of its landmarks (data_manifest/layouts)
INSTALL_HINT = (f"install it with `pip install --no-deps mediapipe=={MEDIAPIPE_VERSION}` and "
                "`pip install absl-py attrs flatbuffers \"protobuf>=4.25.3,<5\" matplotlib` "
                "(scripts/setup.sh does both)")
# what MediaPipe 0.10.14 prints on every graph start, with nothing to act on
HARMLESS_NOTICES = ("inference_feedback_manager.cc", "XNNPACK delegate for CPU",
                    "absl::InitializeLog()")
# MediaPipe 0.10.14 calls an API that protobuf 4.x deprecates (and 5 removed: hence <5)
PROTOBUF_DEPRECATION = r"SymbolDatabase\.GetPrototype\(\) is deprecated"


@dataclass(frozen=True)
class PoseSettings:
    """What decides the landmarks besides the frames (recorded in the cache's params)."""

    min_detection_confidence: float = 0.5    # to accept a person found by the detector
    min_tracking_confidence: float = 0.5     # to keep tracking it (else detect again)
    smooth_landmarks: bool = True

    def __post_init__(self) -> None:
        for name in ("min_detection_confidence", "min_tracking_confidence"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {value}")

    def params(self) -> dict[str, Any]:
        return {"estimator": ESTIMATOR, "model_complexity": MODEL_COMPLEXITY,
                "min_detection_confidence": float(self.min_detection_confidence),
                "min_tracking_confidence": float(self.min_tracking_confidence),
                "smooth_landmarks": bool(self.smooth_landmarks)}


@dataclass(frozen=True)
class FramePose:
    """One person's landmarks in one frame."""

    world: np.ndarray        # (33, 3) float32: metres, origin midway between the hips
    image_xy: np.ndarray     # (33, 2) float32: pixels of the frame (may lie outside it)
    visibility: np.ndarray   # (33,) float32 in [0, 1]: likelihood the landmark is visible


def mediapipe_version() -> str:
    """The installed MediaPipe's version, after checking that its Pose solution runs here;
    a :class:`ModelError` saying how to install it otherwise."""
    try:
        import mediapipe
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError as error:
        raise ModelError(f"extract-poses needs MediaPipe, which cannot be imported "
                         f"({error}); {INSTALL_HINT}") from None
    version = getattr(mediapipe, "__version__", "unknown")
    try:
        with _native_notices_dropped():
            mp_pose.Pose(model_complexity=MODEL_COMPLEXITY).close()
    except Exception as error:   # e.g. protobuf 5+: AttributeError deep in MediaPipe
        import google.protobuf
        raise ModelError(f"MediaPipe {version} is installed but its Pose solution does not "
                         f"start ({type(error).__name__}: {error}; protobuf is "
                         f"{google.protobuf.__version__}); {INSTALL_HINT}") from None
    return version


@contextlib.contextmanager
def _native_notices_dropped() -> Iterator[None]:
    """Catch what native code writes to file descriptor 2 meanwhile; pass on all but
    :data:`HARMLESS_NOTICES`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = [line for line in lines if not any(n in line for n in HARMLESS_NOTICES)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class PoseEstimator:
    """MediaPipe Pose on BGR frames; create one per worker, ``start_video`` per video."""

    def __init__(self, settings: PoseSettings = PoseSettings()):
        from mediapipe.python.solutions import pose as mp_pose
        with _native_notices_dropped():
            self._pose = mp_pose.Pose(
                static_image_mode=False, model_complexity=MODEL_COMPLEXITY,
                smooth_landmarks=settings.smooth_landmarks, enable_segmentation=False,
                min_detection_confidence=settings.min_detection_confidence,
                min_tracking_confidence=settings.min_tracking_confidence)
        self._starting = True    # the graph prints its notices until its first frame is done

    def start_video(self) -> None:
        with _native_notices_dropped():
            self._pose.reset()
        self._starting = True

    def estimate(self, frame_bgr: np.ndarray) -> FramePose | None:
        """The person in one frame (the next frame of the current video), or None."""
        height, width = frame_bgr.shape[:2]
        rgb = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", PROTOBUF_DEPRECATION, UserWarning)
            if self._starting:
                with _native_notices_dropped():
                    result = self._pose.process(rgb)
                self._starting = False
            else:
                result = self._pose.process(rgb)
        if result.pose_landmarks is None or result.pose_world_landmarks is None:
            return None
        image = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark],
                         dtype=np.float32)
        world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark],
                         dtype=np.float32)
        xy = image[:, :2] * np.array([width, height], dtype=np.float32)
        return FramePose(world, xy, image[:, 2].copy())

    def close(self) -> None:
        self._pose.close()
