"""Figures of the trainer (confusion matrices here, training curves in ``train.curves``),
all drawn with matplotlib.

matplotlib is the one plotting library: it gives real axes, ticks, legends and colour
bars, and writes PNG, SVG or PDF from the same code (the file's suffix decides), which a
paper figure needs; OpenCV or Pillow drawing would mean keeping a small plotting library
of our own. Figures are built on matplotlib's object API with the Agg canvas (no pyplot
state, no display needed) and written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from train.errors import TrainError
from train.files import write_atomic

FORMATS = ("png", "svg", "pdf")


def new_figure(width: float, height: float):
    """A matplotlib Figure on the Agg canvas, ``width`` x ``height`` inches at 100 dpi."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` to ``path`` (PNG, SVG or PDF by suffix), atomically."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise TrainError(f"{path}: the picture must end in .{', .'.join(FORMATS)}")
    return write_atomic(path, lambda handle: figure.savefig(handle, format=kind,
                                                            bbox_inches="tight"))


def draw_confusion(matrix: np.ndarray, path: str | os.PathLike, *,
                   class_names: Sequence[str] | None = None, title: str = "",
                   column_names: Sequence[str] | None = None) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) as a picture.

    Cells go from white (0) to dark blue (1), with a colour bar; up to 20 rows and columns
    each cell shows its percentage and up to 30 the axes name the classes, beyond that they
    show class indices. ``column_names`` labels the columns of a matrix that is not square
    (e.g. a cross-dataset evaluation: target classes against the run's predictions); the
    rows are then labelled by ``class_names`` as given.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    classes, columns = matrix.shape
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = float(np.clip(2.5 + 0.09 * max(classes, columns), 4.0, 14.0))
    figure = new_figure(side + 1.2, side)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.02, label="share of the true class")
    names = list(class_names or [])
    step = max(1, int(np.ceil(classes / 40)))
    ticks = np.arange(0, classes, step)
    column_ticks = np.arange(0, columns, max(1, int(np.ceil(columns / 40))))
    if len(names) == classes and classes <= 30:
        shown = [names[k] if column_names is not None else f"{k}: {names[k]}" for k in ticks]
        axes.set_yticks(ticks, [name[:28] for name in shown], fontsize=7)
    else:
        axes.set_yticks(ticks, [str(k) for k in ticks], fontsize=7)
    if column_names is not None and len(column_names) == columns and columns <= 30:
        axes.set_xticks(column_ticks, [str(column_names[k])[:20] for k in column_ticks],
                        fontsize=7, rotation=45, ha="right")
    else:
        axes.set_xticks(column_ticks, [str(k) for k in column_ticks],
                        fontsize=None if len(names) == classes and classes <= 30 else 7)
    if classes <= 20 and columns <= 20:
        for i in range(classes):
            for j in range(columns):
                if matrix[i, j] > 0:
                    axes.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center",
                              fontsize=7, color="white" if share[i, j] > 0.5 else "black")
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title or "confusion matrix (rows: true, columns: predicted)", fontsize=9)
    return save_figure(figure, path)
