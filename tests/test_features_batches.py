"""How the model stages run their batches: one process, the stitch cache they were planned
on (read per shard, then closed), and a failing model call stops the run."""

import h5py
import pytest
import torch
from click.testing import CliRunner

from data_manifest.errors import MissingCacheError
from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES, STITCH
from features_factories import (models, one_torch_thread, workdir, write_stitch_cache)  # noqa: F401 (fixture)
from pipeline.cli.main import cli
from pipeline.models.errors import ModelRunError
from pipeline.stages.llm_features import LlmFeatureTask, cache_llm_features
from pipeline.stages.rgb_features import RgbFeatureTask, cache_rgb_features
from pipeline.stages.run_all import parse_config, stage_options

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _shards(workdir, stage):
    cache = next(p for p in (workdir.path / "cache" / stage).iterdir() if p.is_dir())
    return sorted(p.name for p in cache.glob("shard-*.h5"))


@pytest.mark.parametrize("command", ["cache-llm-features", "cache-rgb-features"])
def test_jobs_are_refused_with_the_reason(workdir, command):
    result = CliRunner().invoke(cli, [command, str(workdir.path), "-j", "2", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "each worker would load its own model" in result.output
    assert "accelerate launch" in result.output
    assert not (workdir.path / "cache" / LLM_FEATURES).exists()
    assert not (workdir.path / "cache" / RGB_FEATURES).exists()
    assert "--jobs" not in CliRunner().invoke(cli, [command, "--help"]).output


def test_pipeline_run_never_gives_jobs_to_a_model_stage():
    for stage in (RGB_FEATURES, LLM_FEATURES):
        assert "jobs" not in stage_options(stage)
        assert "jobs" not in parse_config({"jobs": 2}).kwargs_for(stage)
        with pytest.raises(ValueError, match="takes no jobs.*accelerate launch"):
            parse_config({stage: {"jobs": 2}})


def test_one_jobs_on_a_model_command_is_harmless(workdir, models):
    result = CliRunner().invoke(cli, ["cache-rgb-features", str(workdir.path), "--encoder",
                                      str(models["resnet"]), "-j", "1", "--no-progress"])
    assert result.exit_code == 0, result.output


def test_revision_help_names_the_default_branch():
    for command in ("cache-llm-features", "cache-rgb-features"):
        text = " ".join(CliRunner().invoke(cli, [command, "--help"]).output.split())
        assert "default: main" not in text
        assert "the repository's default branch" in text


def test_stitch_shards_are_read_then_closed(workdir, models, monkeypatch):
    open_during_batches = []
    original = RgbFeatureTask.run_batch
    def spy(self, model, images):
        names = [i.name.decode() for i in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE)]
        open_during_batches.append([n for n in names if f"/{STITCH}/" in n])
        return original(self, model, images)
    monkeypatch.setattr(RgbFeatureTask, "run_batch", spy)
    result = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    assert result.shards_written == 3 and len(open_during_batches) == 3
    assert open_during_batches == [[], [], []]


def test_a_stitch_cache_rebuilt_meanwhile_is_refused(workdir, models, monkeypatch):
    """The stitch cache is rebuilt with other settings while the stage runs: the next
    shard must not read the new images into a cache whose spec names the old ones."""
    original = RgbFeatureTask.run_batch
    def rebuild_stitch_once(self, model, images):
        if not getattr(rebuild_stitch_once, "done", False):
            rebuild_stitch_once.done = True
            new_spec = workdir.spec(STITCH, {"canvas": [160, 48], "tiles": 5, "test": True})
            workdir.cache_dir(STITCH).prepare(new_spec, overwrite=True)
            write_stitch_cache(workdir, width=160, height=48, seed=7)
        return original(self, model, images)
    monkeypatch.setattr(RgbFeatureTask, "run_batch", rebuild_stitch_once)
    with pytest.raises(MissingCacheError, match="stitch cache .* changed while "
                                                "rgb-features was running"):
        cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    assert _shards(workdir, RGB_FEATURES) == ["shard-00000.h5"]


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_failing_model_call_stops_the_run(workdir, models, monkeypatch, batch_size):
    """A model/device error is nobody's sample: not recorded against every sample (as a
    batch of one used to), but stopping the run; finished shards stay."""
    original = LlmFeatureTask.run_batch
    calls = {"n": 0}
    def broken_after_first_shard(self, model, images):
        calls["n"] += 1
        if calls["n"] > 2 // batch_size:
            raise RuntimeError("CUDA error: device-side assert triggered")
        return original(self, model, images)
    monkeypatch.setattr(LlmFeatureTask, "run_batch", broken_after_first_shard)
    with pytest.raises(ModelRunError, match="the model failed \\(shard 1, samples? s002.*\\): "
                                            "RuntimeError: CUDA error.*run stops"):
        cache_llm_features(workdir, str(models["blip-vqa"]), max_new_tokens=3,
                           batch_size=batch_size, progress=False)
    assert calls["n"] == 2 // batch_size + 1                    # no retries, no going on
    assert _shards(workdir, LLM_FEATURES) == ["shard-00000.h5"]


def test_commands_exit_3_when_the_model_fails_or_runs_out_of_memory(workdir, models,
                                                                    monkeypatch):
    runner = CliRunner()
    args = ["cache-rgb-features", str(workdir.path), "--encoder", str(models["resnet"]),
            "--batch-size", "1", "--no-progress"]
    def broken(self, model, images):
        raise RuntimeError("expected all tensors to be on the same device")
    monkeypatch.setattr(RgbFeatureTask, "run_batch", broken)
    result = runner.invoke(cli, args)
    assert result.exit_code == 3, result.output
    assert "error: the model failed (shard 0, sample s000)" in result.output
    assert "same device" in result.output and "Traceback" not in result.output
    def out_of_memory(self, model, images):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr(RgbFeatureTask, "run_batch", out_of_memory)
    for command in (args, ["run", str(workdir.path), "--from", "rgb-features", "--to",
                           "rgb-features", "--encoder", str(models["resnet"]), "--no-progress",
                           "--set", "rgb-features.batch_size=1"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 3, result.output
        assert "lower --batch-size (it is 1)" in result.output


def test_rebuild_starts_the_cache_again(workdir, models):
    first = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    again = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    assert again.shards_written == 0
    rebuilt = cache_rgb_features(workdir, str(models["resnet"]), progress=False, rebuild=True)
    assert rebuilt.shards_written == 3 and rebuilt.cache_path == first.cache_path
    result = CliRunner().invoke(cli, ["cache-rgb-features", str(workdir.path), "--encoder",
                                      str(models["resnet"]), "--rebuild", "--no-progress"])
    assert result.exit_code == 0 and "3 shard(s) written" in result.output, result.output
    assert "--rebuild" in CliRunner().invoke(cli, ["cache-llm-features", "--help"]).output


def test_pipeline_run_takes_rebuild_only_per_stage():
    assert parse_config({"llm-features": {"rebuild": True}}).kwargs_for(LLM_FEATURES)[
        "rebuild"] is True
    with pytest.raises(ValueError, match="unknown key 'rebuild'"):
        parse_config({"rebuild": True})
    assert "--rebuild" not in CliRunner().invoke(cli, ["run", "--help"]).output
