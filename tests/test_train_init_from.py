"""``model.init_from``: a new run starts from published weights; ``model.init_skip`` leaves
the listed parameters fresh; mismatches are named; resuming never re-applies it."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
import yaml
from click.testing import CliRunner

from model_factories import (REFERENCE_NPZ, reference_state_dict,
                            single_thread)  # noqa: F401 (single_thread: autouse)
from train.checkpoint import checkpoint_path, load_checkpoint
from train.cli.main import cli
from train.errors import CheckpointError, ConfigError
from train.loop import INIT_FILE, train
from train.modeling import build_backbone
from train.models import build_model
from train.models.reference_import import CheckpointMismatchError, init_from_checkpoint
from train_factories import TinyGCN, make_workdir, tiny_builder, tiny_config


class Capture:
    """A model builder that records the backbone's weights at its first forward pass,
    i.e. the weights training starts from (before any optimizer step), and at build."""

    def __init__(self, builder):
        self.builder = builder
        self.built: dict[str, torch.Tensor] | None = None
        self.first_forward: dict[str, torch.Tensor] | None = None

    def __call__(self, config):
        model = self.builder(config)
        self.built = _clone(model.state_dict())

        def hook(module, args):
            if self.first_forward is None:
                self.first_forward = _clone(module.state_dict())

        model.register_forward_pre_hook(hook)
        return model


def _clone(state):
    return {key: value.detach().clone() for key, value in state.items()}


@pytest.fixture(scope="module")
def ntu_workdir(tmp_path_factory):
    # performers 1, 2 train and 3 tests under ntu60-xsub
    return make_workdir(tmp_path_factory.mktemp("init") / "ntu", dataset="ntu60",
                        num_classes=3, per_class_view=3)


@pytest.fixture(scope="module")
def ucla_workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("init") / "ucla", per_class_view=4)


@pytest.fixture(scope="module")
def reference_run(ntu_workdir, tmp_path_factory):
    """One epoch of CTR-GCN initialised from a copy of the reference .npz."""
    root = tmp_path_factory.mktemp("reference-run")
    weights = root / "ctrgcn_ntu60.npz"
    shutil.copyfile(REFERENCE_NPZ, weights)
    config = tiny_config(ntu_workdir, preset="ntu60-xsub", epochs=1,
                         overrides=[f"model.init_from={weights}"])
    capture = Capture(build_backbone)
    result = train(config, root / "run", model_builder=capture)
    return root / "run", weights, capture, result


def test_new_run_starts_from_the_reference_weights(reference_run):
    run_dir, weights, capture, result = reference_run
    reference = reference_state_dict()
    started = capture.first_forward
    assert set(started) == set(reference)
    for key, value in reference.items():
        assert torch.equal(started[key], value.to(started[key].dtype)), key
    # the fresh model differs from the reference, so the check above can fail
    assert not torch.equal(capture.built["fc.weight"], reference["fc.weight"])
    assert result.global_step > 0


def test_what_was_loaded_is_recorded_in_the_run_dir(reference_run):
    run_dir, weights, _, result = reference_run
    recorded = json.loads((run_dir / INIT_FILE).read_text())
    assert recorded == {"init_from": str(weights),
                        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                        "loaded": len(reference_state_dict()), "skipped": [],
                        "ignored": []}
    assert result.init == recorded
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["init_from"] == str(weights)
    assert config["model"]["init_skip"] == []


def test_resume_does_not_reapply_init_from(reference_run, ntu_workdir):
    run_dir, weights, _, _ = reference_run
    after_epoch_1 = load_checkpoint(checkpoint_path(run_dir, "last"))["model"]
    weights.unlink()            # resuming must not even read it
    config = tiny_config(ntu_workdir, preset="ntu60-xsub", epochs=2,
                         overrides=[f"model.init_from={weights}"])
    capture = Capture(build_backbone)
    result = train(config, run_dir, model_builder=capture)
    assert result.epochs_done == 2 and result.init is None
    for key, value in after_epoch_1.items():
        assert torch.equal(capture.first_forward[key], value), key
    assert not torch.equal(after_epoch_1["fc.weight"], reference_state_dict()["fc.weight"])


def _tiny_checkpoint(tmp_path, num_classes: int):
    torch.manual_seed(123)
    source = TinyGCN(num_classes=num_classes, num_joints=20)
    path = tmp_path / f"tiny-{num_classes}.pt"
    torch.save({"model": source.state_dict()}, path)   # like a run's best.pt
    return path, source.state_dict()


def test_skipping_fc_trains_another_class_count_with_a_fresh_classifier(ucla_workdir,
                                                                         tmp_path):
    path, source = _tiny_checkpoint(tmp_path, num_classes=5)
    config = tiny_config(ucla_workdir, epochs=1,
                         overrides=[f"model.init_from={path}", "model.init_skip=[fc]"])
    capture = Capture(tiny_builder)
    result = train(config, tmp_path / "run", model_builder=capture)
    started = capture.first_forward
    for key, value in source.items():
        if key.startswith("fc."):
            assert started[key].shape[0] == 3
            assert torch.equal(started[key], capture.built[key]), key   # fresh
        else:
            assert torch.equal(started[key], value), key
    assert not torch.equal(capture.built["joints.weight"], source["joints.weight"])
    recorded = json.loads((tmp_path / "run" / INIT_FILE).read_text())
    assert recorded["skipped"] == ["fc.weight", "fc.bias"]
    assert recorded["loaded"] == len(source) - 2
    assert result.epochs_done == 1


def test_a_mismatch_without_skip_names_the_keys_and_leaves_no_run_behind(ucla_workdir,
                                                                         tmp_path):
    path, _ = _tiny_checkpoint(tmp_path, num_classes=5)
    run_dir = tmp_path / "run"
    config = tiny_config(ucla_workdir, epochs=1, overrides=[f"model.init_from={path}"])
    with pytest.raises(CheckpointMismatchError) as caught:
        train(config, run_dir, model_builder=tiny_builder)
    message = str(caught.value)
    assert message.startswith("model.init_from: ")
    assert "fc.weight (5, 16) vs model (3, 16)" in message
    assert "fc.bias (5,) vs model (3,)" in message
    assert "model.init_skip" in message
    assert caught.value.mismatched == ["fc.bias", "fc.weight"]
    assert not (run_dir / "config.yaml").exists()
    # so the same run directory can be retried with the fix
    fixed = tiny_config(ucla_workdir, epochs=1,
                        overrides=[f"model.init_from={path}", "model.init_skip=[fc]"])
    assert train(fixed, run_dir, model_builder=tiny_builder).init["skipped"] == \
        ["fc.weight", "fc.bias"]


def test_missing_file_and_unused_skip_prefix_are_clear_errors(ucla_workdir, tmp_path):
    missing = tiny_config(ucla_workdir, overrides=[f"model.init_from={tmp_path}/nope.pt"])
    with pytest.raises(CheckpointError, match="model.init_from: checkpoint not found"):
        train(missing, tmp_path / "a", model_builder=tiny_builder)
    path, _ = _tiny_checkpoint(tmp_path, num_classes=3)
    typo = tiny_config(ucla_workdir, overrides=[f"model.init_from={path}",
                                                "model.init_skip=[fc, head]"])
    with pytest.raises(CheckpointError, match=r"match no key .*: head \("):
        train(typo, tmp_path / "b", model_builder=tiny_builder)


def test_reference_into_120_classes_skipping_fc():
    model = build_model(num_classes=120, layout="ntu")
    fresh = _clone(model.state_dict())
    report = init_from_checkpoint(model, REFERENCE_NPZ, ["fc"])
    reference = reference_state_dict()
    state = model.state_dict()
    assert report.skipped == ["fc.weight", "fc.bias"] and report.ignored == []
    assert len(report.loaded) == len(reference) - 2
    assert state["fc.weight"].shape == (120, 256)
    assert torch.equal(state["fc.weight"], fresh["fc.weight"])
    for key in report.loaded:
        assert torch.equal(state[key], reference[key].to(state[key].dtype)), key


def test_reference_into_nw_ucla_needs_the_graph_and_input_norm_skipped():
    model = build_model(num_classes=10, layout="nw-ucla", num_persons=1)
    with pytest.raises(CheckpointMismatchError) as caught:
        init_from_checkpoint(model, REFERENCE_NPZ, ["fc"])
    assert "for 25 joints, the model for 20" in str(caught.value)
    assert "l1.gcn1.PA (3, 25, 25) vs model (3, 20, 20)" in str(caught.value)
    assert "data_bn.weight" in caught.value.mismatched
    assert "fc.weight" not in caught.value.mismatched       # skipped, so not a problem
    fresh = _clone(model.state_dict())
    report = init_from_checkpoint(model, REFERENCE_NPZ, ["fc", "data_bn", "l*.gcn1.PA"])
    assert sorted(report.skipped) == sorted(
        ["fc.weight", "fc.bias"] + [k for k in fresh if k.startswith("data_bn.")]
        + [f"l{i}.gcn1.PA" for i in range(1, 11)])
    reference = reference_state_dict()
    for key in report.skipped:
        assert torch.equal(model.state_dict()[key], fresh[key]), key
    for key in report.loaded:
        assert torch.equal(model.state_dict()[key], reference[key]), key


def test_skip_prefixes_match_whole_name_parts_only():
    model = build_model(num_classes=60, layout="ntu")
    with pytest.raises(CheckpointError, match="match no key .*: f \\("):
        init_from_checkpoint(model, REFERENCE_NPZ, ["f"])


def test_config_keys_defaults_and_validation(ucla_workdir, tmp_path):
    config = tiny_config(ucla_workdir)
    assert config.model.init_from is None and config.model.init_skip == []
    with pytest.raises(ConfigError, match="model.init_skip is set but model.init_from"):
        tiny_config(ucla_workdir, overrides=["model.init_skip=[fc]"])
    with pytest.raises(ConfigError, match="model.init_skip must be a list"):
        tiny_config(ucla_workdir, overrides=[f"model.init_from={REFERENCE_NPZ}",
                                             "model.init_skip=fc"])


def test_cli_init_from_is_the_config_key(ucla_workdir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(tmp_path / "run"), "--preset", "nw-ucla",
                                 "--workdir", str(ucla_workdir), "--init-from",
                                 str(REFERENCE_NPZ), "--set", "model.init_skip=[fc]",
                                 "--print-config"])
    assert result.exit_code == 0, result.output
    model = yaml.safe_load(result.output)["model"]
    assert model["init_from"] == str(REFERENCE_NPZ.resolve())
    assert model["init_skip"] == ["fc"]
    missing = runner.invoke(cli, ["run", str(tmp_path / "run"), "--preset", "nw-ucla",
                                  "--init-from", str(tmp_path / "nope.pt")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    assert "--init-from" in runner.invoke(cli, ["run", "--help"]).output
