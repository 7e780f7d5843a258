"""The training loop: it learns, logs, checkpoints, resumes exactly and fails clearly."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from train.checkpoint import CheckpointError, FORMAT, checkpoint_path, load_checkpoint
from train.errors import ConfigError, NonFiniteLossError
from train.loop import read_metrics, train
from train.models.reference_import import load_checked
from train.objectives import ObjectivePlan, StepOutput
from train.schedule import build_scheduler
from train_factories import TinyGCN, make_workdir, tiny_builder, tiny_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("loop") / "wd", per_class_view=6)


@pytest.fixture(scope="module")
def finished(workdir, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    result = train(tiny_config(workdir, epochs=4), run_dir, model_builder=tiny_builder)
    return run_dir, result


def test_short_run_learns_above_chance(finished):
    run_dir, result = finished
    assert result.epochs_done == 4 and result.global_step == 4 * 9
    last = result.history[-1]
    assert last["test_top1"] >= 0.6          # 3 balanced classes: chance is 1/3
    assert last["loss"] < result.history[0]["loss"]
    # no validation part: no best epoch is chosen (never on the test part)
    assert result.best is None and not checkpoint_path(run_dir, "best").exists()


def test_metrics_and_checkpoints_are_written(finished):
    run_dir, result = finished
    lines = read_metrics(run_dir)
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    for key in ("loss", "lr", "train_top1", "test_top1", "test_top5", "time_s", "losses"):
        assert key in lines[0]
    assert lines[0]["lr"] == pytest.approx(0.05)          # warm-up of 1 epoch: full lr
    assert lines[0]["losses"]["cls"] == pytest.approx(lines[0]["loss"])
    assert (run_dir / "config.yaml").is_file()
    last = load_checkpoint(checkpoint_path(run_dir, "last"))
    assert last["format"] == FORMAT and last["kind"] == "last"
    assert last["position"] == {**last["position"], "epoch": 4, "step_in_epoch": 0,
                                "global_step": 36}
    assert {"optimizer", "scheduler", "rng", "model", "config", "model_info"} <= set(last)
    assert last["model_info"]["num_classes"] == 3 and last["model_info"]["layout"] == "nw-ucla"
    model = tiny_builder(tiny_config(run_dir))
    load_checked(model, last["model"], "last")            # loads into a fresh backbone


def test_rerunning_a_finished_run_changes_nothing(finished):
    run_dir, _ = finished
    before = load_checkpoint(checkpoint_path(run_dir, "last"))["model"]
    result = train(None, run_dir, model_builder=tiny_builder)
    after = load_checkpoint(checkpoint_path(run_dir, "last"))["model"]
    assert result.epochs_done == 4 and len(read_metrics(run_dir)) == 4
    assert all(torch.equal(before[k], after[k]) for k in before)


class _Stop(Exception):
    pass


def test_interrupted_and_resumed_run_ends_with_identical_weights(workdir, tmp_path):
    # dropout makes the result depend on the restored RNG state too
    config = tiny_config(workdir, epochs=3, overrides=["model.dropout=0.3",
                                                       "run.checkpoint_every_steps=4"])
    straight = train(config, tmp_path / "straight", model_builder=tiny_builder)

    def stop(state):
        if state.global_step == 14:    # mid epoch 2; last checkpoint at step 12
            raise _Stop

    with pytest.raises(_Stop):
        train(config, tmp_path / "resumed", model_builder=tiny_builder, on_step_end=stop)
    position = load_checkpoint(checkpoint_path(tmp_path / "resumed", "last"))["position"]
    assert (position["epoch"], position["step_in_epoch"], position["global_step"]) == (1, 3, 12)
    resumed = train(None, tmp_path / "resumed", model_builder=tiny_builder)
    a = load_checkpoint(checkpoint_path(tmp_path / "straight", "last"))
    b = load_checkpoint(checkpoint_path(tmp_path / "resumed", "last"))
    assert set(a["model"]) == set(b["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in ("momentum_buffer",):
        for state_a, state_b in zip(a["optimizer"]["state"].values(),
                                    b["optimizer"]["state"].values()):
            assert torch.equal(state_a[key], state_b[key])
    assert resumed.global_step == straight.global_step == 27
    # the resumed epoch's metrics cover the whole epoch, not only the part after resuming
    assert [h["loss"] for h in resumed.history] == pytest.approx(
        [h["loss"] for h in straight.history])


@pytest.mark.parametrize("kind, extra", [("cosine", []), ("step", ["schedule.steps=[2, 4]"])])
def test_a_longer_resume_follows_the_new_schedule(workdir, tmp_path, kind, extra):
    """Regression: the scheduler's state dict restored the cosine factor's old ``epochs``,
    so a run resumed with more epochs stayed at the old schedule's end (lr * min ratio)."""
    overrides = [f"schedule.kind={kind}", "run.eval_every_epochs=0",
                 "schedule.min_lr_ratio=0.01", *extra]
    run_dir = tmp_path / "run"
    train(tiny_config(workdir, epochs=3, overrides=overrides), run_dir,
          model_builder=tiny_builder)
    last = checkpoint_path(run_dir, "last")
    state = load_checkpoint(last)
    assert "lr_lambdas" not in state["scheduler"]       # the factor comes from the config
    if kind == "cosine":                                 # as checkpoints of old versions
        state["scheduler"]["lr_lambdas"] = [{"warmup_epochs": 1, "epochs": 3,
                                             "min_ratio": 0.01}]
        torch.save(state, last)
    longer = tiny_config(workdir, epochs=6, overrides=overrides)
    result = train(longer, run_dir, model_builder=tiny_builder)
    factor = build_scheduler(torch.optim.SGD([torch.zeros(1)], lr=1.0),
                             longer.schedule).lr_lambdas[0]
    assert [line["lr"] for line in result.history][3:] == pytest.approx(
        [0.05 * factor(epoch) for epoch in (3, 4, 5)])


def test_evaluation_workers_live_for_the_whole_run(workdir, tmp_path, monkeypatch):
    """Regression: every evaluated epoch made new val/test DataLoaders, whose workers
    started again and reopened the shards."""
    import train.scoring as scoring
    made, iterators = [], []

    class Recording(DataLoader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

        def __iter__(self):
            iterator = super().__iter__()
            iterators.append((self, iterator))
            return iterator

    monkeypatch.setattr(scoring, "DataLoader", Recording)
    config = tiny_config(workdir, epochs=3, overrides=["data.num_workers=1",
                                                       "data.val_fraction=0.25"])
    result = train(config, tmp_path / "run", model_builder=tiny_builder)
    assert all("val_top1" in line and "test_top1" in line for line in result.history)
    assert len(made) == 2 and all(loader.persistent_workers for loader in made)
    for loader in made:                 # one iterator, so one set of workers, per part
        assert len({id(it) for owner, it in iterators if owner is loader}) == 1
        assert sum(owner is loader for owner, _ in iterators) == 3
    made.clear()
    iterators.clear()


def test_one_device_to_host_transfer_per_optimizer_step(workdir, tmp_path, monkeypatch):
    """Regression: the step statistics were copied to the host once per micro-batch (a
    blocking sync each on a GPU); now once per optimizer step, however many micro-batches."""
    transfers = []
    for method in ("cpu", "item"):
        original = getattr(torch.Tensor, method)

        def counting(self, *args, _original=original, **kwargs):
            transfers.append(1)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, method, counting)
    seen = []
    config = tiny_config(workdir, epochs=1, overrides=[
        "optim.batch_size=6", "optim.grad_accumulation=3", "run.eval_every_epochs=0"])
    train(config, tmp_path / "run", model_builder=tiny_builder,
          on_step_end=lambda state: seen.append(len(transfers)))
    assert len(seen) == 6                              # 36 samples, batches of 6
    assert [b - a for a, b in zip(seen, seen[1:])] == [1] * 5


def test_resume_with_another_config_is_refused(finished, workdir):
    run_dir, _ = finished
    with pytest.raises(ConfigError, match="optim.lr: 0.05 -> 0.01"):
        train(tiny_config(workdir, epochs=4, overrides=["optim.lr=0.01"]), run_dir,
              model_builder=tiny_builder)


def test_corrupt_and_foreign_checkpoints_are_clear_errors(finished, tmp_path):
    run_dir, _ = finished
    broken = tmp_path / "broken.pt"
    broken.write_bytes(checkpoint_path(run_dir, "last").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(broken)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a trainer checkpoint"):
        load_checkpoint(foreign)
    other = TinyGCN(num_classes=7, num_joints=20)
    with pytest.raises(CheckpointError, match=r"fc.weight \(3, 16\) vs model \(7, 16\)"):
        load_checked(other, load_checkpoint(checkpoint_path(run_dir, "last"))["model"],
                     "last")
    with pytest.raises(CheckpointError, match="missing keys: data_bn.bias, data_bn.num_batches_tracked"):
        state = load_checkpoint(checkpoint_path(run_dir, "last"))["model"]
        load_checked(TinyGCN(3, 20), {k: v for k, v in state.items()
                                      if not k.startswith("data_bn.")}, "last")


def test_resuming_from_a_truncated_last_checkpoint_fails_clearly(workdir, tmp_path):
    config = tiny_config(workdir, epochs=1)
    train(config, tmp_path / "run", model_builder=tiny_builder)
    path = checkpoint_path(tmp_path / "run", "last")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated"):
        train(None, tmp_path / "run", model_builder=tiny_builder)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_nan_loss_stops_with_the_step_and_a_hint(tmp_path, accumulation):
    """With micro-batches, the NaN/inf check runs once per optimizer step, before it is
    taken, and still names the samples of the micro-batch that held them."""
    root = make_workdir(tmp_path / "wd", per_class_view=2, nan_ids=["a01_s01_e00_v01"])
    steps = []
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step \d+ .*a01_s01_e00_v01"):
        train(tiny_config(root, epochs=1,
                          overrides=[f"optim.grad_accumulation={accumulation}"]),
              tmp_path / "run", model_builder=tiny_builder, on_step_end=steps.append)
    assert all(state.losses["loss"] == state.losses["loss"] for state in steps)   # no NaN
    clean = make_workdir(tmp_path / "clean", per_class_view=2)
    with pytest.raises(NonFiniteLossError, match="lower optim.lr"):
        train(tiny_config(clean, epochs=2, overrides=["optim.lr=1e30"]), tmp_path / "run2",
              model_builder=tiny_builder)


class _AuxObjective(nn.Module):
    """A co-learning-style objective: its own head, an extra per-sample input, two losses."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(16, 4)

    def forward(self, batch, model):
        logits, feature = model.forward_features(batch["x"])
        aux = F.mse_loss(self.head(feature), batch["target"])
        return StepOutput(losses={"cls": F.cross_entropy(logits, batch["label"]),
                                  "aux": 0.1 * aux}, logits=logits)


class _Targets:
    def get(self, sample_id):
        import numpy as np
        return np.full(4, float(len(sample_id) % 3), dtype=np.float32)

    def missing(self, sample_ids):
        return []


def test_a_pluggable_objective_gets_extras_and_its_state_is_saved(workdir, tmp_path):
    objective = _AuxObjective()
    plan = ObjectivePlan(objective, extras={"target": _Targets()})
    result = train(tiny_config(workdir, epochs=1), tmp_path / "run",
                   model_builder=tiny_builder, objective_plan=plan)
    losses = result.history[0]["losses"]
    assert set(losses) == {"cls", "aux"}
    assert result.history[0]["loss"] == pytest.approx(losses["cls"] + losses["aux"])
    saved = load_checkpoint(checkpoint_path(tmp_path / "run", "last"))["objective"]
    assert set(saved) == {"head.weight", "head.bias"}
    assert torch.equal(saved["head.weight"], objective.head.weight.detach())
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["losses"]["aux"] > 0
