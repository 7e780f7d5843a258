"""Cross-dataset transfer end to end: a run trained on NTU-format data scored on a 20-joint
Kinect v1 dataset (UTD-MHAD's file format and joint order) through the built-in class map
and the Kinect v1 -> NTU conversion; the domain-adaptive fine-tuning of docs/transfer.md."""

from __future__ import annotations

import csv
import json
import re
import sys

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

import train.loop as loop_module
import train.evaluate as evaluate_module
from data_manifest.classes import NTU120_CLASSES, UTD_MHAD_CLASSES
from data_manifest.class_map import ClassMapError
from data_manifest.layouts import NTU
from data_manifest.workdir import Workdir
from model_factories import single_thread  # noqa: F401 (autouse)
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_skeletons import extract_skeletons
from train.checkpoint import load_checkpoint, resolve_checkpoint
from train.cli.main import cli
from train.config import TrainConfig
from train.data.feeders import build_feeder
from train.errors import ConfigError, TrainError
from train.import_checkpoint import import_checkpoint
from train.loop import INIT_FILE, train
from train.scores_io import load_scores
from train.transfer.evaluate import evaluate_transfer
from train_factories import REPO, tiny_builder, tiny_config
from transfer_factories import (OWN_TO_NTU, UTD, UTD_MOTIONS, make_ntu_source,
                                ntu_cache_joints, utd_csv, write_utd_like)

# the NTU classes of each motion family (a wave of the left, of the right hand, a squat)
FAMILIES = ({95, 62}, {22, 8}, {79, 7})


def family(label: int) -> int:
    return next(k for k, members in enumerate(FAMILIES) if label in members)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("transfer")
    source = make_ntu_source(root / "ntu", per_class=16)
    config = tiny_config(source, preset="ntu120-xsub", epochs=25,
                         overrides=["data.window=32", "optim.lr=0.1"])
    train(config, root / "run", model_builder=tiny_builder)
    arrays = write_utd_like(root / "UTD-MHAD" / "Skeleton")
    utd_csv(root / "UTD-MHAD", root / "utd.csv")
    build_manifest("csv", root / "utd.csv", root / "utd", layout="utd-mhad",
                   classes="utd-mhad", label_base=1, shard_size=16)
    assert extract_skeletons(root / "utd", progress=False).failures == []
    return root, arrays


def _expected_logits(run_dir, sequences):
    """The run's logits computed by hand: the conversion of transfer_factories (the mapping,
    the translation NTU's caches have, a zero second person), the run's test transform."""
    state = load_checkpoint(resolve_checkpoint(run_dir))
    config = TrainConfig.from_dict(state["config"])
    model = tiny_builder(config)
    model.load_state_dict(state["model"])
    model.eval()
    feeder = build_feeder(config.data, NTU)
    x = np.stack([feeder(ntu_cache_joints(s), train=False) for s in sequences])
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_a_run_scores_another_dataset_through_the_builtin_class_map(setup):
    root, arrays = setup
    result = evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120",
                               model_builder=tiny_builder)
    # the 8 samples of a1 (no NTU class) are left out and counted; 48 are scored
    assert result.num_samples == 48 and result.left_out == {0: 8} and result.skipped == 0
    assert result.class_map == {2: 22, 5: 95, 6: 62, 23: 8, 24: 7, 26: 79}
    scores = result.scores
    assert scores.scores.shape == (48, 120)
    expected = _expected_logits(root / "run", [arrays[i] for i in scores.ids])
    np.testing.assert_allclose(scores.scores, expected, rtol=1e-4, atol=1e-5)
    for sample_id, label in zip(scores.ids, scores.labels):
        code = int(re.match(r"a(\d+)_", sample_id).group(1))
        assert label == OWN_TO_NTU[UTD_MOTIONS[code]]      # the run's class, through the map
    # top-1/top-5 over all 120 classes against the mapped label
    ranks = (scores.scores > scores.scores[np.arange(48), scores.labels][:, None]).sum(1)
    assert result.top1 == pytest.approx((ranks == 0).mean())
    assert result.top5 == pytest.approx((ranks < 5).mean())
    # what the source run learnt (which limb moves) carries over through the conversion
    assert result.top5 >= 0.9
    for row in result.per_class:
        assert row["samples"] == 8
        assert family(row["most_predicted"]) == family(row["run_class"]), row


def test_the_reports(setup):
    root, _ = setup
    result = evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120",
                               model_builder=tiny_builder)
    out = result.output_dir
    assert out.parent == root / "run" / "eval" and out.name.startswith("transfer-utd-")
    assert out.name.endswith("-all-last")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["top1"] == result.top1 and metrics["num_samples"] == 48
    assert metrics["left_out"] == {"samples": 8, "by_target_class": {"0": 8}}
    assert metrics["joint_map"]["name"] == "nw-ucla-to-ntu"
    assert (metrics["joint_map"]["from"], metrics["joint_map"]["to"]) == ("utd-mhad", "ntu")
    assert metrics["persons"] == {"target": 1, "run": 2, "pad": "zero"}
    assert metrics["class_map"][0] == {"target": 2, "target_name": "right hand wave",
                                       "run": 22, "run_name": "hand waving", "samples": 8}
    assert metrics["part"] == "all" and metrics["protocol"] is None
    rows = list(csv.DictReader(open(out / "per_class.csv")))
    assert [int(r["target_class"]) for r in rows] == [2, 5, 6, 23, 24, 26]
    assert rows[-1]["run_name"] == "squat down"
    assert rows[-1]["target_name"] == UTD_MHAD_CLASSES[26]
    confusion = list(csv.reader(open(out / "confusion.csv")))
    assert confusion[0] == ["true\\predicted", "7", "8", "22", "62", "79", "95", "other"]
    matrix = np.array([[int(v) for v in row[1:]] for row in confusion[1:]])
    assert matrix.shape == (6, 7) and matrix.sum() == 48
    columns = [7, 8, 22, 62, 79, 95]
    for row, line in zip(rows, matrix):
        assert line[columns.index(int(row["run_class"]))] == int(row["top1_correct"])
    assert Image.open(out / "confusion.png").format == "PNG"
    saved, names = load_scores(out / "scores.npz")
    assert names == list(NTU120_CLASSES) and saved.ids == result.scores.ids
    np.testing.assert_array_equal(saved.scores, result.scores.scores)


def test_a_mirrored_joint_map_swaps_the_hands(setup, tmp_path):
    """The conversion decides the result: the same data read through a joint map that
    swaps left and right is taken for the other hand's wave."""
    root, _ = setup
    mirrored = {name: name.replace("left", "@").replace("right", "left").replace("@", "right")
                for name in UTD.joints if "left" in name or "right" in name}
    builtin = yaml.safe_load((REPO / "data_manifest/layouts/mappings/nw-ucla-to-ntu.yaml")
                             .read_text())
    joints = {target: (mirrored.get(source, source) if isinstance(source, str) else
                       {kind: {mirrored.get(j, j): w for j, w in terms.items()}
                        if isinstance(terms, dict) else [mirrored.get(j, j) for j in terms]
                        for kind, terms in source.items()})
              for target, source in builtin["joints"].items()}
    joints.update({name: mirrored[name] for name in NTU.joints if name in mirrored})
    (tmp_path / "mirror.yaml").write_text(yaml.safe_dump(
        {"name": "mirror", "from": "utd-mhad", "to": "ntu", "joints": joints}))
    result = evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120",
                               joint_map=tmp_path / "mirror.yaml", output_dir=tmp_path / "m",
                               model_builder=tiny_builder)
    swapped = {0: 1, 1: 0, 2: 2}
    for row in result.per_class:
        assert family(row["most_predicted"]) == swapped[family(row["run_class"])], row
    assert json.loads((tmp_path / "m/metrics.json").read_text())["joint_map"]["name"] == \
        "mirror"


def test_parts_of_the_target_and_its_protocol(setup, tmp_path):
    root, _ = setup
    test = evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120", part="test",
                             output_dir=tmp_path / "t", model_builder=tiny_builder)
    # the CSV's split column (csv protocol): even subjects are the test part
    assert test.num_samples == 24 and test.left_out == {0: 4}
    assert all(int(re.search(r"_s(\d+)_", i).group(1)) % 2 == 0 for i in test.scores.ids)
    metrics = json.loads((tmp_path / "t/metrics.json").read_text())
    assert (metrics["part"], metrics["protocol"]) == ("test", "csv")
    with pytest.raises(ConfigError, match="split protocol 'ntu120-xsub' is for ntu120 data, "
                                          "not 'csv'"):
        evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120", part="train",
                          protocol="ntu120-xsub", model_builder=tiny_builder)
    with pytest.raises(ConfigError, match="target part must be one of all, train, test"):
        evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120", part="val",
                          model_builder=tiny_builder)


def test_bad_class_maps_and_targets_are_clear_errors(setup, tmp_path):
    root, _ = setup

    def evaluate(class_map, **kwargs):
        return evaluate_transfer(root / "run", root / "utd", class_map,
                                 output_dir=tmp_path / "x", model_builder=tiny_builder, **kwargs)

    with pytest.raises(ClassMapError) as caught:
        evaluate({2: 130, "right hand wav": 5, 40: 3, "squat (two arms stretch out)":
                  "squat dwn"})
    text = str(caught.value)
    for expected in ("(4 problems)", "the run has no class 130 (its 120 classes are 0-119)",
                     "'right hand wav' is not a class name of the target",
                     "did you mean 'right hand wave'",
                     "has no class 40 (its 27 classes are 0-26)",
                     "'squat dwn' is not a class name of the run; did you mean 'squat down'"):
        assert expected in text, expected
    # names work, with case and spaces ignored
    named = evaluate({"Right  hand wave": "hand waving"})
    assert named.class_map == {2: 22} and named.num_samples == 8
    # a target whose samples belong to none of the mapped classes
    with pytest.raises(TrainError, match=r"none of the 56 samples of .*utd belongs to a class "
                                         r"of the class map \(it maps target classes 10, 11; "
                                         r"the samples have classes 0, 2, 5, 6, 23, 24, 26\)"):
        evaluate({10: 22, 11: 95})
    # a mapped class without samples is reported, the others scored
    partial = evaluate({2: 22, 10: 95})
    assert partial.num_samples == 8 and "mapped target class 10 (draw triangle) has no " \
        "samples" in partial.warnings[0]
    with pytest.raises(TrainError, match="--refine scores with the run's FRM, but .* was "
                                         "trained with the 'classification' objective"):
        evaluate("utd-mhad-to-ntu120", refine=True)
    with pytest.raises(ClassMapError, match="unknown class map 'utd-to-ntu'.*utd-mhad-to-ntu120"):
        evaluate("utd-to-ntu")


def test_the_eval_command(setup, monkeypatch):
    root, _ = setup
    monkeypatch.setattr(evaluate_module, "build_backbone", tiny_builder)
    runner = CliRunner()
    base = ["eval", str(root / "run"), "--no-progress"]
    result = runner.invoke(cli, [*base, "--workdir", str(root / "utd"), "--class-map",
                                 "utd-mhad-to-ntu120"])
    assert result.exit_code == 0, result.output
    assert re.search(r"\(all\): top-1 \d+\.\d\d%, top-5 \d+\.\d\d% over the run's classes on "
                     r"48 samples of 6 mapped classes", result.output)
    assert "left out: 8 samples of 1 unmapped classes" in result.output
    assert "  26 (squat (two arms stretch out)) -> 79: top-1" in result.output
    inline = runner.invoke(cli, [*base, "--workdir", str(root / "utd"), "--class-map",
                                 "{2: 22}", "--part", "test"])
    assert inline.exit_code == 0, inline.output
    assert "(test): " in inline.output and "on 4 samples of 1 mapped classes" in inline.output
    for args, message in (
            (["--class-map", "utd-mhad-to-ntu120"], "give its WORKDIR with --workdir"),
            (["--refine"], "--refine: only with --class-map"),
            (["--part", "all"], "--part all: only with --class-map"),
            (["--workdir", str(root / "utd"), "--class-map", "{2: 22}", "--part", "val"],
             "no validation part")):
        bad = runner.invoke(cli, [*base, *args])
        assert bad.exit_code == 2 and message in bad.output, (args, bad.output)
    wrong = runner.invoke(cli, [*base, "--workdir", str(root / "utd"), "--class-map",
                                "{2: 130}"])
    assert wrong.exit_code == 2 and "error: class map cannot be used" in wrong.output
    assert "Traceback" not in wrong.output


def test_imported_weights_score_another_dataset_with_the_run_s_thread_plan(setup, tmp_path,
                                                                          monkeypatch):
    """Regression: transfer evaluation re-implemented the scoring sequence without the
    thread plan (run.threads was ignored) and read the checkpoint's entries directly; it
    now goes through evaluate_run's steps, which take imported runs too."""
    root, _ = setup
    monkeypatch.setattr(evaluate_module, "build_backbone", tiny_builder)
    trained = load_checkpoint(resolve_checkpoint(root / "run"))
    torch.save(trained["model"], tmp_path / "weights.pt")
    config = TrainConfig.from_dict(trained["config"])
    config.data.workdir = None                   # published weights know no WORKDIR
    import_checkpoint(tmp_path / "weights.pt", tmp_path / "imported", config,
                      model_builder=tiny_builder)
    before = torch.get_num_threads()
    try:
        result = CliRunner().invoke(cli, [
            "eval", str(tmp_path / "imported"), "--workdir", str(root / "utd"),
            "--class-map", "utd-mhad-to-ntu120", "--set", "run.threads=2", "--no-progress"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    [out] = (tmp_path / "imported" / "eval").glob("transfer-utd-*-all-last")
    imported, _ = load_scores(out / "scores.npz")
    expected = evaluate_transfer(root / "run", root / "utd", "utd-mhad-to-ntu120",
                                 output_dir=tmp_path / "source", model_builder=tiny_builder)
    assert imported.ids == expected.scores.ids
    np.testing.assert_array_equal(imported.scores, expected.scores.scores)


def test_the_documented_csv_snippet_is_the_factorys(tmp_path, monkeypatch):
    """docs/transfer.md's snippet that lists UTD-MHAD's files writes what utd_csv writes."""
    text = (REPO / "docs/transfer.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    write_utd_like(tmp_path / "UTD-MHAD" / "Skeleton", subjects=2, trials=1)
    (tmp_path / "UTD-MHAD" / "Skeleton" / "a1_s1_t1_depth.mat").write_bytes(b"")
    monkeypatch.setattr(sys, "argv", ["utd_csv.py", str(tmp_path / "UTD-MHAD"),
                                      str(tmp_path / "utd.csv")])
    exec(compile(snippet, "docs/transfer.md", "exec"), {"__name__": "__main__"})
    utd_csv(tmp_path / "UTD-MHAD", tmp_path / "expected.csv")
    assert (tmp_path / "utd.csv").read_text() == (tmp_path / "expected.csv").read_text()
    assert len((tmp_path / "utd.csv").read_text().splitlines()) == 1 + 2 * len(UTD_MOTIONS)


# --------------------------------------------------------------------------- fine-tuning


def test_domain_adaptive_fine_tuning_as_documented(setup, tmp_path, monkeypatch):
    """UTD-MHAD converted to NTU's layout and persons when its WORKDIR is built, then a run
    started from the NTU run with its classifier re-mapped through the class map."""
    root, arrays = setup
    build_manifest("csv", root / "utd.csv", tmp_path / "utd-ntu", layout="ntu",
                   from_layout="utd-mhad", max_persons=2, classes="utd-mhad", label_base=1)
    assert extract_skeletons(tmp_path / "utd-ntu", progress=False).failures == []
    stored = Workdir(tmp_path / "utd-ntu").reader("skeletons").get("a27_s1_t1_skeleton",
                                                                   ["joints"])["joints"]
    converted = ntu_cache_joints(arrays["a27_s1_t1_skeleton"])
    origin = stored[0, 0, NTU.index("spine_middle")]
    np.testing.assert_allclose(np.where(converted != 0, stored - origin, 0), converted,
                               atol=1e-5)        # the same conversion, not yet translated
    built = {}

    def capture(config):
        def hook(module, args):
            built.setdefault("start", {k: v.clone() for k, v in module.state_dict().items()})

        model = tiny_builder(config)
        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(loop_module, "build_backbone", capture)
    runner = CliRunner()
    result = runner.invoke(cli, [
        "run", str(tmp_path / "ft"), "--preset", "custom", "--workdir",
        str(tmp_path / "utd-ntu"), "--init-from", str(root / "run"),
        "--set", "model.init_class_map=utd-mhad-to-ntu120", "--set", "data.feeder=ntu",
        "--set", "data.window=32", "--set", "data.val_fraction=0", "--set",
        "data.num_workers=0", "--set", "optim.batch_size=4", "--set", "schedule.epochs=1",
        "--set", "schedule.warmup_epochs=0", "--set", "run.progress=false"])
    assert result.exit_code == 0, result.output
    source = load_checkpoint(resolve_checkpoint(root / "run"))["model"]
    start = built["start"]
    assert start["fc.weight"].shape == (27, 16)
    for target, row in {2: 22, 5: 95, 6: 62, 23: 8, 24: 7, 26: 79}.items():
        assert torch.equal(start["fc.weight"][target], source["fc.weight"][row])
        assert torch.equal(start["fc.bias"][target], source["fc.bias"][row])
    assert not any(torch.equal(start["fc.weight"][k], source["fc.weight"][r])
                   for k in (0, 1) for r in range(120))          # the unmapped rows: fresh
    for key, value in source.items():
        if not key.startswith("fc."):
            assert torch.equal(start[key], value), key
    recorded = json.loads((tmp_path / "ft" / INIT_FILE).read_text())
    assert recorded["run_dir"] == str(root / "run")
    assert recorded["init_from"].endswith("checkpoints/last.pt")
    assert recorded["class_map"] == {"2": 22, "5": 95, "6": 62, "23": 8, "24": 7, "26": 79}
    assert recorded["fresh_classes"] == [k for k in range(27) if k not in (2, 5, 6, 23, 24, 26)]
    config = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert config["model"]["init_class_map"] == "utd-mhad-to-ntu120"
    assert (config["model"]["num_classes"], config["model"]["num_persons"]) == (27, 2)
