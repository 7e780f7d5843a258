"""A run is bound to its skeleton cache: a rebuild is refused on resume and eval."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import train.evaluate as evaluate_module
from data_manifest.schemas import SKELETONS
from data_manifest.workdir import Workdir
from train.checkpoint import checkpoint_path, load_checkpoint
from train.cli.main import cli
from train.errors import CheckpointError, TrainError
from train.evaluate import evaluate_run
from train.loop import DATA_FILE, train
from train_factories import make_workdir, tiny_builder, tiny_config


def _fingerprint(workdir, name="default"):
    return Workdir(workdir).cache_dir(SKELETONS, name).spec().fingerprint


@pytest.fixture
def run(tmp_path):
    workdir = make_workdir(tmp_path / "wd", per_class_view=3)
    # with a validation part, so that the run keeps a best.pt as well
    train(tiny_config(workdir, epochs=1, overrides=["data.val_fraction=0.25"]),
          tmp_path / "run", model_builder=tiny_builder)
    return tmp_path / "run", workdir


def _rebuild(workdir, **params):
    """The same WORKDIR's skeleton cache, rebuilt with other settings."""
    make_workdir(workdir, per_class_view=3,
                 skeleton_params={"synthetic": True, **params})


def test_the_run_records_its_skeleton_cache(run):
    run_dir, workdir = run
    recorded = json.loads((run_dir / DATA_FILE).read_text())["skeleton_cache"]
    assert recorded["name"] == "default" and recorded["fingerprint"] == _fingerprint(workdir)
    assert recorded["path"] == str((workdir / "cache" / SKELETONS / "default").resolve())
    for kind in ("last", "best"):
        assert load_checkpoint(checkpoint_path(run_dir, kind))["skeleton_cache"] == recorded


def test_resume_after_a_rebuild_is_refused_and_keeps_the_record(run):
    run_dir, workdir = run
    old = _fingerprint(workdir)
    record = (run_dir / DATA_FILE).read_text()
    _rebuild(workdir, absent_actor="copy")
    new = _fingerprint(workdir)
    with pytest.raises(CheckpointError) as caught:
        train(None, run_dir, model_builder=tiny_builder)
    message = str(caught.value)
    assert f"was trained on fingerprint {old}, the cache is now {new}" in message
    assert "params.absent_actor: None -> 'copy'" in message
    assert "start a new run directory" in message
    assert (run_dir / DATA_FILE).read_text() == record      # the record at start survives
    _rebuild(workdir)                                          # the run's settings again
    assert train(None, run_dir, model_builder=tiny_builder).epochs_done == 1


def test_eval_refuses_a_rebuilt_cache_unless_accepted(run, tmp_path):
    run_dir, workdir = run
    _rebuild(workdir, absent_actor="copy")
    new = _fingerprint(workdir)
    with pytest.raises(CheckpointError, match=f"--accept-skeletons {new}"):
        evaluate_run(run_dir, model_builder=tiny_builder)
    with pytest.raises(TrainError, match="not 0123 as accepted"):
        evaluate_run(run_dir, model_builder=tiny_builder, accept_skeletons="0123")
    result = evaluate_run(run_dir, model_builder=tiny_builder, accept_skeletons=new,
                          output_dir=tmp_path / "accepted")
    assert any("changed skeleton cache, as accepted" in w for w in result.warnings)
    metrics = json.loads((tmp_path / "accepted" / "metrics.json").read_text())
    assert metrics["skeleton_cache"]["fingerprint"] == new


def test_eval_on_another_workdir_or_cache_is_an_explicit_choice(run, tmp_path, monkeypatch):
    run_dir, workdir = run
    _rebuild(workdir, absent_actor="copy")
    other = make_workdir(tmp_path / "other", per_class_view=3, seed=5)
    monkeypatch.setattr(evaluate_module, "build_backbone", tiny_builder)
    runner = CliRunner()
    refused = runner.invoke(cli, ["eval", str(run_dir), "--no-progress"])
    assert refused.exit_code == 2 and "error: the skeletons cache 'default'" in refused.output
    assert "Traceback" not in refused.output
    elsewhere = runner.invoke(cli, ["eval", str(run_dir), "--no-progress", "--workdir",
                                    str(other), "--output", str(tmp_path / "o")])
    assert elsewhere.exit_code == 0, elsewhere.output
    # the run's own settings, kept as another cache of the same WORKDIR
    make_workdir(workdir, per_class_view=3, cache_name="as-trained")
    named = runner.invoke(cli, ["eval", str(run_dir), "--no-progress", "--set",
                                "data.skeleton_cache=as-trained", "--output",
                                str(tmp_path / "n")])
    assert named.exit_code == 0, named.output
