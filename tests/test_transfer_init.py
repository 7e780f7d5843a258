"""``model.init_from`` a run directory, and ``model.init_class_map``: the new run's class k
starts from the source's classifier row map[k]; a source of another layout is refused
with what to do."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from data_manifest.class_map import ClassMapError
from model_factories import single_thread  # noqa: F401 (autouse)
from train.checkpoint import checkpoint_path, load_checkpoint
from train.config import resolve_config
from train.errors import ConfigError
from train.loop import INIT_FILE, train
from train.models.reference_import import CheckpointMismatchError
from train_factories import make_workdir, tiny_builder, tiny_config


class Capture:
    """A model builder that keeps the weights at build and at the first forward pass (the
    weights training starts from)."""

    def __init__(self):
        self.built, self.start = None, None

    def __call__(self, config):
        model = tiny_builder(config)
        self.built = {k: v.clone() for k, v in model.state_dict().items()}

        def hook(module, args):
            if self.start is None:
                self.start = {k: v.clone() for k, v in module.state_dict().items()}

        model.register_forward_pre_hook(hook)
        return model


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("source")
    workdir = make_workdir(root / "ntu", dataset="ntu60", num_classes=3, per_class_view=3)
    train(tiny_config(workdir, preset="ntu60-xsub", epochs=1), root / "run",
          model_builder=tiny_builder)
    return root / "run"


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("target") / "ntu", dataset="ntu60",
                        num_classes=2, per_class_view=3, seed=3)


def _fine_tune(target, run_dir, *overrides):
    capture = Capture()
    config = tiny_config(target, preset="ntu60-xsub", epochs=1,
                         overrides=["model.num_classes=2", *overrides])
    result = train(config, run_dir, model_builder=capture)
    return capture, result


@pytest.mark.parametrize("by", ["run directory", "checkpoint file"])
def test_the_classifier_is_re_mapped_through_the_class_map(source, target, tmp_path, by):
    init_from = source if by == "run directory" else checkpoint_path(source, "last")
    capture, result = _fine_tune(target, tmp_path / "ft", f"model.init_from={init_from}",
                                 "model.init_class_map={1: 2}")
    weights = load_checkpoint(checkpoint_path(source, "last"))["model"]   # auto: last
    start = capture.start
    assert start["fc.weight"].shape == (2, 16) and weights["fc.weight"].shape == (60, 16)
    assert torch.equal(start["fc.weight"][1], weights["fc.weight"][2])
    assert torch.equal(start["fc.bias"][1], weights["fc.bias"][2])
    assert torch.equal(start["fc.weight"][0], capture.built["fc.weight"][0])   # unmapped: fresh
    assert not torch.equal(capture.built["fc.weight"][1], weights["fc.weight"][2])
    for key, value in weights.items():
        if not key.startswith("fc."):
            assert torch.equal(start[key], value), key
    recorded = json.loads((tmp_path / "ft" / INIT_FILE).read_text())
    assert recorded["init_from"] == str(checkpoint_path(source, "last"))
    assert recorded["class_map"] == {"1": 2} and recorded["fresh_classes"] == [0]
    assert recorded["skipped"] == [] and recorded["loaded"] == len(weights)
    assert ("run_dir" in recorded) == (by == "run directory")
    assert result.init == recorded


def test_class_names_map_too_and_are_checked(source, target, tmp_path):
    # the source run's classes and this run's are NTU60's names
    capture, _ = _fine_tune(target, tmp_path / "named", f"model.init_from={source}",
                            "model.init_class_map={eat meal/snack: drink water}")
    weights = load_checkpoint(checkpoint_path(source, "last"))["model"]
    assert torch.equal(capture.start["fc.weight"][1], weights["fc.weight"][0])
    with pytest.raises(ClassMapError) as caught:
        _fine_tune(target, tmp_path / "bad", f"model.init_from={source}",
                   "model.init_class_map={0: 70, 5: 1, drnk water: 0}")
    text = str(caught.value)
    assert f"{source} has no class 70 (its 60 classes are 0-59)" in text
    assert "this run has no class 5 (its 2 classes are 0-1)" in text
    assert "'drnk water' is not a class name of this run" in text
    assert not (tmp_path / "bad" / "config.yaml").exists()


def test_settings_that_cannot_go_together(source, target, tmp_path):
    with pytest.raises(ConfigError, match="init_skip leaves the classifier fresh but "
                                          "model.init_class_map re-maps it"):
        _fine_tune(target, tmp_path / "a", f"model.init_from={source}",
                   "model.init_class_map={1: 2}", "model.init_skip=[fc]")
    with pytest.raises(ConfigError, match="model.init_class_map is set but model.init_from"):
        resolve_config("ntu60-xsub", overrides=["model.init_class_map={1: 2}"])
    # without a map the class counts must agree, and the message names both fixes
    with pytest.raises(CheckpointMismatchError, match="model.init_skip .* model.init_class_map"):
        _fine_tune(target, tmp_path / "b", f"model.init_from={source}")


def test_a_class_map_file_is_recorded_by_its_content(source, target, tmp_path):
    (tmp_path / "map.yaml").write_text("1: 2\n")
    _fine_tune(target, tmp_path / "ft", f"model.init_from={source}",
               f"model.init_class_map={tmp_path / 'map.yaml'}")
    (tmp_path / "map.yaml").unlink()
    config = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert config["model"]["init_class_map"] == {1: 2}


def test_a_source_run_of_another_layout_is_refused_with_what_to_do(source, tmp_path):
    ucla = make_workdir(tmp_path / "ucla", num_classes=3, per_class_view=2)
    config = tiny_config(ucla, epochs=1, overrides=[f"model.init_from={source}",
                                                    "model.init_skip=[fc]"])
    with pytest.raises(CheckpointMismatchError) as caught:
        train(config, tmp_path / "ucla-ft", model_builder=tiny_builder)
    text = str(caught.value)
    assert "data_bn.weight (75,) vs model (60,)" in text
    assert ("The source run reads the ntu layout (25 joints) with 2 person(s), this run "
            "nw-ucla (20) with 1") in text
    assert ("pipeline manifest csv DATA.csv WORKDIR --layout ntu --from-layout nw-ucla "
            "--max-persons 2") in text
    # a plain weights file does not say its layout: no guess
    weights = tmp_path / "weights.pt"
    torch.save({"model": load_checkpoint(checkpoint_path(source, "last"))["model"]}, weights)
    config = tiny_config(ucla, epochs=1, overrides=[f"model.init_from={weights}",
                                                    "model.init_skip=[fc]"])
    with pytest.raises(CheckpointMismatchError) as caught:
        train(config, tmp_path / "ucla-ft2", model_builder=tiny_builder)
    assert "The source run reads" not in str(caught.value)
