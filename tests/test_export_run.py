"""``train export``: TorchScript/ONNX round trips, metadata, run loading and bad input."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from data_manifest.classes import NW_UCLA_CLASSES
from model_factories import SHARED, make_run_dir, single_thread, subprocess_env  # noqa: F401 (autouse)
from train.cli.main import cli
from train.errors import CheckpointError, ConfigError
from train.export import META_FILE, ExportError, example_input, export_run, load_torchscript
from train.checkpoint import resolve_checkpoint
from train.models.load_run import load_run
from train.models.reference_import import CheckpointMismatchError
from train.predict import predict_file

HAS_ONNX = all(importlib.util.find_spec(name) is not None
               for name in ("onnx", "onnxscript", "onnxruntime"))


@pytest.fixture(scope="module")
def ucla_run(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("ucla"), preset="nw-ucla")


@pytest.fixture(scope="module")
def ucla_export(ucla_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("ucla_export")
    return export_run(ucla_run, out, formats=("torchscript",), check_batch=2)


def _eager_logits(run_dir, x):
    with torch.no_grad():
        return load_run(run_dir).model(x)


def test_torchscript_round_trip_gives_the_eager_logits(ucla_run, ucla_export):
    path = ucla_export.files["torchscript"]
    assert path.name == "model.torchscript.pt" and path.is_file()
    assert ucla_export.relative_error["torchscript"] < 1e-6
    extra = {META_FILE: ""}
    loaded = load_torchscript(path, extra)
    for batch in (1, 3):                       # batch size is free
        x = torch.randn(batch, 3, 16, 20, 1)
        with torch.no_grad():
            exported = loaded(x)
        expected = _eager_logits(ucla_run, x)
        assert exported.shape == (batch, 10)
        torch.testing.assert_close(exported, expected, rtol=1e-5, atol=1e-5)
    meta = json.loads(extra[META_FILE])
    assert meta["class_names"] == list(NW_UCLA_CLASSES)
    assert meta["input"]["frames"] == 16 and meta["input"]["joints"] == 20
    assert meta["input"]["persons"] == 1 and meta["dataset"] == "nw-ucla"
    assert meta["config"]["data"]["feeder"] == "nw-ucla"
    # auto: this run's best.pt does not say it was chosen on a validation part
    assert meta["checkpoint"].endswith("last.pt")
    sidecar = json.loads((ucla_export.out_dir / "export.json").read_text())
    assert sidecar["files"] == {"torchscript": "model.torchscript.pt"}
    assert not list(ucla_export.out_dir.glob("*.partial"))


def test_exported_model_runs_without_the_project_code(ucla_export):
    # a fresh interpreter that only has torch: the archive must hold everything
    script = ("import sys, torch; sys.modules['train'] = None; "
              f"m = torch.jit.load({str(ucla_export.files['torchscript'])!r}); "
              "print(tuple(m(torch.zeros(2, 3, 16, 20, 1)).shape))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd="/", timeout=120, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(2, 10)"


@pytest.mark.slow
@pytest.mark.onnx
@pytest.mark.skipif(not HAS_ONNX, reason="needs the [onnx] extra (onnx, onnxscript, onnxruntime)")
def test_onnx_round_trip_gives_the_eager_logits(ucla_run, tmp_path):
    import onnxruntime

    result = export_run(ucla_run, tmp_path, formats=("onnx",))
    assert result.relative_error["onnx"] < 1e-4
    session = onnxruntime.InferenceSession(str(result.files["onnx"]),
                                           providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["mmcl_export"])[
        "class_names"] == list(NW_UCLA_CLASSES)
    x = torch.randn(5, 3, 16, 20, 1)
    exported = session.run(["logits"], {"skeleton": x.numpy()})[0]
    expected = _eager_logits(ucla_run, x).numpy()
    assert exported.shape == (5, 10)
    assert float(((exported - expected) ** 2).sum() ** 0.5
                 / ((expected ** 2).sum() ** 0.5)) < 1e-4
    # predict runs the .onnx file with the preprocessing its metadata describes
    sample = SHARED / "data" / "nw-ucla" / "all_sqe" / "a01_s01_e00_v01.json"
    from_onnx = predict_file(result.files["onnx"], sample, top_k=3)
    from_run = predict_file(ucla_run, sample, top_k=3)
    assert [item.label for item in from_onnx.top] == [item.label for item in from_run.top]
    assert from_onnx.top[0].logit == pytest.approx(from_run.top[0].logit, rel=1e-4, abs=1e-4)


def test_checkpoint_choice(tmp_path):
    run = make_run_dir(tmp_path, checkpoints=("last",))
    assert resolve_checkpoint(run).name == "last.pt"          # auto: no best yet
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        resolve_checkpoint(run, "best")
    assert resolve_checkpoint(run, run / "checkpoints" / "last.pt").name == "last.pt"
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(run, tmp_path / "nowhere.pt")


def test_bad_runs_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="config.yaml is missing"):
        export_run(tmp_path)
    run = make_run_dir(tmp_path, checkpoints=())
    with pytest.raises(CheckpointError, match="has the run saved a checkpoint"):
        export_run(run)
    with pytest.raises(ExportError, match="formats must be among"):
        export_run(run, formats=("tflite",))


def test_checkpoint_of_another_class_count_is_refused(tmp_path):
    run = make_run_dir(tmp_path / "a")
    other = make_run_dir(tmp_path / "b", num_classes=7)
    foreign = other / "checkpoints" / "best.pt"
    # the checkpoint records its model_info: caught before any weight is touched
    with pytest.raises(CheckpointError, match="num_classes: 7 in the checkpoint, 10 in"):
        load_run(run, foreign)
    # without that record, the key check names the classifier
    payload = torch.load(foreign, weights_only=True)
    del payload["model_info"]
    torch.save(payload, foreign)
    with pytest.raises(CheckpointMismatchError, match="7 classes, the model 10") as caught:
        load_run(run, foreign)
    assert caught.value.mismatched == ["fc.bias", "fc.weight"]


def test_corrupt_checkpoint_is_refused(tmp_path):
    run = make_run_dir(tmp_path)
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="best.pt"):
        export_run(run)


def test_cli_export_and_errors(ucla_run, tmp_path):
    runner = CliRunner()
    done = runner.invoke(cli, ["export", str(ucla_run), "-o", str(tmp_path / "out")])
    assert done.exit_code == 0, done.output
    assert "torchscript:" in done.output and "relative error" in done.output
    assert (tmp_path / "out" / "model.torchscript.pt").is_file()
    failed = runner.invoke(cli, ["export", str(tmp_path / "out")])
    assert failed.exit_code == 2
    assert "config.yaml is missing" in failed.output


def test_example_input_shape(ucla_run):
    from train.models.load_run import read_run_config
    assert tuple(example_input(read_run_config(ucla_run), batch=3).shape) == (3, 3, 16, 20, 1)


def test_inference_path_imports_no_rgb_or_llm_code():
    script = ("import sys, train.predict, train.export, train.cli.predict, train.cli.export; "
              "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
              "('transformers', 'cv2', 'pipeline', 'accelerate') or m.startswith('train.mmcl')); "
              "print(bad)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, env=subprocess_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
