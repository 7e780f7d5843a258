"""extract-frames --sampling keyframe, and the reader choice (--method) that must not
change what is stored."""

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import StaleCacheError
from data_manifest.schemas import FRAMES
from pipeline.cli.main import cli
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.stitch import stored_crops
from pipeline.video import methods

from frames_factories import (ACTOR_BGR, box_skeleton, encode_video, make_workdir,
                              moving_boxes, read_index, sample, skeleton_values,
                              write_skeleton_cache, write_video)

FRAMES_PER_VIDEO = 40       # 5 frames: 0, 8, 16, 24, 32; key-frame tolerance 3
USED = {"gop5": [0, 10, 15, 25, 30],          # key frames every 5
        "one-key": [0, 8, 16, 24, 32],        # a key frame at 0 only: exact frames
        "opencv": [0, 8, 16, 24, 32],         # every 12: 0 and 24 are key frames
        "stamps": [0, 8, 16, 24, 32]}         # no usable index: exact frames


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling")
    boxes = moving_boxes(FRAMES_PER_VIDEO)
    videos = {
        "gop5": encode_video(root / "gop5.avi", FRAMES_PER_VIDEO, gop=5, boxes=boxes),
        "one-key": encode_video(root / "one-key.mp4", FRAMES_PER_VIDEO, gop=50,
                                boxes=boxes),
        "opencv": write_video(root / "opencv.avi", FRAMES_PER_VIDEO, fourcc="FMP4",
                              boxes=boxes),
        "stamps": encode_video(root / "stamps.avi", FRAMES_PER_VIDEO, codec="libx264",
                               bframes=2, gop=10, boxes=boxes),
    }
    workdir = make_workdir(root / "wd", [sample(name, path) for name, path in videos.items()])
    write_skeleton_cache(workdir, {name: skeleton_values(box_skeleton(boxes))
                                   for name in videos})
    extract_frames(workdir, sampling="keyframe", margin=0.0, cache_name="keyframe",
                   progress=False)
    return workdir, boxes


def test_key_frame_sampling_takes_the_nearest_key_frames_and_their_boxes(workdir):
    workdir, boxes = workdir
    reader = workdir.reader(FRAMES, "keyframe")
    assert reader.spec.params["sampling"] == "keyframe"
    for name, used in USED.items():
        values = reader.get(name)
        assert values["frame_indices"].tolist() == used, name
        assert values["crop_source"] == ["skeleton"] * 5
        for index, box, crop in zip(used, values["boxes"], stored_crops(values)):
            assert tuple(box) == boxes[index]          # the box of the frame used
            assert np.abs(crop.reshape(-1, 3).mean(axis=0) - ACTOR_BGR).max() < 20
    assert reader.get("gop5")["notes"] == ""
    assert ("4 of 5 chosen frame(s) have no key frame within 3 frames: decoded exactly"
            in reader.get("one-key")["notes"])
    assert "3 of 5 chosen frame(s)" in reader.get("opencv")["notes"]
    assert "no usable key-frame index: exact frames" in reader.get("stamps")["notes"]


def test_key_frame_crops_are_the_pixels_of_the_frame_used(workdir):
    workdir, _ = workdir
    extract_frames(workdir, sampling="keyframe", crop="none", cache_name="keyframe-whole",
                   progress=False)
    reader = workdir.reader(FRAMES, "keyframe-whole")
    for name, used in USED.items():
        values = reader.get(name)
        assert [read_index(crop) for crop in stored_crops(values)] == used, name


def test_sampling_is_part_of_the_fingerprint(workdir):
    workdir, _ = workdir
    with pytest.raises(StaleCacheError, match="sampling"):
        extract_frames(workdir, margin=0.0, cache_name="keyframe", progress=False)


def stored(workdir, name):
    reader = workdir.reader(FRAMES, name)
    return {sample_id: reader.get(sample_id) for sample_id in reader.ids}


def test_every_method_stores_the_same_exact_frames(workdir, monkeypatch):
    workdir, _ = workdir
    for method in ("index", "grab", "seek"):
        extract_frames(workdir, margin=0.0, method=method, cache_name=method,
                       progress=False)
    monkeypatch.setattr(methods, "pyav_available", lambda: False)
    extract_frames(workdir, margin=0.0, cache_name="no-pyav", progress=False)
    reference = stored(workdir, "index")
    assert reference["gop5"]["frame_indices"].tolist() == [0, 8, 16, 24, 32]
    for name in ("grab", "seek", "no-pyav"):
        other = stored(workdir, name)
        assert sorted(other) == sorted(reference)
        for sample_id, values in reference.items():
            for field in ("jpeg", "frame_indices", "boxes"):
                np.testing.assert_array_equal(other[sample_id][field], values[field],
                                              err_msg=f"{name}: {sample_id} {field}")


def test_key_frame_sampling_needs_the_index(workdir, monkeypatch):
    workdir, _ = workdir
    runner = CliRunner()
    args = ["extract-frames", str(workdir.path), "--sampling", "keyframe", "--name", "x"]
    refused = runner.invoke(cli, args + ["--method", "grab"])
    assert refused.exit_code == 2
    assert "needs the key-frame index: use --method index or auto, not grab" in refused.output
    monkeypatch.setattr(methods, "pyav_available", lambda: False)
    no_pyav = runner.invoke(cli, args)
    assert no_pyav.exit_code == 2 and "pip install av" in no_pyav.output
    index_without_pyav = runner.invoke(cli, args[:2] + ["--method", "index"])
    assert index_without_pyav.exit_code == 2 and "pip install av" in index_without_pyav.output
    assert not workdir.cache_dir(FRAMES, "x").path.exists()


def test_help_documents_sampling_and_methods():
    result = CliRunner().invoke(cli, ["extract-frames", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--sampling [exact|keyframe]" in text and "[default: exact]" in text
    assert "--method [auto|index|grab|seek]" in text and "needs PyAV" in text
