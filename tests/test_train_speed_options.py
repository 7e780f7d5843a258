"""Trainer speed options: gradient accumulation, the throughput line, threads, precision."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from data_manifest.layouts import LAYOUTS
from train import loop
from train.checkpoint import checkpoint_path, load_checkpoint
from train.data.dataset import SkeletonDataset
from train.errors import ConfigError
from train.loop import read_metrics, train
from train_factories import make_workdir, tiny_builder, tiny_config


class NormFreeGCN(nn.Module):
    """A tiny backbone without batch norm: its gradient over a batch is exactly the
    sample-weighted sum of the gradients over any split of that batch."""

    def __init__(self, num_classes: int, num_joints: int, hidden: int = 8):
        super().__init__()
        self.temporal = nn.Conv2d(3, hidden, kernel_size=(5, 1), padding=(2, 0))
        self.joints = nn.Linear(hidden * num_joints, hidden)
        self.fc = nn.Linear(hidden, num_classes)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, t, v, m = x.shape
        h = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        h = torch.relu(self.temporal(h)).mean(dim=2)
        feature = torch.relu(self.joints(h.flatten(1))).reshape(n, m, -1).mean(dim=1)
        return self.fc(feature), feature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def norm_free_builder(config) -> nn.Module:
    torch.manual_seed(0)
    return NormFreeGCN(config.model.num_classes, LAYOUTS[config.model.layout].num_joints)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    # 36 training samples: 4 full batches of 8 and a last one of 4 without drop_last
    return make_workdir(tmp_path_factory.mktemp("speed") / "wd", per_class_view=6)


def _weights(run_dir):
    return load_checkpoint(checkpoint_path(run_dir, "last"))["model"]


@pytest.mark.parametrize("drop_last", [True, False])
def test_accumulated_micro_batches_give_the_weights_of_whole_batches(workdir, tmp_path,
                                                                     drop_last):
    runs = {}
    for accumulation in (1, 2, 4):
        config = tiny_config(workdir, epochs=2, overrides=[
            "optim.batch_size=8", f"optim.grad_accumulation={accumulation}",
            f"run.drop_last={str(drop_last).lower()}", "optim.weight_decay=1e-3"])
        runs[accumulation] = train(config, tmp_path / f"k{accumulation}",
                                   model_builder=norm_free_builder)
    steps = 2 * (4 if drop_last else 5)   # the short last batch is one step, not two
    for accumulation, result in runs.items():
        assert result.global_step == steps
        assert [h["train_samples"] for h in result.history] == [32 if drop_last else 36] * 2
        assert [h["loss"] for h in result.history] == pytest.approx(
            [h["loss"] for h in runs[1].history], rel=1e-5)
    whole = _weights(tmp_path / "k1")
    for accumulation in (2, 4):
        split = _weights(tmp_path / f"k{accumulation}")
        for key in whole:
            torch.testing.assert_close(split[key], whole[key], rtol=1e-5, atol=1e-6)


def test_accumulation_with_batch_norm_counts_steps_alike(workdir, tmp_path):
    """Batch norm normalises each micro-batch by its own statistics, so the weights differ
    from whole batches (docs/training.md); steps, samples and the schedule do not."""
    base = ["optim.batch_size=8", "schedule.warmup_epochs=2"]
    whole = train(tiny_config(workdir, epochs=2, overrides=base), tmp_path / "whole",
                  model_builder=tiny_builder)
    split = train(tiny_config(workdir, epochs=2, overrides=base + ["optim.grad_accumulation=4"]),
                  tmp_path / "split", model_builder=tiny_builder)
    assert split.global_step == whole.global_step == 8
    for a, b in zip(split.history, whole.history):
        assert (a["lr"], a["train_samples"], a["global_step"]) == (
            b["lr"], b["train_samples"], b["global_step"])


class _Stop(Exception):
    pass


def test_accumulated_run_resumes_exactly(workdir, tmp_path):
    config = tiny_config(workdir, epochs=2, overrides=[
        "optim.batch_size=8", "optim.grad_accumulation=2", "run.checkpoint_every_steps=3",
        "model.dropout=0.3"])
    train(config, tmp_path / "straight", model_builder=tiny_builder)

    def stop(state):
        if state.global_step == 7:    # epoch 2, step 3; last checkpoint after step 6
            raise _Stop

    with pytest.raises(_Stop):
        train(config, tmp_path / "resumed", model_builder=tiny_builder, on_step_end=stop)
    position = load_checkpoint(checkpoint_path(tmp_path / "resumed", "last"))["position"]
    assert (position["epoch"], position["step_in_epoch"], position["global_step"]) == (1, 2, 6)
    train(None, tmp_path / "resumed", model_builder=tiny_builder)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_step_losses_reach_the_hook_once_per_optimizer_step(workdir, tmp_path):
    seen = []
    config = tiny_config(workdir, epochs=1, overrides=["optim.batch_size=8",
                                                       "optim.grad_accumulation=4"])
    train(config, tmp_path / "run", model_builder=tiny_builder,
          on_step_end=lambda state: seen.append((state.step_in_epoch, state.losses["loss"])))
    assert [step for step, _ in seen] == [1, 2, 3, 4]
    epoch_loss = read_metrics(tmp_path / "run")[0]["loss"]
    assert sum(loss for _, loss in seen) / 4 == pytest.approx(epoch_loss, rel=1e-5)


def test_throughput_line_reports_the_data_wait(workdir, tmp_path, monkeypatch, capsys):
    config = tiny_config(workdir, epochs=1, overrides=["run.threads=1"])
    quick = train(config, tmp_path / "quick", model_builder=tiny_builder).history[0]
    original = SkeletonDataset.__getitem__

    def slow(self, item):
        time.sleep(0.03)
        return original(self, item)

    monkeypatch.setattr(SkeletonDataset, "__getitem__", slow)
    slowed = train(tiny_config(workdir, epochs=1, overrides=["run.progress=true"]),
                   tmp_path / "slow", model_builder=tiny_builder).history[0]
    for line in (quick, slowed):
        assert 0 <= line["data_wait_share"] <= 1
        assert line["data_wait_s"] <= line["time_s"]
        assert line["train_samples_per_s"] > 0
    assert quick["threads"] == 1
    # 36 samples x 30 ms of loading: at least a second of waiting, most of the epoch
    assert slowed["data_wait_s"] >= 1.0 and slowed["data_wait_share"] > 0.5
    assert slowed["data_wait_share"] > quick["data_wait_share"]
    summary = capsys.readouterr().out
    assert "samples/s" in summary and f"data wait {100 * slowed['data_wait_share']:.0f}%" \
        in summary


def test_fp16_on_the_cpu_is_refused(workdir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: fp16 is allowed")
    with pytest.raises(ConfigError, match="fp16 needs a GPU"):
        loop.make_accelerator(tiny_config(workdir, overrides=["run.mixed_precision=fp16"]))


def test_cli_options_reach_the_config(workdir, tmp_path):
    from click.testing import CliRunner

    from train.cli.main import cli
    args = ["run", str(tmp_path / "run"), "--preset", "nw-ucla", "--workdir", str(workdir),
            "--print-config"]
    result = CliRunner().invoke(cli, args + ["--mixed-precision", "bf16", "--threads", "2"])
    assert result.exit_code == 0, result.output
    assert "mixed_precision: bf16" in result.output and "threads: 2" in result.output
    assert "impl: fast" in result.output
    result = CliRunner().invoke(cli, args + ["--threads", "none"])
    assert result.exit_code == 2 and "run.threads must be auto or a positive number" \
        in result.output


@pytest.mark.slow
def test_bf16_training_of_the_fast_ctrgcn_through_the_cli(workdir, tmp_path):
    """A new process: accelerate keeps one precision per process."""
    import json
    import subprocess
    import sys
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "train", "run", str(run_dir), "--preset", "nw-ucla",
         "--workdir", str(workdir), "--mixed-precision", "bf16", "--threads", "1",
         "--set", "model.num_classes=3", "--set", "data.window=16", "--set", "data.repeat=1",
         "--set", "data.num_workers=0", "--set", "optim.batch_size=12",
         "--set", "optim.grad_accumulation=2", "--set", "schedule.epochs=1",
         "--set", "schedule.warmup_epochs=0", "--set", "run.progress=false"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    line = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert line["threads"] == 1 and line["global_step"] == 3
    assert 0 <= line["test_top1"] <= 1 and line["loss"] == line["loss"]   # finite, not NaN
    state = load_checkpoint(checkpoint_path(run_dir, "last"))
    assert state["model_info"]["impl"] == "fast"
    assert state["config"]["run"]["mixed_precision"] == "bf16"
