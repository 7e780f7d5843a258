"""extract-poses without MediaPipe: the stage's bookkeeping, with a stand-in estimator that
"finds" the generated actor (a red box) in each frame, so it runs wherever the tests do.
The real model on the real NTU video: test_poses_real.py."""

import dataclasses
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import DataError
from data_manifest.schemas import FRAMES, POSE_FIELDS, SKELETON_FIELDS, SKELETONS
from data_manifest.workdir import Workdir
from pipeline.cli.main import cli
from pipeline.manifest_builder import build_manifest
from pipeline.models.errors import ModelError
from pipeline.models.pose_estimator import FramePose
from pipeline.stages import extract_poses as poses_module
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.extract_poses import extract_poses

from frames_factories import box_joints, make_workdir, moving_boxes, sample, write_video

NUM_FRAMES = 20


class FakeEstimator:
    """Finds the frames_factories actor (red box); counts graphs made and videos started."""

    made = 0
    videos = 0

    def __init__(self, settings):
        type(self).made += 1

    def start_video(self):
        type(self).videos += 1

    def estimate(self, frame):
        red = (frame[..., 2] > 180) & (frame[..., 0] < 100) & (frame[..., 1] < 100)
        if not red.any():
            return None
        ys, xs = np.nonzero(red)
        xy = box_joints((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 33)
        world = np.concatenate([xy / 100, np.zeros((33, 1), np.float32)], axis=1)
        return FramePose(world.astype(np.float32), xy, np.full(33, 0.75, np.float32))

    def close(self):
        pass


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(poses_module, "PoseEstimator", FakeEstimator)
    monkeypatch.setattr(poses_module, "mediapipe_version", lambda: "fake")
    FakeEstimator.made = FakeEstimator.videos = 0
    return FakeEstimator


def videos_workdir(root, rows, shard_size=2):
    """A WORKDIR from a CSV of videos (empty skeleton column), as a user makes one."""
    lines = ["id,label,skeleton,video"] + [f"{name},{label},{skeleton},{video}"
                                           for name, label, skeleton, video in rows]
    (root / "videos.csv").write_text("\n".join(lines) + "\n")
    build_manifest("csv", root / "videos.csv", root / "wd", shard_size=shard_size)
    return Workdir(root / "wd")


def test_poses_of_every_kth_frame_keep_the_video_frame_numbers(tmp_path, fake_model):
    boxes = moving_boxes(NUM_FRAMES)
    hidden = range(5, 10)                    # the person leaves the picture for a while
    shown = [None if i in hidden else box for i, box in enumerate(boxes)]
    video = write_video(tmp_path / "walk.avi", NUM_FRAMES, boxes=shown)
    workdir = videos_workdir(tmp_path, [("walk", 0, "", video)])

    result = extract_poses(workdir, stride=3, progress=False)

    assert result.failures == [] and result.samples_written == 1
    values = workdir.reader(SKELETONS).get("walk")
    assert set(values) == set(SKELETON_FIELDS) | set(POSE_FIELDS)
    looked_at = [0, 3, 6, 9, 12, 15, 18]
    kept = [i for i in looked_at if i not in hidden]
    assert values["frame_index"].tolist() == kept
    assert values["joints"].shape == (len(kept), 1, 33, 3)
    assert values["color_xy"].shape == (len(kept), 1, 33, 2)
    assert values["visibility"].shape == (len(kept), 1, 33)
    assert int(values["source_frames"]) == NUM_FRAMES and int(values["num_actors"]) == 1
    for row, frame in enumerate(kept):
        x0, y0, x1, y1 = boxes[frame]
        xy = values["color_xy"][row, 0]
        assert abs(xy[:, 0].min() - x0) <= 2 and abs(xy[:, 0].max() - (x1 - 1)) <= 2
        assert abs(xy[:, 1].min() - y0) <= 2 and abs(xy[:, 1].max() - (y1 - 1)) <= 2
    assert values["notes"] == "2 of 7 frame(s) without a person: left out"
    params = workdir.reader(SKELETONS).spec.params
    assert params["layout"] == "mediapipe-33" and params["stride"] == 3
    assert params["max_persons"] == 1 and params["estimator"] == "mediapipe-pose"


def test_a_replaced_video_has_its_poses_estimated_again(tmp_path, fake_model):
    first = write_video(tmp_path / "a.avi", NUM_FRAMES, boxes=moving_boxes(NUM_FRAMES))
    other = write_video(tmp_path / "b.avi", NUM_FRAMES, boxes=moving_boxes(NUM_FRAMES))
    workdir = videos_workdir(tmp_path, [("a", 0, "", first), ("b", 0, "", other)],
                             shard_size=1)
    extract_poses(workdir, progress=False)
    assert int(workdir.reader(SKELETONS).get("a")["source_frames"]) == NUM_FRAMES
    write_video(first, 12, boxes=moving_boxes(12))        # the user re-encoded one video
    again = extract_poses(workdir, progress=False)
    assert (again.shards_written, again.shards_skipped) == (1, 1)
    assert int(workdir.reader(SKELETONS).get("a")["source_frames"]) == 12


def test_bad_videos_are_recorded_and_the_others_kept(tmp_path, fake_model):
    person = write_video(tmp_path / "person.avi", 6, boxes=moving_boxes(6))
    nobody = write_video(tmp_path / "nobody.avi", 6)
    corrupt = tmp_path / "corrupt.avi"
    corrupt.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    workdir = videos_workdir(tmp_path, [("ok", 0, "", person), ("nobody", 1, "", nobody),
                                        ("corrupt", 0, "", corrupt), ("empty", 1, "", empty)],
                             shard_size=4)

    result = extract_poses(workdir, progress=False)

    reasons = {f["id"]: f["reason"] for f in result.failures}
    assert set(reasons) == {"nobody", "corrupt", "empty"}
    assert "nobody.avi: MediaPipe Pose found no person in any of the 6 frame(s)" in reasons[
        "nobody"]
    assert "corrupt.avi" in reasons["corrupt"] and "empty.avi" in reasons["empty"]
    assert "ok" in workdir.reader(SKELETONS)
    assert fake_model.made == 1                 # one graph per shard (one shard here) ...
    assert fake_model.videos == 4               # ... restarted for every video
    again = extract_poses(workdir, progress=False)   # resumable: nothing left to do
    assert again.shards_written == 0 and len(again.failures) == 3


def test_a_workdir_with_skeleton_files_keeps_its_default_cache(tmp_path, fake_model):
    video = write_video(tmp_path / "a.avi", 4, boxes=moving_boxes(4))
    skeleton = tmp_path / "b.npy"
    np.save(skeleton, np.ones((4, 25, 3), np.float32))
    workdir = videos_workdir(tmp_path, [("a", 0, "", video), ("b", 1, skeleton, video),
                                        ("c", 1, skeleton, "")])
    with pytest.raises(DataError, match=r"2 sample\(s\) .* have skeleton files \(e.g. b\).*"
                                        "--name NAME"):
        extract_poses(workdir, progress=False)
    result = extract_poses(workdir, cache_name="poses", progress=False)
    assert sorted(workdir.reader(SKELETONS, "poses").ids) == ["a", "b"]
    assert [(f["id"], f["reason"]) for f in result.failures] == [
        ("c", "sample c: has no video to estimate its pose from")]


def test_extract_frames_crops_around_the_estimated_person(tmp_path, fake_model):
    boxes = moving_boxes(NUM_FRAMES)
    video = write_video(tmp_path / "walk.avi", NUM_FRAMES, boxes=boxes)
    workdir = videos_workdir(tmp_path, [("walk", 0, "", video)])
    extract_poses(workdir, progress=False)
    frames = extract_frames(workdir, num_frames=4, margin=0.0, progress=False)
    assert frames.failures == []
    record = workdir.reader(FRAMES).get("walk")
    assert list(record["crop_source"]) == ["skeleton"] * 4
    for index, box in zip(record["frame_indices"], record["boxes"]):
        assert np.abs(box - np.array(boxes[index])).max() <= 2


def test_without_mediapipe_the_stage_says_how_to_install_it(tmp_path, monkeypatch):
    video = write_video(tmp_path / "a.avi", 2)
    workdir = videos_workdir(tmp_path, [("a", 0, "", video)])
    monkeypatch.setitem(sys.modules, "mediapipe", None)     # import mediapipe -> ImportError
    with pytest.raises(ModelError, match=r"pip install --no-deps mediapipe==0\.10\.14"):
        extract_poses(workdir, progress=False)
    result = CliRunner().invoke(cli, ["extract-poses", str(workdir.path), "--no-progress"])
    assert result.exit_code == 2
    assert "needs MediaPipe" in result.output and "scripts/setup.sh" in result.output
    assert not workdir.cache_dir(SKELETONS).exists()


def test_cli_options(tmp_path, fake_model):
    video = write_video(tmp_path / "a.avi", 8, boxes=moving_boxes(8))
    workdir = videos_workdir(tmp_path, [("a", 0, "", video)])
    result = CliRunner().invoke(cli, ["extract-poses", str(workdir.path), "--stride", "4",
                                      "--no-smoothing", "--min-detection-confidence", "0.3",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    params = workdir.reader(SKELETONS).spec.params
    assert (params["stride"], params["smooth_landmarks"],
            params["min_detection_confidence"]) == (4, False, 0.3)
    assert workdir.reader(SKELETONS).get("a")["frame_index"].tolist() == [0, 4]
    help_text = CliRunner().invoke(cli, ["extract-poses", "--help"]).output
    assert "--stride" in help_text and "default: 1" in help_text


def test_videos_only_data_runs_through_pipeline_run_with_poses(tmp_path, fake_model):
    """Regression: extract-skeletons on videos only failed with "no sample has a readable
    skeleton file"; it now says where skeletons come from, and `run --poses` makes them."""
    boxes = moving_boxes(NUM_FRAMES)
    rows = [(f"v{k}", k % 2, "", write_video(tmp_path / f"v{k}.avi", NUM_FRAMES, boxes=boxes))
            for k in range(3)]
    workdir = videos_workdir(tmp_path, rows)
    runner = CliRunner()
    plain = runner.invoke(cli, ["run", str(workdir.path), "--to", "frames", "--no-progress"])
    assert plain.exit_code == 2
    assert "no sample of" in plain.output and "has a skeleton file" in plain.output
    assert "pipeline run --poses" in plain.output

    result = runner.invoke(cli, ["run", str(workdir.path), "--poses", "--to", "stitch",
                                 "--set", "poses.stride=2", "--set", "frames.num_frames=3",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "== poses" in result.output and "== skeletons" not in result.output
    assert workdir.reader(SKELETONS).spec.params["stride"] == 2
    record = workdir.reader(FRAMES).get("v1")
    assert list(record["crop_source"]) == ["skeleton"] * 3
    assert len(workdir.reader("stitch").ids) == 3


def test_run_config_poses_key():
    from pipeline.stages.run_all import parse_config
    assert parse_config({"poses": True}).step("skeletons") == "poses"
    assert parse_config({}).step("skeletons") == "skeletons"
    config = parse_config({"poses": {"stride": 4}, "jobs": 2})
    assert config.step("skeletons") == "poses" and config.step("frames") == "frames"
    assert config.kwargs_for("poses") == {"stride": 4, "jobs": 2}
    with pytest.raises(ValueError, match="unknown option.*strid\\b.*takes:.*stride"):
        parse_config({"poses": {"strid": 4}})
    with pytest.raises(ValueError, match="extract-skeletons options .*rebuild.* poses is on"):
        parse_config({"poses": True, "skeletons": {"rebuild": True}}).step("skeletons")
    with pytest.raises(ValueError, match="mapping of options \\(or true/false\\)"):
        parse_config({"poses": "yes"})


def test_run_no_poses_turns_off_a_configs_poses(tmp_path, monkeypatch):
    import pipeline.cli.run as run_module
    seen = []
    monkeypatch.setattr(run_module, "run_all",
                        lambda workdir, config, echo: seen.append(config.step("skeletons")))
    (tmp_path / "wd").mkdir()
    (tmp_path / "on.yaml").write_text("poses: {stride: 2}\n")
    config = ["--config", str(tmp_path / "on.yaml")]
    for flags, step in (([], "skeletons"), (["--poses"], "poses"), (config, "poses"),
                        (["--no-poses", *config], "skeletons"),
                        (["--set", "poses.stride=3"], "poses")):
        result = CliRunner().invoke(cli, ["run", str(tmp_path / "wd"), *flags])
        assert result.exit_code == 0, result.output
        assert seen.pop() == step, flags
    refused = CliRunner().invoke(cli, ["run", str(tmp_path / "wd"), "--no-poses", "--set",
                                       "poses.stride=3"])
    assert refused.exit_code == 2 and "--no-poses with --set poses.KEY=VALUE" in refused.output


def test_a_truncated_video_keeps_the_frames_that_decode_and_says_so(tmp_path, fake_model):
    whole = write_video(tmp_path / "whole.avi", NUM_FRAMES, boxes=moving_boxes(NUM_FRAMES))
    data = whole.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:int(len(data) * 0.6)])
    workdir = videos_workdir(tmp_path, [("cut", 0, "", cut)])
    result = extract_poses(workdir, progress=False)
    assert result.failures == []
    values = workdir.reader(SKELETONS).get("cut")
    decoded = int(values["source_frames"])
    assert 0 < decoded < NUM_FRAMES
    assert values["frame_index"].tolist() == list(range(decoded))
    assert values["notes"] == f"the file declares {NUM_FRAMES} frames, {decoded} decode"


def test_the_default_cache_needs_the_workdirs_layout_to_be_mediapipe(tmp_path, fake_model):
    video = write_video(tmp_path / "a.avi", 4, boxes=moving_boxes(4))
    workdir = videos_workdir(tmp_path, [("a", 0, "", video)])
    assert workdir.layout.name == "mediapipe-33"       # a manifest of videos only
    other = tmp_path / "coco"
    build_manifest("csv", tmp_path / "videos.csv", other, layout="coco-17")
    with pytest.raises(DataError, match="holds coco-17 skeletons; estimated poses are "
                                        "mediapipe-33.*--name NAME"):
        extract_poses(other, progress=False)
    assert extract_poses(other, cache_name="poses", progress=False).failures == []
    old = make_workdir(tmp_path / "old", [sample("a", video, skeleton=False)])
    Workdir.write_info(old.path, dataclasses.replace(old.info, layout=None))
    with pytest.raises(DataError, match="records no skeleton layout.*--layout mediapipe-33"):
        extract_poses(old.path, progress=False)
