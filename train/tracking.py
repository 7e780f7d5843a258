"""Experiment trackers for ``train run``: accelerate's TensorBoard, W&B and MLflow trackers.

``run.log_with`` chooses them: ``auto`` (the default: TensorBoard when it is installed,
else none), ``none``, ``all`` (each of the three that is installed) or a comma-separated
list such as ``tensorboard,wandb`` (a tracker named there that is not installed is an
error). Only the main process logs. The x-axis is the global optimizer step:

- every epoch, each number of its ``metrics.jsonl`` line: ``loss/total`` and
  ``loss/<term>`` (the objective's named losses: cls, contrastive, refine),
  ``accuracy/<key>`` for ``*_top1``/``*_top5`` (train, val, test) and ``epoch/<key>`` for
  every other number (epoch, lr, time, samples/s, ...), so keys added to the metrics line
  later are logged without a change here;
- every ``run.log_every_steps`` steps (0: never), ``step/loss`` and ``step/loss_<term>``,
  the mean over the steps since the previous point.

Nothing needs the network unless the user's tracker does: TensorBoard writes
``RUN_DIR/tensorboard/``; W&B runs offline in ``RUN_DIR/wandb/`` unless ``WANDB_MODE`` is
set (``wandb sync`` uploads them later; project ``WANDB_PROJECT``, default ``mmcl``);
MLflow logs to ``MLFLOW_TRACKING_URI`` if set, else to the SQLite store
``RUN_DIR/mlflow.db`` (experiment ``MLFLOW_EXPERIMENT_NAME``, default ``mmcl``).

Resuming continues the same tracker runs: ``RUN_DIR/trackers.json`` keeps the W&B run id
and the MLflow run id, and TensorBoard's writer is opened with ``purge_step`` = the
checkpoint's global step + 1, so points logged after that checkpoint (steps that are
redone) are dropped and the redone steps replace them. W&B ignores points at steps it has
already seen (its first values stay); MLflow keeps both.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from train.errors import ConfigError
from train.files import write_text_atomic

log = logging.getLogger(__name__)

TRACKERS = ("tensorboard", "wandb", "mlflow")
LOG_WITH_WORDS = ("auto", "none", "all")
RECORD_FILE = "trackers.json"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DB = "mlflow.db"
# the Python modules that make each tracker usable, and what to install for it
_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",),
            "mlflow": ("mlflow",)}
_PACKAGES = {"tensorboard": "tensorboard (pip install 'mmcl-toolkit[trackers]')",
             "wandb": "wandb (pip install wandb)", "mlflow": "mlflow (pip install mlflow)"}


def parse_log_with(value: str) -> tuple[str, ...]:
    """``run.log_with`` as a tuple of words; a ConfigError for anything else."""
    words = tuple(word.strip() for word in str(value).split(",") if word.strip())
    if len(words) == 1 and words[0] in LOG_WITH_WORDS:
        return words
    bad = [word for word in words if word not in TRACKERS]
    if not words or bad:
        raise ConfigError(f"run.log_with must be one of {', '.join(LOG_WITH_WORDS)} or a "
                          f"comma-separated list of {', '.join(TRACKERS)}, not {value!r}")
    return tuple(dict.fromkeys(words))


def installed(tracker: str) -> bool:
    return any(importlib.util.find_spec(module) is not None for module in _MODULES[tracker])


def resolve_log_with(value: str, is_installed: Callable[[str], bool] | None = None
                     ) -> list[str]:
    """The trackers ``run.log_with`` names on this machine."""
    is_installed = is_installed or installed
    words = parse_log_with(value)
    if words == ("none",):
        return []
    if words == ("auto",):
        return ["tensorboard"] if is_installed("tensorboard") else []
    if words == ("all",):
        return [name for name in TRACKERS if is_installed(name)]
    missing = [name for name in words if not is_installed(name)]
    if missing:
        raise ConfigError(f"run.log_with={value}: {missing[0]} is not installed; install "
                          f"{_PACKAGES[missing[0]]} or choose another tracker")
    return list(words)


def epoch_scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics line under tracker names (see the module docstring)."""
    values: dict[str, float] = {}
    for key, value in metrics.items():
        if key == "global_step":          # the x-axis itself
            continue
        if key == "losses" and isinstance(value, Mapping):
            values.update({f"loss/{term}": float(v) for term, v in value.items()
                           if _number(v)})
        elif not _number(value):
            continue
        elif key == "loss":
            values["loss/total"] = float(value)
        elif key.endswith(("_top1", "_top5")):
            values[f"accuracy/{key}"] = float(value)
        else:
            values[f"epoch/{key}"] = float(value)
    return values


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim.lr": 0.1, ...}``: trackers take flat hyper-parameters; lists as text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)) or value is None:
            flat[name] = value
        else:
            flat[name] = json.dumps(value)
    return flat


def read_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    path = Path(run_dir) / RECORD_FILE
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); delete it to start new "
                          "tracker runs") from error
    return record if isinstance(record, dict) else {}


class RunTracking:
    """The trackers of one ``train run`` call, built before the Accelerator.

    ``trackers`` go to ``Accelerator(log_with=...)``; ``start`` opens them once the resume
    point is known; ``log_step``/``log_epoch`` log; ``finish`` ends them.
    """

    def __init__(self, log_with: str, run_dir: str | os.PathLike, every_steps: int = 0):
        self.run_dir = Path(run_dir).resolve()
        self.names = resolve_log_with(log_with)
        self.every_steps = every_steps
        self.record = read_record(self.run_dir)
        self.trackers = [self._build(name) for name in self.names]
        self.accelerator = None
        self._sums: dict[str, float] = {}
        self._steps = 0

    def _build(self, name: str):
        from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

        previous = self.record.get(name) or {}
        if name == "tensorboard":
            return TensorBoardTracker(TENSORBOARD_DIR, str(self.run_dir))
        if name == "wandb":
            options = {"name": self.run_dir.name, "dir": str(self.run_dir),
                       "id": previous.get("id") or uuid.uuid4().hex[:16], "resume": "allow"}
            if not os.environ.get("WANDB_MODE"):
                options["mode"] = "offline"
            return WandBTracker(os.environ.get("WANDB_PROJECT") or "mmcl", **options)
        return MLflowTracker(experiment_name="mmcl", run_id=previous.get("run_id"),
                             run_name=self.run_dir.name)

    def start(self, accelerator, config: Mapping[str, Any], global_step: int) -> None:
        """Open the trackers at ``global_step`` (the checkpoint's; 0 for a new run)."""
        self.accelerator = accelerator
        if not self.trackers or not accelerator.is_main_process:
            return
        new = [name for name in self.names if name not in self.record]
        for name, tracker in zip(self.names, self.trackers):
            if name == "tensorboard":
                tracker.init_kwargs["purge_step"] = global_step + 1
            elif name == "mlflow" and not os.environ.get("MLFLOW_TRACKING_URI"):
                import mlflow
                mlflow.set_tracking_uri(f"sqlite:///{self.run_dir / MLFLOW_DB}")
        accelerator.init_trackers("mmcl")
        record = dict(self.record)
        for name, tracker in zip(self.names, self.trackers):
            if name in new and name != "tensorboard":   # config.yaml lies beside the events
                tracker.store_init_configuration(flat_config(config))
            if name == "tensorboard":
                record[name] = {"log_dir": TENSORBOARD_DIR}   # inside RUN_DIR
            elif name == "wandb":
                record[name] = {"id": tracker.init_kwargs["id"],
                                "project": tracker.run_name,
                                "mode": tracker.init_kwargs.get("mode", "from WANDB_MODE")}
            else:
                record[name] = {"run_id": tracker.active_run.info.run_id,
                                "experiment": tracker.experiment_name}
        self.record = record
        write_text_atomic(self.run_dir / RECORD_FILE,
                          json.dumps(record, indent=2, sort_keys=True) + "\n")
        log.info("tracking with %s", ", ".join(self.names))

    def log_step(self, global_step: int, losses: Mapping[str, float]) -> None:
        if not self.trackers or not self.every_steps:
            return
        for key, value in losses.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._steps += 1
        if global_step % self.every_steps == 0:
            self.accelerator.log({f"step/{key}": total / self._steps
                                  for key, total in self._sums.items()}, step=global_step)
            self._sums, self._steps = {}, 0

    def log_epoch(self, metrics: Mapping[str, Any]) -> None:
        if self.trackers:
            self.accelerator.log(epoch_scalars(metrics), step=metrics["global_step"])

    def finish(self) -> None:
        if self.trackers and self.accelerator is not None:
            self.accelerator.end_training()
