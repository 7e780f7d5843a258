"""extract-poses with the real MediaPipe model on the real NTU videos in ../shared/data/ntu,
and the videos-only chain after it.

Skipped, with the reason, where MediaPipe cannot run (scripts/setup.sh installs it, so CI
runs these). MediaPipe takes ~70 ms a frame on a CPU core: the videos are estimated every
10th frame, once (with -j 2) for all tests of the module.
"""

import json

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from data_manifest.formats.ntu_skeleton import read_ntu_skeleton
from data_manifest.schemas import FRAMES, RGB_FEATURES, SKELETONS, STITCH
from data_manifest.workdir import Workdir
from pipeline.images import decode_jpeg
from pipeline.manifest_builder import build_manifest
from pipeline.models.errors import ModelError
from pipeline.models.pose_estimator import mediapipe_version
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.extract_poses import extract_poses
from pipeline.stages.rgb_features import cache_rgb_features
from pipeline.stages.stitch import stitch
from pipeline.synthetic.tiny_models import make_tiny_resnet
from pipeline.synthetic.video import background

from frames_factories import NTU_DIR, REAL_WITH_SKELETON

STRIDE = 10
VIDEOS = {"a001": (REAL_WITH_SKELETON, 0, "train"),
          "a002": ("S001C001P001R001A002", 1, "train"),
          "a062": ("S018C001P008R001A062", 0, "test")}


@pytest.fixture(scope="module")
def mediapipe():
    try:
        return mediapipe_version()
    except ModelError as error:
        pytest.skip(f"MediaPipe cannot run here: {error}")


def write_empty_room(path, frames=20, size=(640, 360)):
    """A video of a room with nobody in it."""
    scene = background(size, np.random.default_rng(0))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    for _ in range(frames):
        writer.write(scene)
    writer.release()
    return path


@pytest.fixture(scope="module")
def estimated(tmp_path_factory, shared_dir, mediapipe):
    """A WORKDIR made from a CSV of videos only: three real NTU videos and an empty room."""
    root = tmp_path_factory.mktemp("poses-real")
    rows = [f"{name},{label},,{NTU_DIR / (video + '_rgb.avi')},{split}"
            for name, (video, label, split) in VIDEOS.items()]
    rows.append(f"room,1,,{write_empty_room(root / 'room.avi')},test")
    (root / "videos.csv").write_text("id,label,skeleton,video,split\n" + "\n".join(rows) + "\n")
    build_manifest("csv", root / "videos.csv", root / "wd", shard_size=2)
    workdir = Workdir(root / "wd")
    result = extract_poses(workdir, stride=STRIDE, jobs=2, progress=False)
    return workdir, result


def _box(points):
    points = points[np.isfinite(points).all(axis=1)]
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def test_estimated_person_matches_the_kinect_skeleton(estimated):
    workdir, _ = estimated
    values = workdir.reader(SKELETONS).get("a001")
    assert values["frame_index"].tolist() == list(range(0, 103, STRIDE))    # found in all
    assert int(values["source_frames"]) == 103 and int(values["num_actors"]) == 1
    kinect = read_ntu_skeleton(NTU_DIR / f"{REAL_WITH_SKELETON}.skeleton").bodies[0]
    row_of = {int(frame): row for row, frame in enumerate(kinect.frames)}
    for row, frame in enumerate(values["frame_index"].tolist()):
        estimated_box = _box(values["color_xy"][row, 0])
        kinect_box = _box(kinect.color_xy[row_of[frame]])
        assert _iou(estimated_box, kinect_box) > 0.5, (frame, estimated_box, kinect_box)
    joints = values["joints"][:, 0]       # metric 3-D: a standing adult, about 1.5-2 m tall
    height = joints[:, :, 1].max(axis=1) - joints[:, :, 1].min(axis=1)
    assert 1.2 < float(np.median(height)) < 2.2
    assert ((values["visibility"] >= 0) & (values["visibility"] <= 1)).all()


def test_a_video_without_a_person_is_a_recorded_failure(estimated):
    workdir, result = estimated
    reasons = {f["id"]: f["reason"] for f in result.failures}
    assert list(reasons) == ["room"]
    assert "MediaPipe Pose found no person in any of the 2 frame(s)" in reasons["room"]
    assert sorted(workdir.reader(SKELETONS).ids) == ["a001", "a002", "a062"]


def test_one_or_two_workers_give_the_same_poses(estimated):
    workdir, _ = estimated
    extract_poses(workdir, stride=STRIDE, jobs=1, cache_name="serial", shard_indices=[0],
                  progress=False)
    serial, parallel = workdir.reader(SKELETONS, "serial"), workdir.reader(SKELETONS)
    for sample_id in ("a001", "a002"):
        one, two = serial.get(sample_id), parallel.get(sample_id)
        for field in ("joints", "color_xy", "visibility", "frame_index"):
            assert np.array_equal(one[field], two[field]), (sample_id, field)


@pytest.fixture(scope="module")
def chain(estimated, tmp_path_factory):
    """extract-frames, stitch and rgb-features (a tiny ResNet) after extract-poses."""
    workdir, _ = estimated
    frames = extract_frames(workdir, max_side=240, progress=False)
    stitched = stitch(workdir, progress=False)
    encoder = make_tiny_resnet(tmp_path_factory.mktemp("models") / "resnet")
    features = cache_rgb_features(workdir, str(encoder), progress=False)
    return workdir, frames, stitched, features


def test_videos_only_chain_crops_from_the_estimated_pose(chain):
    workdir, frames, stitched, features = chain
    assert frames.failures == [] and stitched.failures == [] and features.failures == []
    reader = workdir.reader(FRAMES)
    # frames 0, 20, ..., 80 of a001 were estimated; others borrow the nearest estimated box
    assert list(reader.get("a001")["crop_source"]) == ["skeleton"] * 5
    for sample_id in VIDEOS:
        assert set(reader.get(sample_id)["crop_source"]) <= {"skeleton", "nearest-skeleton"}
    room = reader.get("room")
    assert list(room["crop_source"]) == ["full-frame"] * 5
    assert "no person" in room["notes"]
    # a person crop is taller than wide; the whole frame of the room is 16:9
    x0, y0, x1, y1 = reader.get("a001")["boxes"][0]
    assert (y1 - y0) > 2 * (x1 - x0)
    image = decode_jpeg(workdir.reader(STITCH).get("room")["image"])
    assert image.shape == (480, 480, 3)
    assert len(workdir.reader(RGB_FEATURES, workdir.cache_names(RGB_FEATURES)[0]).ids) == 4


@pytest.mark.slow
def test_videos_only_chain_trains_on_the_estimated_poses(chain, tmp_path):
    """manifest (videos only) -> extract-poses -> frames -> stitch -> rgb-features ->
    `train run --preset custom --mmcl`: the layout comes from the WORKDIR, and the video
    without a person is skipped."""
    from train.cli.main import cli as train_cli
    workdir = chain[0]
    assert workdir.layout.name == "mediapipe-33"       # given by the manifest of videos only
    run = tmp_path / "run"
    done = CliRunner().invoke(train_cli, [
        "run", str(run), "--preset", "custom", "--workdir", str(workdir.path), "--mmcl",
        "--no-frm", "--set", "schedule.epochs=1", "--set", "schedule.warmup_epochs=0",
        "--set", "optim.batch_size=2", "--set", "data.num_workers=0",
        "--set", "data.val_fraction=0", "--set", "run.progress=false"])
    assert done.exit_code == 0, done.output
    recorded = yaml.safe_load((run / "config.yaml").read_text())
    assert recorded["model"]["layout"] == "mediapipe-33"
    assert (recorded["model"]["num_persons"], recorded["model"]["in_channels"]) == (1, 3)
    assert recorded["data"]["channels"] == "xyz"
    summary = json.loads((run / "data.json").read_text())
    assert "room" in json.dumps(summary)                # listed as skipped
