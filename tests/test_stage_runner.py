"""The generic stage runner: skipping finished shards, failures, parallel workers."""

import numpy as np
import pytest

from data_manifest.errors import DataError
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.store import CacheReader, read_shard_header
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.stage_runner import PerSampleTask, distributed_shards, run_stage


def make_workdir(path, n=10, shard_size=3):
    samples = [Sample(id=f"x{i:02d}", dataset="csv", label=i % 3, split="train")
               for i in range(n)]
    digest = write_manifest(samples, path / "manifest.jsonl")
    Workdir.write_info(path, WorkdirInfo("csv", str(path), digest, n, shard_size))
    return Workdir(path)


class Square(PerSampleTask):
    def __init__(self, bad=(), crash_on=None):
        self.bad, self.crash_on = set(bad), crash_on

    def process(self, sample):
        if sample.id == self.crash_on:
            raise KeyboardInterrupt   # like a killed run: not a sample failure
        if sample.id in self.bad:
            raise DataError("garbled", path=f"/data/{sample.id}.skeleton", line=4)
        value = int(sample.id[1:])
        return {"v": np.array([value, value * value])}


def test_run_resume_and_failures(tmp_path):
    workdir = make_workdir(tmp_path)
    spec = workdir.spec("toy", {"p": 1})
    with pytest.raises(KeyboardInterrupt):
        run_stage(workdir, spec, Square(crash_on="x07"), cache_name="default", progress=False)
    cache = workdir.cache_dir("toy")
    assert cache.finished_shards() == {0, 1}          # shard 2 (x06..x08) was never published
    mtimes = {i: cache.shard_path(i).stat().st_mtime_ns for i in (0, 1)}

    result = run_stage(workdir, spec, Square(bad={"x04"}), cache_name="default",
                       progress=False)
    assert (result.shards_skipped, result.shards_written) == (2, 2)
    assert {i: cache.shard_path(i).stat().st_mtime_ns for i in (0, 1)} == mtimes
    reader = CacheReader(cache.path, expect=spec)
    assert len(reader) == 10 and reader.get("x09")["v"].tolist() == [9, 81]
    assert result.failures == []                      # x04's shard was done before

    again = run_stage(workdir, spec, Square(bad={"x04"}), cache_name="default",
                      progress=False, retry_failures=True)
    assert again.shards_written == 0

    other = workdir.spec("toy", {"p": 2})
    result = run_stage(workdir, other, Square(bad={"x04"}), cache_name="second", progress=False)
    assert result.exit_code(skip_failures=False) == 1 and result.exit_code(True) == 0
    assert result.failures == [{"id": "x04", "shard": 1,
                                "reason": "/data/x04.skeleton, line 4: garbled"}]
    ledger = (workdir.cache_dir("toy", "second").path / "failures.jsonl").read_text()
    assert "x04" in ledger
    assert "x04" not in CacheReader(workdir.cache_dir("toy", "second").path)


def test_parallel_workers_write_the_same_cache(tmp_path):
    workdir = make_workdir(tmp_path, n=13, shard_size=2)
    spec = workdir.spec("toy", {"p": 1})
    run_stage(workdir, spec, Square(), cache_name="serial", progress=False)
    run_stage(workdir, spec, Square(), cache_name="parallel", jobs=2, progress=False)
    serial = CacheReader(workdir.cache_dir("toy", "serial").path)
    parallel = CacheReader(workdir.cache_dir("toy", "parallel").path)
    assert sorted(serial.ids) == sorted(parallel.ids)
    for sample_id in serial.ids:
        np.testing.assert_array_equal(serial.get(sample_id)["v"], parallel.get(sample_id)["v"])
    for index in range(workdir.num_shards):
        assert (read_shard_header(workdir.cache_dir("toy", "serial").shard_path(index))["sample_ids"]
                == read_shard_header(workdir.cache_dir("toy", "parallel").shard_path(index))["sample_ids"])


def test_edited_manifest_is_refused(tmp_path):
    workdir = make_workdir(tmp_path)
    with open(workdir.manifest_path, "a") as handle:
        handle.write("\n")
    with pytest.raises(DataError, match="manifest was changed"):
        run_stage(workdir, workdir.spec("toy", {}), Square(), cache_name="default",
                  progress=False)


def test_distributed_shards_cover_everything_once():
    parts = [distributed_shards(10, rank, 3) for rank in range(3)]
    assert sorted(sum(parts, [])) == list(range(10))
    assert parts[1] == [1, 4, 7]
