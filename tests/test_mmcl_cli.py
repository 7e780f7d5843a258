"""`train run --mmcl` end to end with the real CTR-GCN, and what each command imports.

Training with cached features must never import transformers (the LLM and the image
encoder ran once, in the pipeline); export and predict of an MMCL run must not even load
the co-learning code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from data_manifest.workdir import Workdir
from train import checkpoint as ckpt

from mmcl_factories import write_llm_features, write_rgb_features
from train_factories import make_workdir

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
pytestmark = pytest.mark.slow     # real CTR-GCN, TorchScript export, five subprocesses

# runs the train CLI in this process, then lists the modules it imported
SCRIPT = """
import json, sys
from train.cli.main import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
finally:
    names = [m for m in sys.modules
             if m.split('.')[0] in ('transformers', 'pipeline') or m.startswith('train.mmcl')]
    print('MODULES ' + json.dumps(sorted(names)))
"""


def train_cli(*args: str) -> tuple[str, list[str]]:
    result = subprocess.run([sys.executable, "-c", SCRIPT, *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    modules = json.loads(next(line for line in lines if line.startswith("MODULES "))[8:])
    return result.stdout, modules


@pytest.fixture(scope="module")
def mmcl_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mmcl-cli")
    workdir = Workdir(make_workdir(tmp / "wd", num_classes=3, per_class_view=2))
    write_rgb_features(workdir, width=10)
    write_llm_features(workdir, width=6, num_questions=2)
    run_dir = tmp / "run"
    output, modules = train_cli(
        "run", str(run_dir), "--preset", "nw-ucla", "--workdir", str(workdir.path), "--mmcl",
        "--set", "model.num_classes=3", "--set", "data.window=16", "--set", "data.repeat=1",
        "--set", "data.num_workers=0", "--set", "optim.batch_size=4",
        "--set", "optim.test_batch_size=8", "--set", "schedule.epochs=1",
        "--set", "schedule.warmup_epochs=0", "--set", "run.progress=false")
    return run_dir, output, modules


def test_train_run_mmcl_never_imports_transformers(mmcl_run):
    run_dir, output, modules = mmcl_run
    assert "run: " in output and "(1 epochs" in output
    assert not [m for m in modules if m.split(".")[0] in ("transformers", "pipeline")]
    assert "train.mmcl.objective" in modules            # it did train with MMCL
    assert "train.mmcl.online_encoder" in modules      # imported, but not transformers
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(run_dir, "last"))
    assert state["config"]["objective"]["name"] == "mmcl"
    assert tuple(state["objective"]["fam.mlp.0.weight"].shape) == (256, 10)
    losses = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])["losses"]
    assert set(losses) == {"cls", "contrastive", "refine"}


def test_export_and_predict_of_an_mmcl_run_are_skeleton_only(mmcl_run, tmp_path):
    run_dir, _, _ = mmcl_run
    output, modules = train_cli("export", str(run_dir), "-o", str(tmp_path / "export"))
    assert "torchscript:" in output
    assert modules == []
    sample = SHARED / "data" / "nw-ucla" / "all_sqe" / "a01_s01_e00_v01.json"
    for model in (str(run_dir), str(tmp_path / "export")):
        output, modules = train_cli("predict", model, str(sample), "--json", "-k", "2")
        prediction = json.loads(output[:output.index("MODULES ")])
        assert len(prediction["top"]) == 2 and prediction["persons"] == 1
        assert modules == []
