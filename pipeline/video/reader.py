"""Decode chosen frames of a video with OpenCV, one frame in memory at a time.

The reader when PyAV is not installed, or with ``--method grab|seek`` (see
:mod:`pipeline.video.methods`). Two ways to reach a frame: ``grab`` decodes forward from
the current position without converting the skipped frames to BGR (3-4x cheaper than
``read`` on NTU's 1080p MPEG-4), ``seek`` asks FFmpeg to jump. OpenCV's FFmpeg seek
lands on the key frame at or before ``target - 16`` and decodes forward from there, so a
seek costs 16 frames plus up to one key-frame interval (12 in NTU's files) of decoding:
it only pays across long gaps. ``auto`` grabs across gaps of up to ``SEEK_MIN_GAP``
frames and seeks across longer ones: NTU clips (gaps of 20-60 frames when taking 5) are
grabbed (81 of 103 frames decoded for 5), and a 2,000-frame video is seeked (25x faster
than grabbing). ``benchmarks/bench_extract_frames.py`` measures it against the key-frame
index.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from data_manifest.errors import DataError

SEEK_MIN_GAP = 64
OPENCV_METHODS = ("auto", "grab", "seek")


@dataclass(frozen=True)
class VideoInfo:
    frame_count: int     # as the container declares it (may be wrong for a damaged file)
    width: int
    height: int
    fps: float


def check_video_file(path: str | os.PathLike) -> None:
    """A DataError unless ``path`` is a non-empty file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("video file does not exist", path=str(path))
    if path.stat().st_size == 0:
        raise DataError("video file is empty (0 bytes)", path=str(path))


def undecodable_frame(index: int, declared: int, path: str) -> DataError:
    return DataError(f"frame {index} does not decode although the file declares "
                     f"{declared} frames: the video is truncated or corrupt", path=path)


def open_video(path: str | os.PathLike, threads: int | None = None) -> cv2.VideoCapture:
    """An opened capture, or a DataError naming the file and what is wrong with it."""
    check_video_file(path)
    params = [] if threads is None else [cv2.CAP_PROP_N_THREADS, int(threads)]
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise DataError("cannot open as a video (corrupt file or unsupported format)",
                        path=str(path))
    return capture


class VideoReader:
    """A video opened for reading selected frames in increasing order.

    Use as a context manager. ``frames(indices)`` yields ``(index, BGR uint8 frame)`` for
    each distinct index in increasing order; a frame that does not decode raises a
    DataError (the file is truncated or corrupt).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None,
                 method: str = "auto"):
        if method not in OPENCV_METHODS:
            raise ValueError(f"method must be one of {OPENCV_METHODS}, not {method!r}")
        self.path = str(path)
        self.method = method
        self._capture = open_video(path, threads)
        self._next = 0    # index of the frame the next read() returns
        capture = self._capture
        self.info = VideoInfo(
            frame_count=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            fps=float(capture.get(cv2.CAP_PROP_FPS)))

    def count_frames(self) -> int:
        """Frames that actually decode, by grabbing through the whole file (slow)."""
        self._rewind()
        count = 0
        while self._capture.grab():
            count += 1
        self._next = count
        return count

    def frames(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        for target in sorted(set(int(i) for i in indices)):
            if target < 0:
                raise ValueError(f"frame index {target} is negative")
            self._move_to(target)
            ok, frame = self._capture.read()
            if not ok or frame is None:
                raise self._undecodable(target)
            self._next = target + 1
            yield target, frame

    def _move_to(self, target: int) -> None:
        gap = target - self._next
        if gap == 0:
            return
        if gap < 0 or self.method == "seek" or (self.method == "auto" and gap > SEEK_MIN_GAP):
            self._seek(target)
            return
        for _ in range(gap):
            if not self._capture.grab():
                raise self._undecodable(self._next)
            self._next += 1

    def _seek(self, target: int) -> None:
        self._capture.set(cv2.CAP_PROP_POS_FRAMES, target)
        self._next = target

    def _rewind(self) -> None:
        self._seek(0)

    def _undecodable(self, index: int) -> DataError:
        return undecodable_frame(index, self.info.frame_count, self.path)

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
