"""extract-frames on generated videos: crops, fallbacks, failures, resume, staleness."""

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import MissingCacheError, StaleCacheError
from data_manifest.schemas import FRAME_FIELDS, FRAMES
from pipeline.cli.main import cli
from pipeline.stages import extract_frames as stage_module
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.stitch import stored_crops
from pipeline.video import open_reader

from frames_factories import (ACTOR_BGR, box_skeleton, make_workdir, moving_boxes,
                              read_index, sample, skeleton_values, write_skeleton_cache,
                              write_video)

FRAMES_PER_VIDEO = 40


def build(root):
    """A WORKDIR with good samples, every documented fallback and every failure."""
    videos = root / "videos"
    boxes = moving_boxes(FRAMES_PER_VIDEO)
    samples, skeletons = [], {}
    for k in range(4):
        samples.append(sample(f"good{k}", write_video(videos / f"good{k}.avi",
                                                      FRAMES_PER_VIDEO, boxes=boxes)))
        skeletons[f"good{k}"] = skeleton_values(box_skeleton(boxes))
    samples.append(sample("short", write_video(videos / "short.avi", 3, boxes=boxes)))
    skeletons["short"] = skeleton_values(box_skeleton(boxes[:3]))
    samples.append(sample("noskel", write_video(videos / "noskel.avi", FRAMES_PER_VIDEO),
                          skeleton=False))
    samples.append(sample("longskel", write_video(videos / "longskel.avi", FRAMES_PER_VIDEO,
                                                  boxes=boxes)))
    skeletons["longskel"] = skeleton_values(box_skeleton(moving_boxes(60)))
    # frame 8 has its joints outside the image: it borrows frame 7's (nearer than 24)
    outside = box_skeleton(boxes)[[0, 7, 8, 24]]
    outside[2] += 1000.0
    samples.append(sample("outside", write_video(videos / "outside.avi", FRAMES_PER_VIDEO,
                                                 boxes=boxes)))
    skeletons["outside"] = skeleton_values(outside, frame_index=[0, 7, 8, 24],
                                           source_frames=FRAMES_PER_VIDEO)
    (videos / "garbage.avi").write_bytes(b"RIFF" + b"\x07" * 300)
    samples.append(sample("garbage", videos / "garbage.avi"))
    samples.append(sample("missing", videos / "missing.avi"))
    samples.append(sample("zero", write_video(videos / "zero.avi", 0)))
    samples.append(sample("novideo", None))
    workdir = make_workdir(root / "wd", samples, shard_size=3)
    write_skeleton_cache(workdir, skeletons)
    return workdir, boxes


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir, boxes = build(tmp_path_factory.mktemp("frames"))
    result = extract_frames(workdir, margin=0.0, progress=False)
    return workdir, boxes, result


def test_good_samples_have_the_specified_frames_and_crops(built):
    workdir, boxes, result = built
    reader = workdir.reader(FRAMES)
    values = reader.get("good0")
    assert set(values) == set(FRAME_FIELDS)
    assert values["frame_indices"].tolist() == [0, 8, 16, 24, 32]     # 40 // 5 = 8
    assert values["crop_source"] == ["skeleton"] * 5
    assert values["video_frames"] == FRAMES_PER_VIDEO
    assert values["video_size"].tolist() == [160, 120]
    assert values["notes"] == ""
    crops = stored_crops(values)
    for index, box, crop in zip(values["frame_indices"], values["boxes"], crops):
        assert tuple(box) == boxes[index]          # margin 0: exactly the actor's box
        assert crop.shape[:2] == (box[3] - box[1], box[2] - box[0])
        assert np.abs(crop.reshape(-1, 3).mean(axis=0) - ACTOR_BGR).max() < 12


def test_documented_fallbacks_are_stored_and_said(built):
    workdir, boxes, _ = built
    reader = workdir.reader(FRAMES)
    short = reader.get("short")
    assert short["frame_indices"].tolist() == [0, 0, 1, 1, 2]
    assert "3 frame(s), fewer than 5: frames repeated" in short["notes"]
    noskel = reader.get("noskel")
    assert noskel["crop_source"] == ["full-frame"] * 5
    assert noskel["boxes"].tolist() == [[0, 0, 160, 120]] * 5
    assert "no skeleton file" in noskel["notes"]
    crops = stored_crops(noskel)                   # whole frames: the index strip is there
    assert [read_index(c) for c in crops] == [0, 8, 16, 24, 32]
    longskel = reader.get("longskel")
    assert "skeleton has 60 frames, the video 40" in longskel["notes"]
    assert longskel["crop_source"] == ["skeleton"] * 5
    outside = reader.get("outside")
    assert outside["crop_source"] == ["skeleton", "nearest-skeleton", "nearest-skeleton",
                                      "skeleton", "nearest-skeleton"]
    assert tuple(outside["boxes"][1]) == boxes[7]     # frame 8 borrowed frame 7's box
    assert tuple(outside["boxes"][4]) == boxes[24]    # frame 32: nearest is 24


def test_bad_inputs_are_recorded_failures_and_good_samples_kept(built):
    workdir, _, result = built
    reasons = {f["id"]: f["reason"] for f in result.failures}
    assert set(reasons) == {"garbage", "missing", "zero", "novideo"}
    assert "garbage.avi" in reasons["garbage"] and "cannot open" in reasons["garbage"]
    assert "missing.avi" in reasons["missing"] and "does not exist" in reasons["missing"]
    assert "zero.avi" in reasons["zero"] and "no frames" in reasons["zero"]
    assert "no video file" in reasons["novideo"]
    assert result.exit_code(skip_failures=False) == 1
    ledger = (result.cache_path / "failures.jsonl").read_text()
    assert all(name in ledger for name in reasons)
    reader = workdir.reader(FRAMES)
    assert sorted(reader.ids) == sorted(["good0", "good1", "good2", "good3", "short",
                                         "noskel", "longskel", "outside"])


def test_truncated_video_is_a_failure(tmp_path):
    video = write_video(tmp_path / "v.avi", 200, size=(320, 240))
    data = video.read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[:len(data) // 4])
    workdir = make_workdir(tmp_path / "wd", [sample("cut", tmp_path / "cut.avi"),
                                             sample("ok", video)])
    result = extract_frames(workdir, crop="none", progress=False)
    assert [f["id"] for f in result.failures] == ["cut"]
    assert "truncated or corrupt" in result.failures[0]["reason"]
    assert workdir.reader(FRAMES).ids == ["ok"]


def test_max_side_and_crop_none(built):
    workdir, _, _ = built
    extract_frames(workdir, crop="none", max_side=64, cache_name="small", progress=False)
    reader = workdir.reader(FRAMES, "small")
    values = reader.get("good1")
    assert values["crop_source"] == ["none"] * 5
    assert [c.shape for c in stored_crops(values)] == [(48, 64, 3)] * 5
    assert reader.spec.upstream == {}               # no skeleton needed


def test_fingerprint_covers_settings_and_the_skeleton_cache(built, tmp_path):
    workdir, _, _ = built
    with pytest.raises(StaleCacheError, match="margin"):
        extract_frames(workdir, margin=0.3, progress=False)
    spec = workdir.reader(FRAMES).spec
    assert set(spec.params) >= {"num_frames", "crop", "margin", "max_side", "jpeg_quality"}
    skeleton_fp = workdir.reader("skeletons").spec.fingerprint
    assert spec.upstream == {"skeletons/default": skeleton_fp}
    # crops from another skeleton cache are another frames cache: refused, not mixed
    values = {s.id: workdir.reader("skeletons").get(s.id)
              for s in workdir.samples if s.id in workdir.reader("skeletons")}
    write_skeleton_cache(workdir, values, name="denoised-otherwise", params={"factory": 2})
    with pytest.raises(StaleCacheError, match="upstream skeletons"):
        extract_frames(workdir, margin=0.0, skeleton_cache="denoised-otherwise",
                       progress=False)


def test_skeleton_cache_missing_or_unfinished_is_refused(tmp_path):
    video = write_video(tmp_path / "a.avi", 10)
    workdir = make_workdir(tmp_path / "wd", [sample(f"s{i}", video) for i in range(4)])
    with pytest.raises(MissingCacheError, match="extract-skeletons"):
        extract_frames(workdir, progress=False)
    write_skeleton_cache(workdir, {})
    workdir.cache_dir("skeletons").shard_path(1).unlink()
    with pytest.raises(MissingCacheError, match=r"unfinished: .*shard\(s\) 1 \(1 of 2\)"):
        extract_frames(workdir, progress=False)
    assert extract_frames(workdir, shard_indices=[0], progress=False).shards_written == 1


def test_interrupted_run_resumes_to_the_same_result(built, monkeypatch):
    workdir, _, _ = built
    original = stage_module.ExtractFramesTask.process

    def crash_on_longskel(self, sample):
        if sample.id == "longskel":            # shard 2 of 4
            raise KeyboardInterrupt
        return original(self, sample)

    monkeypatch.setattr(stage_module.ExtractFramesTask, "process", crash_on_longskel)
    with pytest.raises(KeyboardInterrupt):
        extract_frames(workdir, margin=0.0, cache_name="resumed", progress=False)
    cache = workdir.cache_dir(FRAMES, "resumed")
    assert cache.finished_shards() == {0, 1}
    mtimes = {i: cache.shard_path(i).stat().st_mtime_ns for i in (0, 1)}
    monkeypatch.setattr(stage_module.ExtractFramesTask, "process", original)
    result = extract_frames(workdir, margin=0.0, cache_name="resumed", progress=False)
    assert (result.shards_skipped, result.shards_written) == (2, 2)
    assert {i: cache.shard_path(i).stat().st_mtime_ns for i in (0, 1)} == mtimes
    resumed, straight = workdir.reader(FRAMES, "resumed"), workdir.reader(FRAMES)
    assert sorted(resumed.ids) == sorted(straight.ids)
    assert resumed.spec.fingerprint == straight.spec.fingerprint
    for sample_id in straight.ids:
        a, b = resumed.get(sample_id), straight.get(sample_id)
        for name in FRAME_FIELDS:
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))


def test_two_jobs_give_the_same_cache(built):
    workdir, _, _ = built
    extract_frames(workdir, margin=0.0, cache_name="parallel", jobs=2, progress=False)
    parallel, serial = workdir.reader(FRAMES, "parallel"), workdir.reader(FRAMES)
    assert sorted(parallel.ids) == sorted(serial.ids)
    for sample_id in serial.ids:
        np.testing.assert_array_equal(parallel.get(sample_id)["jpeg"],
                                      serial.get(sample_id)["jpeg"])


def test_cli_exit_codes_and_report(built):
    workdir, _, _ = built
    runner = CliRunner()
    args = ["extract-frames", str(workdir.path), "--margin", "0", "--no-progress"]
    failed = runner.invoke(cli, args)
    assert failed.exit_code == 1, failed.output
    assert "failed garbage" in failed.output and "documented fallback" in failed.output
    accepted = runner.invoke(cli, args + ["--skip-failures"])
    assert accepted.exit_code == 0 and "0 shard(s) written, 4 already done" in accepted.output
    stale = runner.invoke(cli, ["extract-frames", str(workdir.path), "--margin", "0.2"])
    assert stale.exit_code == 2 and "margin" in stale.output
    bad = runner.invoke(cli, ["extract-frames", str(workdir.path), "--color-size", "big"])
    assert bad.exit_code == 2 and "not a size" in bad.output


@pytest.mark.parametrize("method", ["index", "grab"])
def test_undeclared_frame_count_is_counted(tmp_path, monkeypatch, method):
    import dataclasses

    def undeclared(*args, **kwargs):
        reader = open_reader(*args, **kwargs)
        reader.info = dataclasses.replace(reader.info, frame_count=0)
        return reader

    monkeypatch.setattr(stage_module, "open_reader", undeclared)
    video = write_video(tmp_path / "v.avi", 12)
    workdir = make_workdir(tmp_path / "wd", [sample("v", video),
                                             sample("z", write_video(tmp_path / "z.avi", 0))])
    result = extract_frames(workdir, crop="none", method=method, progress=False)
    assert [f["id"] for f in result.failures] == ["z"]
    values = workdir.reader(FRAMES).get("v")
    assert values["video_frames"] == 12 and values["frame_indices"].tolist() == [0, 2, 4, 6, 8]
    assert [read_index(c) for c in stored_crops(values)] == [0, 2, 4, 6, 8]
    assert "does not declare its frame count; 12 frames decode" in values["notes"]


def _opencv_error():
    cv2.resize(np.zeros((0, 5, 3), np.uint8), (3, 3))     # a genuine cv2.error


@pytest.mark.parametrize("error, reason", [(_opencv_error, "OpenCV error in resize"),
                                           (ValueError("odd stride"), "ValueError: odd stride")])
def test_opencv_or_value_error_fails_only_that_sample(tmp_path, monkeypatch, error, reason):
    """Regression: an unexpected per-sample error stopped the run, and every re-run."""
    odd = write_video(tmp_path / "odd.avi", 12, size=(96, 72))
    good = write_video(tmp_path / "good.avi", 12)
    workdir = make_workdir(tmp_path / "wd", [sample("a", good), sample("odd", odd),
                                             sample("b", good)], shard_size=2)
    original = stage_module.fit_within

    def choke_on_odd_file(image, max_side):
        if image.shape[1] == 96:
            if callable(error):
                error()
            raise error
        return original(image, max_side)

    monkeypatch.setattr(stage_module, "fit_within", choke_on_odd_file)
    result = extract_frames(workdir, crop="none", progress=False)
    assert [f["id"] for f in result.failures] == ["odd"]
    message = result.failures[0]["reason"]
    assert "odd.avi" in message and reason in message and "cannot take frames" in message
    assert "\n" not in message
    assert sorted(workdir.reader(FRAMES).ids) == ["a", "b"]
    again = extract_frames(workdir, crop="none", progress=False)
    assert (again.shards_skipped, [f["id"] for f in again.failures]) == (2, ["odd"])
    retried = extract_frames(workdir, crop="none", retry_failures=True, progress=False)
    assert retried.shards_written == 1 and [f["id"] for f in retried.failures] == ["odd"]


def test_rebuild_redoes_a_cache_whose_settings_match(built):
    workdir, _, _ = built
    args = ["extract-frames", str(workdir.path), "--margin", "0", "--name", "rebuilt",
            "--no-progress", "--skip-failures"]
    runner = CliRunner()
    assert "4 shard(s) written" in runner.invoke(cli, args).output
    cache = workdir.cache_dir(FRAMES, "rebuilt")
    (cache.path / "stray-file").write_text("from the old cache")
    assert "0 shard(s) written, 4 already done" in runner.invoke(cli, args).output
    rebuilt = runner.invoke(cli, args + ["--rebuild"])
    assert rebuilt.exit_code == 0 and "4 shard(s) written, 0 already done" in rebuilt.output
    assert not (cache.path / "stray-file").exists()
    assert sorted(workdir.reader(FRAMES, "rebuilt").ids) == sorted(workdir.reader(FRAMES).ids)

