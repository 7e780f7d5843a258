"""`pipeline status`: every stage, shards done/total, failures, damaged shards."""

from collections import Counter

import h5py
import numpy as np
from click.testing import CliRunner

from data_manifest.errors import DataError
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import FRAMES, LLM_FEATURES, RGB_FEATURES, SKELETONS, STITCH
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.cli.main import cli
from pipeline.stage_runner import PerSampleTask, run_stage
from pipeline.status import workdir_status


class Values(PerSampleTask):
    def process(self, sample):
        if sample.id == "x04":
            raise DataError("garbled", path="/data/x04.skeleton")
        return {"v": np.array([int(sample.id[1:])])}


def _workdir(path, n=10, shard_size=3):
    samples = [Sample(id=f"x{i:02d}", dataset="csv", label=0, split="train") for i in range(n)]
    digest = write_manifest(samples, path / "manifest.jsonl")
    Workdir.write_info(path, WorkdirInfo("csv", str(path), digest, n, shard_size))
    return Workdir(path)


def test_status_lists_every_stage_with_counts_and_damaged_shards(tmp_path):
    workdir = _workdir(tmp_path)
    spec = workdir.spec(SKELETONS, {"p": 1})
    run_stage(workdir, spec, Values(), cache_name="default", progress=False,
              shard_indices=[0, 1, 2])
    path = workdir.cache_dir(SKELETONS).shard_path(2)
    path.write_bytes(path.read_bytes()[:100])

    _, stages = workdir_status(tmp_path)
    assert [s.stage for s in stages] == [SKELETONS, FRAMES, STITCH, RGB_FEATURES, LLM_FEATURES]
    skeletons = stages[0].caches[0]
    assert (skeletons.shards_done, skeletons.shards_total, skeletons.samples,
            skeletons.failures, skeletons.damaged_shards) == (2, 4, 5, 1, 1)

    result = CliRunner().invoke(cli, ["status", str(tmp_path), "--params"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == "  split csv: 10 train / 0 test"
    assert lines[2] == ("skeletons/default: 2/4 shards (incomplete), 5 samples, 1 failed, "
                        f"1 damaged shard(s) (re-run the stage to rewrite them), "
                        f"fingerprint {spec.fingerprint}")
    assert lines[3] == '    {"p": 1}'
    assert lines[4:] == [f"{stage}: not started (0/4 shards)"
                         for stage in (FRAMES, STITCH, RGB_FEATURES, LLM_FEATURES)]


class Doubled(PerSampleTask):
    def __init__(self, path):
        self.path = path

    def process(self, sample):
        from data_manifest.store import CacheReader
        with CacheReader(self.path) as reader:
            if sample.id not in reader:
                raise DataError("not in the skeleton cache", sample_id=sample.id)
            return {"w": reader.get(sample.id)["v"] * 2}


def test_status_counts_shards_built_from_rewritten_upstream_shards(tmp_path):
    workdir = _workdir(tmp_path)
    skeletons = workdir.spec(SKELETONS, {"p": 1})
    run_stage(workdir, skeletons, Values(), cache_name="default", progress=False)
    frames = workdir.spec(FRAMES, {}, upstream={f"{SKELETONS}/default": skeletons.fingerprint})
    run_stage(workdir, frames, Doubled(workdir.cache_dir(SKELETONS).path),
              cache_name="default", progress=False)
    run_stage(workdir, skeletons, Values(), cache_name="default", progress=False,
              retry_failures=True)          # rewrites shard 1 (x04 failed)
    _, stages = workdir_status(tmp_path)
    status = stages[1].caches[0]
    assert (status.stage, status.shards_done, status.outdated_shards) == (FRAMES, 3, 1)
    assert "3/4 shards (incomplete)" in status.line()
    assert "1 shard(s) built from since-rewritten upstream shards" in status.line()


def test_status_reads_each_shard_file_once(tmp_path, monkeypatch):
    """Every count comes from one read of each header (891 per NTU120 cache, not 4x)."""
    workdir = _workdir(tmp_path)
    skeletons = workdir.spec(SKELETONS, {"p": 1})
    run_stage(workdir, skeletons, Values(), cache_name="default", progress=False)
    frames = workdir.spec(FRAMES, {}, upstream={f"{SKELETONS}/default": skeletons.fingerprint})
    run_stage(workdir, frames, Doubled(workdir.cache_dir(SKELETONS).path),
              cache_name="default", progress=False)
    run_stage(workdir, frames, Doubled(workdir.cache_dir(SKELETONS).path),
              cache_name="other", progress=False)
    opened = Counter()
    real_init = h5py.File.__init__

    def counting(self, name, *args, **kwargs):
        opened[str(name)] += 1
        real_init(self, name, *args, **kwargs)
    monkeypatch.setattr(h5py.File, "__init__", counting)
    _, stages = workdir_status(tmp_path)
    assert [c.shards_done for c in stages[1].caches] == [4, 4]
    assert len(opened) == 12 and set(opened.values()) == {1}
