"""JPEG encoding/decoding and resizing of BGR uint8 images (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from data_manifest.errors import DataError


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}")
    return buffer.tobytes()


def decode_jpeg(data: bytes | np.ndarray) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8) if isinstance(data, bytes) else data
    image = cv2.imdecode(np.ascontiguousarray(buffer, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError("stored JPEG does not decode")
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
