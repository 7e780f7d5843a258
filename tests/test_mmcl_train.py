"""MMCL training through the trainer: losses, checkpoints, resume, ablations, bad input."""

from __future__ import annotations

import pytest
import torch
import yaml
from click.testing import CliRunner

from data_manifest.workdir import Workdir
from train import checkpoint as ckpt
from train.cli.main import cli
from train.errors import CheckpointError, ConfigError, TrainError
from train.loop import read_metrics, train

from mmcl_factories import write_llm_features, write_rgb_features
from train_factories import make_workdir, tiny_builder, tiny_config

MMCL = ["objective.name=mmcl", "objective.options.skeleton_width=16"]


@pytest.fixture
def workdir(tmp_path):
    root = make_workdir(tmp_path / "wd", num_classes=3, per_class_view=3)
    workdir = Workdir(root)
    write_rgb_features(workdir, width=10)
    write_llm_features(workdir, width=6, num_questions=2)
    return workdir


def run(workdir, run_dir, epochs=2, overrides=()):
    config = tiny_config(workdir.path, epochs=epochs, overrides=[*MMCL, *overrides])
    return train(config, run_dir, model_builder=tiny_builder)


def test_mmcl_run_logs_every_loss_and_keeps_the_backbone_apart(workdir, tmp_path):
    result = run(workdir, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert [line["epoch"] for line in metrics] == [1, 2]
    for line in metrics:
        assert set(line["losses"]) == {"cls", "contrastive", "refine"}
        assert all(value > 0 for value in line["losses"].values())
        assert line["loss"] == pytest.approx(sum(line["losses"].values()), rel=1e-5)
        assert line["train_samples"] == 16     # 18 training samples, batch 4, drop_last
        assert "test_top1" in line
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(result.run_dir, "last"))
    assert tuple(state["objective"]["fam.mlp.0.weight"].shape) == (16, 10)
    assert tuple(state["objective"]["frm.matrices"].shape) == (2, 3)
    assert state["objective"]["feature_widths"].tolist() == [10, 6, 2]
    assert not torch.equal(state["objective"]["frm.matrices"], torch.ones(2, 3))
    assert not any(key.startswith(("fam", "frm", "objective")) for key in state["model"])


def test_an_interrupted_mmcl_run_resumes_to_the_same_weights(workdir, tmp_path):
    run(workdir, tmp_path / "straight", epochs=2)
    run(workdir, tmp_path / "resumed", epochs=1)
    run(workdir, tmp_path / "resumed", epochs=2)
    straight = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "straight", "last"))
    resumed = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "resumed", "last"))
    for part in ("model", "objective"):
        assert straight[part].keys() == resumed[part].keys()
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)


@pytest.mark.parametrize("options,losses,modules", [
    (["objective.options.fam=false"], {"cls", "refine"}, "frm"),
    (["objective.options.frm=false"], {"cls", "contrastive"}, "fam"),
    (["objective.options.fam=false", "objective.options.frm=false"], {"cls"}, None),
])
def test_ablation_switches(workdir, tmp_path, options, losses, modules):
    run(workdir, tmp_path / "run", epochs=1, overrides=options)
    assert set(read_metrics(tmp_path / "run")[0]["losses"]) == losses
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "run", "last"))
    prefixes = {key.split(".")[0] for key in state["objective"]} - {"feature_widths",
                                                                   "feature_fingerprints"}
    assert prefixes == ({modules} if modules else set())


def test_the_plain_baseline_needs_no_feature_cache(tmp_path):
    root = make_workdir(tmp_path / "wd", num_classes=3, per_class_view=2)
    run(Workdir(root), tmp_path / "run", epochs=1,
        overrides=["objective.options.fam=false", "objective.options.frm=false"])
    assert set(read_metrics(tmp_path / "run")[0]["losses"]) == {"cls"}


def test_resuming_with_other_features_names_both_widths(workdir, tmp_path):
    run(workdir, tmp_path / "run", epochs=1)
    write_rgb_features(workdir, width=12)                  # the cache rebuilt, other encoder
    with pytest.raises(CheckpointError, match="RGB feature width \\(FAM input\\): .*last.pt "
                                              "has 10, the caches now give 12"):
        run(workdir, tmp_path / "run", epochs=2)


def test_missing_training_features_stop_the_run_or_are_skipped(tmp_path):
    root = make_workdir(tmp_path / "wd", num_classes=3, per_class_view=3)
    workdir = Workdir(root)
    train_ids = [s.id for s in workdir.samples if s.meta["view"] in (1, 2)]
    test_ids = [s.id for s in workdir.samples if s.meta["view"] == 3]
    write_rgb_features(workdir, skip=[train_ids[0], test_ids[0]])
    write_llm_features(workdir, skip=[train_ids[5]])
    with pytest.raises(TrainError) as caught:
        run(workdir, tmp_path / "run", epochs=1)
    assert train_ids[0] in str(caught.value) and train_ids[5] in str(caught.value)
    assert "--skip-missing" in str(caught.value)
    run(workdir, tmp_path / "skip", epochs=1, overrides=["objective.options.skip_missing=true",
                                                         "run.drop_last=false"])
    line = read_metrics(tmp_path / "skip")[0]
    assert line["train_samples"] == 16          # 18 - 2 skipped
    assert "test_top1" in line                  # the test part keeps every sample


def test_cli_flags_set_the_objective(workdir, tmp_path):
    runner = CliRunner()
    args = ["run", str(tmp_path / "run"), "--preset", "nw-ucla", "--workdir",
            str(workdir.path), "--print-config"]
    result = runner.invoke(cli, [*args, "--mmcl", "--no-fam", "--skip-missing"])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(result.output)
    assert config["objective"] == {"name": "mmcl", "options": {"fam": False,
                                                               "skip_missing": True}}
    result = runner.invoke(cli, [*args, "--no-frm"])
    assert result.exit_code == 2
    assert "--no-frm apply to the mmcl objective; add --mmcl" in result.output


def test_unknown_mmcl_option_is_an_error(workdir, tmp_path):
    with pytest.raises(ConfigError, match="objective 'mmcl' has no option 'lambda1'"):
        run(workdir, tmp_path / "run", epochs=1, overrides=["objective.options.lambda1=0.3"])
