"""``train import``: a published checkpoint becomes a run that eval, predict and export take."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from model_factories import (REFERENCE_NPZ, reference_arrays, reference_state_dict,
                            single_thread)  # noqa: F401 (single_thread: autouse)
from train.checkpoint import checkpoint_path, load_checkpoint
from train.models import build_model
from train.models.reference_import import load_reference_weights
from train.cli.main import cli
from train.predict import load_predictor
from train_factories import make_workdir

# the reference input is already the model's (C, T, V, M) input of 64 frames: a test-time
# crop of the whole sequence (p = 1) keeps all of them
IMPORT_ARGS = ["--preset", "ntu60-xsub", "--set", "data.p_interval_test=[1.0]"]


def _relative_error(output: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(output - expected) / np.linalg.norm(expected))


def _save_pt(path, prefix: str = ""):
    torch.save({f"{prefix}{key}": value for key, value in reference_state_dict().items()},
               path)
    return path


def _import(source, run_dir, *extra):
    result = CliRunner().invoke(cli, ["import", str(source), str(run_dir), *IMPORT_ARGS,
                                      *extra])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("import")
    return _import(_save_pt(root / "ctrgcn_ntu60.pt"), root / "run")


def _skeleton_file(tmp_path, index: int):
    """Sample ``index`` of the reference input as a user's (T, M, V, C) .npy file."""
    path = tmp_path / f"reference_{index}.npy"
    np.save(path, reference_arrays()["input"][index].transpose(1, 3, 2, 0))
    return path


def test_the_run_records_the_import_and_selects_nothing(imported):
    record = json.loads((imported / "import.json").read_text())
    source = imported.parent / "ctrgcn_ntu60.pt"
    assert record["source"] == str(source.resolve())
    assert record["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert record["preset"] == "ntu60-xsub"
    payload = load_checkpoint(checkpoint_path(imported, "last"))
    assert payload["kind"] == "imported" and payload["imported"] == record
    assert payload["best"] is None and payload["epoch"] is None
    assert payload["class_names"][0] == "drink water"
    assert not checkpoint_path(imported, "best").exists()


def test_predict_gives_the_reference_logits(imported, tmp_path):
    arrays = reference_arrays()
    predictor = load_predictor(imported)       # the run directory, as train predict loads it
    logits = predictor.logits(np.ascontiguousarray(arrays["input"]))
    assert _relative_error(logits, arrays["logits"]) < 1e-4
    # the command on a skeleton file: the ntu feeder moves joint 2 of the first frame to the
    # origin (the reference input is random, so it is not there), otherwise the 64 frames
    # pass through unchanged; the published model itself must score that input
    reference = load_reference_weights(build_model(num_classes=60, layout="ntu"),
                                       REFERENCE_NPZ).eval()
    runner = CliRunner()
    for index in range(len(arrays["input"])):
        x = arrays["input"][index]                               # (C, T, V, M)
        moved = x - x[:, 0, 1, 0][:, None, None, None]
        with torch.no_grad():
            expected = reference(torch.from_numpy(moved[None]))[0].numpy()
        done = runner.invoke(cli, ["predict", str(imported), str(_skeleton_file(tmp_path, index)),
                                   "--dataset", "csv", "-k", "60", "--json"])
        assert done.exit_code == 0, done.output
        scores = np.zeros(60)
        for item in json.loads(done.output)["top"]:
            scores[item["label"]] = item["logit"]
        assert _relative_error(scores, expected) < 1e-4


@pytest.mark.parametrize("kind", ["module_prefix", "npz"])
def test_prefixed_state_dicts_and_the_npz_import_the_same_weights(imported, tmp_path, kind):
    source = (_save_pt(tmp_path / "dp.pth", prefix="module.") if kind == "module_prefix"
              else REFERENCE_NPZ)
    run = _import(source, tmp_path / "run")
    arrays = reference_arrays()
    logits = load_predictor(run).logits(np.ascontiguousarray(arrays["input"]))
    assert _relative_error(logits, arrays["logits"]) < 1e-4
    ours = load_checkpoint(checkpoint_path(run, "last"))["model"]
    reference = load_checkpoint(checkpoint_path(imported, "last"))["model"]
    assert all(torch.equal(ours[key], reference[key]) for key in reference)


def test_a_checkpoint_of_another_preset_is_refused_clearly(tmp_path):
    source = _save_pt(tmp_path / "ctrgcn_ntu60.pt")
    result = CliRunner().invoke(cli, ["import", str(source), str(tmp_path / "run"),
                                      "--preset", "ntu120-xsub"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "the checkpoint has 60 classes, the model 120" in result.output
    assert "preset ntu120-xsub" in result.output and "--preset" in result.output
    assert not (tmp_path / "run" / "config.yaml").exists()
    ucla = CliRunner().invoke(cli, ["import", str(source), str(tmp_path / "run"),
                                    "--preset", "nw-ucla"])
    assert ucla.exit_code == 2 and "for 25 joints, the model for 20" in ucla.output
    missing = CliRunner().invoke(cli, ["import", str(source), str(tmp_path / "run")])
    assert missing.exit_code == 2 and "--preset" in missing.output


def test_eval_export_and_resume_of_an_imported_run(imported, tmp_path):
    runner = CliRunner()
    no_workdir = runner.invoke(cli, ["eval", str(imported), "--no-progress"])
    assert no_workdir.exit_code == 2
    assert "no WORKDIR to score" in no_workdir.output and "--workdir" in no_workdir.output
    workdir = make_workdir(tmp_path / "wd", dataset="ntu60", per_class_view=3,
                           frames=(20, 30))
    evaluated = runner.invoke(cli, ["eval", str(imported), "--workdir", str(workdir),
                                    "--no-progress", "--output", str(tmp_path / "eval")])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["checkpoint"].endswith("last.pt") and metrics["selected_on"] is None
    assert metrics["num_samples"] == 9      # performer 3 (an xsub test subject), 3 x 3
    exported = runner.invoke(cli, ["export", str(imported), "-o", str(tmp_path / "export")])
    assert exported.exit_code == 0, exported.output
    arrays = reference_arrays()
    logits = load_predictor(tmp_path / "export").logits(np.ascontiguousarray(arrays["input"]))
    assert _relative_error(logits, arrays["logits"]) < 1e-4
    resumed = runner.invoke(cli, ["run", str(imported)])
    assert resumed.exit_code == 2 and "cannot be resumed" in resumed.output
    assert "--init-from" in resumed.output
    again = runner.invoke(cli, ["import", str(REFERENCE_NPZ), str(imported), *IMPORT_ARGS])
    assert again.exit_code == 2 and "already holds a run" in again.output
