"""What a finished (or unfinished) run directory says: its setup, its selected checkpoint
and that checkpoint's test accuracy, read back for ``train compare`` and ``train plot``.

The test accuracy shown for a run is that of the checkpoint ``--checkpoint auto`` picks
(``train.checkpoint.resolve_checkpoint``: best when chosen on a validation part, else
last), never a best chosen on the test set. It comes from ``train eval``'s report of
that checkpoint when there is one (``RUN_DIR/eval/test-<best|last>/metrics.json``, for the
same epoch and step and the run's own WORKDIR), else from the training log
(``metrics.jsonl``: the loop scores the test part with the same weights at each evaluated
epoch), else the run is reported as not evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from train import checkpoint as ckpt
from train.config import RESUME_SAFE_KEYS, TrainConfig, load_yaml
from train.errors import TrainError
from train.run_files import CONFIG_FILE, DATA_FILE, is_run_dir, read_metrics
from train.tracking import flat_config

# left out when two runs' setups are compared: the keys a run may change on resume
# because they do not change what it learns (but not the epochs), the keys shown as
# columns of their own, the objective, the WORKDIR's path (its manifest is compared)
NOT_COMPARED = tuple(key for key in RESUME_SAFE_KEYS if key != "schedule.epochs") + (
    "preset", "objective", "model.name", "data.modality", "data.protocol", "data.workdir",
    "run.find_unused_parameters")


@dataclass
class Row:
    """One line of the comparison table: a run, or an ensemble of runs' scores."""

    label: str
    path: Path
    kind: str                       # "run" or "ensemble"
    backbone: str
    modality: str
    objective: str                  # plain, MMCL, FAM only, FRM only (or the objective name)
    dataset: str
    protocol: str
    epochs: str
    checkpoint: str                 # which weights, and the part they were selected on
    top1: float | None = None       # test accuracy (fractions), None when not honest/known
    top5: float | None = None
    source: str = ""                # where the accuracy comes from
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)   # compared when pairing
    paired_with: str | None = None
    delta_top1: float | None = None
    delta_top5: float | None = None

    @property
    def group(self) -> tuple[str, ...]:
        return (self.kind, self.backbone, self.modality, self.dataset, self.protocol)


def objective_label(config: TrainConfig) -> str:
    name = config.objective.name
    if name == "classification":
        return "plain"
    if name != "mmcl":
        return name
    from train.mmcl.objective import MMCLSettings
    settings = MMCLSettings.from_dict(config.objective.options)
    return {(True, True): "MMCL", (True, False): "FAM only", (False, True): "FRM only",
            (False, False): "plain"}[(settings.fam, settings.frm)]


def _compared(key: str) -> bool:
    return not any(key == skip or key.startswith(skip + ".") for skip in NOT_COMPARED)


def _workdir_info(config: TrainConfig) -> tuple[str, str | None]:
    """(dataset, manifest digest) of the run's WORKDIR; from the protocol if it is gone."""
    from data_manifest.errors import DataError
    from data_manifest.splits import protocol_dataset
    from data_manifest.workdir import Workdir
    try:
        info = Workdir(config.data.workdir).info
        return info.dataset, info.manifest_digest
    except (DataError, TypeError, OSError):
        return protocol_dataset(config.data.protocol) or "?", None


def _run_setup(path: Path, label: str) -> tuple[Row, TrainConfig, list[dict[str, Any]]]:
    try:
        config = TrainConfig.from_dict(load_yaml(path / CONFIG_FILE))
    except TrainError as error:
        raise TrainError(f"{path}: {error}") from error
    history = _read_json(path, lambda: read_metrics(path))
    data_file = path / DATA_FILE
    counts = _read_json(path, lambda: json.loads(data_file.read_text())) \
        if data_file.is_file() else {}
    done = history[-1]["epoch"] if history else 0
    planned = config.schedule.epochs
    dataset, digest = _workdir_info(config)
    settings = {key: value for key, value in flat_config(config.to_dict()).items()
                if _compared(key)}
    settings.update({"dataset manifest": digest, "epochs done": done,
                     **{f"{part} samples": counts.get(part) for part in ("train", "val", "test")}})
    row = Row(label=label, path=path, kind="run", backbone=config.model.name,
              modality=config.data.modality, objective=objective_label(config),
              dataset=dataset, protocol=config.data.protocol,
              epochs=str(done) if done >= planned else f"{done}/{planned}",
              checkpoint="none yet", settings=settings)
    if done < planned:
        row.notes.append("unfinished")
    return row, config, history


def _read_json(run_dir: Path, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ValueError as error:          # json's errors name the line and column
        raise TrainError(f"{run_dir}: {DATA_FILE} or metrics.jsonl is not valid JSON "
                         f"({error})") from error


def read_run(path: Path, label: str) -> Row:
    """The row of a run directory: its setup and its selected checkpoint's test accuracy."""
    row, config, history = _run_setup(path, label)
    _add_test_accuracy(row, path, config, history)
    return row


def read_ensemble(path: Path, label: str) -> Row:
    """The row of a ``train ensemble`` record: its streams' common setup and the fused
    accuracy, withheld when a stream or the weights were chosen on the test set."""
    from train.ensemble import read_ensemble_record
    record = read_ensemble_record(path)
    streams = record["streams"]
    setups = []
    for stream in streams:
        run_dir = Path(stream["run_dir"]) if stream.get("run_dir") else None
        setups.append(_run_setup(run_dir, run_dir.name)[0]
                      if run_dir is not None and is_run_dir(run_dir) else None)
    modalities = [s.modality if s else stream.get("modality") or "?"
                  for s, stream in zip(setups, streams)]
    weights = record["weights"]
    row = Row(label=label, path=path, kind="ensemble",
              backbone=_common([s and s.backbone for s in setups]),
              modality="+".join(modalities),
              objective=_common([s and s.objective for s in setups]),
              dataset=_common([s and s.dataset for s in setups]),
              protocol=_common([s and s.protocol for s in setups]),
              epochs=_common([s and s.epochs for s in setups]),
              checkpoint="; ".join(_stream_checkpoint(stream) for stream in streams),
              source="train ensemble")
    row.notes.append("weights " + ", ".join(f"{m} {w:g}" for m, w in zip(modalities, weights))
                     + f" ({record.get('weights_from', '?')})")
    row.settings = {"softmax": record.get("softmax"),
                    "weights": weights if record.get("weights_from") == "given"
                    else record.get("weights_from")}
    for modality, setup in zip(modalities, setups):
        if setup is not None:
            row.settings.update({f"{modality}: {key}": value
                                 for key, value in setup.settings.items()})
    problems = _ensemble_problems(record)
    row.notes.extend(problems)
    if not problems:
        row.top1, row.top5 = record.get("top1"), record.get("top5")
    return row


def _common(values: list[Any]) -> str:
    """The streams' shared value; "?" if a stream's run is unknown, "mixed" if they differ."""
    if any(value is None for value in values):
        return "?"
    distinct = {str(value) for value in values}
    return distinct.pop() if len(distinct) == 1 else "mixed"


def _stream_checkpoint(stream: dict[str, Any]) -> str:
    if not stream.get("checkpoint"):
        return "?"
    name = Path(stream["checkpoint"]).stem
    chosen = f" on {stream['selected_on']}" if name == "best" else ""
    return f"{name}{chosen}, epoch {stream.get('epoch')}"


def _ensemble_problems(record: dict[str, Any]) -> list[str]:
    """Why the fused accuracy is not an honest test accuracy (empty when it is)."""
    problems = []
    for stream in record["streams"]:
        name = stream.get("run_dir") or stream["scores"]
        if stream.get("part") not in (None, "test"):
            problems.append(f"{name}: its scores are of the {stream['part']} part, not test")
        elif stream.get("part") == "test" and stream.get("selected_on") == "test":
            problems.append(f"{name}: a best checkpoint chosen on the test set; fuse the "
                            "scores of `train eval` with --checkpoint auto")
        elif stream.get("part") is None:
            problems.append(f"{stream['scores']}: no `train eval` report beside it, so its "
                            "checkpoint and part are unknown")
    streams = {stream["scores"] for stream in record["streams"]}
    heldout = record.get("heldout") or []
    if any(held["scores"] in streams or held.get("part") == "test" for held in heldout):
        problems.append("the weights were searched on test scores")
    elif record.get("weights_from") == "searched":
        check = record.get("heldout_check")
        if not (isinstance(check, dict) and check.get("overlap") == 0):
            problems.append("the weights were searched on held-out scores that the record "
                            "does not prove to be other samples than the fused ones (a "
                            "record of an older `train ensemble`): run it again")
    return problems


def _add_test_accuracy(row: Row, path: Path, config: TrainConfig,
                       history: list[dict[str, Any]]) -> None:
    try:
        chosen = ckpt.resolve_checkpoint(path, "auto")
        state = ckpt.load_checkpoint(chosen)
    except TrainError as error:
        row.notes.append(str(error))
        return
    kind, epoch, step = state.get("kind"), state.get("epoch"), ckpt.global_step_of(state)
    part = ckpt.selected_on(state) if kind == "best" else None
    if kind == "best":
        row.checkpoint = f"best on {part or '?'}, epoch {epoch}"
        if part != "val":      # auto only takes it when there is no last.pt
            row.notes.append(f"{chosen.name} was chosen on the {part or 'unknown'} part and "
                             "there is no last.pt: no honest test accuracy")
            return
    else:
        row.checkpoint = f"last, epoch {epoch}"
        if (state.get("position") or {}).get("step_in_epoch"):
            row.checkpoint = f"last, mid-epoch {epoch + 1} (step {step})"
    report = path / "eval" / f"test-{chosen.stem}" / "metrics.json"
    reported = _read_report(report) if report.is_file() else None
    mismatch = _report_mismatch(reported, chosen, epoch, step, config) if reported else None
    if reported is not None and mismatch is None:
        row.top1, row.top5, row.source = reported["top1"], reported["top5"], "train eval"
        return
    line = next((m for m in history if m.get("epoch") == epoch), None)
    if (line is not None and "test_top1" in line and line.get("global_step") == step):
        row.top1, row.top5, row.source = line["test_top1"], line["test_top5"], "training log"
        return
    stale = f" (its train eval report {report.parent.name} is {mismatch})" if mismatch else ""
    row.notes.append(f"not evaluated on test{stale}: run `train eval {path}`")


def _read_report(report: Path) -> dict[str, Any]:
    try:
        reported = json.loads(report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrainError(f"{report} is not a readable `train eval` report ({error}); "
                         "delete it or run `train eval` again") from error
    if not isinstance(reported, dict) or not {"top1", "top5"} <= set(reported):
        raise TrainError(f"{report} is not a `train eval` report (no top1/top5); delete it "
                         "or run `train eval` again")
    return reported


def _report_mismatch(report: dict[str, Any], chosen: Path, epoch: Any, step: Any,
                     config: TrainConfig) -> str | None:
    """Why ``report`` is not the test accuracy of ``chosen`` on the run's own WORKDIR."""
    workdir = report.get("workdir")
    if workdir is not None and workdir != config.data.workdir:
        return f"of another WORKDIR ({workdir})"
    cache = (report.get("skeleton_cache") or {}).get("name")
    if cache is not None and cache != config.data.skeleton_cache:
        return f"of another skeleton cache ({cache})"
    if report.get("part") != "test":
        return f"of the {report.get('part')} part"
    if (Path(report.get("checkpoint", "")).name != chosen.name
            or report.get("epoch") != epoch or report.get("global_step", step) != step):
        return "of other weights"
    return None
