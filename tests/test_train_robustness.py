"""Regression tests for the trainer's robustness fixes: durable writes, safe checkpoint
errors, resumed-epoch timing, one sync per step, absolute paths, persistent workers."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

import train.evaluate as evaluate_module
import train.export as export_module
import train.files as files_module
import train.loop as loop_module
from train import checkpoint as ckpt
from train.config import resolve_config
from train.errors import CheckpointError
from train.loop import read_metrics, train
from train.models.reference_import import read_state_dict
from train_factories import make_workdir, tiny_builder, tiny_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("robust") / "wd", per_class_view=4)


class _NotATensor:
    pass


def test_a_pickled_object_is_refused_without_suggesting_unsafe_loading(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"format": ckpt.FORMAT, "model": _NotATensor()}, path)
    with pytest.raises(CheckpointError) as caught:
        ckpt.load_checkpoint(path)
    message = str(caught.value)
    assert "not a tensors-only trainer checkpoint (or corrupt)" in message
    assert "weights_only" not in message and "trust" not in message
    with pytest.raises(CheckpointError) as caught:
        read_state_dict(path)                  # model.init_from's reader: same rule
    assert "tensors-only" in str(caught.value) and "weights_only" not in str(caught.value)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": _NotATensor()}))
    with pytest.raises(CheckpointError, match="tensors-only trainer checkpoint"):
        ckpt.load_checkpoint(plain)


def test_checkpoints_are_fsynced_and_replaced_atomically(tmp_path, monkeypatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd")
                      else str(fd))
        return real_fsync(fd)

    monkeypatch.setattr(files_module.os, "fsync", spy)
    path = tmp_path / "checkpoints" / "last.pt"
    ckpt.save_checkpoint(path, {"format": ckpt.FORMAT, "version": ckpt.VERSION, "x": 1})
    assert ckpt.load_checkpoint(path)["x"] == 1
    if os.path.exists("/proc/self/fd"):
        assert any(".last.pt.tmp-" in name for name in synced)     # the file, before rename
        assert str(path.parent) in synced                           # then its folder
    else:
        assert len(synced) >= 2

    def broken(payload, handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ckpt.save_checkpoint(path, {"x": 2})
    assert ckpt.load_checkpoint(path)["x"] == 1                    # old file intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]   # no temp left


def test_run_files_and_reports_are_written_atomically(workdir, tmp_path, monkeypatch):
    written: list[str] = []
    original = files_module.write_text_atomic

    def record(path, text):
        written.append(Path(path).name)
        return original(path, text)

    for module in (loop_module, evaluate_module, export_module):
        monkeypatch.setattr(module, "write_text_atomic", record)
    run_dir = tmp_path / "run"
    train(tiny_config(workdir, epochs=1), run_dir, model_builder=tiny_builder)
    assert {"config.yaml", "data.json", "metrics.jsonl"} <= set(written)
    evaluate_module.evaluate_run(run_dir, model_builder=tiny_builder)
    assert {"metrics.json", "per_class.csv", "confusion.csv"} <= set(written)


def test_a_mid_epoch_resume_keeps_the_time_spent_before(workdir, tmp_path):
    config = tiny_config(workdir, epochs=1, overrides=["run.checkpoint_every_steps=2"])

    class Stop(Exception):
        pass

    def slow_then_stop(state):
        import time
        time.sleep(0.4)
        if state.global_step == 3:
            raise Stop

    with pytest.raises(Stop):
        train(config, tmp_path / "run", model_builder=tiny_builder, on_step_end=slow_then_stop)
    position = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "run", "last"))["position"]
    assert position["step_in_epoch"] == 2 and position["elapsed_s"] >= 0.4
    train(None, tmp_path / "run", model_builder=tiny_builder)
    line = read_metrics(tmp_path / "run")[-1]
    assert line["time_s"] >= position["elapsed_s"]
    assert line["train_samples_per_s"] == pytest.approx(
        line["train_samples"] / line["time_s"], rel=0.01)
    end = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "run", "last"))["position"]
    assert end["elapsed_s"] == 0.0


def test_one_reduce_per_step_and_nan_still_stops(workdir, tmp_path, monkeypatch):
    """With several processes a step makes one collective (loss, hits and NaN flag)."""
    calls = []

    def reduce(self, tensor, reduction="sum", scale=1.0):
        calls.append(tuple(tensor.shape))
        return tensor * 2          # as if a second process had the same values

    monkeypatch.setattr(Accelerator, "num_processes", property(lambda self: 2))
    monkeypatch.setattr(Accelerator, "reduce", reduce)
    config = tiny_config(workdir, epochs=1, overrides=["run.eval_every_epochs=0"])
    result = train(config, tmp_path / "run", model_builder=tiny_builder)
    assert len(calls) == result.global_step > 0
    line = read_metrics(tmp_path / "run")[-1]
    assert line["train_samples"] == 2 * result.global_step * config.optim.batch_size // 2
    from train.errors import NonFiniteLossError
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 1, step (\d+) \(global step \1\)"):
        train(tiny_config(workdir, epochs=1, overrides=["optim.lr=1e30",
                                                        "run.eval_every_epochs=0",
                                                        "schedule.warmup_epochs=0"]),
              tmp_path / "nan", model_builder=tiny_builder)


def test_relative_paths_are_recorded_absolute(workdir, tmp_path, monkeypatch):
    monkeypatch.chdir(workdir.parent)
    config = tiny_config(Path(workdir.name), epochs=1)
    assert config.data.workdir == workdir.name          # as given
    train(config, tmp_path / "run", model_builder=tiny_builder)
    recorded = resolve_config(files=[tmp_path / "run" / "config.yaml"])
    assert recorded.data.workdir == str(workdir.resolve())
    # resuming with the same relative path is the same config, not a difference
    train(tiny_config(Path(workdir.name), epochs=1), tmp_path / "run",
          model_builder=tiny_builder)


def test_persistent_workers_see_each_epoch(workdir, tmp_path, monkeypatch):
    """Workers that live across epochs still draw each epoch's augmentation."""
    made = []

    class Spy(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs):
            made.append(kwargs.get("persistent_workers"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(loop_module, "DataLoader", Spy)
    overrides = ["run.eval_every_epochs=0"]
    inline = train(tiny_config(workdir, epochs=2, overrides=overrides),
                   tmp_path / "inline", model_builder=tiny_builder)
    workers = train(tiny_config(workdir, epochs=2,
                                overrides=[*overrides, "data.num_workers=1"]),
                    tmp_path / "workers", model_builder=tiny_builder)
    assert made == [False, True]
    assert [h["loss"] for h in workers.history] == pytest.approx(
        [h["loss"] for h in inline.history], rel=1e-5)
    a = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "inline", "last"))["model"]
    b = ckpt.load_checkpoint(ckpt.checkpoint_path(tmp_path / "workers", "last"))["model"]
    assert all(torch.allclose(a[k].float(), b[k].float()) for k in a)
