"""stitch and preview: layout, sizes, caching apart from extract-frames."""

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from data_manifest.schemas import FRAMES, STITCH, STITCH_FIELDS
from pipeline.cli.main import cli
from pipeline.images import decode_jpeg
from pipeline.stages.extract_frames import extract_frames
from pipeline.stages.preview import ACTOR_COLOURS, render_preview
from pipeline.images import encode_jpeg
from pipeline.stages import stitch as stitch_module
from pipeline.stages.stitch import (StitchTask, canvas_size, compose, placements, stitch,
                                    stored_crops)

from frames_factories import (box_joints, make_workdir, moving_boxes, sample,
                              skeleton_values, write_frames_cache, write_skeleton_cache,
                              write_video)

NUM_FRAMES = 40


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("stitch")
    boxes = moving_boxes(NUM_FRAMES)
    xy = np.stack([box_joints(box)[None] for box in boxes])
    samples = [sample(f"s{k}", write_video(root / f"s{k}.avi", NUM_FRAMES, boxes=boxes))
               for k in range(3)]
    samples.append(sample("broken", root / "missing.avi"))
    workdir = make_workdir(root / "wd", samples, shard_size=2)
    write_skeleton_cache(workdir, {f"s{k}": skeleton_values(xy) for k in range(3)})
    extract_frames(workdir, margin=0.1, progress=False)
    stitch(workdir, progress=False)
    return workdir


def test_columns_share_the_canvas():
    assert [(p.x, p.width) for p in placements([(10, 20)] * 5, (480, 480), "stretch")] == [
        (0, 96), (96, 96), (192, 96), (288, 96), (384, 96)]
    uneven = placements([(10, 20)] * 3, (100, 50), "stretch")
    assert [p.width for p in uneven] == [33, 34, 33] and sum(p.width for p in uneven) == 100
    padded = placements([(100, 100), (50, 200)], (200, 100), "pad")
    assert (padded[0].width, padded[0].height, padded[0].y) == (100, 100, 0)
    assert (padded[1].width, padded[1].height) == (25, 100) and padded[1].x == 100 + 37
    assert canvas_size(5, (480, 480)) == (480, 480)
    assert canvas_size(5, (480, 480), tile=(64, 128)) == (320, 128)
    with pytest.raises(ValueError, match="cannot hold"):
        canvas_size(5, (3, 10))


def test_compose_puts_crops_left_to_right_in_time_order():
    crops = [np.full((30 + 10 * i, 20, 3), 50 * i, np.uint8) for i in range(4)]
    image, where = compose(crops, (80, 40), "stretch")
    assert image.shape == (40, 80, 3)
    for i, place in enumerate(where):
        assert (image[:, place.x:place.x + place.width] == 50 * i).all()


def test_stitched_image_has_the_configured_size_and_content(workdir):
    reader = workdir.reader(STITCH)
    values = reader.get("s0")
    assert set(values) == set(STITCH_FIELDS)
    image = decode_jpeg(values["image"])
    assert image.shape == (480, 480, 3) and values["size"].tolist() == [480, 480]
    # column i is crop i stretched to 96x480, and mostly the (red) actor
    crops = stored_crops(workdir.reader(FRAMES).get("s0"))
    for column, crop in enumerate(crops):
        tile = image[:, column * 96:(column + 1) * 96].astype(float)
        expected = cv2.resize(crop, (96, 480), interpolation=cv2.INTER_LINEAR)
        assert np.abs(tile - expected).mean() < 3
        blue, green, red = np.median(tile.reshape(-1, 3), axis=0)
        assert red > 180 and blue < 80 and green < 80
    assert reader.spec.upstream == {"frames/default": workdir.reader(FRAMES).spec.fingerprint}


def test_failed_frames_become_stitch_failures(workdir):
    failures = workdir.reader(STITCH).failures
    assert [f["id"] for f in failures] == ["broken"]
    assert "extract-frames" in failures[0]["reason"] and "missing.avi" in failures[0]["reason"]


def test_new_layout_does_not_redo_extract_frames(workdir):
    frames = workdir.cache_dir(FRAMES)
    before = {i: p.stat().st_mtime_ns for i, p in frames.shard_files().items()}
    with pytest.raises(StaleCacheError, match="canvas"):
        stitch(workdir, canvas=(320, 240), progress=False)
    result = stitch(workdir, tile=(64, 128), fit="pad", cache_name="tiles", progress=False)
    assert result.shards_written == 2
    image = decode_jpeg(workdir.reader(STITCH, "tiles").get("s1")["image"])
    assert image.shape == (128, 320, 3)
    assert {i: p.stat().st_mtime_ns for i, p in frames.shard_files().items()} == before
    again = stitch(workdir, tile=(64, 128), fit="pad", cache_name="tiles", progress=False)
    assert again.shards_written == 0


def test_stitch_needs_a_finished_frames_cache(tmp_path):
    video = write_video(tmp_path / "a.avi", 10)
    workdir = make_workdir(tmp_path / "wd", [sample("a", video), sample("b", video)],
                           shard_size=1)
    with pytest.raises(MissingCacheError, match="no frames cache named 'default'.*"
                                               "pipeline extract-frames"):
        stitch(workdir, progress=False)
    with pytest.raises(MissingCacheError, match="no frames cache.*pipeline extract-frames"):
        render_preview(workdir, "a")
    extract_frames(workdir, crop="none", progress=False, shard_indices=[0])
    with pytest.raises(MissingCacheError, match=r"unfinished: .*shard\(s\) 1 \(1 of 2\); "
                                               "run `pipeline extract-frames"):
        stitch(workdir, progress=False)
    assert stitch(workdir, progress=False, shard_indices=[0]).samples_written == 1


def test_preview_draws_the_skeleton_on_every_tile(workdir, tmp_path):
    preview = render_preview(workdir, "s2")
    assert preview.image.shape == (480, 480, 3)
    assert preview.frame_indices == [0, 8, 16, 24, 32]
    assert preview.crop_source == ["skeleton"] * 5
    assert preview.joints_drawn == 5 * 25
    green = (preview.image == ACTOR_COLOURS[0]).all(axis=2)
    for column in range(5):
        assert green[:, column * 96:(column + 1) * 96].sum() > 50

    out = tmp_path / "p.png"
    result = CliRunner().invoke(cli, ["preview", str(workdir.path), "s2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert cv2.imread(str(out)).shape == (480, 480, 3)
    assert "125 joints drawn" in result.output
    missing = CliRunner().invoke(cli, ["preview", str(workdir.path), "broken", "-o",
                                       str(out)])
    assert missing.exit_code == 2 and "extract-frames failed" in missing.output
    with pytest.raises(DataError, match="no sample"):
        render_preview(workdir, "nobody")


def test_stitch_cli(workdir):
    runner = CliRunner()
    result = runner.invoke(cli, ["stitch", str(workdir.path), "--tile", "32x64", "--name",
                                 "cli", "--no-progress"])
    assert result.exit_code == 1 and "failed broken" in result.output
    assert decode_jpeg(workdir.reader(STITCH, "cli").get("s0")["image"]).shape == (64, 160, 3)
    result = runner.invoke(cli, ["stitch", str(workdir.path), "--tile", "32x64", "--name",
                                 "cli", "--skip-failures", "--no-progress"])
    assert result.exit_code == 0
    assert "0 shard(s) written" in result.output
    result = runner.invoke(cli, ["stitch", str(workdir.path), "--tile", "32x64", "--name",
                                 "cli", "--skip-failures", "--no-progress", "--rebuild"])
    assert result.exit_code == 0 and "2 shard(s) written, 0 already done" in result.output
    assert decode_jpeg(workdir.reader(STITCH, "cli").get("s0")["image"]).shape == (64, 160, 3)


def _crop(width, height=20, value=120):
    return encode_jpeg(np.full((height, width, 3), value, np.uint8), 90)


def test_a_damaged_frames_record_fails_only_that_sample(tmp_path):
    """Regression: a zero-length stored crop raised cv2.error and stopped the run."""
    ids = ["ok", "empty", "corrupt", "upstream"]
    workdir = make_workdir(tmp_path / "wd", [sample(i, None) for i in ids], shard_size=2)
    write_frames_cache(workdir, {"ok": [_crop(10), _crop(12)],
                                 "empty": [_crop(10), b""],
                                 "corrupt": [_crop(10)[:40], _crop(12)]}, num_frames=2)
    result = stitch(workdir, canvas=(40, 20), progress=False)
    reasons = {f["id"]: f["reason"] for f in result.failures}
    assert set(reasons) == {"empty", "corrupt", "upstream"}
    assert reasons["empty"] == ("sample empty: frames cache record is damaged (stored crop 2 "
                                "is empty)")
    assert "sample corrupt:" in reasons["corrupt"] and "stored crop 1 is corrupt" in reasons[
        "corrupt"]
    assert "extract-frames: video not found" in reasons["upstream"]
    image = decode_jpeg(workdir.reader(STITCH).get("ok")["image"])
    assert image.shape == (20, 40, 3) and abs(float(image.mean()) - 120) < 3


@pytest.mark.parametrize("error, reason", [
    (lambda: cv2.resize(np.zeros((0, 5, 3), np.uint8), (3, 3)), "OpenCV error in resize"),
    (lambda: np.zeros(3).reshape(2), "ValueError: cannot reshape")])
def test_opencv_or_value_error_while_stitching_fails_only_that_sample(tmp_path, monkeypatch,
                                                                      error, reason):
    """Regression: only DataError was caught per sample, so one odd crop stopped stitch."""
    workdir = make_workdir(tmp_path / "wd", [sample(i, None) for i in ("a", "odd", "b")],
                           shard_size=2)
    write_frames_cache(workdir, {"a": [_crop(10)] * 2, "odd": [_crop(7)] * 2,
                                 "b": [_crop(10)] * 2}, num_frames=2)
    original = stitch_module.resize_to

    def choke_on_odd_crop(image, width, height):
        if image.shape[1] == 7:
            error()
        return original(image, width, height)

    monkeypatch.setattr(stitch_module, "resize_to", choke_on_odd_crop)
    result = stitch(workdir, canvas=(40, 20), progress=False)
    assert [f["id"] for f in result.failures] == ["odd"]
    message = result.failures[0]["reason"]
    assert message.startswith("sample odd: cannot stitch its crops (") and reason in message
    assert sorted(workdir.reader(STITCH).ids) == ["a", "b"]
    assert stitch(workdir, canvas=(40, 20), progress=False).shards_written == 0


def test_a_frames_cache_rebuilt_while_stitching_is_refused(tmp_path):
    workdir = make_workdir(tmp_path / "wd", [sample("a", None)], shard_size=1)
    fingerprint = write_frames_cache(workdir, {"a": [_crop(10)]}, num_frames=1)
    path = str(workdir.cache_dir(FRAMES).path)
    task = StitchTask({"canvas": [20, 20], "fit": "stretch", "jpeg_quality": 90}, path,
                      fingerprint)
    task.setup(0, workdir.shard_samples(0))
    assert "a" in task._frames
    task.teardown()
    stale = StitchTask(task.params, path, "0" * len(fingerprint))
    with pytest.raises(MissingCacheError, match="frames cache at .* changed while stitch"):
        stale.setup(0, workdir.shard_samples(0))


def _wide_frame(width=320, height=180):
    """A 16:9 "whole frame": a red centre strip (where a person would stand) on green."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:] = (0, 200, 0)
    middle = width // 2
    frame[:, middle - 18:middle + 18] = (0, 0, 230)
    return frame


def test_a_whole_frame_is_cut_to_the_tile_aspect_not_stretched():
    """Regression: a 16:9 whole frame was stretched into a 96x480 column."""
    assert placements([(320, 180)], (96, 480), "crop")[0].window == (142, 0, 178, 180)
    assert placements([(100, 400)], (100, 100), "crop")[0].window == (0, 150, 100, 250)
    image, where = compose([_wide_frame()], (96, 480), ["crop"])
    blue, green, red = np.median(image.reshape(-1, 3), axis=0)
    assert red > 180 and green < 60        # the centre strip fills the column
    stretched, _ = compose([_wide_frame()], (96, 480), ["stretch"])
    assert np.median(stretched.reshape(-1, 3), axis=0)[1] > 150   # mostly green: squeezed
    # a point at the frame's centre lands at the tile's centre, its edges outside the tile
    centre = where[0].map_points(np.array([[160.0, 90.0], [0.0, 90.0]]), 320, 180)
    assert np.allclose(centre[0], (48, 240)) and centre[1][0] < 0


def test_whole_frame_fit_follows_the_crop_source(tmp_path):
    wide = encode_jpeg(_wide_frame(), 95)
    person = encode_jpeg(np.full((200, 80, 3), 200, np.uint8), 95)
    workdir = make_workdir(tmp_path / "wd", [sample("a", None)])
    write_frames_cache(workdir, {"a": [wide, person, wide]}, num_frames=3,
                       sources={"a": ["full-frame", "skeleton", "none"]})

    def tiles(name, **options):
        stitch(workdir, canvas=(288, 480), cache_name=name, progress=False, **options)
        image = decode_jpeg(workdir.reader(STITCH, name).get("a")["image"])
        return [image[:, i * 96:(i + 1) * 96].astype(int) for i in range(3)]

    cut = tiles("default")                       # whole_frame_fit="crop" by default
    for tile in (cut[0], cut[2]):
        assert np.median(tile[..., 2]) > 180 and np.median(tile[..., 1]) < 60
    assert abs(cut[1].mean() - 200) < 4          # the person crop is stretched as before
    padded = tiles("padded", whole_frame_fit="pad")
    assert padded[0][:200].max() < 30 and padded[0][-200:].max() < 30   # black above/below
    assert np.median(padded[0][240, :, 1]) > 150                          # the whole frame
    assert tiles("stretched", whole_frame_fit="stretch")[0][..., 1].mean() > 120
    assert workdir.reader(STITCH).spec.params["whole_frame_fit"] == "crop"
    with pytest.raises(ValueError, match="whole_frame_fit"):
        stitch(workdir, whole_frame_fit="squeeze", progress=False)
