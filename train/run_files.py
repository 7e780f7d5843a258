"""The files of a run directory by name, and the light readers of them.

Light on purpose: ``train compare`` and ``train plot`` read runs through this module
without loading the trainer (torch, accelerate, the data loaders). The full layout of a
run directory is in ``train.checkpoint``'s docstring.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from train.errors import TrainError

CONFIG_FILE = "config.yaml"       # the resolved config (resuming reads it back)
METRICS_FILE = "metrics.jsonl"    # one line per epoch
DATA_FILE = "data.json"           # sample counts per part and the samples left out, why
INIT_FILE = "init.json"           # what model.init_from loaded and what it left fresh
MODEL_FILE = "model.json"         # the backbone, its parameters and FLOPs per sample
IMPORT_FILE = "import.json"       # `train import` only: where the weights came from


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The lines of ``RUN_DIR/metrics.jsonl`` (none if it is missing)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def expand_runs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories from the arguments; a folder of runs stands for the runs in it."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if is_run_dir(path):
            runs.append(path)
        elif path.is_dir() and (inside := sorted(p for p in path.iterdir() if is_run_dir(p))):
            runs.extend(inside)
        else:
            raise TrainError(f"{path} is not a run directory (no {CONFIG_FILE}) and "
                             "holds none")
    return runs


def labels_for(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the last path parts that tell the paths apart."""
    parts = [Path(os.path.abspath(p)).parts for p in paths]
    for depth in range(1, max((len(p) for p in parts), default=1) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]
