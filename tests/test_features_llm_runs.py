"""The llm-features stage over several runs: batching, resuming, namespaces, OOM, ranks."""

import numpy as np
import pytest
import torch

from data_manifest.errors import StaleCacheError
from data_manifest.schemas import LLM_FEATURES
from features_factories import (QUESTION, make_workdir, models, one_torch_thread, workdir,
                                write_stitch_cache)  # noqa: F401 (fixture)
from pipeline.models.errors import BatchTooLargeError
from pipeline.stages.llm_features import LlmFeatureTask, cache_llm_features

QUESTIONS = [QUESTION, "what is the person doing?"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _read_all(workdir, result):
    with workdir.reader(LLM_FEATURES, result.cache_path.name) as reader:
        return {sample_id: reader.get(sample_id) for sample_id in reader.ids}


def _run(workdir, model, **kwargs):
    kwargs.setdefault("questions", QUESTIONS)
    kwargs.setdefault("max_new_tokens", 5)
    kwargs.setdefault("progress", False)
    return cache_llm_features(workdir, str(model), **kwargs)


def test_batched_run_equals_one_at_a_time_run(tmp_path, models):
    caches = []
    for batch_size in (1, 4):
        workdir = make_workdir(tmp_path / f"b{batch_size}", num_samples=5, shard_size=5)
        write_stitch_cache(workdir, width=200, height=48)
        caches.append(_read_all(workdir, _run(workdir, models["blip-vqa"],
                                              batch_size=batch_size)))
    one, batched = caches
    assert one.keys() == batched.keys()
    for sample_id in one:
        assert one[sample_id]["answers"] == batched[sample_id]["answers"]
        np.testing.assert_array_equal(one[sample_id]["token_ids"], batched[sample_id]["token_ids"])
        np.testing.assert_allclose(one[sample_id]["hidden"].astype(np.float32),
                                   batched[sample_id]["hidden"].astype(np.float32), atol=2e-3)


def test_rerun_with_nothing_to_do_does_not_load_the_model(workdir, models, monkeypatch):
    first = _run(workdir, models["blip-vqa"])
    def refuse(self):
        raise AssertionError("the model was loaded although nothing was left to do")
    monkeypatch.setattr(LlmFeatureTask, "load_model", refuse)
    again = _run(workdir, models["blip-vqa"])
    assert again.shards_written == 0 and again.shards_skipped == 3
    assert again.cache_path == first.cache_path


def test_resume_after_interruption_equals_an_uninterrupted_run(tmp_path, models, monkeypatch):
    reference_dir = make_workdir(tmp_path / "ref", num_samples=5, shard_size=2)
    write_stitch_cache(reference_dir, width=200, height=48)
    reference = _read_all(reference_dir, _run(reference_dir, models["qwen2-vl"]))

    workdir = make_workdir(tmp_path / "cut", num_samples=5, shard_size=2)
    write_stitch_cache(workdir, width=200, height=48)
    original = LlmFeatureTask.run_batch
    calls = {"n": 0}
    def interrupted(self, model, images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, model, images)
    monkeypatch.setattr(LlmFeatureTask, "run_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(workdir, models["qwen2-vl"], batch_size=2)
    cache = next(p for p in (workdir.path / "cache" / LLM_FEATURES).iterdir() if p.is_dir())
    assert sorted(p.name for p in cache.glob("shard-*.h5")) == ["shard-00000.h5"]
    monkeypatch.setattr(LlmFeatureTask, "run_batch", original)
    resumed = _run(workdir, models["qwen2-vl"], batch_size=2)
    assert resumed.shards_skipped == 1 and resumed.shards_written == 2
    values = _read_all(workdir, resumed)
    assert values.keys() == reference.keys()
    for sample_id, fields in values.items():
        assert fields["answers"] == reference[sample_id]["answers"]
        np.testing.assert_array_equal(fields["hidden"], reference[sample_id]["hidden"])


def test_changed_question_is_a_new_cache(workdir, models):
    first = _run(workdir, models["blip-vqa"], questions=[QUESTION])
    second = _run(workdir, models["blip-vqa"], questions=["is anyone sitting?"])
    assert first.cache_path != second.cache_path and second.shards_written == 3
    assert sorted(workdir.cache_names(LLM_FEATURES)) == sorted(
        [first.cache_path.name, second.cache_path.name])
    with pytest.raises(StaleCacheError, match="questions"):
        _run(workdir, models["blip-vqa"], questions=["is anyone sitting?"],
             cache_name=first.cache_path.name)
    other_model = _run(workdir, models["qwen2-vl"], questions=[QUESTION])
    assert other_model.cache_path not in (first.cache_path, second.cache_path)


def test_out_of_memory_says_lower_batch_size_and_keeps_finished_shards(workdir, models,
                                                                       monkeypatch):
    original = LlmFeatureTask.run_batch
    calls = {"n": 0}
    def oom_on_second(self, model, images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, model, images)
    monkeypatch.setattr(LlmFeatureTask, "run_batch", oom_on_second)
    with pytest.raises(BatchTooLargeError, match="lower --batch-size \\(it is 2\\)"):
        _run(workdir, models["blip-vqa"], batch_size=2)
    cache = next(p for p in (workdir.path / "cache" / LLM_FEATURES).iterdir() if p.is_dir())
    assert [p.name for p in cache.glob("shard-*.h5")] == ["shard-00000.h5"]


def test_processes_split_the_shards(workdir, models):
    rank0 = _run(workdir, models["blip-vqa"], rank=0, world_size=2)
    assert rank0.shards_total == 2 and rank0.shards_written == 2        # shards 0 and 2
    rank1 = _run(workdir, models["blip-vqa"], rank=1, world_size=2)
    assert rank1.shards_total == 1 and rank1.shards_written == 1        # shard 1
    everything = _run(workdir, models["blip-vqa"])
    assert everything.shards_written == 0 and everything.shards_skipped == 3


@pytest.mark.slow
def test_two_launched_processes_split_the_shards(workdir, models):
    """``torchrun`` (what ``accelerate launch`` does) with 2 CPU processes: each process
    writes only its own shards, and together they finish the cache."""
    import os
    import subprocess
    import sys
    from data_manifest.store import read_shard_header

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "-m", "pipeline", "cache-llm-features", str(workdir.path), "--model",
               str(models["blip-vqa"]), "--name", "ranks", "--max-new-tokens", "3",
               "--no-progress"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("written") == 2
    assert "2 shard(s) written" in done.stdout and "1 shard(s) written" in done.stdout
    cache = workdir.cache_dir(LLM_FEATURES, "ranks")
    assert sorted(cache.shard_files()) == [0, 1, 2]
    stored = [i for path in cache.shard_files().values()
              for i in read_shard_header(path)["sample_ids"]]
    assert sorted(stored) == [s.id for s in workdir.samples]
    assert (cache.path / "failures.jsonl").read_text() == ""
