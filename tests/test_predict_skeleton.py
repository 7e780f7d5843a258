"""``train predict``: real skeleton files through run directories and exported models."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from data_manifest.classes import NTU60_CLASSES, NW_UCLA_CLASSES
from data_manifest.errors import DataError
from data_manifest.formats.load import load_skeleton_sample
from data_manifest.formats.reading import SkeletonReading
from model_factories import (NTU_SKELETON, SHARED, make_run_dir,
                             single_thread)  # noqa: F401 (single_thread: autouse)
from train.checkpoint import load_checkpoint, save_checkpoint
from train.cli.main import cli
from train.data.feeders import transform_for_inference
from train.export import export_run
from train.models.load_run import load_run
from train.predict import PredictError, load_predictor, predict_file

UCLA_SAMPLE = SHARED / "data" / "nw-ucla" / "all_sqe" / "a01_s01_e00_v01.json"


@pytest.fixture(scope="module")
def ntu_run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("ntu"), preset="ntu60-xsub")


def _manual_logits(run_dir, skeleton, reading):
    """What predict must compute: the cache reader (``reading``: a SkeletonReading or a
    dataset name), the test feeder, the model."""
    run = load_run(run_dir)
    sample = load_skeleton_sample(skeleton, reading)
    x = torch.from_numpy(transform_for_inference(sample["joints"], run.config)[None])
    with torch.no_grad():
        return run.model(x)[0].double().numpy()


def test_predict_on_the_real_ntu_sample(ntu_run):
    prediction = predict_file(ntu_run, NTU_SKELETON, top_k=5)
    assert prediction.frames == 103 and prediction.persons == 1
    assert [item.rank for item in prediction.top] == [1, 2, 3, 4, 5]
    logits = _manual_logits(ntu_run, NTU_SKELETON, "ntu60")
    order = np.argsort(-logits)[:5]
    assert [item.label for item in prediction.top] == order.tolist()
    np.testing.assert_allclose([item.logit for item in prediction.top], logits[order],
                               rtol=1e-5)
    probabilities = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose([item.probability for item in prediction.top],
                               probabilities[order], rtol=1e-5, atol=1e-12)
    assert [item.name for item in prediction.top] == [NTU60_CLASSES[i] for i in order]


def test_label_names_follow_the_classifier(tmp_path):
    # a classifier that always answers class 0 must print "drink water" (A001)
    run = make_run_dir(tmp_path, preset="ntu60-xsub", checkpoints=("best",))
    path = run / "checkpoints" / "best.pt"
    payload = load_checkpoint(path)
    payload["model"]["fc.weight"].zero_()
    payload["model"]["fc.bias"].copy_(torch.arange(60, 0, -1, dtype=torch.float32))
    save_checkpoint(path, payload)
    prediction = predict_file(run, NTU_SKELETON, top_k=3)
    assert [(item.label, item.name) for item in prediction.top] == [
        (0, "drink water"), (1, "eat meal/snack"), (2, "brushing teeth")]
    # softmax of logits 60, 59, ..., 1: p(0) = 1 / sum_k e^-k
    assert prediction.top[0].probability == pytest.approx(1 / np.exp(-np.arange(60)).sum(),
                                                          rel=1e-6)


def test_exported_model_predicts_like_the_run(ntu_run, tmp_path):
    export = export_run(ntu_run, tmp_path / "export", check_batch=2)
    from_run = predict_file(ntu_run, NTU_SKELETON, top_k=4)
    for model in (export.files["torchscript"], export.out_dir):
        exported = predict_file(model, NTU_SKELETON, top_k=4)
        assert [item.label for item in exported.top] == [item.label for item in from_run.top]
        np.testing.assert_allclose([item.logit for item in exported.top],
                                   [item.logit for item in from_run.top], rtol=1e-4,
                                   atol=1e-4)
        assert [item.name for item in exported.top] == [item.name for item in from_run.top]


@pytest.mark.parametrize("recorded", [None, "zeros", "copy"])
def test_predict_applies_the_absent_actor_rule_of_the_runs_skeleton_cache(tmp_path, recorded):
    # the real sample has one actor: an NTU120 cache copies it into slot 2 by default
    def reading(rule):
        return dataclasses.replace(SkeletonReading.for_dataset("ntu120"), absent_actor=rule)

    run = make_run_dir(tmp_path, preset="ntu120-xsub", checkpoints=("last",),
                       skeletons=reading(recorded).params() if recorded else None)
    rule = recorded or "copy"          # nothing recorded (e.g. an imported run): NTU120's
    other = "zeros" if rule == "copy" else "copy"
    expected = _manual_logits(run, NTU_SKELETON, reading(rule))
    assert not np.allclose(expected, _manual_logits(run, NTU_SKELETON, reading(other)),
                           atol=1e-3)
    models = [run]
    if recorded == "zeros":            # an export carries the rule (the default is copy)
        models.append(export_run(run, tmp_path / "export", check_batch=2).out_dir)
    for model in models:
        prediction = predict_file(model, NTU_SKELETON, top_k=120)
        assert prediction.persons == 1
        logits = np.zeros(120)
        logits[[item.label for item in prediction.top]] = [item.logit for item in prediction.top]
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


def test_predict_nw_ucla_json(tmp_path):
    run = make_run_dir(tmp_path, preset="nw-ucla")
    prediction = predict_file(run, UCLA_SAMPLE, top_k=10)
    assert sorted(item.label for item in prediction.top) == list(range(10))
    assert {item.name for item in prediction.top} == set(NW_UCLA_CLASSES)
    assert sum(item.probability for item in prediction.top) == pytest.approx(1.0, abs=1e-6)
    expected = _manual_logits(run, UCLA_SAMPLE, "nw-ucla")
    assert prediction.top[0].label == int(np.argmax(expected))


def test_cli_prints_the_top_classes(ntu_run):
    runner = CliRunner()
    done = runner.invoke(cli, ["predict", str(ntu_run), str(NTU_SKELETON), "-k", "3"])
    assert done.exit_code == 0, done.output
    lines = done.output.strip().splitlines()
    assert lines[0].startswith("S001C001P001R001A001.skeleton: 103 frames, 1 person(s)")
    assert len(lines) == 4 and lines[1].lstrip().startswith("1. ")
    top = predict_file(ntu_run, NTU_SKELETON, top_k=3).top
    for line, item in zip(lines[1:], top):
        assert f"{item.name} (label {item.label})" in line
    as_json = runner.invoke(cli, ["predict", str(ntu_run), str(NTU_SKELETON), "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert [item["label"] for item in json.loads(as_json.output)["top"]][:3] == \
        [item.label for item in top]


def test_bad_inputs_give_clear_errors(ntu_run, tmp_path):
    # a skeleton of another layout
    with pytest.raises(PredictError, match="20 joints, the model's ntu layout has 25"):
        predict_file(ntu_run, UCLA_SAMPLE, dataset="nw-ucla")
    # a broken skeleton file
    broken = tmp_path / "S001C001P001R001A001.skeleton"
    broken.write_text("12\n1\nnot a body line\n")
    with pytest.raises(DataError, match="S001C001P001R001A001.skeleton"):
        predict_file(ntu_run, broken)
    # a folder that is no model, and a trainer checkpoint given as a model file
    with pytest.raises(PredictError, match="neither a run directory"):
        load_predictor(tmp_path)
    with pytest.raises(PredictError, match="not a TorchScript export"):
        load_predictor(ntu_run / "checkpoints" / "best.pt")
    runner = CliRunner()
    done = runner.invoke(cli, ["predict", str(tmp_path), str(NTU_SKELETON)])
    assert done.exit_code == 2 and "error:" in done.output
    done = runner.invoke(cli, ["predict", str(ntu_run), str(UCLA_SAMPLE), "--dataset",
                               "nw-ucla"])
    assert done.exit_code == 2
    assert "20 joints, the model's ntu layout has 25" in done.output


def test_a_run_made_by_the_trainer_exports_and_predicts(tmp_path):
    from train.loop import train
    from train_factories import make_workdir, tiny_config

    workdir = make_workdir(tmp_path / "workdir", dataset="nw-ucla", num_classes=3)
    run_dir = tmp_path / "run"
    train(tiny_config(workdir, epochs=1), run_dir)
    export = export_run(run_dir, check_batch=2)
    from_run = predict_file(run_dir, UCLA_SAMPLE, top_k=3)
    from_export = predict_file(export.out_dir, UCLA_SAMPLE, top_k=3)
    assert sorted(item.label for item in from_run.top) == [0, 1, 2]
    assert [item.label for item in from_export.top] == [item.label for item in from_run.top]
    np.testing.assert_allclose([item.logit for item in from_export.top],
                               [item.logit for item in from_run.top], rtol=1e-4, atol=1e-4)


def test_broken_export_metadata_is_refused(ntu_run, tmp_path):
    export = export_run(ntu_run, tmp_path / "export", check_batch=1)
    (export.out_dir / "export.json").write_text("{not json")
    with pytest.raises(PredictError, match="not JSON"):
        load_predictor(export.out_dir)
    (export.out_dir / "export.json").write_text('{"files": {}}')
    with pytest.raises(PredictError, match="no run config"):
        load_predictor(export.out_dir)
