"""Which reader reaches the chosen frames of a video (``--method``).

``index``: PyAV (the optional ``av`` package) with a key-frame index, decoding only from
the key frame before each chosen frame: the fewest frames exact frames need, and the only
method that can do ``--sampling keyframe`` (:mod:`pipeline.video.indexed`).
``grab``/``seek``: OpenCV (:mod:`pipeline.video.reader`). ``auto``: ``index`` when PyAV is
installed, else OpenCV, grabbing across short gaps and seeking across long ones. All of
them return the frames that decoding every frame gives. One difference: for a container
that does not declare its frame count (Matroska, WebM), OpenCV estimates it from the
duration while the index counts the packets, so the frames chosen can differ.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache

from pipeline.video.reader import VideoReader

METHODS = ("auto", "index", "grab", "seek")
PYAV_HINT = "it needs PyAV: pip install av (or the toolkit's [video] extra)"


@cache
def pyav_available() -> bool:
    return importlib.util.find_spec("av") is not None


def resolve_method(method: str) -> str:
    """``method`` with ``auto`` made concrete; a ValueError if it cannot run here."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    if method == "auto":
        return "index" if pyav_available() else "auto-opencv"
    if method == "index" and not pyav_available():
        raise ValueError(f"--method index cannot run: {PYAV_HINT}")
    return method


def open_reader(path: str | os.PathLike, method: str = "auto", threads: int | None = None):
    """A reader of ``path`` (a context manager with ``info``, ``frames(indices)`` and
    ``count_frames()``; the ``index`` one also has ``nearest_keyframes``)."""
    method = resolve_method(method)
    if method == "index":
        from pipeline.video.indexed import IndexedVideoReader   # imports PyAV
        return IndexedVideoReader(path, threads=threads)
    return VideoReader(path, threads=threads,
                       method="auto" if method == "auto-opencv" else method)
