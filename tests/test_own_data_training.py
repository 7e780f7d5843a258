"""Own data in the trainer: padding persons out of normalisation, the custom feeder and
preset, auto values from the data, every mismatch at once, and a user layout through
manifest -> skeletons -> train -> eval -> predict -> export with class names everywhere."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import train.evaluate as evaluate_module
from data_manifest.layouts import NW_UCLA, load_layout
from model_factories import single_thread  # noqa: F401 (autouse)
from pipeline.cli.main import cli as pipeline_cli
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_skeletons import extract_skeletons
from pipeline.synthetic.own_data import KINECT_V1_HEAD_FIRST, OWN_CLASSES, write_own_dataset
from train.cli.main import cli as train_cli
from train.data import transforms as T
from train.data.dataset import load_data
from train.data.feeders import CustomFeeder, UCLAFeeder, transform_for_inference
from data_manifest.formats.load import load_skeleton_sample
from train.checkpoint import checkpoint_path, load_checkpoint
from train.config import TrainConfig, absolute_paths, model_layout, resolve_config
from train.errors import ConfigError
from train.loop import train
from train.predict import Predictor, predict_skeleton
from train_factories import tiny_builder

HEAD_FIRST = load_layout(KINECT_V1_HEAD_FIRST)


def _sample(frames=30, seed=0, channels=3):
    rng = np.random.default_rng(seed)
    points = rng.normal(0.0, 0.3, size=(frames, 1, 20, channels)) + np.array(
        [1.0, 1.0, 3.0][:channels])
    if channels == 3 and seed % 2:   # xy-score: a confidence in (0, 1] as third value
        points[..., 2] = rng.uniform(0.2, 1.0, size=points.shape[:3])
    return points.astype(np.float32)


# --------------------------------------------------------------------------- padding


def test_a_padding_person_never_enters_the_nw_ucla_normalisation():
    """Regression: the zero second person of single-person data was shifted by the centre
    joint and min-max normalised with the real one (a constant fake skeleton)."""
    one = _sample()
    two = np.concatenate([one, np.zeros_like(one)], axis=1)
    feeder = UCLAFeeder(layout=NW_UCLA, window=24)
    alone, padded = feeder(one, train=False), feeder(two, train=False)
    np.testing.assert_allclose(padded[..., :1], alone, rtol=1e-6, atol=1e-6)
    assert not padded[..., 1].any()
    normalised = T.minmax_normalise(two, T.presence(two))
    np.testing.assert_allclose(normalised[:, :1], T.minmax_normalise(one), atol=1e-6)
    assert normalised[:, :1].min() == -1 and normalised[:, :1].max() == 1


def test_the_custom_feeder_is_position_and_size_free_and_keeps_padding_zero():
    one = _sample()
    moved = one * 3.5 + np.array([10.0, -4.0, 2.0], dtype=np.float32)   # other units/place
    feeder = CustomFeeder(layout=HEAD_FIRST, window=20)
    np.testing.assert_allclose(feeder(moved, train=False), feeder(one, train=False),
                               atol=1e-5)
    two = np.concatenate([one, np.zeros_like(one)], axis=1)
    out = feeder(two, train=False)
    np.testing.assert_allclose(out[..., :1], feeder(one, train=False), atol=1e-6)
    assert not out[..., 1].any()
    centred = T.centre_and_scale(one, HEAD_FIRST.origin, 3)
    np.testing.assert_allclose(centred[0, 0, HEAD_FIRST.index("spine")], 0, atol=1e-6)
    extent = centred.reshape(-1, 3).max(axis=0) - centred.reshape(-1, 3).min(axis=0)
    assert extent.max() == pytest.approx(2.0)


def test_2d_points_with_scores_rotate_in_plane_and_keep_their_scores():
    points = _sample(seed=1)                                  # x, y, score
    feeder = CustomFeeder(layout=HEAD_FIRST, channels="xy-score", window=30,
                          p_interval_train=(1.0, 1.0), random_rot=True, rot_theta=0.5)
    rng = np.random.default_rng(0)
    out = feeder(points, train=True, rng=rng)
    still = CustomFeeder(layout=HEAD_FIRST, channels="xy-score", window=30,
                         p_interval_train=(1.0, 1.0), random_rot=False)(
        points, train=True, rng=np.random.default_rng(0))
    np.testing.assert_allclose(out[2], still[2], atol=1e-6)   # scores untouched
    np.testing.assert_allclose(out[2], np.moveaxis(points[..., 2], 1, -1), atol=1e-6)
    lengths = np.linalg.norm(out[:2], axis=0)
    np.testing.assert_allclose(lengths, np.linalg.norm(still[:2], axis=0), atol=1e-5)
    assert not np.allclose(out[:2], still[:2])                # but the points turned


def test_bone_and_motion_of_a_score_channel_follow_pyskl():
    data = np.random.default_rng(2).uniform(size=(3, 5, 20, 1)).astype(np.float32)
    bone = T.apply_modality(data, "bone", HEAD_FIRST, "xy-score")
    joint, parent = HEAD_FIRST.index("head"), HEAD_FIRST.index("shoulder_center")
    np.testing.assert_allclose(bone[:2, :, joint], data[:2, :, joint] - data[:2, :, parent])
    np.testing.assert_allclose(bone[2, :, joint], (data[2, :, joint] + data[2, :, parent]) / 2)
    root = HEAD_FIRST.root
    np.testing.assert_allclose(bone[2, :, root], data[2, :, root])
    motion = T.apply_modality(data, "joint-motion", HEAD_FIRST, "xy-score")
    np.testing.assert_allclose(motion[2, :-1], (data[2, 1:] + data[2, :-1]) / 2)
    assert not motion[:, -1].any()
    xyz = T.apply_modality(data, "bone", HEAD_FIRST, "xyz")
    np.testing.assert_allclose(xyz[2, :, joint], data[2, :, joint] - data[2, :, parent])


def test_flip_mirrors_x_and_swaps_the_layouts_pairs():
    data = np.random.default_rng(3).normal(size=(3, 4, 20, 1)).astype(np.float32)
    flipped = T.flip(data, HEAD_FIRST)
    left, right = HEAD_FIRST.index("left_hand"), HEAD_FIRST.index("right_hand")
    np.testing.assert_array_equal(flipped[0, :, left], -data[0, :, right])
    np.testing.assert_array_equal(flipped[1:, :, right], data[1:, :, left])
    np.testing.assert_array_equal(T.flip(flipped, HEAD_FIRST), data)


# --------------------------------------------------------------------------- fitting


@pytest.fixture(scope="module")
def own_workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    data = write_own_dataset(root / "mine", per_class=10, frames=(12, 20),
                             file_format="mixed")
    build_manifest("csv", data.csv, root / "work", layout=data.layout, classes=data.classes,
                   label_base=1, shard_size=8)
    assert extract_skeletons(root / "work", progress=False).failures == []
    return data, root / "work"


def test_the_custom_preset_takes_its_auto_values_from_the_data(own_workdir):
    data, work = own_workdir
    config = resolve_config("custom", overrides=[f"data.workdir={work}", "data.num_workers=0"])
    assert config.model.layout == "auto" and config.data.window == "auto"
    bundle = load_data(config)
    fitted = bundle.config
    assert load_layout(fitted.model.layout) == HEAD_FIRST       # the content, not a path
    assert (fitted.model.num_classes, fitted.model.num_persons, fitted.model.in_channels,
            fitted.data.channels) == (6, 1, 3, "xyz")
    lengths = [data.frames[s.id] for s in bundle.split.train]
    assert fitted.data.window == int(round(float(np.median(lengths))))
    assert len(bundle.split.val) == 6 and fitted.data.val_fraction == 0.1
    assert fitted.data.feeder == "custom"


def test_a_layout_file_in_the_config_is_recorded_by_its_content(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(KINECT_V1_HEAD_FIRST))
    config = absolute_paths(resolve_config("custom", overrides=[f"model.layout={path}"]))
    assert config.model.layout == HEAD_FIRST.to_dict()
    path.unlink()
    again = TrainConfig.from_dict(yaml.safe_load(config.to_yaml()))
    assert model_layout(again) == HEAD_FIRST
    with pytest.raises(ConfigError, match="model.layout: .*layout file not found"):
        resolve_config("custom", overrides=[f"model.layout={path}"])


def test_every_mismatch_is_reported_at_once(own_workdir):
    _, work = own_workdir
    config = resolve_config("ntu60-xsub", overrides=[
        f"data.workdir={work}", "model.num_classes=3", "data.channels=xy-score"])
    with pytest.raises(ConfigError) as caught:
        load_data(config)
    text = str(caught.value)
    for expected in ("(6 problems", "split protocol 'ntu60-xsub' is for ntu60 data, not 'csv'", "model.layout is 'ntu' but", "holds "
                     "'kinect-v1-head-first' skeletons", "have 20 joints, the 'ntu' layout",
                     "hold 1 person, model.num_persons is 2",
                     "data.channels is xy-score but the skeletons hold xyz",
                     "labels go up to 5 but model.num_classes is 3"):
        assert expected in text, expected


# --------------------------------------------------------------------------- the chain


def test_a_user_layout_goes_through_the_whole_chain(tmp_path, monkeypatch):
    """Kinect v1 joints in another order, one person, 1-based labels, class names, files
    of every format: manifest -> skeletons -> train -> eval -> predict -> export, with the
    layout and class files gone after the manifest."""
    data = write_own_dataset(tmp_path / "mine", per_class=4, frames=(12, 20),
                             file_format="mixed")
    pipeline, trainer = CliRunner(), CliRunner()
    work, run = tmp_path / "work", tmp_path / "run"
    done = pipeline.invoke(pipeline_cli, [
        "manifest", "csv", str(data.csv), str(work), "--layout", str(data.layout),
        "--classes", str(data.classes), "--label-base", "1"])
    assert done.exit_code == 0, done.output
    done = pipeline.invoke(pipeline_cli, ["extract-skeletons", str(work), "--no-progress"])
    assert done.exit_code == 0, done.output
    data.layout.unlink()
    data.classes.unlink()
    done = trainer.invoke(train_cli, [
        "run", str(run), "--preset", "custom", "--workdir", str(work),
        "--set", "schedule.epochs=2", "--set", "schedule.warmup_epochs=1",
        "--set", "optim.batch_size=8", "--set", "data.num_workers=0",
        "--set", "run.progress=false", "--set", "data.val_fraction=0.25"])
    assert done.exit_code == 0, done.output
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["model"]["layout"]["name"] == "kinect-v1-head-first"
    assert recorded["model"]["num_persons"] == 1 and recorded["model"]["num_classes"] == 6
    assert isinstance(recorded["data"]["window"], int)
    summary = json.loads((run / "data.json").read_text())
    assert summary["data"]["class_names"] == list(OWN_CLASSES)

    drawn = {}
    real_draw = evaluate_module.draw_confusion

    def spy(confusion, path, class_names=None, **kwargs):
        drawn["names"] = list(class_names or [])
        return real_draw(confusion, path, class_names=class_names, **kwargs)

    monkeypatch.setattr(evaluate_module, "draw_confusion", spy)
    shutil.move(str(work), str(tmp_path / "moved"))           # eval needs its WORKDIR only
    done = trainer.invoke(train_cli, ["eval", str(run), "--workdir", str(tmp_path / "moved"),
                                      "--no-progress"])
    assert done.exit_code == 0, done.output
    # another WORKDIR than the run's own: its reports have a folder of their own
    [reports] = (run / "eval").glob("test-best-moved-*")
    per_class = list(csv.DictReader(open(reports / "per_class.csv")))
    assert [row["name"] for row in per_class] == list(OWN_CLASSES)
    assert drawn["names"] == list(OWN_CLASSES)
    assert (reports / "confusion.png").is_file()

    shutil.rmtree(tmp_path / "moved")                          # predict/export need nothing
    sample = next(i for i, path in data.files.items() if path.suffix == ".mat")
    done = trainer.invoke(train_cli, ["predict", str(run), str(data.files[sample]), "--json"])
    assert done.exit_code == 0, done.output
    prediction = json.loads(done.output)
    assert {item["name"] for item in prediction["top"]} <= set(OWN_CLASSES)
    assert prediction["persons"] == 1
    done = trainer.invoke(train_cli, ["export", str(run), "-f", "torchscript"])
    assert done.exit_code == 0, done.output
    meta = json.loads((run / "export" / "export.json").read_text())
    assert meta["class_names"] == list(OWN_CLASSES)
    assert meta["input"]["joints"] == 20 and meta["input"]["layout"] == "kinect-v1-head-first"
    done = trainer.invoke(train_cli, ["predict", str(run / "export"),
                                      str(data.files[sample]), "--json"])
    assert done.exit_code == 0, done.output
    from_export = json.loads(done.output)
    assert [item["name"] for item in from_export["top"]] == \
        [item["name"] for item in prediction["top"]]
    assert [item["probability"] for item in from_export["top"]] == pytest.approx(
        [item["probability"] for item in prediction["top"]], abs=1e-4)


def test_2d_keypoints_with_scores_train_and_predict(tmp_path):
    data = write_own_dataset(tmp_path / "mine", per_class=4, frames=(12, 16),
                             channels="xy-score", file_format="mixed")
    build_manifest("csv", data.csv, tmp_path / "work", layout=data.layout,
                   classes=data.classes, label_base=1, channels="xy-score")
    assert extract_skeletons(tmp_path / "work", progress=False).failures == []
    config = resolve_config("custom", overrides=[
        f"data.workdir={tmp_path / 'work'}", "schedule.epochs=1", "optim.batch_size=4",
        "data.num_workers=0", "run.progress=false", "data.val_fraction=0"])
    result = train(config, tmp_path / "run", model_builder=tiny_builder)
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert (recorded["data"]["channels"], recorded["model"]["in_channels"]) == ("xy-score", 3)
    assert result.history[-1]["train_samples"] > 0
    checkpoint = load_checkpoint(checkpoint_path(tmp_path / "run", "last"))
    model = tiny_builder(TrainConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    predictor = Predictor("tiny", TrainConfig.from_dict(checkpoint["config"]),
                          checkpoint["class_names"],
                          lambda x: model.eval()(torch.from_numpy(x)).detach().numpy(),
                          checkpoint["skeletons"])
    assert predictor.reading().channels == "xy-score"
    path = next(p for p in data.files.values() if p.suffix == ".json")
    prediction = predict_skeleton(predictor, path, top_k=2)
    assert prediction.top[0].name in OWN_CLASSES and prediction.persons == 1
    x = transform_for_inference(load_skeleton_sample(path, predictor.reading())["joints"],
                                predictor.config)
    assert x.shape == (3, recorded["data"]["window"], 20, 1)
