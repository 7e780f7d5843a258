"""The shard plan is part of what makes a shard valid (issue 9, item 1): a manifest
rebuilt with another shard size makes the old shards count for nothing."""

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import MissingCacheError, StaleCacheError
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import FRAMES, SKELETONS
from data_manifest.store import CacheReader, ShardPlan, ShardWriter, read_shard_header
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.cache_lock import CacheLock
from pipeline.cli.main import cli
from pipeline.stage_runner import PerSampleTask, run_stage
from pipeline.stages.upstream import open_upstream
from pipeline.status import cache_status

from frames_factories import write_skeleton_cache, write_video


class Square(PerSampleTask):
    def process(self, sample):
        value = int(sample.id[1:])
        return {"v": np.array([value, value * value])}


def _workdir(path, shard_size, n=12):
    """A WORKDIR of ``n`` samples; called again with another shard size it is what
    `pipeline manifest --overwrite --shard-size` leaves: the same manifest, a new plan."""
    samples = [Sample(id=f"x{i:02d}", dataset="csv", label=0, split="train") for i in range(n)]
    digest = write_manifest(samples, path / "manifest.jsonl")
    Workdir.write_info(path, WorkdirInfo("csv", str(path), digest, n, shard_size))
    return Workdir(path)


def test_a_new_shard_size_makes_every_old_shard_unfinished_and_unread(tmp_path):
    old = _workdir(tmp_path, shard_size=4)
    spec = old.spec("toy", {"p": 1})
    run_stage(old, spec, Square(), cache_name="default", progress=False)
    assert old.cache_dir("toy").finished_shards(spec) == {0, 1, 2}

    new = _workdir(tmp_path, shard_size=2)
    assert new.spec("toy", {"p": 1}) == spec            # same manifest, same settings
    cache = new.cache_dir("toy")
    assert cache.finished_shards(spec) == set()
    assert cache.shard_states(spec) == {0: "plan", 1: "plan", 2: "plan"}
    assert cache.sample_count(spec) == 0
    reader = new.reader("toy")
    assert len(reader) == 0 and reader.other_plan == [0, 1, 2]
    status = cache_status(new, "toy", "default")
    assert (status.shards_done, status.other_plan_shards) == (0, 3)
    assert "3 shard(s) made for another shard plan" in status.line()
    with pytest.raises(MissingCacheError, match=r"3 of them made for another shard plan"):
        open_upstream(new, "toy", "default", None, "re-run it")

    result = run_stage(new, spec, Square(), cache_name="default", progress=False)
    assert (result.shards_written, result.shards_skipped) == (6, 0)
    reader = new.reader("toy")
    assert len(reader) == 12 and reader.get("x05")["v"].tolist() == [5, 25]
    for index in range(6):
        header = read_shard_header(cache.shard_path(index))
        assert header["sample_ids"] == [f"x{i:02d}" for i in (2 * index, 2 * index + 1)]


def test_shard_files_past_a_shorter_plan_are_not_read(tmp_path):
    small = _workdir(tmp_path, shard_size=2)
    spec = small.spec("toy", {"p": 1})
    run_stage(small, spec, Square(), cache_name="default", progress=False)
    big = _workdir(tmp_path, shard_size=6)
    run_stage(big, spec, Square(), cache_name="default", progress=False)
    cache = big.cache_dir("toy")
    assert sorted(cache.shard_files()) == [0, 1]     # 2..5, past the plan, were deleted
    assert cache.finished_shards(spec) == {0, 1}
    assert cache.sample_count(spec) == 12
    reader = big.reader("toy")
    assert reader.shard_indices == [0, 1] and len(reader) == 12
    status = cache_status(big, "toy", "default")
    assert (status.shards_done, status.other_plan_shards) == (2, 0)
    plain = CacheReader(cache.path)                  # no plan (compare_caches reads so)
    assert plain.shard_indices == [0, 1] and len(plain) == 12


def test_shard_files_past_the_plan_are_kept_while_another_process_writes(tmp_path):
    small = _workdir(tmp_path, shard_size=2)
    spec = small.spec("toy", {"p": 1})
    run_stage(small, spec, Square(), cache_name="default", progress=False)
    big = _workdir(tmp_path, shard_size=6)
    cache = big.cache_dir("toy")
    with CacheLock(cache.path) as writer:
        writer.hold_shared()          # another run writing the cache
        result = run_stage(big, spec, Square(), cache_name="default", progress=False)
        assert result.shards_written == 2
        assert sorted(cache.shard_files()) == [0, 1, 2, 3, 4, 5]
    run_stage(big, spec, Square(), cache_name="default", progress=False)
    assert sorted(cache.shard_files()) == [0, 1]


def test_a_reader_refuses_a_sample_stored_in_two_shards(tmp_path):
    small = _workdir(tmp_path, shard_size=2)
    spec = small.spec("toy", {"p": 1})
    run_stage(small, spec, Square(), cache_name="default", progress=False)
    big = _workdir(tmp_path, shard_size=6)
    with CacheLock(big.cache_dir("toy").path) as writer:
        writer.hold_shared()
        run_stage(big, spec, Square(), cache_name="default", progress=False)
    # without a plan, shard 0 (new plan: x00..x05) and shard 2 (old plan: x04, x05) overlap
    with pytest.raises(StaleCacheError, match=r"sample x04 is stored twice in the toy cache "
                                              r".*in shards 0 and 2"):
        CacheReader(big.cache_dir("toy").path)
    assert len(big.reader("toy")) == 12               # the WORKDIR's plan reads its own


def test_a_shard_holding_fewer_samples_than_planned_is_not_taken(tmp_path):
    """8 -> 16: old shard 0 holds a subset of the new shard 0 (its samples are a prefix)."""
    small = _workdir(tmp_path, shard_size=2)
    spec = small.spec("toy", {"p": 1})
    run_stage(small, spec, Square(), cache_name="default", progress=False)
    big = _workdir(tmp_path, shard_size=4)
    assert big.cache_dir("toy").finished_shards(spec) == set()
    assert "x02" not in big.reader("toy")


def test_shards_from_before_plans_were_recorded_count_when_they_cover_the_plan(tmp_path):
    plan = ShardPlan.of_samples(["a", "b", "c"], 2)
    header = {"shard_index": 0, "plan": None, "sample_ids": ["b"],
              "failures": [{"id": "a", "reason": "x"}]}
    assert plan.matches(0, header)
    assert not plan.matches(0, {**header, "failures": []})
    assert not plan.matches(0, {**header, "sample_ids": ["b", "c"]})
    assert not plan.matches(1, header)                  # another shard's file
    assert plan.matches(1, {"shard_index": 1, "plan": plan.digest(1), "sample_ids": [],
                            "failures": []})
    assert not plan.matches(5, {"shard_index": 5, "plan": None, "sample_ids": [],
                                "failures": []})       # past the plan


def test_the_writer_records_the_plan_and_refuses_samples_outside_it(tmp_path):
    workdir = _workdir(tmp_path, shard_size=4)
    spec = workdir.spec("toy", {})
    cache = workdir.cache_dir("toy")
    cache.prepare(spec)
    with cache.shard_writer(spec, 1) as writer:
        with pytest.raises(ValueError, match="x00 is not one of the samples planned"):
            writer.add("x00", {"v": np.zeros(1)})
        with pytest.raises(ValueError, match="x09 is not one of the samples planned"):
            writer.fail("x09", "bad")
        writer.add("x04", {"v": np.zeros(1)})
    assert read_shard_header(cache.shard_path(1))["plan"] == workdir.plan.digest(1)
    with ShardWriter(tmp_path / "free.h5", spec, 0) as free:   # no plan: anything goes
        free.add("anything", {"v": np.zeros(1)})
    assert read_shard_header(tmp_path / "free.h5")["plan"] is None


# ---------------------------------------------------------------- the issue's reproduction

NUM_SAMPLES = 48


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


def test_issue_repro_16_to_8_never_gives_whole_frame_crops_with_exit_0(tmp_path, shared_dir):
    """48 samples (the real NTU skeleton file, a generated video), manifest with
    --shard-size 16, extract-skeletons; manifest again with 8, extract-skeletons (it used
    to keep the 3 old shards and write 3 new ones), extract-frames: 16 of 48 samples got
    whole-frame crops, exit 0."""
    skeleton = shared_dir / "data" / "ntu" / "S001C001P001R001A001.skeleton"
    write_video(tmp_path / "v.avi", 103)
    (tmp_path / "list.csv").write_text("id,label,skeleton,video\n" + "".join(
        f"s{i:02d},0,{skeleton},v.avi\n" for i in range(NUM_SAMPLES)))
    wd = tmp_path / "wd"
    for size, overwrite in ((16, []), (8, ["--overwrite"])):
        made = _invoke("manifest", "csv", tmp_path / "list.csv", wd, "--shard-size", size,
                       *overwrite)
        assert made.exit_code == 0, made.output
        if size == 8:   # before the skeletons are redone, cropping by them is refused
            refused = _invoke("extract-frames", wd, "--no-progress", "--color-size",
                              "1920x1080")
            assert refused.exit_code == 2, refused.output
            assert "3 of them made for another shard plan" in refused.output
        skeletons = _invoke("extract-skeletons", wd, "--no-progress")
        assert skeletons.exit_code == 0, skeletons.output
    assert "6 shard(s) written, 0 already done, of 6" in skeletons.output

    frames = _invoke("extract-frames", wd, "--no-progress", "--color-size", "1920x1080")
    assert frames.exit_code == 0, frames.output
    reader = Workdir(wd).reader(FRAMES)
    assert len(reader) == NUM_SAMPLES
    for sample_id in reader.ids:
        values = reader.get(sample_id, ["crop_source", "notes"])
        assert "full-frame" not in values["crop_source"], (sample_id, values["notes"])
        assert "not in the skeleton cache" not in values["notes"]


def test_an_upstream_shard_of_another_plan_is_refused_inside_the_stage(tmp_path):
    """The check at the start of a stage has a twin where a worker opens shard k."""
    from pipeline.stages.upstream import open_upstream_shard

    old = _workdir(tmp_path, shard_size=4)
    write_skeleton_cache(old, {})                         # every sample failed: any content
    new = _workdir(tmp_path, shard_size=2)
    path = str(new.cache_dir(SKELETONS).path)
    fingerprint = new.cache_dir(SKELETONS).spec().fingerprint
    planned = [s.id for s in new.shard_samples(1)]
    with pytest.raises(MissingCacheError, match="shard 1 .* made for another shard plan"):
        open_upstream_shard(path, SKELETONS, 1, planned, fingerprint, "extract-frames")
