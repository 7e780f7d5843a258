"""Denoising and actor selection (CTR-GCN rules), on the real sample and generated files."""

import numpy as np
import pytest

from data_manifest.errors import DataError
from data_manifest.formats.load import load_skeleton_sample
from data_manifest.formats.ntu_denoise import DenoiseSettings, denoise_ntu
from data_manifest.formats.ntu_skeleton import parse_ntu_skeleton, read_ntu_skeleton
from data_manifest.schemas import SKELETON_FIELDS
from skeleton_factories import REAL_NTU, skeleton_text, upright_body, write_sequence


def test_real_sample_one_actor_translated():
    values = load_skeleton_sample(REAL_NTU, "ntu60")
    assert set(values) == set(SKELETON_FIELDS)
    joints, color = values["joints"], values["color_xy"]
    assert joints.shape == (103, 2, 25, 3) and joints.dtype == np.float32
    assert color.shape == (103, 2, 25, 2) and color.dtype == np.float32
    assert values["frame_index"].tolist() == list(range(103))
    assert values["frame_index"].dtype == np.int32
    assert values["source_frames"] == 103 and values["num_actors"] == 1
    np.testing.assert_array_equal(joints[0, 0, 1], [0, 0, 0])       # spine middle, frame 1
    raw = read_ntu_skeleton(REAL_NTU).bodies[0]
    np.testing.assert_allclose(joints[:, 0], raw.joints - raw.joints[0, 1], atol=1e-6)
    assert joints[:, 0].any(axis=(1, 2)).all()                       # actor 1 everywhere
    assert (joints[:, 1] == 0).all() and np.isnan(color[:, 1]).all()  # no actor 2
    np.testing.assert_array_equal(color[:, 0], raw.color_xy)
    assert (color[:, 0, :, 0] >= 0).all() and (color[:, 0, :, 0] < 1920).all()
    assert (color[:, 0, :, 1] >= 0).all() and (color[:, 0, :, 1] < 1080).all()


def test_crlf_and_lf_generated_files_denoise_identically(tmp_path):
    options = dict(num_frames=30, num_actors=2, noise_bodies=1, empty_frames=[3])
    crlf, _ = write_sequence(tmp_path / "a.skeleton", seed=11, **options)
    lf, _ = write_sequence(tmp_path / "b.skeleton", seed=11, line_ending="\n", **options)
    assert b"\r\n" in crlf.read_bytes() and b"\r" not in lf.read_bytes()
    a, b = load_skeleton_sample(crlf, "ntu60"), load_skeleton_sample(lf, "ntu60")
    for name in SKELETON_FIELDS:
        np.testing.assert_array_equal(a[name], b[name])


def test_noise_short_bodies_and_empty_frames_are_removed(tmp_path):
    path, generated = write_sequence(tmp_path / "g.skeleton", seed=7, num_frames=40,
                                     noise_bodies=1, short_bodies=1, empty_frames=[0, 1, 20])
    assert generated.roles == ["actor1", "noise", "short"]
    result = denoise_ntu(read_ntu_skeleton(path))
    kept = [t for t in range(40) if t not in (0, 1, 20)]
    assert result.frame_index.tolist() == kept
    assert result.source_frames == 40 and result.num_actors == 1
    assert result.actor_bodies == ((str(generated.body_ids[0]),),)
    dropped = dict(result.dropped)
    assert "spread-noisy" in dropped[str(generated.body_ids[1])]
    assert "tracked in only" in dropped[str(generated.body_ids[2])]
    actor = generated.joints[kept, 0]
    np.testing.assert_allclose(result.joints[:, 0], actor - actor[0, 1], atol=1e-5)
    np.testing.assert_allclose(result.color_xy[:, 0], generated.color_xy[kept, 0], atol=1e-2)
    assert (result.joints[:, 1] == 0).all()


def test_two_actors_ordered_by_motion(tmp_path):
    path, generated = write_sequence(tmp_path / "two.skeleton", seed=21, num_frames=50,
                                     num_actors=2, action=55, noise_bodies=1, short_bodies=2)
    result = denoise_ntu(read_ntu_skeleton(path))
    assert result.num_actors == 2 and result.joints.shape == (50, 2, 25, 3)
    motion = [np.var(generated.joints[:, b].reshape(-1, 3), axis=0).sum() for b in (0, 1)]
    first = int(np.argmax(motion))
    order = [first, 1 - first]
    origin = generated.joints[0, first, 1]
    for actor, body in enumerate(order):
        assert result.actor_bodies[actor] == (str(generated.body_ids[body]),)
        np.testing.assert_allclose(result.joints[:, actor], generated.joints[:, body] - origin,
                                   atol=1e-5)
        np.testing.assert_allclose(result.color_xy[:, actor], generated.color_xy[:, body],
                                   atol=1e-2)
    np.testing.assert_array_equal(result.joints[0, 0, 1], [0, 0, 0])


def test_a_tracking_id_switch_is_merged_into_actor_one(tmp_path):
    path, generated = write_sequence(tmp_path / "switch.skeleton", seed=4, num_frames=40,
                                     num_actors=2, action=52, id_switch_at=18)
    result = denoise_ntu(read_ntu_skeleton(path))
    ids = [str(i) for i in generated.body_ids]            # actor1 (2 ids), actor2
    members = {frozenset(m) for m in result.actor_bodies}
    assert members == {frozenset(ids[:2]), frozenset(ids[2:])}
    merged = 0 if len(result.actor_bodies[0]) == 2 else 1
    assert result.joints[:, merged].any(axis=(1, 2)).all()    # present in every frame


def _file(bodies: dict[str, tuple[range, float]], num_frames: int) -> bytes:
    """Bodies present in the given frames, with a motion amplitude each."""
    frames = []
    for t in range(num_frames):
        present = []
        for index, (body_id, (span, amplitude)) in enumerate(bodies.items()):
            if t in span:
                offset = (index * 1.0 + amplitude * np.sin(t / 3.0), 0.0, 3.0)
                present.append((body_id, upright_body(offset, seed=index)))
        frames.append(present)
    return skeleton_text(frames).encode()


def test_touching_intervals_join_actor_one_and_overlaps_go_to_actor_two():
    data = _file({"A": (range(0, 20), 0.5), "B": (range(19, 40), 0.1),
                  "C": (range(5, 30), 0.2)}, 40)
    result = denoise_ntu(parse_ntu_skeleton(data, "x"))
    # A moves most -> actor 1; C overlaps A -> actor 2; B touches A only at frame 19,
    # which the reference does not count as an overlap -> actor 1 (B wins frame 19)
    assert result.actor_bodies == (("A", "B"), ("C",))
    assert result.num_actors == 2 and len(result.frame_index) == 40
    raw = {b.body_id: b for b in parse_ntu_skeleton(data, "x").bodies}
    origin = raw["A"].joints[0, 1]
    np.testing.assert_allclose(result.joints[19, 0], raw["B"].joints[0] - origin, atol=1e-6)


def test_a_body_overlapping_both_actors_is_dropped():
    data = _file({"A": (range(0, 30), 0.5), "B": (range(0, 30), 0.3),
                  "C": (range(5, 25), 0.1)}, 30)
    result = denoise_ntu(parse_ntu_skeleton(data, "x"))
    assert result.actor_bodies == (("A",), ("B",))
    assert dict(result.dropped) == {"C": "overlaps both actors"}


def test_actor_two_interval_starts_at_frame_zero_as_in_the_reference():
    # B becomes actor 2 over frames 20-39, but actor 2's interval is then [0, 39], so C
    # (frames 0-15, overlapping A) finds no free actor even though actor 2 is empty there
    data = _file({"A": (range(0, 40), 0.5), "B": (range(20, 40), 0.3),
                  "C": (range(0, 16), 0.1)}, 40)
    result = denoise_ntu(parse_ntu_skeleton(data, "x"))
    assert result.actor_bodies == (("A",), ("B",))
    assert "C" in dict(result.dropped)


def _noisy_body(num_frames: int, noisy: set[int], offset: float, amplitude: float):
    """A body whose frames in ``noisy`` are wider than tall."""
    frames = []
    for t in range(num_frames):
        joints = upright_body((offset + amplitude * np.sin(t), 0, 3), seed=t)
        if t in noisy:
            joints[:, 0] = offset + np.linspace(-1, 1, 25)
            joints[:, 1] = np.linspace(-0.1, 0.1, 25)
        frames.append(joints)
    return frames


def test_spread_noise_drops_a_body_or_lowers_its_motion():
    n = 30
    big = _noisy_body(n, set(range(0, 21)), 0.0, 0.3)        # 70% noisy -> dropped
    calm = _noisy_body(n, set(), 1.0, 0.05)
    frames = [[("N", big[t]), ("K", calm[t])] for t in range(n)]
    result = denoise_ntu(parse_ntu_skeleton(skeleton_text(frames).encode(), "x"))
    assert result.actor_bodies == (("K",),)
    assert "70% of its frames" in dict(result.dropped)["N"]

    # 60% noisy: kept, but its motion drops to that of its clean frames (small), so the
    # calmer-looking K with real motion becomes actor 1
    shaky = _noisy_body(n, set(range(0, 18)), 0.0, 0.01)
    moving = _noisy_body(n, set(), 1.5, 0.4)
    frames = [[("S", shaky[t]), ("M", moving[t])] for t in range(n)]
    raw = parse_ntu_skeleton(skeleton_text(frames).encode(), "x")
    motion = {b.body_id: np.var(b.joints.reshape(-1, 3), axis=0).sum() for b in raw.bodies}
    assert motion["S"] > motion["M"]                # before the spread step S looks busier
    result = denoise_ntu(raw)
    assert result.actor_bodies == (("M",), ("S",))


def test_the_last_body_is_never_dropped_for_spread_like_the_reference():
    frames = [[("N", joints)] for joints in _noisy_body(20, set(range(20)), 0.0, 0.2)]
    result = denoise_ntu(parse_ntu_skeleton(skeleton_text(frames).encode(), "x"))
    assert result.actor_bodies == (("N",),)
    # two all-noisy bodies: the first (in file order) is dropped, then one is left: kept
    first = _noisy_body(20, set(range(20)), 0.0, 0.2)
    second = _noisy_body(20, set(range(20)), 2.0, 0.2)
    frames = [[("P", first[t]), ("Q", second[t])] for t in range(20)]
    result = denoise_ntu(parse_ntu_skeleton(skeleton_text(frames).encode(), "x"))
    assert result.actor_bodies == (("Q",),) and list(dict(result.dropped)) == ["P"]


def test_only_short_bodies_is_a_data_error_naming_the_file():
    data = _file({"A": (range(0, 11), 0.5), "B": (range(11, 20), 0.1)}, 20)
    with pytest.raises(DataError, match="x.skeleton: no usable body") as caught:
        denoise_ntu(parse_ntu_skeleton(data, "x.skeleton"))
    assert "A (tracked in only 11 frame(s))" in str(caught.value)


def test_frames_where_only_dropped_bodies_appear_are_removed_and_origin_is_actor_one():
    # B is first in the file but A moves more -> actor 1, though A starts at frame 10
    data = _file({"B": (range(0, 40), 0.1), "S": (range(5, 10), 0.9),
                  "A": (range(10, 40), 0.6)}, 40)
    result = denoise_ntu(parse_ntu_skeleton(data, "x"))
    assert result.actor_bodies == (("A",), ("B",))
    assert result.frame_index.tolist() == list(range(40))     # B keeps frames 0-9 alive
    first_a = 10
    np.testing.assert_array_equal(result.joints[first_a, 0, 1], [0, 0, 0])
    assert (result.joints[:first_a, 0] == 0).all() and np.isnan(result.color_xy[:first_a, 0]).all()

    data = _file({"A": (list(range(0, 10)) + list(range(15, 40)), 0.6),
                  "S": (range(10, 15), 0.9)}, 40)
    result = denoise_ntu(parse_ntu_skeleton(data, "x"))
    assert result.frame_index.tolist() == list(range(10)) + list(range(15, 40))


def test_settings_change_the_result_and_single_actor_mode():
    data = _file({"A": (range(0, 30), 0.5), "B": (range(0, 30), 0.3)}, 30)
    raw = parse_ntu_skeleton(data, "x")
    one = denoise_ntu(raw, DenoiseSettings(max_actors=1))
    assert one.joints.shape == (30, 1, 25, 3) and one.actor_bodies == (("A",),)
    strict = denoise_ntu(raw, DenoiseSettings(max_noise_length=29))
    assert strict.actor_bodies == (("A",), ("B",))
    with pytest.raises(DataError, match="no usable body"):
        denoise_ntu(raw, DenoiseSettings(max_noise_length=30))


def test_a_lone_body_is_kept_however_short_as_in_the_reference():
    # CTR-GCN's get_raw_denoised_data takes a file with one body id as is (no length or
    # spread test); only files with several bodies are denoised
    data = _file({"A": (range(3, 8), 0.5)}, 10)
    result = denoise_ntu(parse_ntu_skeleton(data, "x.skeleton"))
    assert result.actor_bodies == (("A",),) and result.dropped == ()
    assert result.frame_index.tolist() == [3, 4, 5, 6, 7] and result.num_actors == 1
    raw = parse_ntu_skeleton(data, "x.skeleton").bodies[0]
    np.testing.assert_allclose(result.joints[:, 0], raw.joints - raw.joints[0, 1], atol=1e-6)


def test_two_short_bodies_are_both_noise():
    # with several bodies the length test applies to each (the reference then has no body
    # left and crashes; here it is a DataError naming the file)
    data = _file({"A": (range(0, 5), 0.5), "B": (range(5, 10), 0.1)}, 10)
    with pytest.raises(DataError, match="x.skeleton: no usable body"):
        denoise_ntu(parse_ntu_skeleton(data, "x.skeleton"))
