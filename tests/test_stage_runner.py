"""The generic stage runner: skipping finished shards, failures, parallel workers."""

import numpy as np
import pytest

from data_manifest.errors import DataError
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.store import CacheReader, read_shard_header
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.stage_runner import PerSampleTask, run_stage
from pipeline.stages.distributed import distributed_shards


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


class Doubled(PerSampleTask):
    """A downstream stage: reads its shard of the upstream "toy" cache."""

    def __init__(self, upstream_path):
        self.upstream_path = upstream_path

    def setup(self, shard_index, samples):
        self.reader = CacheReader(self.upstream_path, shards=[shard_index])

    def teardown(self):
        self.reader.close()

    def process(self, sample):
        if sample.id not in self.reader:
            raise DataError("failed in the toy stage", sample_id=sample.id)
        return {"w": self.reader.get(sample.id)["v"] * 2}


def test_a_rewritten_upstream_shard_redoes_the_downstream_shard(tmp_path):
    workdir = make_workdir(tmp_path)
    up = workdir.spec("toy", {"p": 1})
    run_stage(workdir, up, Square(bad={"x04"}), cache_name="default", progress=False)
    up_path = workdir.cache_dir("toy").path
    down = workdir.spec("double", {}, upstream={"toy/default": up.fingerprint})
    first = run_stage(workdir, down, Doubled(up_path), cache_name="default", progress=False)
    assert first.shards_written == 4 and "x04" not in CacheReader(workdir.cache_dir("double").path)

    # the file behind x04 was fixed: --retry-failures rewrites upstream shard 1 only
    retried = run_stage(workdir, up, Square(), cache_name="default", progress=False,
                        retry_failures=True)
    assert retried.shards_written == 1
    again = run_stage(workdir, down, Doubled(up_path), cache_name="default", progress=False)
    assert (again.shards_written, again.shards_skipped) == (1, 3)
    reader = CacheReader(workdir.cache_dir("double").path, expect=down)
    assert reader.get("x04")["w"].tolist() == [8, 32]
    header = read_shard_header(workdir.cache_dir("double").shard_path(1))
    assert header["upstream_tokens"] == {
        "toy/default": read_shard_header(workdir.cache_dir("toy").shard_path(1))["token"]}
    assert run_stage(workdir, down, Doubled(up_path), cache_name="default",
                     progress=False).shards_written == 0


def test_rebuild_deletes_a_matching_cache_and_builds_it_again(tmp_path):
    workdir = make_workdir(tmp_path)
    spec = workdir.spec("toy", {"p": 1})
    run_stage(workdir, spec, Square(), cache_name="default", progress=False)
    cache = workdir.cache_dir("toy")
    stray = cache.path / "notes.txt"
    stray.write_text("left by hand")
    tokens = {i: read_shard_header(p)["token"] for i, p in cache.shard_files().items()}
    result = run_stage(workdir, spec, Square(), cache_name="default", progress=False,
                       rebuild=True)
    assert (result.shards_written, result.shards_skipped) == (4, 0)
    assert not stray.exists()
    assert all(read_shard_header(p)["token"] != tokens[i]
               for i, p in cache.shard_files().items())


def test_a_damaged_shard_is_rewritten_by_running_the_stage_again(tmp_path):
    workdir = make_workdir(tmp_path)
    spec = workdir.spec("toy", {"p": 1})
    run_stage(workdir, spec, Square(), cache_name="default", progress=False)
    path = workdir.cache_dir("toy").shard_path(2)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="shard-00002.h5.*damaged"):
        CacheReader(workdir.cache_dir("toy").path)
    result = run_stage(workdir, spec, Square(), cache_name="default", progress=False)
    assert (result.shards_written, result.shards_skipped) == (1, 3)
    assert CacheReader(workdir.cache_dir("toy").path).get("x07")["v"].tolist() == [7, 49]


class Buggy(PerSampleTask):
    def process(self, sample):
        if sample.id == "x01":
            return {}["missing key"]            # a bug, not bad data
        if sample.id == "x02":
            raise ValueError("x02.npy: not a skeleton array")
        return {"v": np.zeros(1)}


def test_only_data_errors_are_recorded_and_bugs_propagate(tmp_path):
    workdir = make_workdir(tmp_path, n=3, shard_size=3)
    with pytest.raises(KeyError, match="missing key"):
        run_stage(workdir, workdir.spec("toy", {}), Buggy(), cache_name="default",
                  progress=False)
    assert workdir.cache_dir("toy").finished_shards() == set()

    class DataOnly(Buggy):
        def process(self, sample):
            return {"v": np.zeros(1)} if sample.id == "x01" else super().process(sample)

    result = run_stage(workdir, workdir.spec("toy", {}), DataOnly(), cache_name="default",
                       progress=False)
    assert result.failures == [{"id": "x02", "shard": 0,
                                "reason": "ValueError: x02.npy: not a skeleton array"}]


def test_rebuild_option_appears_only_on_commands_that_take_it():
    import click
    from click.testing import CliRunner

    from pipeline.cli.options import stage_options

    @click.command()
    @stage_options
    def old(jobs, skip_failures, retry_failures, overwrite, no_progress):
        click.echo(f"old jobs={jobs}")

    @click.command()
    @stage_options
    def new(jobs, skip_failures, retry_failures, overwrite, no_progress, rebuild):
        click.echo(f"new rebuild={rebuild}")

    runner = CliRunner()
    assert runner.invoke(old, ["-j", "2"]).output == "old jobs=2\n"
    assert "--rebuild" not in runner.invoke(old, ["--help"]).output
    assert runner.invoke(old, ["--rebuild"]).exit_code == 2
    assert runner.invoke(new, []).output == "new rebuild=False\n"
    assert runner.invoke(new, ["--rebuild"]).output == "new rebuild=True\n"
    assert "even if its settings match" in runner.invoke(new, ["--help"]).output


def test_a_bug_in_a_worker_stops_a_parallel_run(tmp_path):
    workdir = make_workdir(tmp_path, n=9, shard_size=1)
    with pytest.raises(KeyError, match="missing key"):
        run_stage(workdir, workdir.spec("toy", {}), Buggy(), cache_name="default", jobs=2,
                  progress=False)
    assert 1 not in workdir.cache_dir("toy").finished_shards()


def test_shards_outside_the_plan_are_refused(tmp_path):
    workdir = make_workdir(tmp_path)
    with pytest.raises(IndexError, match=r"shard\(s\) \[4\] out of range 0..3"):
        run_stage(workdir, workdir.spec("toy", {}), Square(), cache_name="default",
                  shard_indices=[0, 4], progress=False)
