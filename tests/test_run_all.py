"""``pipeline run``: config handling, stage order, skipping what is done."""

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES
from features_factories import (QUESTION, jpeg_bytes, make_workdir, models, one_torch_thread,
                                write_stitch_cache)  # noqa: F401 (fixture)
from pipeline.cli.main import cli
from pipeline.stages.llm_features import LlmFeatureTask
from pipeline.stages.rgb_features import RgbFeatureTask
from pipeline.stages.run_all import (RUN_STAGES, StageFailedError, parse_config, run_all,
                                     stage_options)


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def test_every_stage_function_is_wired():
    for stage in RUN_STAGES:
        options = stage_options(stage)
        assert {"overwrite", "progress"} <= set(options), stage
    assert "questions" in stage_options(LLM_FEATURES)
    assert "encoder" in stage_options(RGB_FEATURES)


def test_config_parsing_and_unknown_keys():
    config = parse_config({"from": "stitch", "to": "rgb_features", "jobs": 2,
                           "frames": {"num_frames": 5}, "llm-features": {"questions": "why?"},
                           "stitch": {"canvas": [480, 240]}})
    assert config.stage_range() == ["stitch", "rgb-features"]
    assert config.stages["llm-features"]["questions"] == ["why?"]
    assert config.stages["stitch"]["canvas"] == (480, 240)
    assert config.kwargs_for("stitch")["jobs"] == 2
    assert "jobs" not in config.kwargs_for("llm-features")     # a model stage: no jobs
    with pytest.raises(ValueError, match="unknown key 'job'"):
        parse_config({"job": 2})
    with pytest.raises(ValueError, match="unknown option.*num_frame\\b.*takes:.*num_frames"):
        parse_config({"frames": {"num_frame": 5}})
    with pytest.raises(ValueError, match="unknown stage 'stich'"):
        parse_config({"from": "stich"})
    with pytest.raises(ValueError, match="comes after"):
        parse_config({"from": "llm-features", "to": "frames"}).stage_range()


def test_run_feature_stages_from_a_config_file(tmp_path, models, monkeypatch):
    workdir = make_workdir(tmp_path, num_samples=3, shard_size=2)
    write_stitch_cache(workdir, width=200, height=48)
    config_file = tmp_path / "run.yaml"
    config_file.write_text(yaml.safe_dump({
        "from": "rgb-features", "to": "llm-features", "progress": False,
        "rgb-features": {"encoder": str(models["resnet"]), "output": "logits"},
        "llm-features": {"model": str(models["blip-vqa"]), "questions": [QUESTION],
                         "max_new_tokens": 4}}))
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(workdir.path), "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    assert "== rgb-features" in result.output and "== llm-features" in result.output
    assert "== stitch" not in result.output
    assert len(workdir.cache_names(RGB_FEATURES)) == 1
    assert len(workdir.cache_names(LLM_FEATURES)) == 1
    # again: everything is done, no model is even loaded
    def refuse(self):
        raise AssertionError("model loaded on a run with nothing to do")
    monkeypatch.setattr(LlmFeatureTask, "load_model", refuse)
    monkeypatch.setattr(RgbFeatureTask, "load_model", refuse)
    again = runner.invoke(cli, ["run", str(workdir.path), "--config", str(config_file)])
    assert again.exit_code == 0, again.output
    assert again.output.count("0 shard(s) written, 2 already done") == 2
    monkeypatch.undo()
    # a flag overrides the file: another question is another cache
    third = runner.invoke(cli, ["run", str(workdir.path), "--config", str(config_file),
                                "--from", "llm-features", "--question", "is anyone sitting?"])
    assert third.exit_code == 0, third.output
    assert len(workdir.cache_names(LLM_FEATURES)) == 2


def test_a_stage_with_failures_stops_the_run(tmp_path, models):
    workdir = make_workdir(tmp_path, num_samples=2, shard_size=2)
    write_stitch_cache(workdir, {"s000": jpeg_bytes(np.random.default_rng(0)),
                                 "s001": "no video"})
    config = parse_config({"from": "rgb-features", "progress": False,
                           "rgb-features": {"encoder": str(models["resnet"])},
                           "llm-features": {"model": str(models["blip-vqa"])}})
    with pytest.raises(StageFailedError, match="stage rgb-features: 1 sample"):
        run_all(workdir, config, echo=lambda text: None)
    assert workdir.cache_names(LLM_FEATURES) == []
    config.skip_failures = True
    stages = [stage for stage, _ in run_all(workdir, config, echo=lambda text: None)]
    assert stages == ["rgb-features", "llm-features"]


def test_cli_errors(tmp_path):
    workdir = make_workdir(tmp_path, num_samples=2, shard_size=2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("from: frames\ncolour: red\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(workdir.path), "--config", str(bad)])
    assert result.exit_code == 2 and "unknown key 'colour'" in result.output
    result = runner.invoke(cli, ["run", str(workdir.path), "--set", "frames.nope=1"])
    assert result.exit_code == 2 and "unknown option(s) nope for stage frames" in result.output
    result = runner.invoke(cli, ["run", str(workdir.path), "--set", "framesnope"])
    assert result.exit_code == 2 and "STAGE.KEY=VALUE" in result.output
    missing = runner.invoke(cli, ["run", str(workdir.path), "--from", "llm-features",
                                  "--model", str(tmp_path / "any"), "--no-progress"])
    assert missing.exit_code == 2 and "pipeline stitch" in missing.output


@pytest.mark.slow
def test_end_to_end_on_the_demo_dataset(tmp_path, models):
    """The README's path: demo data -> manifest -> every stage, then a no-op second run."""
    from pipeline.manifest_builder import build_manifest
    from pipeline.synthetic.demo_dataset import make_demo_dataset

    make_demo_dataset(tmp_path / "demo", num_classes=2, samples_per_class=2)
    build_manifest("ntu60", tmp_path / "demo", tmp_path / "work", shard_size=2)
    args = ["run", str(tmp_path / "work"), "--model", str(models["qwen2-vl"]),
            "--encoder", str(models["resnet"]), "--no-progress"]
    runner = CliRunner()
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    for stage in RUN_STAGES:
        assert f"== {stage}" in first.output
    assert first.output.count("0 failure(s)") == len(RUN_STAGES)
    second = runner.invoke(cli, args)
    assert second.exit_code == 0
    assert second.output.count("0 shard(s) written, 2 already done") == len(RUN_STAGES)
    status = runner.invoke(cli, ["status", str(tmp_path / "work")])
    assert status.output.count("(complete)") == len(RUN_STAGES)
