"""Decoding cached temporal images and resizing them for a model."""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from data_manifest.errors import DataError


def decode_image(data: bytes, sample_id: str | None = None) -> Image.Image:
    """JPEG/PNG bytes -> an RGB PIL image; a corrupt file is a :class:`DataError`."""
    if not data:
        raise DataError("the cached temporal image is empty", sample_id=sample_id)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"the cached temporal image is corrupt ({error}); re-run the stitch "
                        "stage for it (pipeline stitch --overwrite)", sample_id=sample_id) from None


def keep_aspect_size(width: int, height: int, target_height: int, multiple: int) -> tuple[int, int]:
    """(width, height) with the height set to ``target_height`` and the width scaled to keep
    the aspect ratio, both rounded to a multiple of ``multiple`` (e.g. a ViT's patch size)."""
    new_height = max(multiple, round(target_height / multiple) * multiple)
    new_width = max(multiple, round(width * new_height / height / multiple) * multiple)
    return new_width, new_height
