"""extract-frames and stitch on the real NTU videos in ../shared/data/ntu.

One run of each stage is shared by the tests (decoding 1920x1080 video is the slow
part); crops are kept small (max side 240) so encoding stays cheap.
"""

import numpy as np
import pytest

from data_manifest.schemas import FRAMES, SKELETONS, STITCH
from pipeline.images import decode_jpeg, fit_within
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.extract_skeletons import extract_skeletons
from pipeline.stages.stitch import stitch, stored_crops
from pipeline.video import VideoReader

from frames_factories import NTU_DIR, REAL_VIDEO_ONLY, REAL_WITH_SKELETON, make_workdir, sample

EXPECTED_INDICES = {REAL_WITH_SKELETON: [0, 20, 40, 60, 80],      # 103 frames
                    "S001C001P001R001A002": [0, 31, 62, 93, 124],   # 158 frames
                    "S018C001P008R001A062": [0, 25, 50, 75, 100]}   # 128 frames
# --sampling keyframe: the nearest key frame (every 12th frame) to each of those
KEYFRAME_INDICES = {REAL_WITH_SKELETON: [0, 24, 36, 60, 84],
                    "S001C001P001R001A002": [0, 36, 60, 96, 120],
                    "S018C001P008R001A062": [0, 24, 48, 72, 96]}


@pytest.fixture(scope="module")
def real(tmp_path_factory, shared_dir):
    root = tmp_path_factory.mktemp("real") / "wd"
    report = build_manifest("ntu120", NTU_DIR, root, require="any")
    assert report.num_samples == 3          # the two video-only samples are listed too
    extract_skeletons(root, progress=False)  # fails the video-only samples: no skeleton
    frames = extract_frames(root, max_side=240, progress=False)
    keyframes = extract_frames(root, max_side=240, sampling="keyframe",
                               cache_name="keyframe", progress=False)
    assert keyframes.failures == []
    stitched = stitch(root, progress=False)
    from data_manifest.workdir import Workdir
    return Workdir(root), frames, stitched


def test_frames_are_the_specified_ones(real):
    workdir, result, _ = real
    assert result.failures == []
    reader = workdir.reader(FRAMES)
    for sample_id, indices in EXPECTED_INDICES.items():
        values = reader.get(sample_id)
        assert values["frame_indices"].tolist() == indices
        assert values["video_size"].tolist() == [1920, 1080]
    assert reader.get(REAL_WITH_SKELETON)["video_frames"] == 103


def test_key_frame_sampling_takes_the_nearest_key_frames(real):
    workdir, _, _ = real
    reader = workdir.reader(FRAMES, "keyframe")
    for sample_id, indices in KEYFRAME_INDICES.items():
        assert reader.get(sample_id)["frame_indices"].tolist() == indices
        notes = reader.get(sample_id)["notes"]
        assert notes == "" or ("has no skeleton file" in notes
                               and notes.endswith("whole frames")), notes


@pytest.mark.parametrize("cache", ["default", "keyframe"])
def test_crop_contains_the_projected_joints_of_its_frame(real, cache):
    workdir, _, _ = real
    values = workdir.reader(FRAMES, cache).get(REAL_WITH_SKELETON)
    skeleton = workdir.reader(SKELETONS).get(REAL_WITH_SKELETON)
    assert values["crop_source"] == ["skeleton"] * 5
    row_of = {int(f): row for row, f in enumerate(skeleton["frame_index"])}
    for index, box in zip(values["frame_indices"], values["boxes"]):
        xy = skeleton["color_xy"][row_of[int(index)]].reshape(-1, 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        assert len(xy) >= 25
        x0, y0, x1, y1 = box
        assert ((xy[:, 0] >= x0) & (xy[:, 0] < x1)).all()
        assert ((xy[:, 1] >= y0) & (xy[:, 1] < y1)).all()
        # a person box, not the whole frame
        assert 0 < (x1 - x0) * (y1 - y0) < 0.5 * 1920 * 1080


def test_crop_pixels_are_that_frame_of_the_video(real):
    workdir, _, _ = real
    values = workdir.reader(FRAMES).get(REAL_WITH_SKELETON)
    crops = stored_crops(values)
    with VideoReader(NTU_DIR / f"{REAL_WITH_SKELETON}_rgb.avi") as video:
        decoded = dict(video.frames([40, 60]))
    x0, y0, x1, y1 = values["boxes"][2]
    stored = crops[2].astype(float)
    expected = fit_within(decoded[40][y0:y1, x0:x1], 240).astype(float)
    assert stored.shape == expected.shape and max(stored.shape[:2]) == 240
    error = np.abs(stored - expected).mean()
    later = np.abs(stored - fit_within(decoded[60][y0:y1, x0:x1], 240)).mean()
    assert error < 4 and later > 2 * error       # frame 40's pixels, not its neighbour's


def test_videos_without_skeleton_take_the_fallback_and_say_so(real):
    workdir, _, _ = real
    reader = workdir.reader(FRAMES)
    for sample_id in REAL_VIDEO_ONLY:
        values = reader.get(sample_id)
        assert values["crop_source"] == ["full-frame"] * 5
        assert values["boxes"].tolist() == [[0, 0, 1920, 1080]] * 5
        assert "has no skeleton file, only a video" in values["notes"]
        assert values["notes"].endswith("whole frames")
        assert [c.shape for c in stored_crops(values)] == [(135, 240, 3)] * 5


def test_stitched_images_have_the_configured_size(real):
    workdir, _, result = real
    assert result.failures == [] and result.samples_written == 3
    reader = workdir.reader(STITCH)
    for sample_id in EXPECTED_INDICES:
        assert decode_jpeg(reader.get(sample_id)["image"]).shape == (480, 480, 3)
    stitch(workdir, canvas=(600, 200), cache_name="wide", progress=False)
    image = decode_jpeg(workdir.reader(STITCH, "wide").get(REAL_WITH_SKELETON)["image"])
    assert image.shape == (200, 600, 3)


def test_truncated_real_video_is_a_recorded_failure(tmp_path):
    data = (NTU_DIR / f"{REAL_WITH_SKELETON}_rgb.avi").read_bytes()
    cut = tmp_path / "cut_rgb.avi"
    cut.write_bytes(data[:len(data) // 4])
    garbage = tmp_path / "garbage_rgb.avi"
    garbage.write_bytes(data[:64] + b"\xff" * 4096)      # a real header, then garbage
    workdir = make_workdir(tmp_path / "wd", [sample("cut", cut), sample("garbage", garbage)])
    result = extract_frames(workdir, crop="none", max_side=64, progress=False)
    reasons = {f["id"]: f["reason"] for f in result.failures}
    assert set(reasons) == {"cut", "garbage"}
    assert "cut_rgb.avi" in reasons["cut"] and "truncated or corrupt" in reasons["cut"]
    assert "garbage_rgb.avi" in reasons["garbage"]
