"""Decoding chosen frames: right frames by every method, clear errors for bad files."""

import numpy as np
import pytest

from data_manifest.errors import DataError
from pipeline.video import VideoReader, select_frames
from pipeline.video import reader as reader_module

from frames_factories import NTU_DIR, REAL_WITH_SKELETON, read_index, write_video


@pytest.fixture(scope="module")
def long_mpeg4(tmp_path_factory):
    # MPEG-4 part 2 like the NTU files: a key frame every 12 frames, so seeks decode
    return write_video(tmp_path_factory.mktemp("v") / "long.avi", 300, fourcc="FMP4")


@pytest.mark.parametrize("method", ["grab", "seek", "auto"])
def test_each_method_returns_the_requested_frames(long_mpeg4, method):
    wanted = [0, 1, 13, 59, 60, 200, 299]
    with VideoReader(long_mpeg4, method=method) as video:
        assert video.info.frame_count == 300
        assert (video.info.width, video.info.height) == (160, 120)
        got = [(index, read_index(frame)) for index, frame in video.frames(wanted)]
    assert got == [(i, i) for i in wanted]


def test_auto_seeks_only_across_long_gaps(long_mpeg4, monkeypatch):
    seeks = []
    original = VideoReader._seek
    monkeypatch.setattr(VideoReader, "_seek", lambda self, t: (seeks.append(t),
                                                               original(self, t)))
    with VideoReader(long_mpeg4) as video:
        list(video.frames([10, 10 + reader_module.SEEK_MIN_GAP + 1,
                           20 + 3 * reader_module.SEEK_MIN_GAP]))
    assert seeks == [20 + 3 * reader_module.SEEK_MIN_GAP]


def test_repeated_and_unsorted_indices_are_decoded_once_in_order(tmp_path):
    path = write_video(tmp_path / "short.avi", 3)
    with VideoReader(path) as video:
        got = [index for index, _ in video.frames([2, 0, 0, 1, 2])]
    assert got == [0, 1, 2]


def test_real_ntu_video_grab_and_seek_agree():
    path = NTU_DIR / f"{REAL_WITH_SKELETON}_rgb.avi"
    wanted = select_frames(103, 5).indices
    decoded = {}
    for method in ("grab", "seek"):
        with VideoReader(path, method=method) as video:
            info = video.info
            assert (info.frame_count, info.width, info.height) == (103, 1920, 1080)
            decoded[method] = [frame for _, frame in video.frames(wanted)]
    for a, b in zip(decoded["grab"], decoded["seek"]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(decoded["grab"][0], decoded["grab"][-1])


def test_missing_empty_and_garbage_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist") as error:
        VideoReader(tmp_path / "nope.avi")
    assert error.value.path.endswith("nope.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        VideoReader(tmp_path / "empty.avi")
    (tmp_path / "garbage.avi").write_bytes(b"\x00\x01 definitely not a video " * 20)
    with pytest.raises(DataError, match="cannot open as a video"):
        VideoReader(tmp_path / "garbage.avi")


def test_zero_frame_video_counts_zero(tmp_path):
    path = write_video(tmp_path / "zero.avi", 0)
    with VideoReader(path) as video:
        assert video.info.frame_count == 0
        assert video.count_frames() == 0


def test_truncated_real_video_fails_at_the_first_missing_frame(tmp_path):
    data = (NTU_DIR / f"{REAL_WITH_SKELETON}_rgb.avi").read_bytes()
    path = tmp_path / "truncated.avi"
    path.write_bytes(data[:len(data) // 3])
    with VideoReader(path) as video:
        assert video.info.frame_count == 103           # the header still says 103
        frames = video.frames([0, 80])
        assert next(frames)[0] == 0
        with pytest.raises(DataError, match="truncated or corrupt"):
            next(frames)
