"""Frame selection, crop boxes and the JPEG helpers."""

import numpy as np
import pytest

from data_manifest.errors import DataError
from pipeline.crop import MIN_SIDE, SkeletonBoxes, person_box
from pipeline.images import decode_jpeg, encode_jpeg, fit_within, split_concatenated
from pipeline.video import keyframe_tolerance, nearest_keyframes, select_frames


@pytest.mark.parametrize("count, m, expected", [
    (103, 5, (0, 20, 40, 60, 80)),          # the real NTU sample: interval 103 // 5 = 20
    (158, 5, (0, 31, 62, 93, 124)),
    (128, 5, (0, 25, 50, 75, 100)),
    (5, 5, (0, 1, 2, 3, 4)),
    (9, 5, (0, 1, 2, 3, 4)),                # interval 1: the reference's rule, not spread
    (10, 3, (0, 3, 6)),
    (7, 1, (0,)),
])
def test_equal_interval_selection(count, m, expected):
    selection = select_frames(count, m)
    assert selection.indices == expected
    assert not selection.repeated


@pytest.mark.parametrize("count, m, expected", [
    (3, 5, (0, 0, 1, 1, 2)),
    (1, 5, (0, 0, 0, 0, 0)),
    (4, 5, (0, 0, 1, 2, 3)),
])
def test_short_clips_repeat_frames_in_time_order(count, m, expected):
    selection = select_frames(count, m)
    assert selection.indices == expected and selection.repeated
    assert set(selection.indices) == set(range(count))     # every frame is used


def test_selection_rejects_nonsense():
    with pytest.raises(ValueError, match="0 frames"):
        select_frames(0, 5)
    with pytest.raises(ValueError, match="at least 1"):
        select_frames(10, 0)


def test_nearest_keyframes_on_ntu():
    tolerance = keyframe_tolerance(103, 5)                  # spacing 20: at most 9 away
    assert tolerance == 9
    keyframes = range(0, 103, 12)
    assert nearest_keyframes((0, 20, 40, 60, 80), keyframes, tolerance) == (0, 24, 36, 60, 84)


def test_nearest_keyframes_ties_distance_and_gaps():
    assert nearest_keyframes((6, 7, 5), (0, 12), 6) == (0, 12, 0)     # a tie: the earlier
    assert nearest_keyframes((6,), (0, 12), 5) == (6,)               # none close enough
    assert nearest_keyframes((3, 50), (), 10) == (3, 50)             # no key frames
    assert nearest_keyframes((50,), (0, 12), 100) == (12,)           # past the last


@pytest.mark.parametrize("count, m", [(103, 5), (40, 5), (9, 5), (5, 5), (3, 5), (200, 7)])
def test_key_frame_sampling_never_makes_two_chosen_frames_one(count, m):
    rng = np.random.default_rng(count * m)
    indices = select_frames(count, m).indices
    tolerance = keyframe_tolerance(count, m)
    for _ in range(200):
        keyframes = sorted(rng.choice(count, size=rng.integers(1, count + 1),
                                      replace=False).tolist())
        moved = nearest_keyframes(indices, keyframes, tolerance)
        assert len(set(moved)) == len(set(indices))
        assert list(moved) == sorted(moved)
        assert all(abs(a - b) <= tolerance for a, b in zip(moved, indices))


def test_person_box_contains_every_joint_with_margin():
    points = np.array([[100.0, 50.0], [140.0, 250.0], [120.5, 149.2]])
    box = person_box(points, 640, 360, margin=0.1)
    pad = 0.1 * 200
    assert box == (int(np.floor(100 - pad)), int(np.floor(50 - pad)),
                   int(np.ceil(141 + pad)), int(np.ceil(251 + pad)))
    x0, y0, x1, y1 = box
    assert ((points[:, 0] >= x0) & (points[:, 0] < x1)).all()
    assert ((points[:, 1] >= y0) & (points[:, 1] < y1)).all()


def test_person_box_is_clamped_and_ignores_nan_and_outside_points():
    points = np.array([[5.0, 5.0], [630.0, 350.0], [np.nan, 10.0], [9000.0, -50.0]])
    assert person_box(points, 640, 360, margin=0.5) == (0, 0, 640, 360)
    # every point outside the image (or NaN): no box
    assert person_box(np.array([[-10.0, 5.0], [700.0, 20.0]]), 640, 360, 0.1) is None
    assert person_box(np.full((25, 2), np.nan), 640, 360, 0.1) is None


def test_person_box_has_a_minimum_size():
    x0, y0, x1, y1 = person_box(np.array([[50.0, 60.0]]), 640, 360, margin=0.2)
    assert x1 - x0 >= MIN_SIDE and y1 - y0 >= MIN_SIDE
    assert x0 <= 50 < x1 and y0 <= 60 < y1


def test_two_actors_share_one_box():
    xy = np.full((1, 2, 3, 2), np.nan)
    xy[0, 0] = [[10, 10], [20, 30], [15, 20]]
    xy[0, 1] = [[100, 40], [120, 60], [110, 50]]
    boxes = SkeletonBoxes(xy, np.array([7]), 200, 100, margin=0.0)
    choice = boxes.choose(7)
    assert choice.source == "skeleton" and choice.box == (10, 10, 121, 61)


def test_nearest_frame_then_full_frame_fallbacks():
    xy = np.full((4, 1, 2, 2), np.nan)
    xy[1, 0] = [[10, 10], [20, 20]]           # original frame 3
    xy[3, 0] = [[50, 50], [60, 60]]           # original frame 9
    xy[2, 0] = [[-5, -5], [-1, -1]]           # frame 6: all outside the image
    boxes = SkeletonBoxes(xy, np.array([0, 3, 6, 9]), 100, 100, margin=0.0)
    assert boxes.frames_with_boxes == 2
    assert boxes.choose(3).source == "skeleton"
    near = boxes.choose(0)
    assert (near.source, near.skeleton_frame) == ("nearest-skeleton", 3)
    assert boxes.choose(6).skeleton_frame == 3          # tie 3 / 9: the earlier frame
    assert boxes.choose(8).skeleton_frame == 9
    assert boxes.choose(500).skeleton_frame == 9        # beyond the skeleton's end
    empty = SkeletonBoxes(np.full((2, 1, 2, 2), np.nan), np.array([0, 1]), 100, 80, 0.1)
    choice = empty.choose(1)
    assert (choice.source, choice.box) == ("full-frame", (0, 0, 100, 80))


def test_color_coordinates_are_scaled_to_the_video():
    xy = np.array([[[[960.0, 540.0], [1000.0, 600.0]]]])   # 1920x1080 coordinates
    boxes = SkeletonBoxes(xy, np.array([0]), 640, 360, margin=0.0, scale=(1 / 3, 1 / 3))
    x0, y0, x1, y1 = boxes.choose(0).box
    assert x0 <= 320 < x1 and y0 <= 180 < y1 and x1 <= 336 and y1 <= 202


def test_jpeg_helpers_round_trip():
    rng = np.random.default_rng(0)
    images = [np.full((30 + i, 20, 3), 40 * i, np.uint8) for i in range(3)]
    blobs = [encode_jpeg(image, 95) for image in images]
    pieces = split_concatenated(np.frombuffer(b"".join(blobs), np.uint8),
                                np.array([len(b) for b in blobs]))
    for image, piece in zip(images, pieces):
        decoded = decode_jpeg(piece)
        assert decoded.shape == image.shape
        assert np.abs(decoded.astype(int) - image).max() <= 2
    with pytest.raises(DataError, match="add up"):
        split_concatenated(np.zeros(10, np.uint8), np.array([4, 4]))
    with pytest.raises(DataError, match="does not decode"):
        decode_jpeg(rng.integers(0, 255, 50, dtype=np.uint8).tobytes())
    big = np.zeros((1080, 1920, 3), np.uint8)
    assert fit_within(big, 480).shape == (270, 480, 3)
    assert fit_within(big, None) is big and fit_within(images[0], 480) is images[0]
