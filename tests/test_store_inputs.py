"""Edited input files make their shards outdated (issue 9, item 7)."""

import logging
import os
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from data_manifest.errors import DataError
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import FRAMES, SKELETONS
from data_manifest.store import CacheReader, read_shard_header
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.cli.main import cli
from pipeline.stage_runner import PerSampleTask, run_stage
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.extract_skeletons import extract_skeletons
from pipeline.synthetic.demo_dataset import make_demo_dataset
from pipeline.stages.upstream import open_upstream
from pipeline.status import cache_status

from frames_factories import make_workdir, sample, write_video


class FileSize(PerSampleTask):
    """A stage that reads each sample's skeleton file (here: counts its bytes)."""

    inputs = ("skeleton",)

    def process(self, sample):
        return {"n": np.array([len(Path(sample.skeleton).read_bytes())])}


class Doubled(PerSampleTask):
    """Downstream of FileSize: reads its shard of that cache."""

    def __init__(self, upstream_path):
        self.upstream_path = upstream_path

    def setup(self, shard_index, samples):
        self.reader = CacheReader(self.upstream_path, shards=[shard_index])

    def teardown(self):
        self.reader.close()

    def process(self, sample):
        if sample.id not in self.reader:
            raise DataError("not upstream", sample_id=sample.id)
        return {"n2": self.reader.get(sample.id)["n"] * 2}


def _workdir(root, n=6, shard_size=2):
    files = root / "files"
    files.mkdir()
    samples = []
    for index in range(n):
        path = files / f"x{index}.skeleton"
        path.write_bytes(b"j" * (10 + index))
        samples.append(Sample(id=f"x{index}", dataset="csv", label=0, split="train",
                              skeleton=str(path)))
    digest = write_manifest(samples, root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo("csv", str(root), digest, n, shard_size))
    return Workdir(root), files


def _run(workdir, spec, task, name="default"):
    return run_stage(workdir, spec, task, cache_name=name, progress=False)


def test_an_edited_input_file_redoes_its_shard_and_the_shards_built_from_it(tmp_path):
    workdir, files = _workdir(tmp_path)
    up = workdir.spec("toy", {})
    _run(workdir, up, FileSize())
    cache = workdir.cache_dir("toy")
    path = str(files / "x3.skeleton")
    stat = os.stat(path)
    assert read_shard_header(cache.shard_path(1))["inputs"] == {
        str(files / "x2.skeleton"): [12, os.stat(files / "x2.skeleton").st_mtime_ns],
        path: [stat.st_size, stat.st_mtime_ns]}
    down = workdir.spec("double", {}, upstream={"toy/default": up.fingerprint})
    _run(workdir, down, Doubled(cache.path))

    Path(path).write_bytes(b"edited, longer than before")
    assert cache.shard_states(up) == {0: None, 1: "inputs", 2: None}
    status = cache_status(workdir, "toy", "default")
    assert (status.shards_done, status.changed_input_shards) == (2, 1)
    assert "1 shard(s) whose input files changed since" in status.line()
    result = CliRunner().invoke(cli, ["status", str(workdir.path)])
    assert "toy/default: 2/3 shards (incomplete)" in result.output

    again = _run(workdir, up, FileSize())
    assert (again.shards_written, again.shards_skipped) == (1, 2)
    assert workdir.reader("toy").get("x3")["n"].tolist() == [26]
    downstream = _run(workdir, down, Doubled(cache.path))
    assert (downstream.shards_written, downstream.shards_skipped) == (1, 2)
    assert workdir.reader("double").get("x3")["n2"].tolist() == [52]
    assert _run(workdir, up, FileSize()).shards_written == 0


def test_a_new_mtime_alone_counts_and_a_deleted_input_does_not(tmp_path):
    workdir, files = _workdir(tmp_path)
    spec = workdir.spec("toy", {})
    _run(workdir, spec, FileSize())
    cache = workdir.cache_dir("toy")
    stat = os.stat(files / "x0.skeleton")
    os.utime(files / "x0.skeleton", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    (files / "x5.skeleton").unlink()         # sources may be removed once cached
    assert cache.finished_shards(spec) == {1, 2}


def test_an_input_missing_when_cached_and_present_now_redoes_its_shard(tmp_path):
    workdir, files = _workdir(tmp_path)
    (files / "x1.skeleton").unlink()
    spec = workdir.spec("toy", {})
    first = _run(workdir, spec, FileSize())
    assert [f["id"] for f in first.failures] == ["x1"]
    assert workdir.cache_dir("toy").finished_shards(spec) == {0, 1, 2}
    (files / "x1.skeleton").write_bytes(b"found it")
    assert workdir.cache_dir("toy").finished_shards(spec) == {1, 2}
    second = _run(workdir, spec, FileSize())
    assert second.shards_written == 1 and second.failures == []


def test_an_edited_skeleton_file_is_read_again(tmp_path):
    make_demo_dataset(tmp_path / "data", num_classes=1, samples_per_class=2, video_size=None)
    build_manifest("ntu60", tmp_path / "data", tmp_path / "work", shard_size=1)
    workdir = Workdir(tmp_path / "work")
    extract_skeletons(workdir, progress=False)
    kept, edited = workdir.samples
    wanted = workdir.reader(SKELETONS).get(kept.id)["joints"]
    assert not np.array_equal(workdir.reader(SKELETONS).get(edited.id)["joints"], wanted)
    Path(edited.skeleton).write_bytes(Path(kept.skeleton).read_bytes())   # the user's edit
    again = extract_skeletons(workdir, progress=False)
    assert (again.shards_written, again.shards_skipped) == (1, 1)
    np.testing.assert_array_equal(workdir.reader(SKELETONS).get(edited.id)["joints"], wanted)


def test_a_replaced_video_is_extracted_again(tmp_path):
    videos = tmp_path / "videos"
    first = write_video(videos / "a.avi", 40)
    write_video(videos / "b.avi", 40)
    workdir = make_workdir(tmp_path / "wd", [sample("a", first, skeleton=False),
                                             sample("b", videos / "b.avi", skeleton=False)],
                           shard_size=1)
    extract_frames(workdir, crop="none", progress=False)
    assert workdir.reader(FRAMES).get("a", ["video_frames"])["video_frames"] == 40
    write_video(videos / "a.avi", 25)              # the user re-encoded one video
    again = extract_frames(workdir, crop="none", progress=False)
    assert (again.shards_written, again.shards_skipped) == (1, 1)
    assert workdir.reader(FRAMES).get("a", ["video_frames"])["video_frames"] == 25


def test_opening_a_cache_with_outdated_shards_warns_what_to_run(tmp_path, caplog):
    workdir, files = _workdir(tmp_path)
    up = workdir.spec("toy", {})
    _run(workdir, up, FileSize())
    cache = workdir.cache_dir("toy")
    down = workdir.spec("double", {}, upstream={"toy/default": up.fingerprint})
    _run(workdir, down, Doubled(cache.path))
    with caplog.at_level(logging.WARNING):
        workdir.reader("toy")
        workdir.reader("double")
    assert "outdated" not in caplog.text

    (files / "x3.skeleton").write_bytes(b"edited, longer than before")
    _run(workdir, up, FileSize())                  # redoes toy shard 1: double's is outdated
    (files / "x0.skeleton").write_bytes(b"edited too")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert workdir.reader("toy").get("x0")["n"].tolist() == [10]    # read as it is
    assert ("1 of the 3 shard(s) of the toy cache 'default' are outdated (0 built from "
            "since-rewritten upstream shards, 1 from input files changed since)") in caplog.text
    assert f"pipeline run {workdir.path} --from toy --to toy" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        open_upstream(workdir, "double", "default", None, "run it")
    assert ("1 of the 3 shard(s) of the double cache 'default' are outdated (1 built from "
            "since-rewritten upstream shards, 0 from input files changed since)") in caplog.text


def test_the_rebuild_help_does_not_send_changed_inputs_to_it():
    result = CliRunner().invoke(cli, ["extract-skeletons", "--help"])
    text = " ".join(result.output.split())
    assert "after the input files changed" not in text
    assert "from input files or upstream shards changed since" in text
