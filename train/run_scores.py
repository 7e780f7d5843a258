"""A run's scores on a split part, for fusing runs (``train ensemble RUN_DIR...``).

The scores ``train eval`` wrote (``RUN_DIR/eval/<part>-<checkpoint>/scores.npz``) are
reused while they are still those of the checkpoint in use (same file, written after it)
on the run's own WORKDIR and skeleton cache; otherwise the run is evaluated again, which
rewrites them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from train.checkpoint import resolve_checkpoint
from train.config import TrainConfig
from train.errors import TrainError
from train.models.load_run import read_run_config
from train.scores_io import load_scores
from train.scoring import Scores

log = logging.getLogger(__name__)


@dataclass
class RunScores:
    run_dir: Path
    part: str
    scores: Scores
    class_names: list[str]
    scores_file: Path
    reused: bool            # read from an earlier `train eval`, not scored now


def run_scores(run_dir: str | os.PathLike, part: str = "test", *, checkpoint: str = "auto",
               rescore: bool = False, progress: bool = False) -> RunScores:
    """Scores of ``run_dir``'s checkpoint on ``part`` (see the module docstring)."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    if part == "val" and config.data.val_fraction <= 0:
        raise TrainError(f"{run_dir} has no validation part (data.val_fraction is 0), so "
                         "its ensemble weights cannot be searched without letting the test "
                         "set choose them: give --weights, or train the runs with --set "
                         "data.val_fraction=0.1 (the same value and run.seed for all)")
    path = resolve_checkpoint(run_dir, checkpoint)
    out = run_dir / "eval" / f"{part}-{path.stem}"
    if not rescore and _current(out, path, part, config):
        scores, names = load_scores(out / "scores.npz")
        log.info("%s: reusing %s", run_dir, out / "scores.npz")
        return RunScores(run_dir, part, scores, names, out / "scores.npz", reused=True)
    from train.evaluate import evaluate_run
    result = evaluate_run(run_dir, checkpoint=str(path), part=part, output_dir=out,
                          progress=progress)
    return RunScores(run_dir, part, result.scores, result.class_names,
                     out / "scores.npz", reused=False)


def _current(out: Path, checkpoint: Path, part: str, config: TrainConfig) -> bool:
    """``out`` holds scores of ``checkpoint`` on ``part`` of the run's own WORKDIR and
    skeleton cache, written after the checkpoint."""
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        written = (out / "scores.npz").stat().st_mtime
        cache = metrics.get("skeleton_cache") or {}
        same = (metrics.get("part") == part
                and Path(metrics["checkpoint"]).resolve() == checkpoint.resolve()
                and metrics.get("workdir") == config.data.workdir
                and cache.get("name", config.data.skeleton_cache) == config.data.skeleton_cache)
        return same and written >= checkpoint.stat().st_mtime
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
