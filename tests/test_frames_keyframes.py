"""The PyAV reader with a key-frame index: frames bit-identical to decoding every frame,
no more frames decoded than the key frames require, and a safe fallback for streams
whose packets do not say the truth."""

import numpy as np
import pytest

from data_manifest.errors import DataError
from pipeline.video import indexed as indexed_module
from pipeline.video import keyframe_tolerance, open_reader, select_frames
from pipeline.video.indexed import IndexedVideoReader, PacketIndex

from frames_factories import (NTU_DIR, REAL_VIDEO_ONLY, REAL_WITH_SKELETON, decode_all,
                              decode_all_opencv, encode_video, read_index, write_video)

X264_OPEN_GOP = {"x264-params": "open-gop=1:keyint=10:min-keyint=10:scenecut=0"}
VARIANTS = {    # name: (file name, frames, encoder settings)
    "mpeg4 every frame a key frame": ("gop1.avi", 7, {"gop": 1}),
    "mpeg4 key frame every 5": ("gop5.avi", 23, {"gop": 5}),
    "mpeg4 B-frames, AVI": ("bframes.avi", 40, {"gop": 12, "bframes": 2}),
    "mpeg4 one key frame, MP4": ("gop50.mp4", 41, {"gop": 50}),
    "h264 B-frames, open GOP, MP4": ("open.mp4", 45, {"codec": "libx264", "bframes": 3,
                                                      "options": X264_OPEN_GOP}),
    "h264 B-frames, MKV (no declared count)": ("h264.mkv", 33,
                                               {"codec": "libx264", "bframes": 2, "gop": 8}),
    "h264 B-frames, AVI (decode-order stamps)": ("h264.avi", 30, {"codec": "libx264",
                                                                   "bframes": 2, "gop": 10}),
    "one frame": ("one.mp4", 1, {}),
    "two frames": ("two.avi", 2, {"gop": 1}),
}
OPENCV_WRITTEN = {"OpenCV MPEG-4 (NTU-like)": ("fmp4.avi", 103, "FMP4"),
                  "OpenCV MJPEG": ("mjpg.avi", 19, "MJPG")}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("encoded")
    paths = {name: encode_video(root / file, count, **settings)
             for name, (file, count, settings) in VARIANTS.items()}
    paths.update({name: write_video(root / file, count, fourcc=fourcc)
                  for name, (file, count, fourcc) in OPENCV_WRITTEN.items()})
    return paths


def packets_to_decode(index: PacketIndex, targets) -> int:
    """The packets from the key frame before each target up to it, each counted once:
    what the reader must decode when it never falls back."""
    spans = sorted((index.start_of(t), int(index.position_of_frame[t])) for t in set(targets))
    total, end = 0, -1
    for start, last in spans:
        total += last - start + 1 if start > end else max(last - end, 0)
        end = max(end, last)
    return total


def target_sets(count: int) -> list[list[int]]:
    rng = np.random.default_rng(count)
    sets = [list(range(count)), [count - 1],
            rng.choice(count, size=max(count // 3, 1), replace=False).tolist(),
            [count - 1, 0, count // 2, 0]]          # unsorted, repeated
    sets += [list(select_frames(count, m).indices) for m in (1, 5, 8)]
    return sets


@pytest.mark.parametrize("name", [*VARIANTS, *OPENCV_WRITTEN])
def test_frames_are_bit_identical_to_decoding_every_frame(videos, name):
    reference = decode_all(videos[name])
    assert len(reference) == (VARIANTS.get(name) or OPENCV_WRITTEN[name])[1]
    assert [read_index(frame) for frame in reference] == list(range(len(reference)))
    for threads in (1, None):
        for targets in target_sets(len(reference)):
            with IndexedVideoReader(videos[name], threads=threads) as video:
                got = list(video.frames(targets))
                if video.packet_index is not None:     # and so no decoding from the start
                    assert video.packets_decoded == packets_to_decode(video.packet_index,
                                                                       targets), targets
            assert [index for index, _ in got] == sorted(set(targets))
            for index, frame in got:
                np.testing.assert_array_equal(frame, reference[index],
                                              err_msg=f"{name}: frame {index} of {targets}")


@pytest.mark.parametrize("name", [*VARIANTS, *OPENCV_WRITTEN])
def test_the_reference_is_what_opencv_decodes(videos, name):
    """Decoding every frame with PyAV gives OpenCV's frames: the two readers agree."""
    reference, opencv = decode_all(videos[name]), decode_all_opencv(videos[name])
    assert len(reference) == len(opencv)
    for ours, theirs in zip(reference, opencv):
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("name", [REAL_WITH_SKELETON, *REAL_VIDEO_ONLY])
def test_real_ntu_frames_match_and_decode_only_from_the_key_frame_before(name):
    path = NTU_DIR / f"{name}_rgb.avi"
    reference = decode_all_opencv(path)
    with IndexedVideoReader(path) as video:
        count = video.info.frame_count
        assert (count, video.info.width, video.info.height) == (len(reference), 1920, 1080)
        keyframes = video.keyframes()
        assert keyframes == tuple(range(0, count, 12))      # NTU: a key frame every 12
        targets = select_frames(count, 5).indices
        got = dict(video.frames(targets))
        # from the key frame at or before each target, up to it: the lower bound
        assert video.packets_decoded == sum(t % 12 + 1 for t in targets)
    for index in targets:
        np.testing.assert_array_equal(got[index], reference[index])


def test_stretches_that_meet_are_decoded_once(videos):
    # key frames every 12: 0-1 | 12-13 | 48-59 and 60 (next packet: no restart) |
    # 192-200 | 288-299
    path = write_video(videos["one frame"].parent / "long.avi", 300, fourcc="FMP4")
    wanted = [0, 1, 13, 59, 60, 200, 299]
    reference = decode_all(path)
    with IndexedVideoReader(path) as video:
        got = dict(video.frames(wanted))
        assert video.packets_decoded == 2 + 2 + 12 + 1 + 9 + 12
    for index in wanted:
        np.testing.assert_array_equal(got[index], reference[index])


class _CountingContainer:
    """A container that counts the packets demuxed from it."""

    def __init__(self, container):
        self.container, self.demuxed = container, 0

    def demux(self, *streams):
        for packet in self.container.demux(*streams):
            self.demuxed += 1
            yield packet

    def close(self):
        self.container.close()


def test_calls_after_the_first_start_over_and_no_frames_demux_nothing(videos):
    path = videos["OpenCV MPEG-4 (NTU-like)"]          # key frames every 12 of 103
    reference = decode_all(path)
    with IndexedVideoReader(path) as video:
        index = video.packet_index
        video._container = counting = _CountingContainer(video._container)
        assert dict(video.frames([])) == {}
        assert counting.demuxed == 0
        for wanted in ([30], [40, 41], [5]):
            before = video.packets_decoded
            got = dict(video.frames(wanted))
            assert video.packets_decoded - before == packets_to_decode(index, wanted)
            for frame in wanted:
                np.testing.assert_array_equal(got[frame], reference[frame])


def test_decode_order_stamps_have_no_index_and_are_decoded_from_the_start(videos):
    path = videos["h264 B-frames, AVI (decode-order stamps)"]
    with IndexedVideoReader(path) as video:
        assert video.packet_index is None and video.keyframes() is None
        assert video.nearest_keyframes([5, 17], 4) == (5, 17)
        assert [read_index(frame) for _, frame in video.frames([5, 17])] == [5, 17]
        # from the first frame to frame 17, and the few after it that reordering needs
        assert 18 <= video.packets_decoded < 30


def test_a_false_key_frame_flag_falls_back_to_exact_frames(videos, monkeypatch):
    path = videos["OpenCV MPEG-4 (NTU-like)"]
    real = indexed_module.build_packet_index

    def lying(container, stream):
        index = real(container, stream)
        keyframe = index.keyframe.copy()
        keyframe[30] = True         # a P-frame claims to be a key frame
        return PacketIndex(index.pts, keyframe)

    monkeypatch.setattr(indexed_module, "build_packet_index", lying)
    reference = decode_all(path)
    with IndexedVideoReader(path) as video:
        got = dict(video.frames([20, 33, 80]))
        assert video.packets_decoded > 9 + 4 + 9        # it decoded from the start
    for index in (20, 33, 80):
        np.testing.assert_array_equal(got[index], reference[index])


def test_nearest_keyframes_stay_within_the_tolerance(videos):
    path = videos["mpeg4 one key frame, MP4"]       # 41 frames, a key frame at 0 only
    with IndexedVideoReader(path) as video:
        assert video.keyframes() == (0,)
        tolerance = keyframe_tolerance(41, 5)
        assert tolerance == 3
        assert video.nearest_keyframes([0, 2, 8, 16], tolerance) == (0, 0, 8, 16)
        with pytest.raises(DataError, match="frame 41 does not decode"):
            video.nearest_keyframes([0, 41], tolerance)


def test_truncated_video_fails_at_the_first_missing_frame(tmp_path):
    data = (NTU_DIR / f"{REAL_WITH_SKELETON}_rgb.avi").read_bytes()
    path = tmp_path / "truncated.avi"
    path.write_bytes(data[:len(data) // 3])
    with IndexedVideoReader(path) as video:
        assert video.info.frame_count == 103           # the header still says 103
        with pytest.raises(DataError, match="frame 80 does not decode"):
            video.nearest_keyframes([0, 80], 9)
        frames = video.frames([0, 80])
        assert next(frames)[0] == 0
        with pytest.raises(DataError, match="frame 80 does not decode.*truncated"):
            next(frames)


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        IndexedVideoReader(tmp_path / "nope.avi")
    (tmp_path / "empty.avi").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        IndexedVideoReader(tmp_path / "empty.avi")
    (tmp_path / "garbage.avi").write_bytes(b"\x00\x01 definitely not a video " * 20)
    with pytest.raises(DataError, match="cannot open as a video") as error:
        IndexedVideoReader(tmp_path / "garbage.avi")
    assert error.value.path.endswith("garbage.avi")
    with IndexedVideoReader(write_video(tmp_path / "zero.avi", 0)) as video:
        assert video.info.frame_count == 0 and video.count_frames() == 0


def test_auto_takes_the_index_when_pyav_is_installed(videos, monkeypatch):
    from pipeline.video import VideoReader, methods
    path = videos["two frames"]
    with open_reader(path) as video:
        assert isinstance(video, IndexedVideoReader)
    monkeypatch.setattr(methods, "pyav_available", lambda: False)
    with open_reader(path) as video:
        assert isinstance(video, VideoReader) and video.method == "auto"
    with pytest.raises(ValueError, match="pip install av"):
        open_reader(path, "index")


def test_a_packet_that_gives_no_picture_makes_the_reader_decode_from_the_start(videos):
    """One picture per packet is what maps frame i to the i-th pts; a stretch where a
    packet gives none (here the decoder drops B-frames, as an N-VOP would) is evidence
    against the index."""
    path = videos["mpeg4 B-frames, AVI"]
    reference = decode_all(path)
    with IndexedVideoReader(path, threads=1) as video:
        video._stream.codec_context.skip_frame = "NONREF"
        got = dict(video.frames([15, 18]))      # P-frames: they still come out
        assert video.packets_decoded > 19      # a short stretch, then frames 0..18
    for index in (15, 18):
        np.testing.assert_array_equal(got[index], reference[index])
