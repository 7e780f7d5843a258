"""``train eval``: score a run's checkpoint on a split part and write the reports.

Outputs (default ``RUN_DIR/eval/<part>-<checkpoint>/``)::

    metrics.json     top-1, top-5, sample count, checkpoint and epoch
    per_class.csv    class, name, samples, correct, accuracy
    confusion.csv    counts, rows = true class, columns = predicted class
    confusion.png    row-normalised picture of the same
    scores.npz       ids, labels, per-class scores (see ``train.scores_io``)
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from train.checkpoint import checkpoint_path, load_checkpoint, load_state_strict
from train.config import TrainConfig, deep_merge
from train.data.dataset import PARTS, load_data
from train.errors import CheckpointError, TrainError
from train.loop import make_accelerator
from train.metrics import confusion_matrix, per_class_accuracy
from train.modeling import ModelBuilder, build_backbone
from train.plots import draw_confusion
from train.scores_io import save_scores
from train.scoring import Scores, score_dataset


@dataclass
class EvalResult:
    output_dir: Path
    top1: float
    top5: float
    num_samples: int
    scores: Scores
    confusion: np.ndarray
    per_class: np.ndarray
    class_names: list[str] = field(default_factory=list)

    def class_label(self, index: int) -> str:
        if len(self.class_names) == len(self.per_class) and self.class_names[index]:
            return f"{index} ({self.class_names[index]})"
        return f"class {index}"


def resolve_checkpoint(run_dir: str | os.PathLike, checkpoint: str) -> Path:
    """``best``/``last`` inside the run, or a path to a checkpoint file."""
    if checkpoint in ("best", "last"):
        path = checkpoint_path(run_dir, checkpoint)
        if not path.is_file():
            raise CheckpointError(f"{run_dir} has no {checkpoint} checkpoint ({path}); has "
                                  "the run finished an epoch (with evaluation for best)?")
        return path
    return Path(checkpoint)


def evaluate_run(run_dir: str | os.PathLike, *, checkpoint: str = "best", part: str = "test",
                 output_dir: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None,
                 model_builder: ModelBuilder | None = None,
                 progress: bool = False) -> EvalResult:
    """Score ``part`` (train, val or test; test-time transform) with a run's checkpoint.

    ``overrides`` (nested dict) change the recorded config, e.g.
    ``{"data": {"workdir": other}}`` to test on another WORKDIR of the same layout.
    """
    if part not in PARTS:
        raise TrainError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    config = TrainConfig.from_dict(deep_merge(state["config"], overrides or {}))
    accelerator = make_accelerator(config)
    data = load_data(config)
    dataset = data.dataset(part, train=False)
    model = (model_builder or build_backbone)(config)
    load_state_strict(model, state["model"], f"model in {path}")
    model.to(accelerator.device)
    scores = score_dataset(model, dataset, accelerator,
                           batch_size=config.optim.test_batch_size,
                           num_workers=config.data.num_workers, progress=progress, desc=part)
    classes = config.model.num_classes
    predictions = scores.scores.argmax(axis=1)
    confusion = confusion_matrix(scores.labels, predictions, classes)
    per_class = per_class_accuracy(confusion)
    name = checkpoint if checkpoint in ("best", "last") else Path(checkpoint).stem
    out = Path(output_dir) if output_dir else Path(run_dir) / "eval" / f"{part}-{name}"
    class_names = list(state.get("class_names") or [])
    result = EvalResult(out, scores.top(1), scores.top(5), len(scores.ids), scores,
                        confusion, per_class, class_names)
    if accelerator.is_main_process:
        _write_reports(result, class_names, {"checkpoint": str(path), "part": part,
                                             "epoch": state.get("epoch"),
                                             "workdir": config.data.workdir,
                                             "modality": config.data.modality})
    accelerator.wait_for_everyone()
    return result


def _write_reports(result: EvalResult, class_names: list[str], info: dict[str, Any]) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    classes = result.confusion.shape[0]
    names = class_names if len(class_names) == classes else [""] * classes
    metrics = {**info, "top1": result.top1, "top5": result.top5,
               "num_samples": result.num_samples,
               "mean_class_accuracy": float(np.nanmean(result.per_class))
               if np.isfinite(result.per_class).any() else None}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with open(out / "per_class.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["class", "name", "samples", "correct", "accuracy"])
        for k in range(classes):
            total = int(result.confusion[k].sum())
            accuracy = "" if total == 0 else f"{result.per_class[k]:.6f}"
            writer.writerow([k, names[k], total, int(result.confusion[k, k]), accuracy])
    with open(out / "confusion.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true\\predicted"] + list(range(classes)))
        for k in range(classes):
            writer.writerow([k] + result.confusion[k].tolist())
    draw_confusion(result.confusion, out / "confusion.png", class_names=class_names,
                   title=f"{info['part']} top-1 {100 * result.top1:.2f}% "
                         f"({result.num_samples} samples); rows: true, columns: predicted")
    save_scores(out / "scores.npz", result.scores, class_names)
