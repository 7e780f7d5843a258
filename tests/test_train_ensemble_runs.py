"""`train ensemble RUN_DIR...`: the paper's kind of multi-stream, multi-backbone ensemble as
one command, on tiny generated runs: each run scored on test (and val), weights searched
on the val part, applied to test."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner

from model_factories import make_run_dir, single_thread  # noqa: F401 (autouse)
from train.cli.main import cli
from train.ensemble import fuse, search_weights
from train.evaluate import evaluate_run
from train.scores_io import load_scores
from train_factories import make_workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ensemble")
    workdir = make_workdir(root / "wd", num_classes=3, per_class_view=3)
    data = {"workdir": str(workdir), "val_fraction": 0.34, "num_workers": 0}
    streams = {"ctrgcn-joint": ("ctrgcn", "joint"), "ctrgcn-bone": ("ctrgcn", "bone"),
               "hdgcn-joint": ("hdgcn", "joint")}
    made = {}
    for seed, (label, (name, modality)) in enumerate(streams.items()):
        made[label] = make_run_dir(root / label, seed=seed, name=name, num_classes=3,
                                   data={**data, "modality": modality})
    made["no-val"] = make_run_dir(root / "no-val", seed=9, num_classes=3,
                                  data={**data, "val_fraction": 0.0})
    return made


def _invoke(*args):
    return CliRunner().invoke(cli, ["ensemble", *map(str, args), "--no-progress"])


def test_weights_are_searched_on_val_and_applied_to_test(runs):
    chosen = [runs["ctrgcn-joint"], runs["ctrgcn-bone"], runs["hdgcn-joint"]]
    result = _invoke(*chosen, "--search-val", "--output", chosen[0].parent / "fused.npz")
    assert result.exit_code == 0, result.output
    assert result.output.count("test scores scored") == 3
    assert "weights searched on the runs' val part" in result.output
    test = [load_scores(run / "eval/test-last/scores.npz")[0] for run in chosen]
    val = [load_scores(run / "eval/val-last/scores.npz")[0] for run in chosen]
    assert len(test[0].ids) == 9 and len(val[0].ids) == 6        # view 3 / 1/3 of train
    assert not set(test[0].ids) & set(val[0].ids)
    weights, val_top1 = search_weights(val)
    assert f"weights: {', '.join(f'{w:g}' for w in weights)}" in result.output
    assert f"top-1 there {100 * val_top1:.2f}%" in result.output
    fused = fuse(test, weights)
    assert f"fused: top-1 {100 * fused.top(1):.2f}%" in result.output
    saved, _ = load_scores(chosen[0].parent / "fused.npz")
    assert saved.ids == fused.ids
    record = json.loads((chosen[0].parent / "fused.json").read_text())   # for train compare
    assert record["weights_from"] == "searched" and record["weights"] == weights
    assert [item["scores"] for item in record["streams"]] == \
        [str((run / "eval/test-last/scores.npz").resolve()) for run in chosen]
    assert [item["part"] for item in record["heldout"]] == ["val"] * 3

    again = _invoke(*chosen, "--search-val")
    assert again.exit_code == 0 and again.output.count("test scores reused") == 3
    os.utime(chosen[2] / "checkpoints/last.pt")                     # a newer checkpoint
    rescored = _invoke(*chosen, "--search-val")
    assert re.search(r"hdgcn-joint/run: test scores scored", rescored.output)
    assert rescored.output.count("test scores reused") == 2


def test_given_weights_need_no_validation_part(runs):
    chosen = [runs["ctrgcn-joint"], runs["no-val"]]
    result = _invoke(*chosen, "--weights", "0.6,0.4")
    assert result.exit_code == 0, result.output
    assert "weights: 0.6, 0.4" in result.output
    assert not (runs["no-val"] / "eval/val-last").exists()


def test_bad_combinations_are_clear_errors(runs, tmp_path):
    scores = runs["ctrgcn-joint"] / "eval/test-last/scores.npz"
    _invoke(runs["ctrgcn-joint"], "--weights", "1")               # writes the scores file
    mixed = _invoke(runs["ctrgcn-joint"], scores)
    assert mixed.exit_code == 2 and "only scores files or only run directories" in mixed.output
    no_val = _invoke(runs["ctrgcn-joint"], runs["no-val"], "--search-val")
    assert no_val.exit_code != 0 and "has no validation part" in no_val.output
    same_part = _invoke(runs["ctrgcn-joint"], "--search-val", "--part", "val")
    assert same_part.exit_code == 2 and "report another --part" in same_part.output
    files_flag = _invoke(scores, "--search-val")
    assert files_flag.exit_code == 2 and "--search-val takes run directories" in files_flag.output
    runs_flag = _invoke(runs["ctrgcn-joint"], "--search", scores)
    assert runs_flag.exit_code == 2 and "use --search-val" in runs_flag.output


def test_runs_trained_in_different_precisions_are_rescored_in_one_process(runs, tmp_path):
    """Regression: the second run's evaluation made a new Accelerator of another mixed
    precision ("AcceleratorState has already been initialized")."""
    data = {"workdir": str(runs["ctrgcn-joint"].parent.parent / "wd"), "val_fraction": 0.34,
            "num_workers": 0}
    bf16 = make_run_dir(tmp_path / "bf16", seed=7, num_classes=3, data=data,
                        run={"mixed_precision": "bf16"})
    result = _invoke(runs["ctrgcn-joint"], bf16, "--weights", "1,1", "--rescore")
    assert result.exit_code == 0, result.output
    assert result.output.count("test scores scored") == 2
    report = json.loads((bf16 / "eval/test-last/metrics.json").read_text())
    assert report["mixed_precision"] == "bf16"
    # each run in its own precision: the bf16 run's scores are those of a bf16 forward pass
    scored, _ = load_scores(bf16 / "eval/test-last/scores.npz")
    full = evaluate_run(bf16, output_dir=tmp_path / "fp32",
                        overrides={"run": {"mixed_precision": "no"}}).scores.scores
    assert not np.array_equal(scored.scores, full)
    np.testing.assert_allclose(scored.scores, full, atol=0.1 * np.abs(full).max())
    plain = json.loads((runs["ctrgcn-joint"] / "eval/test-last/metrics.json").read_text())
    assert plain["mixed_precision"] == "no"
