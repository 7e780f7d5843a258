"""The rgb-features stage on a tiny ResNet."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import MissingCacheError
from data_manifest.schemas import RGB_FEATURES
from features_factories import (jpeg_bytes, make_workdir, models, one_torch_thread, workdir,
                                write_stitch_cache)  # noqa: F401 (fixture)
from pipeline.cli.main import cli
from pipeline.models.errors import ModelError
from pipeline.stages.rgb_features import RgbFeatureTask, cache_rgb_features


pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _features(workdir, result):
    with workdir.reader(RGB_FEATURES, result.cache_path.name) as reader:
        return {sample_id: reader.get(sample_id)["feature"] for sample_id in reader.ids}


def test_pooled_and_logits_caches(workdir, models):
    pooled = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    logits = cache_rgb_features(workdir, str(models["resnet"]), output="logits", progress=False)
    assert pooled.cache_path != logits.cache_path            # the output names the cache too
    pooled_values, logit_values = _features(workdir, pooled), _features(workdir, logits)
    assert len(pooled_values) == 5
    assert all(v.shape == (16,) and v.dtype == np.float32 for v in pooled_values.values())
    assert all(v.shape == (10,) for v in logit_values.values())
    assert not np.allclose(pooled_values["s000"], pooled_values["s001"])
    spec = json.loads((pooled.cache_path / "spec.json").read_text())
    assert spec["params"]["encoder"]["name"] == str(models["resnet"].resolve())
    assert spec["params"]["output"] == "pooled" and spec["params"]["dtype"] == "float32"
    assert list(spec["upstream"]) == ["stitch/default"]


def test_batch_size_does_not_change_features(tmp_path, models):
    results = []
    for batch_size in (1, 5):
        workdir = make_workdir(tmp_path / str(batch_size), num_samples=5, shard_size=5)
        write_stitch_cache(workdir, width=200, height=48)
        results.append(_features(workdir, cache_rgb_features(
            workdir, str(models["resnet"]), batch_size=batch_size, progress=False)))
    for sample_id, feature in results[0].items():
        np.testing.assert_allclose(feature, results[1][sample_id], atol=1e-5)


def test_rerun_does_not_load_the_encoder(workdir, models, monkeypatch):
    cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    def refuse(self):
        raise AssertionError("encoder loaded with nothing to do")
    monkeypatch.setattr(RgbFeatureTask, "load_model", refuse)
    again = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    assert again.shards_written == 0 and again.shards_skipped == 3


def test_corrupt_image_and_missing_stitch(tmp_path, models):
    workdir = make_workdir(tmp_path, num_samples=3, shard_size=3)
    with pytest.raises(MissingCacheError, match="pipeline stitch"):
        cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    rng = np.random.default_rng(0)
    images = {s.id: jpeg_bytes(rng) for s in workdir.samples}
    images["s002"] = b"not a jpeg at all"
    write_stitch_cache(workdir, images)
    result = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    assert [f["id"] for f in result.failures] == ["s002"]
    assert "corrupt" in result.failures[0]["reason"]
    assert sorted(_features(workdir, result)) == ["s000", "s001"]


def test_bad_encoders(workdir, models, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        cache_rgb_features(workdir, str(tmp_path / "none"), progress=False)
    with pytest.raises(ModelError, match="not a supported image encoder"):
        cache_rgb_features(workdir, str(models["blip-vqa"]), progress=False)
    with pytest.raises(ValueError, match="output must be one of"):
        cache_rgb_features(workdir, str(models["resnet"]), output="pool", progress=False)


def test_cli(workdir, models):
    result = CliRunner().invoke(cli, ["cache-rgb-features", str(workdir.path), "--encoder",
                                      str(models["resnet"]), "--keep-aspect", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 shard(s) written" in result.output and "cache:" in result.output


def test_an_array_task_needs_and_writes_only_its_part(tmp_path, models, monkeypatch):
    """Slurm array task 1 of 2: stitch shard 1 is all it reads, shard 1 all it writes."""
    workdir = make_workdir(tmp_path, num_samples=6, shard_size=2)
    write_stitch_cache(workdir, shards=[1])                 # the other task's part is not made
    monkeypatch.setenv("PIPELINE_PART", "1/2")
    result = cache_rgb_features(workdir, str(models["resnet"]), progress=False)
    assert (result.shards_total, result.shards_written) == (1, 1)
    assert sorted(workdir.cache_dir(RGB_FEATURES, result.cache_path.name).shard_files()) == [1]
