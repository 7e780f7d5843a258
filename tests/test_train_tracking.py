"""Experiment trackers through accelerate: TensorBoard event files read back, resuming the
same tracker run, W&B and MLflow (stand-in modules: no network, no package needed)."""

from __future__ import annotations

import json
import shutil
import sys
import types

import pytest
from click.testing import CliRunner

import train.tracking as tracking
from train.checkpoint import checkpoint_path
from train.cli.main import cli
from train.config import TrainConfig
from train.errors import ConfigError
from train.loop import read_metrics, train
from train.tracking import epoch_scalars, parse_log_with, resolve_log_with

from train_factories import make_workdir, tiny_builder, tiny_config

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("tracking") / "wd")   # 6 steps per epoch


def scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    events = event_accumulator.EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]}


def test_tensorboard_holds_every_epoch_number_and_the_step_losses(workdir, tmp_path):
    step_losses = []
    config = tiny_config(workdir, epochs=2, overrides=["run.log_with=tensorboard",
                                                       "run.log_every_steps=4"])
    result = train(config, tmp_path / "run", model_builder=tiny_builder,
                   on_step_end=lambda state: step_losses.append(state.losses["loss"]))
    assert result.trackers == ["tensorboard"]
    logged = scalars(tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    steps = [line["global_step"] for line in metrics]
    assert steps == [6, 12]
    for tag, key in (("loss/total", "loss"), ("epoch/lr", "lr"),
                     ("accuracy/train_top1", "train_top1"), ("accuracy/test_top1", "test_top1"),
                     ("accuracy/test_top5", "test_top5"),
                     ("epoch/train_samples_per_s", "train_samples_per_s")):
        assert [s for s, _ in logged[tag]] == steps, tag
        assert [v for _, v in logged[tag]] == pytest.approx([m[key] for m in metrics]), tag
    assert [v for _, v in logged["loss/cls"]] == pytest.approx(
        [m["losses"]["cls"] for m in metrics])
    # every 4 steps: the mean of the steps since the previous point
    assert [s for s, _ in logged["step/loss"]] == [4, 8, 12]
    assert [v for _, v in logged["step/loss"]] == pytest.approx(
        [sum(step_losses[i:i + 4]) / 4 for i in (0, 4, 8)])
    assert "global_step" not in " ".join(logged)
    record = json.loads((tmp_path / "run" / "trackers.json").read_text())
    assert record == {"tensorboard": {"log_dir": "tensorboard"}}


def test_a_resumed_run_continues_the_same_tensorboard_run_without_duplicates(workdir,
                                                                             tmp_path):
    config = tiny_config(workdir, epochs=2, overrides=["run.log_with=tensorboard",
                                                       "run.log_every_steps=3"])
    run_dir = tmp_path / "run"
    saved = tmp_path / "after-epoch-1.pt"

    def keep_epoch_one(state):
        if state.global_step == 7:           # last.pt holds the end of epoch 1 (step 6)
            shutil.copy(checkpoint_path(run_dir, "last"), saved)

    straight = train(config, run_dir, model_builder=tiny_builder, on_step_end=keep_epoch_one)
    # a crash after epoch 2 was logged but before its checkpoint was written: epoch 2 is
    # redone, and its points (steps 7..12) must replace the first ones, not repeat them
    shutil.copy(saved, checkpoint_path(run_dir, "last"))
    resumed = train(None, run_dir, model_builder=tiny_builder)
    assert resumed.global_step == straight.global_step == 12
    logged = scalars(run_dir)
    assert [s for s, _ in logged["loss/total"]] == [6, 12]
    assert [s for s, _ in logged["step/loss"]] == [3, 6, 9, 12]
    assert [v for _, v in logged["loss/total"]] == pytest.approx(
        [m["loss"] for m in read_metrics(run_dir)])
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2


def test_no_tracker(workdir, tmp_path):
    config = tiny_config(workdir, epochs=1, overrides=["run.log_with=none"])
    result = train(config, tmp_path / "run", model_builder=tiny_builder)
    assert result.trackers == []
    assert not (tmp_path / "run" / "tensorboard").exists()
    assert not (tmp_path / "run" / "trackers.json").exists()


def test_log_with_values(monkeypatch):
    assert parse_log_with("tensorboard, wandb") == ("tensorboard", "wandb")
    for bad in ("tensorbord", "auto,wandb", "", "none,all"):
        with pytest.raises(ConfigError, match="run.log_with must be one of auto, none, all"):
            parse_log_with(bad)
    with pytest.raises(ConfigError, match="run.log_with"):
        TrainConfig.from_dict({"run": {"log_with": "comet"}})
    with pytest.raises(ConfigError, match="run.log_every_steps must not be negative"):
        TrainConfig.from_dict({"run": {"log_every_steps": -1}})
    only_tb = {"tensorboard"}.__contains__
    assert resolve_log_with("auto", only_tb) == ["tensorboard"]
    assert resolve_log_with("auto", lambda name: False) == []
    assert resolve_log_with("all", only_tb) == ["tensorboard"]
    assert resolve_log_with("all", lambda name: True) == ["tensorboard", "wandb", "mlflow"]
    with pytest.raises(ConfigError, match=r"wandb is not installed; install wandb \(pip"):
        resolve_log_with("tensorboard,wandb", only_tb)


def test_a_tracker_that_is_not_installed_stops_the_run_before_it_starts(workdir, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setattr(tracking, "installed", lambda name: name == "tensorboard")
    config = tiny_config(workdir, epochs=1, overrides=["run.log_with=mlflow"])
    with pytest.raises(ConfigError, match="mlflow is not installed"):
        train(config, tmp_path / "run", model_builder=tiny_builder)
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_epoch_scalars_take_any_number_of_the_metrics_line():
    line = {"epoch": 3, "global_step": 30, "lr": 0.1, "loss": 1.5,
            "losses": {"cls": 1.0, "contrastive": 0.5}, "val_top1": 0.5, "test_top5": 0.9,
            "data_wait_share": 0.25, "note": "text", "flag": True, "nan": float("nan")}
    assert epoch_scalars(line) == {
        "epoch/epoch": 3.0, "epoch/lr": 0.1, "loss/total": 1.5, "loss/cls": 1.0,
        "loss/contrastive": 0.5, "accuracy/val_top1": 0.5, "accuracy/test_top5": 0.9,
        "epoch/data_wait_share": 0.25}


# --------------------------------------------------------------------------- W&B, MLflow


class _FakeRun:
    def __init__(self, options):
        self.options = options
        self.logged: list[tuple[int, dict]] = []
        self.finished = False

    def log(self, values, step=None):
        self.logged.append((step, dict(values)))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.ModuleType("wandb")
    module.runs, module.configs = [], []

    def init(project=None, **options):
        module.runs.append(_FakeRun({"project": project, **options}))
        return module.runs[-1]

    module.init = init
    module.config = types.SimpleNamespace(
        update=lambda values, allow_val_change=False: module.configs.append(values))
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.setattr(tracking, "installed", lambda name: True)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    return module


def test_wandb_runs_offline_and_a_resumed_run_continues_the_same_wandb_run(workdir, tmp_path,
                                                                           fake_wandb):
    run_dir = tmp_path / "run"
    config = tiny_config(workdir, epochs=1, overrides=["run.log_with=wandb"])
    train(config, run_dir, model_builder=tiny_builder)
    train(tiny_config(workdir, epochs=2, overrides=["run.log_with=wandb"]), run_dir,
          model_builder=tiny_builder)
    first, second = fake_wandb.runs
    assert first.options["mode"] == second.options["mode"] == "offline"
    assert first.options["id"] == second.options["id"]
    assert first.options["resume"] == "allow" and first.options["project"] == "mmcl"
    assert first.options["dir"] == str(run_dir.resolve()) and first.options["name"] == "run"
    assert first.finished and second.finished
    assert [step for step, values in first.logged + second.logged
            if "loss/total" in values] == [6, 12]
    assert len(fake_wandb.configs) == 1 and fake_wandb.configs[0]["optim.lr"] == 0.05
    record = json.loads((run_dir / "trackers.json").read_text())
    assert record["wandb"]["id"] == first.options["id"]


def test_wandb_mode_from_the_environment_is_left_alone(workdir, tmp_path, fake_wandb,
                                                       monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_PROJECT", "ablations")
    train(tiny_config(workdir, epochs=1, overrides=["run.log_with=wandb"]), tmp_path / "run",
          model_builder=tiny_builder)
    assert "mode" not in fake_wandb.runs[0].options
    assert fake_wandb.runs[0].options["project"] == "ablations"


@pytest.fixture
def fake_mlflow(monkeypatch):
    module = types.ModuleType("mlflow")
    module.started, module.metrics, module.params, module.uris = [], [], [], []
    module.utils = types.SimpleNamespace(validation=types.SimpleNamespace(
        MAX_PARAM_VAL_LENGTH=6000, MAX_PARAMS_TAGS_PER_BATCH=100))
    module.set_tracking_uri = module.uris.append
    module.search_experiments = lambda filter_string: []
    module.create_experiment = lambda name, artifact_location, tags: "1"

    def start_run(run_id=None, **options):
        module.started.append(run_id)
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id=run_id or "run-1"))

    module.start_run = start_run
    module.log_params = module.params.append
    module.log_metrics = lambda values, step=None: module.metrics.append((step, values))
    module.end_run = lambda: None
    monkeypatch.setitem(sys.modules, "mlflow", module)
    monkeypatch.setattr(tracking, "installed", lambda name: True)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return module


def test_mlflow_logs_to_the_run_dir_and_a_resumed_run_reuses_its_run_id(workdir, tmp_path,
                                                                        fake_mlflow):
    run_dir = tmp_path / "run"
    params = []
    for epochs in (1, 2):
        train(tiny_config(workdir, epochs=epochs, overrides=["run.log_with=mlflow"]), run_dir,
              model_builder=tiny_builder)
        params.append(len(fake_mlflow.params))
    assert fake_mlflow.started == [None, "run-1"]
    assert fake_mlflow.uris == [f"sqlite:///{run_dir.resolve() / 'mlflow.db'}"] * 2
    assert params[0] > 0 and params[1] == params[0]     # parameters are set once per run
    assert {"optim.lr": 0.05}.items() <= fake_mlflow.params[0].items()
    assert [step for step, values in fake_mlflow.metrics if "loss/total" in values] == [6, 12]
    assert json.loads((run_dir / "trackers.json").read_text())["mlflow"]["run_id"] == "run-1"


def test_run_command_log_with_option(workdir, tmp_path, monkeypatch):
    import train.loop as loop
    monkeypatch.setattr(loop, "build_backbone", tiny_builder)
    args = ["run", str(tmp_path / "run"), "--preset", "nw-ucla", "--workdir", str(workdir),
            "--set", "data.window=16", "--set", "data.num_workers=0", "--set",
            "schedule.epochs=1", "--set", "model.num_classes=3", "--set", "run.progress=false",
            "--log-with", "tensorboard"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "tensorboard --logdir" in result.output
    assert "log_with: tensorboard" in (tmp_path / "run" / "config.yaml").read_text()
    assert scalars(tmp_path / "run")["loss/total"]
    bad = CliRunner().invoke(cli, args[:-1] + ["tensorbored"])
    assert bad.exit_code == 2 and "run.log_with must be one of" in bad.output
