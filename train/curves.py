"""Training curves of one or several runs on shared axes (``train plot``).

Left: the training loss per epoch (solid) and, for objectives with several named losses
(MMCL: cls, contrastive, refine), each of them (dashed, dash-dot, dotted). Right: top-1
accuracy in percent on the test part (solid), the validation part (dashed) and the
training batches (dotted) at the epochs that were evaluated. One colour per run. The
numbers come from each run's ``metrics.jsonl``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from train.errors import TrainError
from train.plots import new_figure, save_figure
from train.run_files import labels_for, read_metrics

TERM_STYLES = ("--", "-.", ":")
ACCURACY_STYLES = {"test": "-", "val": "--", "train": ":"}


@dataclass
class Series:
    x: list[int]          # epochs
    y: list[float]


def run_series(history: Sequence[dict[str, Any]]) -> dict[str, Series]:
    """``loss``, ``loss/<term>`` (only with several terms) and ``top1/<part>`` (percent)."""
    series: dict[str, Series] = {}

    def add(name: str, epoch: int, value: float) -> None:
        series.setdefault(name, Series([], [])).x.append(epoch)
        series[name].y.append(value)

    for line in history:
        epoch = line["epoch"]
        add("loss", epoch, line["loss"])
        terms = line.get("losses") or {}
        if len(terms) > 1:
            for term, value in terms.items():
                add(f"loss/{term}", epoch, value)
        for part in ACCURACY_STYLES:
            if f"{part}_top1" in line:
                add(f"top1/{part}", epoch, 100 * line[f"{part}_top1"])
    return series


def plot_runs(run_dirs: Sequence[str | os.PathLike], output: str | os.PathLike, *,
              title: str | None = None, terms: bool = True):
    """Draw the curves of ``run_dirs`` into ``output`` (.png, .svg or .pdf); the Figure.

    Each line's label is ``"<run label> <series name>"`` (see ``run_series``).
    """
    from matplotlib.lines import Line2D

    paths = [Path(path) for path in run_dirs]
    histories = [read_metrics(path) for path in paths]
    for path, history in zip(paths, histories):
        if not history:
            raise TrainError(f"{path} has no finished epoch in metrics.jsonl to plot")
    labels = labels_for(paths)
    all_series = [run_series(history) for history in histories]
    term_names = list(dict.fromkeys(name for series in all_series for name in series
                                    if name.startswith("loss/"))) if terms else []
    term_styles = {name: TERM_STYLES[i % len(TERM_STYLES)] for i, name in
                   enumerate(term_names)}
    figure = new_figure(12, 4.8)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    colours = [f"C{i % 10}" for i in range(len(paths))]
    for label, series, colour in zip(labels, all_series, colours):
        loss_axes.plot(series["loss"].x, series["loss"].y, "-", color=colour,
                       label=f"{label} loss")
        for name in term_names:
            if name in series:
                loss_axes.plot(series[name].x, series[name].y, term_styles[name],
                               color=colour, linewidth=1, label=f"{label} {name}")
        for part, style in ACCURACY_STYLES.items():
            name = f"top1/{part}"
            if name in series:
                accuracy_axes.plot(series[name].x, series[name].y, style, color=colour,
                                   marker="." if len(series[name].x) < 30 else None,
                                   label=f"{label} {name}")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    accuracy_axes.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="top-1 accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    styles = [("total", "-")] + [(name[5:], style) for name, style in term_styles.items()]
    loss_axes.legend(handles=[Line2D([], [], color=c, label=label)
                              for c, label in zip(colours, labels)]
                     + [Line2D([], [], color="grey", linestyle=style, label=name)
                        for name, style in (styles if term_names else [])], fontsize=8)
    parts = [part for part in ACCURACY_STYLES
             if any(f"top1/{part}" in series for series in all_series)]
    if parts:
        accuracy_axes.legend(handles=[Line2D([], [], color="grey", label=part,
                                             linestyle=ACCURACY_STYLES[part])
                                      for part in parts], fontsize=8)
    if title:
        figure.suptitle(title)
    save_figure(figure, output)
    return figure
