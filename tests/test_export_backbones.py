"""`train export` and `load_run` work for every backbone's runs (the options included).

ONNX goes through the same export code as CTR-GCN's (tests/test_export_run.py); for these
backbones it was checked by hand (relative error < 1e-6) and is left out here: exporting
HD-GCN to ONNX takes minutes on a CPU."""

from __future__ import annotations

import pytest
import torch

from model_factories import make_run_dir, single_thread  # noqa: F401 (autouse)
from train.errors import CheckpointError
from train.export import example_input, export_run, load_torchscript
from train.models.load_run import load_run


@pytest.mark.parametrize("name, options", [("stgcn", {}), ("hdgcn", {"com": 2}),
                                           ("infogcn", {"k": 2})])
def test_runs_of_every_backbone_export_and_reload(tmp_path, name, options):
    run = make_run_dir(tmp_path, preset="nw-ucla", name=name, options=options)
    formats = ("torchscript",)
    result = export_run(run, tmp_path / "out", formats=formats, check_batch=2)
    assert all(error is not None and error < 1e-4 for error in result.relative_error.values())
    assert result.metadata["model"]["name"] == name
    assert result.metadata["model"]["options"] == options
    loaded = load_run(run)
    scripted = load_torchscript(result.files["torchscript"])
    x = example_input(loaded.config)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), loaded.model(x))


def test_a_checkpoint_made_with_other_options_is_refused(tmp_path):
    run = make_run_dir(tmp_path, preset="nw-ucla", name="hdgcn", options={"com": 2})
    config = (run / "config.yaml").read_text().replace("com: 2", "com: 1")
    (run / "config.yaml").write_text(config)
    with pytest.raises(CheckpointError, match=r"options: \{'com': 2\} in the checkpoint, "
                                              r"\{'com': 1\} in config.yaml"):
        load_run(run)
