"""`train eval` reports and the `train run` / `train eval` commands end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from train.checkpoint import (checkpoint_path, load_checkpoint, resolve_checkpoint,
                              save_checkpoint)
from train.cli.main import cli
from train.evaluate import evaluate_run
from train.errors import CheckpointError
from train.loop import train
from train.scores_io import load_scores
from train_factories import (make_workdir, tiny_builder, tiny_config,
                             write_legacy_test_selected_best)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    workdir = make_workdir(root / "wd", per_class_view=6)
    config = tiny_config(workdir, epochs=3, overrides=["data.val_fraction=0.25"])
    train(config, root / "run", model_builder=tiny_builder)
    return root / "run"


def test_eval_writes_consistent_reports(run):
    result = evaluate_run(run, checkpoint="last", model_builder=tiny_builder)
    out = run / "eval" / "test-last"
    assert result.output_dir == out and result.num_samples == 18
    scores, names = load_scores(out / "scores.npz")
    with np.load(out / "scores.npz", allow_pickle=False) as raw:      # no pickle inside
        assert raw["scores"].shape == (18, 3) and raw["ids"].dtype.kind == "U"
    assert scores.ids == sorted(scores.ids, key=scores.ids.index)
    assert len(set(scores.ids)) == 18 and all(i.endswith("_v03") for i in scores.ids)
    assert result.top1 == pytest.approx((scores.scores.argmax(1) == scores.labels).mean())
    confusion = np.array([[int(v) for v in row[1:]] for row in
                          list(csv.reader(open(out / "confusion.csv")))[1:]])
    assert confusion.sum() == 18 and np.trace(confusion) == round(result.top1 * 18)
    rows = list(csv.DictReader(open(out / "per_class.csv")))
    assert [int(r["samples"]) for r in rows] == confusion.sum(axis=1).tolist()
    for k, row in enumerate(rows):
        assert float(row["accuracy"]) == pytest.approx(confusion[k, k] / confusion[k].sum())
    image = Image.open(out / "confusion.png")
    assert image.format == "PNG" and image.size[0] > 100
    metrics = (out / "metrics.json").read_text()
    assert '"top1"' in metrics and '"part": "test"' in metrics


def test_eval_on_the_validation_part_and_bad_checkpoints(run, tmp_path):
    val = evaluate_run(run, checkpoint="best", part="val", output_dir=tmp_path / "v",
                       model_builder=tiny_builder)
    assert val.num_samples == 9           # 25 % of each class of the 36 training samples
    assert all(not i.endswith("_v03") for i in load_scores(tmp_path / "v/scores.npz")[0].ids)
    with pytest.raises(CheckpointError, match="missing.pt does not exist"):
        evaluate_run(run, checkpoint=str(tmp_path / "missing.pt"), model_builder=tiny_builder)


def test_checkpoint_without_config_falls_back_to_the_run_config(run, tmp_path):
    """Regression: a checkpoint without a 'config' entry crashed eval with a bare KeyError."""
    payload = load_checkpoint(checkpoint_path(run, "last"))
    del payload["config"]
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, payload)
    result = evaluate_run(run, checkpoint=str(bare), output_dir=tmp_path / "out",
                          model_builder=tiny_builder)
    expected = evaluate_run(run, checkpoint="last", output_dir=tmp_path / "last",
                            model_builder=tiny_builder)
    np.testing.assert_array_equal(result.scores.scores, expected.scores.scores)
    # no config entry and no config.yaml beside it: say what is missing
    elsewhere = tmp_path / "not-a-run"
    elsewhere.mkdir()
    with pytest.raises(CheckpointError, match="holds no 'config' entry and .* has no "
                                              "config.yaml"):
        evaluate_run(elsewhere, checkpoint=str(bare), model_builder=tiny_builder)
    del payload["model"]
    save_checkpoint(bare, payload)
    with pytest.raises(CheckpointError, match="holds no 'model' entry"):
        evaluate_run(run, checkpoint=str(bare), model_builder=tiny_builder)


def test_best_chosen_on_validation_is_the_default(run, tmp_path):
    best = load_checkpoint(checkpoint_path(run, "best"))
    assert best["selected_on"] == "val" and best["best"]["metric"] == "val_top1"
    assert "optimizer" not in best
    assert resolve_checkpoint(run) == checkpoint_path(run, "best")
    result = evaluate_run(run, output_dir=tmp_path / "auto", model_builder=tiny_builder)
    assert result.checkpoint == checkpoint_path(run, "best") and not result.warnings
    metrics = json.loads((tmp_path / "auto" / "metrics.json").read_text())
    assert metrics["selected_on"] == "val" and metrics["checkpoint"].endswith("best.pt")


def test_run_and_eval_commands(tmp_path, monkeypatch):
    import train.evaluate
    import train.loop
    monkeypatch.setattr(train.loop, "build_backbone", tiny_builder)
    monkeypatch.setattr(train.evaluate, "build_backbone", tiny_builder)
    workdir = make_workdir(tmp_path / "wd", per_class_view=3)
    runner = CliRunner()
    args = ["run", str(tmp_path / "run"), "--preset", "nw-ucla", "--workdir", str(workdir),
            "--set", "model.num_classes=3", "--set", "data.window=16",
            "--set", "data.num_workers=0", "--set", "optim.batch_size=4",
            "--set", "schedule.epochs=1", "--set", "run.progress=false",
            "--set", "data.repeat=1"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    # regression: a best chosen on the test set was printed as the run's "best test_top1"
    assert "best test_top1" not in result.output and "checkpoints:" in result.output
    assert "best.pt is chosen on a validation part only, and this run has none" \
        in result.output and "report last.pt's accuracy" in result.output
    with_val = runner.invoke(cli, [args[0], str(tmp_path / "val-run"), *args[2:],
                                   "--set", "data.val_fraction=0.25"])
    assert with_val.exit_code == 0, with_val.output
    assert "best val_top1: " in with_val.output and "chosen on the validation part" \
        in with_val.output and "test part" not in with_val.output
    # resuming the finished run with no options trains nothing more
    again = runner.invoke(cli, ["run", str(tmp_path / "run")])
    assert again.exit_code == 0 and "(1 epochs" in again.output
    changed = runner.invoke(cli, ["run", str(tmp_path / "run"), "--set", "optim.lr=0.5"])
    assert changed.exit_code == 2 and "optim.lr: 0.1 -> 0.5" in changed.output
    shown = runner.invoke(cli, ["run", str(tmp_path / "run"), "--print-config"])
    assert "window: 16" in shown.output
    # no validation part: no best.pt at all (never chosen on the test set); auto is last.pt
    assert not checkpoint_path(tmp_path / "run", "best").exists()
    assert load_checkpoint(checkpoint_path(tmp_path / "val-run", "best"))["selected_on"] \
        == "val"
    missing = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--no-progress",
                                  "--checkpoint", "best"])
    assert missing.exit_code != 0 and "best.pt is kept only by runs with a validation " \
        "part" in missing.output
    evaluated = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--no-progress"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "top-1" in evaluated.output and "warning" not in evaluated.output
    assert (tmp_path / "run/eval/test-last/scores.npz").is_file()
    assert not (tmp_path / "run/eval/test-best").exists()
    # a run of an earlier version that chose best on the test set: auto still takes last,
    # asking for best by name warns
    write_legacy_test_selected_best(tmp_path / "run")
    assert resolve_checkpoint(tmp_path / "run") == checkpoint_path(tmp_path / "run", "last")
    explicit = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--no-progress",
                                   "--checkpoint", "best"])
    assert explicit.exit_code == 0, explicit.output
    assert "warning: " in explicit.output and "chosen as best on the test set" in explicit.output
    metrics = json.loads((tmp_path / "run/eval/test-best/metrics.json").read_text())
    assert metrics["selected_on"] == "test"


def test_commands_report_bad_input_in_one_line(tmp_path):
    runner = CliRunner()
    bare = make_workdir(tmp_path / "bare", with_skeletons=False)
    result = runner.invoke(cli, ["run", str(tmp_path / "r"), "--preset", "nw-ucla",
                                 "--workdir", str(bare)])
    assert result.exit_code == 2 and "error: " in result.output
    assert "no skeleton cache" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["run", str(tmp_path / "r2"), "--preset", "nw-ucla",
                                 "--set", "optim.lrr=1"])
    assert result.exit_code == 2 and "did you mean optim.lr" in result.output
    result = runner.invoke(cli, ["run", str(tmp_path / "r3")])
    assert result.exit_code == 2 and "needs --preset or --config" in result.output
    (tmp_path / "r4" / "checkpoints").mkdir(parents=True)
    result = runner.invoke(cli, ["eval", str(tmp_path / "r4")])
    assert result.exit_code == 2 and "no best.pt or last.pt" in result.output


@pytest.mark.slow
def test_real_ctrgcn_trains_and_evaluates_through_the_commands(tmp_path):
    """The real backbone behind the commands, on a very small synthetic set."""
    workdir = make_workdir(tmp_path / "wd", per_class_view=1, frames=(8, 12))
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(tmp_path / "run"), "--preset", "nw-ucla",
                                 "--workdir", str(workdir), "--set", "model.num_classes=3",
                                 "--set", "data.window=8", "--set", "data.num_workers=0",
                                 "--set", "optim.batch_size=3", "--set", "schedule.epochs=1",
                                 "--set", "run.progress=false", "--set", "data.repeat=1"])
    assert result.exit_code == 0, result.output
    evaluated = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--no-progress"])
    assert evaluated.exit_code == 0, evaluated.output
    scores, _ = load_scores(tmp_path / "run/eval/test-last/scores.npz")
    assert scores.scores.shape == (3, 3) and np.isfinite(scores.scores).all()


def test_another_workdir_never_overwrites_or_stands_for_the_run_s_own(run, tmp_path,
                                                                      monkeypatch):
    """Regression: `train eval RUN --workdir OTHER` wrote RUN/eval/test-last (the run's own
    report), and `train ensemble RUN` then reused those scores as the run's test scores."""
    import shutil

    import train.evaluate
    from train.run_scores import run_scores
    monkeypatch.setattr(train.evaluate, "build_backbone", tiny_builder)
    other = make_workdir(tmp_path / "other-wd", per_class_view=6, seed=5)
    own = evaluate_run(run, checkpoint="last")
    elsewhere = evaluate_run(run, checkpoint="last",
                             overrides={"data": {"workdir": str(other)}})
    assert own.output_dir == run / "eval" / "test-last"
    assert elsewhere.output_dir.parent == run / "eval"
    assert elsewhere.output_dir.name.startswith("test-last-other-wd-")
    assert not np.array_equal(own.scores.scores, elsewhere.scores.scores)
    saved, _ = load_scores(run / "eval" / "test-last" / "scores.npz")
    np.testing.assert_array_equal(saved.scores, own.scores.scores)
    # a report of the other WORKDIR where the run's own belongs (as older versions wrote)
    shutil.rmtree(own.output_dir)
    shutil.copytree(elsewhere.output_dir, own.output_dir)
    scored = run_scores(run, "test", checkpoint="last")
    assert not scored.reused
    np.testing.assert_array_equal(scored.scores.scores, own.scores.scores)
    assert run_scores(run, "test", checkpoint="last").reused
