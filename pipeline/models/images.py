"""Decoding cached temporal images and resizing them for a model."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from data_manifest.errors import DataError
from pipeline.images import decode_jpeg


def decode_image(data: bytes | np.ndarray, sample_id: str | None = None) -> Image.Image:
    """JPEG/PNG bytes -> an RGB PIL image; an empty or corrupt file is a :class:`DataError`."""
    try:
        bgr = decode_jpeg(data, what="the cached temporal image")
    except DataError as error:
        raise DataError(f"{error.reason}; re-run the stitch stage for it (pipeline stitch "
                        "--overwrite)", sample_id=sample_id) from None
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def keep_aspect_size(width: int, height: int, target_height: int, multiple: int) -> tuple[int, int]:
    """(width, height) with the height set to ``target_height`` and the width scaled to keep
    the aspect ratio, both rounded to a multiple of ``multiple`` (e.g. a ViT's patch size)."""
    new_height = max(multiple, round(target_height / multiple) * multiple)
    new_width = max(multiple, round(width * new_height / height / multiple) * multiple)
    return new_width, new_height
