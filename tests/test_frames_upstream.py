"""The shared helpers of extract-frames/stitch: opening upstream caches, decoding JPEGs."""

import cv2
import numpy as np
import pytest

from data_manifest.errors import DataError, MissingCacheError
from data_manifest.schemas import FRAMES, SKELETONS, STITCH
from pipeline.images import decode_jpeg, describe_image_error, encode_jpeg
from pipeline.models.images import decode_image
from pipeline.stages.temporal_images import open_stitch_cache
from pipeline.stages.upstream import (failure_reasons, open_upstream, open_upstream_shard,
                                      shard_list)

from frames_factories import make_workdir, sample, write_frames_cache, write_skeleton_cache


def test_shard_list_shows_ten_then_counts():
    assert shard_list([3]) == "3"
    assert shard_list(range(3)) == "0, 1, 2"
    assert shard_list(range(10)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert shard_list(range(13)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 3 more"


@pytest.fixture
def workdir(tmp_path):
    return make_workdir(tmp_path / "wd", [sample(f"s{i}", None) for i in range(6)],
                        shard_size=2)


def test_a_missing_upstream_cache_names_the_others_and_what_to_run(workdir):
    with pytest.raises(MissingCacheError, match=r"has no skeletons cache named 'default'; "
                                                "run this"):
        open_upstream(workdir, SKELETONS, "default", None, "run this")
    write_skeleton_cache(workdir, {}, name="raw")
    write_skeleton_cache(workdir, {}, name="other", params={"factory": 2})
    with pytest.raises(MissingCacheError, match=r"'default' \(it has skeletons cache\(s\) "
                                                "other, raw\\); run this"):
        open_upstream(workdir, SKELETONS, "default", [0], "run this")


def test_an_unfinished_upstream_cache_is_refused_for_the_shards_wanted(workdir):
    write_skeleton_cache(workdir, {}, failures={"s1": "bad line 3"})
    workdir.cache_dir(SKELETONS).shard_path(2).unlink()
    with pytest.raises(MissingCacheError, match=r"'default' is unfinished: it has not "
                                                r"finished shard\(s\) 2 \(1 of 3\); run this"):
        open_upstream(workdir, SKELETONS, "default", None, "run this")
    with open_upstream(workdir, SKELETONS, "default", [0, 1], "run this") as reader:
        assert reader.shard_indices == [0, 1]
        assert failure_reasons(reader)["s1"] == "bad line 3"


def test_open_stitch_cache_is_the_shared_check(workdir):
    with pytest.raises(MissingCacheError, match="no stitch cache.*pipeline stitch"):
        open_stitch_cache(workdir)


def test_an_upstream_shard_rebuilt_meanwhile_is_refused(workdir):
    fingerprint = write_frames_cache(workdir, {"s2": [encode_jpeg(np.zeros((4, 4, 3),
                                                                           np.uint8), 90)]},
                                     num_frames=1)
    path = str(workdir.cache_dir(FRAMES).path)
    planned = [s.id for s in workdir.shard_samples(1)]
    with open_upstream_shard(path, FRAMES, 1, planned, fingerprint, "stitch") as reader:
        assert reader.shard_indices == [1] and "s2" in reader
        assert failure_reasons(reader) == {"s3": "video not found"}
    with pytest.raises(MissingCacheError, match="changed while extract-frames was running"):
        open_upstream_shard(path, FRAMES, 1, planned, "f" * 16, "extract-frames")


def test_decode_jpeg_turns_every_bad_buffer_into_a_data_error():
    image = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    data = encode_jpeg(image, 95)
    assert decode_jpeg(data).shape == (12, 16, 3)
    assert decode_jpeg(np.frombuffer(data, np.uint8)).shape == (12, 16, 3)
    # an empty buffer made OpenCV raise cv2.error, which no stage caught
    with pytest.raises(DataError, match="^stored JPEG is empty$"):
        decode_jpeg(b"")
    with pytest.raises(DataError, match="sample x: crop 2 is corrupt: it does not decode"):
        decode_jpeg(data[:len(data) // 2], what="crop 2", sample_id="x")


def test_decode_image_is_decode_jpeg_in_rgb_with_the_stitch_hint():
    image = np.random.default_rng(1).integers(0, 255, (10, 14, 3), dtype=np.uint8)
    for data in (encode_jpeg(image, 90), cv2.imencode(".png", image)[1].tobytes()):
        rgb = decode_image(data)
        assert rgb.mode == "RGB" and rgb.size == (14, 10)
        np.testing.assert_array_equal(np.asarray(rgb), decode_jpeg(data)[:, :, ::-1])
    np.testing.assert_array_equal(np.asarray(decode_image(cv2.imencode(".png", image)[1]
                                                          .tobytes())), image[:, :, ::-1])
    with pytest.raises(DataError, match="sample s7: the cached temporal image is corrupt.*"
                                        "pipeline stitch") as caught:
        decode_image(b"\xff\xd8 not a jpeg", sample_id="s7")
    assert caught.value.sample_id == "s7"
    with pytest.raises(DataError, match="temporal image is empty"):
        decode_image(b"")


def test_image_errors_are_described_on_one_line():
    with pytest.raises(cv2.error) as caught:
        cv2.resize(np.zeros((0, 5, 3), np.uint8), (3, 3))
    text = describe_image_error(caught.value)
    assert text.startswith("OpenCV error in resize: ") and "\n" not in text
    assert describe_image_error(ValueError("a\n  b")) == "ValueError: a b"
