"""Feeder transforms: shapes, crop/resize, rotation, view change, modalities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_manifest.layouts import NTU, NW_UCLA
from train.config import resolve_config
from train.data import transforms as T
from train.data.feeders import NTUFeeder, UCLAFeeder, build_feeder, transform_for_inference


def _random(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("frames,window", [(100, 64), (30, 64), (64, 64), (1, 8), (7, 3)])
def test_resize_time_matches_torch_bilinear(frames, window):
    data = _random((3, frames, 5, 2))
    ours = T.resize_time(data, window)
    c, t, v, m = data.shape
    flat = torch.from_numpy(data).permute(0, 2, 3, 1).reshape(1, 1, c * v * m, t)
    theirs = F.interpolate(flat, size=(c * v * m, window), mode="bilinear",
                           align_corners=False)
    theirs = theirs.reshape(c, v, m, window).permute(0, 3, 1, 2).numpy()
    assert ours.shape == (3, window, 5, 2)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_centre_crop_keeps_the_middle_share():
    data = np.arange(100, dtype=np.float32)[None, :, None, None].repeat(3, 0)
    out = T.crop_resize(data, 100, [0.5], 50)
    # bias = int(0.5 * 100 / 2) = 25: frames 25..74 kept, resized 50 -> 50 (identity)
    np.testing.assert_array_equal(out[0, :, 0, 0], np.arange(25, 75, dtype=np.float32))
    # as in the reference, the bias is truncated: int((1 - 0.9) * 100 / 2) == 4
    assert T.crop_resize(data, 100, [0.9], 92)[0, 0, 0, 0] == 4


def test_random_crop_length_and_position_follow_p_interval():
    data = np.arange(200, dtype=np.float32)[None, :, None, None]
    lengths = set()
    for seed in range(20):
        replay = np.random.default_rng(seed)
        p = replay.random() * 0.5 + 0.5
        length = min(max(int(np.floor(200 * p)), 64), 200)
        bias = int(replay.integers(0, 200 - length + 1))
        out = T.crop_resize(data, 200, [0.5, 1.0], 64, np.random.default_rng(seed))
        assert 100 <= length <= 200 and 0 <= bias <= 200 - length
        np.testing.assert_allclose(out, T.resize_time(data[:, bias:bias + length], 64))
        # the ramp's resized crop starts and ends inside [bias, bias + length)
        assert bias <= out[0, 0, 0, 0] and out[0, -1, 0, 0] <= bias + length - 1
        lengths.add(length)
    assert len(lengths) > 5
    # a short sequence is never cropped below the window: all of it is used
    short = np.arange(40, dtype=np.float32)[None, :, None, None]
    out = T.crop_resize(short, 40, [0.5, 1.0], 64, np.random.default_rng(0))
    np.testing.assert_allclose(out, T.resize_time(short, 64))


def test_valid_length_ignores_trailing_zero_frames():
    data = np.zeros((3, 50, 4, 2), dtype=np.float32)
    data[:, :30] = 1.0
    data[:, 10] = 0.0          # a zero frame inside the sequence still counts
    assert T.valid_length(data) == 30
    assert T.valid_length(np.zeros_like(data)) == 0


def test_rotation_matrix_matches_hand_computed_axes():
    a = 0.25
    c, s = np.cos(a), np.sin(a)
    np.testing.assert_allclose(T.rotation_matrix([a, 0, 0]),
                               [[1, 0, 0], [0, c, s], [0, -s, c]], atol=1e-12)
    np.testing.assert_allclose(T.rotation_matrix([0, a, 0]),
                               [[c, 0, -s], [0, 1, 0], [s, 0, c]], atol=1e-12)
    np.testing.assert_allclose(T.rotation_matrix([0, 0, a]),
                               [[c, s, 0], [-s, c, 0], [0, 0, 1]], atol=1e-12)
    # composition order: z after y after x
    angles = [0.1, -0.2, 0.3]
    expected = (T.rotation_matrix([0, 0, 0.3]) @ T.rotation_matrix([0, -0.2, 0])
                @ T.rotation_matrix([0.1, 0, 0]))
    np.testing.assert_allclose(T.rotation_matrix(angles), expected, atol=1e-12)


def test_random_rotation_is_deterministic_under_seed_and_rigid():
    data = _random((3, 10, 25, 2))
    one = T.random_rotate(data, 0.3, np.random.default_rng(7))
    two = T.random_rotate(data, 0.3, np.random.default_rng(7))
    other = T.random_rotate(data, 0.3, np.random.default_rng(8))
    np.testing.assert_array_equal(one, two)
    assert not np.allclose(one, other)
    # a rotation keeps every point's distance to the origin
    np.testing.assert_allclose(np.linalg.norm(one, axis=0), np.linalg.norm(data, axis=0),
                               rtol=1e-5)


def test_bone_and_motion_match_hand_computation():
    data = _random((3, 6, 25, 2))
    bone = T.bone(data, NTU)
    np.testing.assert_allclose(bone[:, :, 3], data[:, :, 3] - data[:, :, 2])    # (4, 3)
    np.testing.assert_allclose(bone[:, :, 0], data[:, :, 0] - data[:, :, 1])    # (1, 2)
    np.testing.assert_allclose(bone[:, :, 21], data[:, :, 21] - data[:, :, 22])  # (22, 23)
    assert not bone[:, :, 20].any()                                              # (21, 21)
    ucla = _random((3, 6, 20, 1))
    ub = T.bone(ucla, NW_UCLA)
    np.testing.assert_allclose(ub[:, :, 5], ucla[:, :, 5] - ucla[:, :, 4])       # (6, 5)
    assert not ub[:, :, 2].any()                                                 # (3, 3)
    motion = T.motion(data)
    np.testing.assert_allclose(motion[:, 2], data[:, 3] - data[:, 2])
    assert not motion[:, -1].any()
    np.testing.assert_allclose(T.apply_modality(data, "bone-motion", NTU),
                               T.motion(T.bone(data, NTU)))
    np.testing.assert_array_equal(T.apply_modality(data, "joint", NTU), data)
    with pytest.raises(ValueError):
        T.apply_modality(data, "velocity", NTU)


def test_ntu_feeder_shapes_and_determinism():
    joints = _random((90, 2, 25, 3))                       # cache layout (T, M, V, C)
    joints -= joints[0, 0, NTU.index("spine_middle")]      # translated, as NTU caches are
    feeder = NTUFeeder(layout=NTU, window=64)
    test = feeder(joints, train=False)
    assert test.shape == (3, 64, 25, 2) and test.dtype == np.float32
    np.testing.assert_array_equal(test, feeder(joints, train=False))
    # test time: centre crop of 95 % then resize, no rotation; on an NTU cache the
    # translation changes nothing, to the bit
    expected = T.resize_time(T.to_ctvm(joints)[:, 2:88], 64)
    np.testing.assert_array_equal(test, expected)
    a = feeder(joints, train=True, rng=T.sample_rng(1, 0, 5))
    b = feeder(joints, train=True, rng=T.sample_rng(1, 0, 5))
    c = feeder(joints, train=True, rng=T.sample_rng(1, 1, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    short = feeder(_random((20, 2, 25, 3)), train=True, rng=T.sample_rng(0, 0, 0))
    assert short.shape == (3, 64, 25, 2)
    with pytest.raises(ValueError, match="no non-zero frame"):
        feeder(np.zeros((10, 2, 25, 3), np.float32), train=False)


def test_ntu_feeder_translates_other_metric_data_as_ntu_caches_are():
    """Regression: the ntu feeder fed data stored as given (own data, a dataset converted
    to the ntu layout) at its camera position, 3 m away, unlike NTU's translated caches."""
    joints = _random((40, 2, 25, 3))
    joints[:5, 0] = 0                       # person 1 appears in frame 5
    joints[30:, 1] = 0                      # person 2 leaves: its padding stays zero
    origin = joints[5, 0, NTU.index("spine_middle")]
    translated = np.where(T.presence(joints)[..., None, None], joints - origin, 0)
    feeder = NTUFeeder(layout=NTU, window=32)
    moved = feeder(joints + np.where(T.presence(joints)[..., None, None],
                                     np.float32([0.4, -1.0, 3.2]), 0), train=False)
    np.testing.assert_allclose(moved, feeder(translated, train=False), atol=1e-5)
    np.testing.assert_allclose(feeder(joints, train=False),
                               T.resize_time(T.to_ctvm(translated)[:, 1:39], 32), atol=1e-5)
    assert not T.translate_to_origin(joints, NTU.origin)[30:, 1].any()


def test_ucla_feeder_test_time_matches_hand_computation():
    joints = _random((40, 1, 20, 3)) + 5.0
    out = UCLAFeeder(layout=NW_UCLA, window=52)(joints, train=False)
    assert out.shape == (3, 52, 20, 1)
    centred = joints - joints[0, 0, 1]
    flat = centred.reshape(-1, 3)
    low, high = flat.min(0), flat.max(0)
    normalised = (centred - low) / (high - low) * 2 - 1
    frames = np.linspace(0, 39, 52).astype(int)
    np.testing.assert_allclose(out, normalised[frames].transpose(3, 0, 2, 1), rtol=1e-5,
                               atol=1e-6)


def test_ucla_feeder_training_augmentation():
    joints = _random((30, 1, 20, 3))
    feeder = UCLAFeeder(layout=NW_UCLA, window=52, modality="joint")
    a = feeder(joints, train=True, rng=np.random.default_rng(3))
    b = feeder(joints, train=True, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 52, 20, 1)
    # each axis is normalised to exactly [-1, 1] over the kept frames' source
    assert a.min() >= -1 - 1e-6 and a.max() <= 1 + 1e-6
    assert not np.allclose(a, feeder(joints, train=True, rng=np.random.default_rng(4)))
    # the view matrix is a scaled rotation: its rows are orthogonal with norm = scale
    matrix = T.view_matrix(30, -45, 1.3)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(3) * 1.69, atol=1e-12)


def test_transform_for_inference_pads_persons_and_checks_joints():
    config = resolve_config("ntu60-xsub")
    single = _random((50, 1, 25, 3))
    out = transform_for_inference(single, config)
    assert out.shape == (3, 64, 25, 2)
    assert not out[..., 1].any()
    assert out.shape == build_feeder(config.data, NTU)(
        np.concatenate([single, np.zeros_like(single)], axis=1), train=False).shape
    with pytest.raises(ValueError, match="20 joints"):
        transform_for_inference(_random((50, 1, 20, 3)), config)
    bone = resolve_config("nw-ucla", overrides=["data.modality=bone"])
    assert transform_for_inference(_random((30, 1, 20, 3)), bone).shape == (3, 52, 20, 1)
