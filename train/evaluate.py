"""``train eval``: score a run's checkpoint on a split part and write the reports.

Outputs (default ``RUN_DIR/eval/<part>-<checkpoint>/``; scoring another WORKDIR or
skeleton cache than the run's adds them to the name, see ``eval_dir``)::

    metrics.json     top-1, top-5, sample count, run, checkpoint, its epoch and global step
                     and, for a best checkpoint, ``selected_on`` (val or test: the part it
                     was chosen on); the WORKDIR and skeleton cache scored, the mixed
                     precision
    per_class.csv    class, name, samples, correct, accuracy
    confusion.csv    counts, rows = true class, columns = predicted class
    confusion.png    row-normalised picture of the same
    scores.npz       ids, labels, per-class scores (see ``train.scores_io``)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelerate import Accelerator
from torch import nn

from train.accelerators import resolve_precision, scoring_accelerator
from train.cache_binding import binding_problem, same_cache
from train.checkpoint import (TEST_SELECTED_WARNING, global_step_of, load_checkpoint,
                              resolve_checkpoint, selected_on)
from train.config import TrainConfig, deep_merge
from train.data.dataset import PARTS, SkeletonDataset, load_data
from train.errors import CheckpointError, ConfigError, TrainError
from train.files import write_text_atomic
from train.metrics import confusion_matrix, per_class_accuracy
from train.modeling import ModelBuilder, build_backbone
from train.models.load_run import checkpoint_config, checkpoint_weights
from train.models.reference_import import load_checked
from train.plots import draw_confusion
from train.scores_io import save_scores
from train.scoring import Scores, score_dataset
from train.threads import apply_threads

log = logging.getLogger(__name__)


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
    checkpoint: Path | None = None
    selected_on: str | None = None     # best checkpoints: "val" or "test"
    warnings: list[str] = field(default_factory=list)

    def class_label(self, index: int) -> str:
        if len(self.class_names) == len(self.per_class) and self.class_names[index]:
            return f"{index} ({self.class_names[index]})"
        return f"class {index}"


@dataclass
class RunCheckpoint:
    """A run's checkpoint opened for scoring."""

    run_dir: Path
    path: Path                       # the checkpoint file
    state: dict[str, Any]            # its payload
    recorded: TrainConfig            # the config the run recorded
    config: TrainConfig              # the same with the caller's overrides: what is scored
    selected_on: str | None          # best checkpoints: "val" or "test"


def open_checkpoint(run_dir: str | os.PathLike, checkpoint: str = "auto",
                    overrides: dict[str, Any] | None = None) -> RunCheckpoint:
    """Resolve ``checkpoint`` in ``run_dir``, load it and its config (its ``config`` entry,
    else the run's ``config.yaml``: trained, imported or foreign checkpoints alike)."""
    path = resolve_checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path)
    recorded = checkpoint_config(state, run_dir, path)
    config = TrainConfig.from_dict(deep_merge(recorded.to_dict(), overrides or {}))
    chosen_on = selected_on(state) if state.get("kind") == "best" else None
    return RunCheckpoint(Path(run_dir), path, state, recorded, config, chosen_on)


@dataclass
class Scorer:
    """A checkpoint's backbone on this process's device, scored as its run was trained:
    same mixed precision, thread plan, evaluation batch and workers."""

    model: nn.Module
    accelerator: Accelerator
    precision: str
    batch_size: int
    num_workers: int

    def score(self, dataset: SkeletonDataset, *, progress: bool = False,
              desc: str = "eval") -> Scores:
        return score_dataset(self.model, dataset, self.accelerator,
                             batch_size=self.batch_size, num_workers=self.num_workers,
                             progress=progress, desc=desc, precision=self.precision)


def prepare_scorer(run: RunCheckpoint, model_builder: ModelBuilder | None = None) -> Scorer:
    """The accelerator (shared by every run this process scores), the run's thread plan,
    and its backbone with the checkpoint's weights, checked key by key."""
    config = run.config
    accelerator = scoring_accelerator()
    apply_threads(config.run.threads, config.data.num_workers)
    model = (model_builder or build_backbone)(config)
    load_checked(model, checkpoint_weights(run.state, run.path), f"the model in {run.path}")
    model.to(accelerator.device)
    return Scorer(model, accelerator, resolve_precision(config.run.mixed_precision),
                  config.optim.test_batch_size, config.data.num_workers)


def workdir_tag(workdir: str | os.PathLike) -> str:
    """``<folder name>-<digest of its absolute path>``: a WORKDIR in a report folder name."""
    path = Path(workdir).resolve()
    return f"{path.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def eval_dir(run: RunCheckpoint, part: str) -> Path:
    """``RUN_DIR/eval/<part>-<checkpoint>``, plus the WORKDIR (``workdir_tag``) and the
    skeleton cache when they are not the run's own, so scoring other data never
    overwrites the run's own report."""
    name = f"{part}-{run.path.stem}"
    data, own = run.config.data, run.recorded.data
    if data.workdir != own.workdir:
        name += f"-{workdir_tag(data.workdir)}"
    if data.skeleton_cache != own.skeleton_cache:
        name += f"-cache-{data.skeleton_cache}"
    return run.run_dir / "eval" / name


def evaluate_run(run_dir: str | os.PathLike, *, checkpoint: str = "auto", part: str = "test",
                 output_dir: str | os.PathLike | None = None,
                 overrides: dict[str, Any] | None = None,
                 model_builder: ModelBuilder | None = None,
                 progress: bool = False,
                 accept_skeletons: str | None = None) -> EvalResult:
    """Score ``part`` (train, val or test; test-time transform) with a run's checkpoint.

    ``checkpoint``: ``auto`` (best if it was chosen on a validation part, else last),
    ``best``, ``last`` or a path (see ``train.checkpoint.resolve_checkpoint``).
    ``overrides`` (nested dict) change the recorded config, e.g.
    ``{"data": {"workdir": other}}`` to test on another WORKDIR of the same layout (its
    reports go to their own folder, see ``eval_dir``).

    The run's own skeleton cache (same WORKDIR and cache name) must be the one the
    checkpoint recorded (see :mod:`train.cache_binding`); a cache rebuilt since is refused
    unless ``accept_skeletons`` gives its new fingerprint.
    """
    if part not in PARTS:
        raise TrainError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    run = open_checkpoint(run_dir, checkpoint, overrides)
    path, state, config = run.path, run.state, run.config
    warnings = []
    if run.selected_on == "test" and part == "test":
        warnings.append(TEST_SELECTED_WARNING.format(path=path))
        log.warning("%s", warnings[-1])
    if not config.data.workdir:
        imported = " (imported weights record none)" if state.get("kind") == "imported" else ""
        raise ConfigError(f"no WORKDIR to score: {run_dir}'s config has no data.workdir"
                          f"{imported}; give one with --workdir")
    scorer = prepare_scorer(run, model_builder)
    data = load_data(config)
    skeletons = data.skeleton_record()
    warnings += _check_skeletons(state.get("skeleton_cache"), skeletons, path, accept_skeletons)
    scores = scorer.score(data.dataset(part, train=False), progress=progress, desc=part)
    classes = config.model.num_classes
    predictions = scores.scores.argmax(axis=1)
    confusion = confusion_matrix(scores.labels, predictions, classes)
    per_class = per_class_accuracy(confusion)
    out = Path(output_dir) if output_dir else eval_dir(run, part)
    class_names = list(state.get("class_names") or [])
    result = EvalResult(out, scores.top(1), scores.top(5), len(scores.ids), scores,
                        confusion, per_class, class_names, path, run.selected_on, warnings)
    if scorer.accelerator.is_main_process:
        _write_reports(result, class_names, {"run_dir": str(Path(run_dir).resolve()),
                                             "checkpoint": str(path), "part": part,
                                             "epoch": state.get("epoch"),
                                             "global_step": global_step_of(state),
                                             "selected_on": run.selected_on,
                                             "workdir": config.data.workdir,
                                             "skeleton_cache": {
                                                 key: skeletons[key] for key in
                                                 ("name", "path", "fingerprint")},
                                             "modality": config.data.modality,
                                             "mixed_precision": scorer.precision})
    scorer.accelerator.wait_for_everyone()
    return result


def _check_skeletons(recorded: dict[str, Any] | None, current: dict[str, Any], path: Path,
                     accept: str | None) -> list[str]:
    """Refuse the run's own skeleton cache if it changed since ``path`` was trained on it
    (warnings for an accepted change); another WORKDIR or cache is the user's choice."""
    if accept is not None and accept != current["fingerprint"]:
        raise TrainError(f"the skeleton cache {current['path']} has fingerprint "
                         f"{current['fingerprint']}, not {accept} as accepted")
    if not recorded or not same_cache(recorded, current):
        return []
    problem = binding_problem(recorded, current, str(path))
    if problem is None:
        return []
    if accept is None:
        raise CheckpointError(
            f"{problem}. Its scores would not describe the data the run was trained and "
            "tested on. Rebuild the cache with the settings the run used (before each "
            "'->'), evaluate another "
            "WORKDIR (--workdir) or cache (--set data.skeleton_cache=NAME), start a new run, "
            f"or score this cache anyway with --accept-skeletons {current['fingerprint']}")
    message = f"scored on a changed skeleton cache, as accepted: {problem}"
    log.warning("%s", message)
    return [message]


def _write_reports(result: EvalResult, class_names: list[str], info: dict[str, Any]) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    classes = result.confusion.shape[0]
    names = class_names if len(class_names) == classes else [""] * classes
    metrics = {**info, "top1": result.top1, "top5": result.top5,
               "num_samples": result.num_samples,
               "mean_class_accuracy": float(np.nanmean(result.per_class))
               if np.isfinite(result.per_class).any() else None}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    rows = [["class", "name", "samples", "correct", "accuracy"]]
    for k in range(classes):
        total = int(result.confusion[k].sum())
        accuracy = "" if total == 0 else f"{result.per_class[k]:.6f}"
        rows.append([k, names[k], total, int(result.confusion[k, k]), accuracy])
    write_text_atomic(out / "per_class.csv", csv_text(rows))
    write_text_atomic(out / "confusion.csv", csv_text(
        [["true\\predicted"] + list(range(classes))]
        + [[k] + result.confusion[k].tolist() for k in range(classes)]))
    draw_confusion(result.confusion, out / "confusion.png", class_names=class_names,
                   title=f"{info['part']} top-1 {100 * result.top1:.2f}% "
                         f"({result.num_samples} samples); rows: true, columns: predicted")
    save_scores(out / "scores.npz", result.scores, class_names)


def csv_text(rows: list[list[Any]]) -> str:
    """``rows`` as CSV text (for ``write_text_atomic``)."""
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()
