"""JPEG encoding/decoding and resizing of BGR uint8 images (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from data_manifest.errors import DataError


#: what OpenCV and numpy raise on input they cannot handle (an odd video file, a damaged
#: cache record): a per-sample failure, not a bug that should stop a stage
IMAGE_ERRORS = (cv2.error, ValueError)


def describe_image_error(error: BaseException) -> str:
    """One line for an :data:`IMAGE_ERRORS` error (cv2.error's own text has a source path)."""
    if isinstance(error, cv2.error) and getattr(error, "err", None):
        return f"OpenCV error in {error.func}: {error.err}"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


def decode_jpeg(data: bytes | np.ndarray, what: str = "stored JPEG",
                sample_id: str | None = None) -> np.ndarray:
    """Encoded image bytes (JPEG, or PNG) -> BGR uint8 array.

    An empty, truncated or corrupt file is a :class:`DataError` "``what`` is empty / does
    not decode" (naming ``sample_id`` if given).
    """
    buffer = np.ascontiguousarray(
        np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data,
        dtype=np.uint8).reshape(-1)
    if buffer.size == 0:
        raise DataError(f"{what} is empty", sample_id=sample_id)
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error:
        image = None
    if image is None:
        raise DataError(f"{what} is corrupt: it does not decode", sample_id=sample_id)
    return image


def split_concatenated(data: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """Cut ``data`` (concatenated files) into pieces of ``lengths`` bytes."""
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    if len(ends) and ends[-1] != len(data):
        raise DataError(f"stored lengths add up to {ends[-1]} bytes, the data has {len(data)}")
    starts = ends - np.asarray(lengths, dtype=np.int64)
    return [data[start:end] for start, end in zip(starts.tolist(), ends.tolist())]


def fit_within(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most ``max_side``; None keeps it."""
    height, width = image.shape[:2]
    longer = max(height, width)
    if not max_side or longer <= max_side:
        return image
    scale = max_side / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def resize_to(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width < image.shape[1] and height < image.shape[0]
    return cv2.resize(image, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
