"""A confusion-matrix picture drawn with Pillow (no plotting library needed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def draw_confusion(matrix: np.ndarray, path: str | os.PathLike, *,
                   class_names: Sequence[str] | None = None, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as a PNG.

    Cells go from white (0) to dark blue (1); with few classes each cell shows its
    percentage. Axis labels are class indices; the legend lists names when given.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    classes = matrix.shape[0]
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    cell = int(np.clip(720 // max(classes, 1), 4, 48))
    font = ImageFont.load_default()
    margin_left, margin_top = 48, 40
    names = list(class_names or [])
    legend_width = 260 if names and classes <= 60 else 0
    width = margin_left + classes * cell + 16 + legend_width
    height = max(margin_top + classes * cell + 36, margin_top + 12 * len(names) + 20
                 if legend_width else 0)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((margin_left, 8), title or "confusion matrix (rows: true, columns: predicted)",
              fill="black", font=font)
    for i in range(classes):
        for j in range(classes):
            value = share[i, j]
            colour = tuple(int(255 - value * (255 - c)) for c in (8, 48, 107))
            x0, y0 = margin_left + j * cell, margin_top + i * cell
            draw.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=colour)
            if cell >= 28 and matrix[i, j] > 0:
                draw.text((x0 + 3, y0 + cell // 2 - 5), f"{100 * value:.0f}",
                          fill="white" if value > 0.5 else "black", font=font)
    step = max(1, int(np.ceil(12 / cell)))
    for k in range(0, classes, step):
        draw.text((4, margin_top + k * cell + max(cell // 2 - 5, 0)), str(k), fill="black",
                  font=font)
        draw.text((margin_left + k * cell, margin_top + classes * cell + 4), str(k),
                  fill="black", font=font)
    draw.rectangle([margin_left - 1, margin_top - 1, margin_left + classes * cell,
                    margin_top + classes * cell], outline="black")
    if legend_width:
        x = margin_left + classes * cell + 16
        for k, name in enumerate(names):
            draw.text((x, margin_top + 12 * k), f"{k}: {name}"[:42], fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
