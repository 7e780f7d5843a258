"""``train eval RUN --workdir TARGET --class-map MAP``: a run scored on another dataset.

The target's skeletons are converted to the run's layout and persons (``.convert``), fed
through the run's own test-time transform, and scored over ALL the run's classes: top-1 is
right when the argmax of the run's logits is the mapped class, top-5 when it is among the
five highest (as the MMCL paper counts its zero-shot results). Target samples of classes
the map leaves out are not scored; they are counted in the report. With ``refine`` the
scores are the run's FRM-refined logits on the target's own LLM features (``.refine``).

Outputs (default ``RUN_DIR/eval/transfer-<target>-<digest>-<part>-<checkpoint>[-refine]``)::

    metrics.json     top-1, top-5 (and, refined, the plain backbone's), samples scored and
                     left out per target class, the class map with names, the joint mapping,
                     persons, run, checkpoint, target WORKDIR, part and protocol
    per_class.csv    one row per mapped target class: its source class, samples, top-1 and
                     top-5 correct and accuracy, the source class it is most often taken for
    confusion.csv    rows: the mapped target classes; columns: the source classes the map
                     uses, then ``other`` (every other source class)
    confusion.png    row-normalised picture of the same
    scores.npz       ids, labels (in the run's classes), the run's scores (refined ones with
                     refine) and the run's class names (``train.scores_io``)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_manifest.class_map import load_class_map
from data_manifest.formats.reading import CHANNELS, channels_of
from data_manifest.layouts import load_joint_map
from data_manifest.workdir import Workdir
from train.checkpoint import global_step_of
from train.config import model_layout
from train.data.dataset import SkeletonDataset, open_skeletons
from train.data.feeders import build_feeder
from train.errors import TrainError
from train.evaluate import csv_text, open_checkpoint, prepare_scorer, workdir_tag
from train.files import write_text_atomic
from train.metrics import topk_correct
from train.modeling import ModelBuilder
from train.plots import draw_confusion
from train.scores_io import save_scores
from train.scoring import Scores
from train.transfer.convert import ConvertingFeeder, layout_conversion
from train.transfer.refine import build_refiner
from train.transfer.target import target_samples

log = logging.getLogger(__name__)


@dataclass
class TransferResult:
    output_dir: Path
    top1: float
    top5: float
    num_samples: int
    scores: Scores                     # labels in the run's classes (refined with refine)
    class_map: dict[int, int]          # target class -> run class
    target_labels: np.ndarray          # each scored sample's target class
    per_class: list[dict[str, Any]]    # the rows of per_class.csv
    left_out: dict[int, int]           # unmapped target class -> samples left out
    skipped: int                       # target samples whose skeletons failed
    checkpoint: Path
    unrefined: dict[str, float] | None = None   # refine: the backbone's own top-1/top-5
    warnings: list[str] = field(default_factory=list)


def evaluate_transfer(run_dir: str | os.PathLike, workdir: str | os.PathLike,
                      class_map: Any, *, checkpoint: str = "auto", part: str = "all",
                      protocol: str | None = None, joint_map: Any = None, pad: str = "zero",
                      refine: bool = False, output_dir: str | os.PathLike | None = None,
                      overrides: dict[str, Any] | None = None,
                      model_builder: ModelBuilder | None = None,
                      progress: bool = False) -> TransferResult:
    """Score ``workdir`` (another dataset's WORKDIR with a skeleton cache) with a run.

    ``class_map``: a class map (built-in name, YAML file, YAML text or mapping, see
    ``data_manifest.class_map``) from the target's classes to the run's. ``part``: ``all``
    the target's samples (default), or the ``train``/``test`` part of ``protocol`` (default:
    the target dataset's own). ``joint_map``: the joint mapping from the target's layout to
    the run's (default: built in, else joints by name); ``pad``: ``zero`` or ``copy`` for
    the persons the target lacks. ``overrides`` change the run's recorded config (e.g.
    ``data.skeleton_cache``, ``objective.options.llm_cache``).
    """
    run = open_checkpoint(run_dir, checkpoint, overrides)
    path, state, config = run.path, run.state, run.config
    run_layout = model_layout(config)
    num_classes = config.model.num_classes
    run_names = state.get("class_names") or []
    run_names = list(run_names) if len(run_names) == num_classes else None
    target = Workdir(workdir)
    reader = open_skeletons(target, config)
    if target.layout is None:
        raise TrainError(f"{target.path} does not say its skeleton layout (an old WORKDIR): "
                         "rebuild its manifest with --layout")
    mapping = class_map_of(class_map, target, run_names, num_classes)
    chosen = target_samples(target, reader, mapping, part=part, protocol=protocol)
    first = reader.get(chosen.samples[0].id, ["joints"])["joints"]
    channels = reader.spec.params.get("channels") or channels_of(int(first.shape[-1]))
    if channels != config.data.channels or CHANNELS[channels] != config.model.in_channels:
        raise TrainError(f"the skeletons of {target.path} hold {channels} values, the run "
                         f"reads {config.data.channels}")
    conversion = layout_conversion(target.layout, run_layout, config.model.num_persons, pad,
                                   load_joint_map(joint_map) if joint_map else None)
    feeder = ConvertingFeeder(conversion, build_feeder(config.data, run_layout))
    dataset = SkeletonDataset(reader, chosen.samples, feeder, train=False)
    refiner = build_refiner(state, config, path, target) if refine else None

    scorer = prepare_scorer(run, model_builder)
    scores = scorer.score(dataset, progress=progress, desc="transfer")
    unrefined = None
    warnings = list(refiner.warnings) if refiner else []
    if refiner is not None:
        unrefined = {"top1": scores.top(1), "top5": scores.top(5)}
        scores = refiner.refine(scores, config.optim.test_batch_size)
    warnings += [f"mapped target class {_named(k, target.class_names)} has no samples in "
                 f"the evaluated part" for k in chosen.empty_classes]
    for warning in warnings:
        log.warning("%s", warning)
    target_labels = np.array([chosen.target_labels[i] for i in scores.ids], dtype=np.int64)
    per_class = _per_class(scores, target_labels, mapping, target.class_names, run_names)
    out = Path(output_dir) if output_dir else Path(run_dir) / "eval" / _folder_name(
        target, part, path, refine)
    result = TransferResult(out, scores.top(1), scores.top(5), len(scores.ids), scores,
                            mapping, target_labels, per_class, chosen.left_out,
                            len(chosen.skipped), path, unrefined, warnings)
    if scorer.accelerator.is_main_process:
        info = {"run_dir": str(Path(run_dir).resolve()), "checkpoint": str(path),
                "epoch": state.get("epoch"), "global_step": global_step_of(state),
                "target_workdir": str(target.path.resolve()), "part": part,
                "protocol": chosen.protocol, "modality": config.data.modality,
                "joint_map": (None if conversion.mapping is None else
                              {"name": conversion.mapping.name,
                               "from": conversion.mapping.source.name,
                               "to": conversion.mapping.target.name,
                               "digest": conversion.mapping.digest}),
                "persons": {"target": int(first.shape[1]), "run": config.model.num_persons,
                            "pad": pad},
                "refine": refiner.describe() if refiner else None,
                "mixed_precision": scorer.precision}
        _write_reports(result, target.class_names, run_names, info)
    scorer.accelerator.wait_for_everyone()
    return result


def class_map_of(spec: Any, target: Workdir, run_names: list[str] | None,
                 num_classes: int) -> dict[int, int]:
    """``spec`` resolved against the target's class names and the run's classes."""
    names = target.class_names
    return load_class_map(spec).resolve(
        target_names=names, target_classes=len(names) if names else None,
        source_names=run_names, source_classes=num_classes,
        target=f"the target {target.path}", source="the run")


def _folder_name(target: Workdir, part: str, checkpoint: Path, refine: bool) -> str:
    return (f"transfer-{workdir_tag(target.path)}-{part}-{checkpoint.stem}"
            + ("-refine" if refine else ""))


def _named(label: int, names: list[str] | None) -> str:
    return f"{label} ({names[label]})" if names and label < len(names) else str(label)


def _per_class(scores: Scores, target_labels: np.ndarray, mapping: dict[int, int],
               target_names: list[str] | None, run_names: list[str] | None
               ) -> list[dict[str, Any]]:
    predicted = scores.scores.argmax(axis=1)
    top1 = predicted == scores.labels
    top5 = topk_correct(scores.scores, scores.labels, 5)
    rows = []
    for label, source in mapping.items():
        chosen = target_labels == label
        count = int(chosen.sum())
        row = {"target_class": label, "target_name": _name(label, target_names),
               "run_class": source, "run_name": _name(source, run_names), "samples": count,
               "top1_correct": int(top1[chosen].sum()), "top5_correct": int(top5[chosen].sum()),
               "top1": float(top1[chosen].mean()) if count else None,
               "top5": float(top5[chosen].mean()) if count else None,
               "most_predicted": None, "most_predicted_share": None}
        if count:
            counts = np.bincount(predicted[chosen], minlength=scores.scores.shape[1])
            row["most_predicted"] = int(counts.argmax())
            row["most_predicted_share"] = float(counts.max() / count)
        rows.append(row)
    return rows


def _name(label: int, names: list[str] | None) -> str:
    return names[label] if names and label < len(names) else ""


def _confusion(result: TransferResult) -> tuple[np.ndarray, list[int]]:
    """Rows: the mapped target classes; columns: the run classes the map uses, then other."""
    columns = sorted(set(result.class_map.values()))
    position = {label: k for k, label in enumerate(columns)}
    rows = {label: k for k, label in enumerate(result.class_map)}
    matrix = np.zeros((len(rows), len(columns) + 1), dtype=np.int64)
    for truth, guess in zip(result.target_labels, result.scores.scores.argmax(axis=1)):
        matrix[rows[int(truth)], position.get(int(guess), len(columns))] += 1
    return matrix, columns


def _write_reports(result: TransferResult, target_names: list[str] | None,
                   run_names: list[str] | None, info: dict[str, Any]) -> None:
    out = result.output_dir
    out.mkdir(parents=True, exist_ok=True)
    scored = [row for row in result.per_class if row["samples"]]
    metrics = {**info, "top1": result.top1, "top5": result.top5,
               "num_samples": result.num_samples,
               "mean_class_top1": float(np.mean([r["top1"] for r in scored])) if scored
               else None,
               "unrefined": result.unrefined,
               "class_map": [{"target": row["target_class"], "target_name": row["target_name"],
                              "run": row["run_class"], "run_name": row["run_name"],
                              "samples": row["samples"]} for row in result.per_class],
               "left_out": {"samples": sum(result.left_out.values()),
                            "by_target_class": {str(k): v for k, v in result.left_out.items()}},
               "skipped_failed_skeletons": result.skipped,
               "warnings": result.warnings}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    columns = ["target_class", "target_name", "run_class", "run_name", "samples",
               "top1_correct", "top1", "top5_correct", "top5", "most_predicted",
               "most_predicted_name", "most_predicted_share"]
    lines = [columns]
    for row in result.per_class:
        shown = {**row, "most_predicted_name": "" if row["most_predicted"] is None
                 else _name(row["most_predicted"], run_names)}
        lines.append(["" if shown[c] is None else
                      (f"{shown[c]:.6f}" if isinstance(shown[c], float) else shown[c])
                      for c in columns])
    write_text_atomic(out / "per_class.csv", csv_text(lines))
    matrix, used = _confusion(result)
    header = ["true\\predicted"] + [str(k) for k in used] + ["other"]
    write_text_atomic(out / "confusion.csv", csv_text(
        [header] + [[label] + matrix[k].tolist()
                    for k, label in enumerate(result.class_map)]))
    draw_confusion(matrix, out / "confusion.png",
                   class_names=[f"{k} {_name(k, target_names)}".strip()
                                for k in result.class_map],
                   column_names=[f"{k} {_name(k, run_names)}".strip() for k in used]
                   + ["other"],
                   title=f"transfer top-1 {100 * result.top1:.2f}% ({result.num_samples} "
                         "samples); rows: target class, columns: the run's prediction")
    save_scores(out / "scores.npz", result.scores, run_names or [])
