"""The synthetic NTU generator: deterministic, plausible, and class-dependent motion."""

import numpy as np
import pytest

from data_manifest.formats.load import load_skeleton_sample
from pipeline.synthetic.ntu_skeleton import (IMAGE_SIZE, ActionPattern, generate_sequence,
                                             ntu_name, write_ntu_skeleton,
                                             write_synthetic_ntu_dataset)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def write(seed, name):
        sequence = generate_sequence(np.random.default_rng(seed), 30, 2, 55, noise_bodies=1)
        return write_ntu_skeleton(tmp_path / name, sequence).read_bytes()
    assert write(1, "a.skeleton") == write(1, "b.skeleton")
    assert write(1, "a.skeleton") != write(2, "c.skeleton")


def test_shapes_roles_and_colour_inside_the_frame():
    sequence = generate_sequence(np.random.default_rng(0), 50, 2, 58, noise_bodies=2,
                                 short_bodies=1, empty_frames=[0, 49], id_switch_at=25)
    assert sequence.roles == ["actor1", "actor1", "actor2", "noise", "noise", "short"]
    assert sequence.joints.shape == (50, 6, 25, 3) and sequence.color_xy.shape == (50, 6, 25, 2)
    assert len(set(sequence.body_ids)) == 6
    assert not sequence.present[[0, 49]].any()
    assert sequence.present[1:25, 0].all() and not sequence.present[25:, 0].any()
    assert sequence.present[25:49, 1].all() and not sequence.present[:25, 1].any()
    assert 5 <= sequence.present[:, 5].sum() <= 11
    width, height = IMAGE_SIZE
    actors = sequence.color_xy[:, :3]
    assert (actors[..., 0] > 0).all() and (actors[..., 0] < width - 1).all()
    assert (actors[..., 1] > 0).all() and (actors[..., 1] < height - 1).all()
    # a person is about 1.7 m tall: head above feet by 300-700 pixels at 3 m
    head, foot = actors[:, :, 3, 1], actors[:, :, 15, 1]
    assert ((foot - head) > 300).all() and ((foot - head) < 700).all()


def test_crlf_by_default_and_lf_on_request(tmp_path):
    sequence = generate_sequence(np.random.default_rng(0), 5)
    crlf = write_ntu_skeleton(tmp_path / "a.skeleton", sequence).read_bytes()
    lf = write_ntu_skeleton(tmp_path / "b.skeleton", sequence, line_ending="\n").read_bytes()
    assert crlf.count(b"\r\n") == crlf.count(b"\n") == 5 * 28 + 1
    assert b"\r" not in lf and lf == crlf.replace(b"\r\n", b"\n")


def test_actions_move_different_joints():
    """Per action, which joints move most: distinct signatures a classifier can learn."""
    def signature(action):
        sequence = generate_sequence(np.random.default_rng(action), 90, 1, action)
        joints = sequence.joints[:, 0]
        return joints.std(axis=0)                    # (25, 3) motion of each joint per axis
    signatures = {a: signature(a) for a in range(1, 13)}
    for a in range(1, 13):
        for b in range(a + 1, 13):
            assert not np.allclose(signatures[a], signatures[b], atol=0.02, rtol=0.2), (a, b)
    left_hand, right_hand, left_foot = 7, 11, 15
    motion = {a: s.sum(axis=1) for a, s in signatures.items()}
    assert motion[1][left_hand] > 3 * motion[1][right_hand]              # left arm
    assert motion[2][right_hand] > 3 * motion[2][left_hand]              # right arm
    assert motion[4][left_foot] > 3 * motion[4][left_hand]               # left leg
    x, z = 0, 2
    assert signatures[1][left_hand, x] > 2 * signatures[1][left_hand, z]  # sideways
    assert signatures[7][left_hand, z] > 2 * signatures[7][left_hand, x]  # forward
    assert len({ActionPattern.of(a) for a in range(1, 121)}) == 120


def test_dataset_writer_is_deterministic_and_denoises_to_the_actors(tmp_path):
    first = write_synthetic_ntu_dataset(tmp_path / "a", 25, seed=3, frames=(20, 30))
    second = write_synthetic_ntu_dataset(tmp_path / "b", 25, seed=3, frames=(20, 30))
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second))
    assert len({p.name for p in first}) == 25
    for path in first:
        action = int(path.stem[-3:])
        values = load_skeleton_sample(path, "ntu60")
        assert values["num_actors"] == (2 if action >= 50 else 1), path.name


def test_names_are_unique_and_valid():
    names = {ntu_name(i, 7) for i in range(4080)}
    assert len(names) == 4080
    with pytest.raises(ValueError):
        ntu_name(4080, 7)
