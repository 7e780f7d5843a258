"""The NTU ``.skeleton`` reader: real data, line ends, and every kind of bad input."""

import re

import numpy as np
import pytest

from data_manifest.errors import DataError
from data_manifest.formats.ntu_skeleton import parse_ntu_skeleton, read_ntu_skeleton
from skeleton_factories import REAL_NTU, skeleton_text, upright_body, write_sequence


def test_real_file_is_read_completely():
    raw = read_ntu_skeleton(REAL_NTU)
    assert raw.num_frames == 103
    assert len(raw.bodies) == 1
    body = raw.bodies[0]
    assert body.body_id == "72057594037931101"
    assert body.frames.tolist() == list(range(103))
    assert body.joints.shape == (103, 25, 3) and body.joints.dtype == np.float32
    assert body.color_xy.shape == (103, 25, 2)
    # first joint line: "0.2181153 0.1725972 3.785547 277.419 191.8218 1036.233 519.1677 ..."
    np.testing.assert_allclose(body.joints[0, 0], [0.2181153, 0.1725972, 3.785547], rtol=1e-6)
    np.testing.assert_allclose(body.color_xy[0, 0], [1036.233, 519.1677], rtol=1e-6)
    # last joint line of the file
    lines = REAL_NTU.read_bytes().splitlines()
    last = [float(v) for v in lines[-1].split()]
    np.testing.assert_allclose(body.joints[-1, -1], last[0:3], rtol=1e-6)
    np.testing.assert_allclose(body.color_xy[-1, -1], last[5:7], rtol=1e-6)


def test_crlf_and_lf_give_identical_results(tmp_path):
    lf_bytes = REAL_NTU.read_bytes().replace(b"\r\n", b"\n")   # this copy uses LF
    lf, crlf = tmp_path / "lf.skeleton", tmp_path / "crlf.skeleton"
    lf.write_bytes(lf_bytes)
    crlf.write_bytes(lf_bytes.replace(b"\n", b"\r\n"))
    a, b = read_ntu_skeleton(crlf), read_ntu_skeleton(lf)
    assert a.num_frames == 103 and len(a.bodies) == 1
    assert a.num_frames == b.num_frames
    for x, y in zip(a.bodies, b.bodies):
        np.testing.assert_array_equal(x.joints, y.joints)
        np.testing.assert_array_equal(x.color_xy, y.color_xy)
        np.testing.assert_array_equal(x.frames, y.frames)


def test_generated_multi_body_file_round_trips(tmp_path):
    path, generated = write_sequence(tmp_path / "g.skeleton", seed=3, num_actors=2,
                                     noise_bodies=1, short_bodies=1, empty_frames=[0, 7])
    raw = read_ntu_skeleton(path)
    assert raw.num_frames == generated.num_frames
    assert [b.body_id for b in raw.bodies] == [str(i) for i in generated.body_ids]
    for body, index in zip(raw.bodies, range(generated.num_bodies)):
        frames = np.flatnonzero(generated.present[:, index])
        assert body.frames.tolist() == frames.tolist()
        np.testing.assert_allclose(body.joints, generated.joints[frames, index], atol=1e-5)
        np.testing.assert_allclose(body.color_xy, generated.color_xy[frames, index], atol=1e-2)


def test_blank_trailing_lines_are_accepted():
    text = skeleton_text([[("7", upright_body())]]) + "\n\n  \n"
    raw = parse_ntu_skeleton(text.encode(), "x.skeleton")
    assert raw.num_frames == 1 and raw.bodies[0].joints.shape == (1, 25, 3)


def test_unusual_spacing_takes_the_slow_path_with_the_same_values():
    text = skeleton_text([[("7", upright_body())]] * 2)
    lines = text.splitlines()
    lines[4] = "  " + lines[4].replace(" ", "\t ") + "  "   # tabs and stray spaces
    tidy = parse_ntu_skeleton(text.encode(), "a")
    odd = parse_ntu_skeleton("\n".join(lines).encode(), "b")
    np.testing.assert_array_equal(tidy.bodies[0].joints, odd.bodies[0].joints)


def _good_lines():
    return skeleton_text([[("7", upright_body())], [("7", upright_body(seed=1))]]).splitlines()


def _replace(index, value):
    lines = _good_lines()
    lines[index] = value
    return "\n".join(lines) + "\n"


# Lines of the good file: 1 frame count, 2 body count, 3 body info, 4 joint count,
# 5-29 joints of frame 1, 30 body count, 31 body info, 32 joint count, 33-57 joints.
BAD_INPUTS = {
    "empty": ("", None, "empty skeleton file"),
    "blank": ("\n \r\n", None, "empty skeleton file"),
    "frame count not a number": (_replace(0, "abc"), 1, "frame count"),
    "frame count zero": (_replace(0, "0"), 1, "frame count is 0"),
    "body count not a number": (_replace(1, "one"), 2, "body count of frame 1"),
    "body count negative": (_replace(1, "-1"), 2, "body count of frame 1"),
    "body line too short": (_replace(2, "7 0 1"), 3, "expected 10 values"),
    "joint count wrong": (_replace(3, "24"), 4, "has 24 joints"),
    "joint count garbled": (_replace(3, "2x5"), 4, "joint count"),
    "joint value not a number": (_replace(6, "0.1 0.2 zz 250 200 1000 500 1 0 0 0 2"), 7,
                                 "'zz' is not a number"),
    "unused joint value not a number": (_replace(6, "0.1 0.2 0.3 250 2#0 1000 500 1 0 0 0 2"),
                                        7, "'2#0' is not a number"),
    "joint line missing a value": (_replace(8, "0.1 0.2 0.3 250 200 1000 500 1 0 0 0"), 9,
                                   "expected 12 values on a joint line, found 11"),
    "joint line with an extra value": (_replace(8, "0.1 0.2 0.3 250 200 1000 500 1 0 0 0 2 9"),
                                       9, "found 13"),
    "joint position nan": (_replace(10, "nan 0.2 0.3 250 200 1000 500 1 0 0 0 2"), 11,
                           "not a finite number"),
    "frame count too large": (_replace(0, "3"), 58, "body count of frame 3"),
    "frame count too small": (_replace(0, "1"), 30, "unexpected content after the last"),
    "body count too large": (_replace(29, "2"), 58, "body 2 of frame 2"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_names_file_and_line(tmp_path, name):
    text, line, message = BAD_INPUTS[name]
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(text, newline="")
    with pytest.raises(DataError) as caught:
        read_ntu_skeleton(path)
    error = caught.value
    assert str(path) in str(error)
    assert message in error.reason
    assert error.line == line
    if line is not None:
        assert f"line {line}:" in str(error)


def test_truncated_file_names_the_line_where_it_ends(tmp_path):
    lines = _good_lines()
    path = tmp_path / "cut.skeleton"
    path.write_text("\n".join(lines[:40]) + "\n")          # stops inside frame 2's joints
    with pytest.raises(DataError, match=re.escape(f"{path}, line 41: file ends early")):
        read_ntu_skeleton(path)


def test_same_body_twice_in_one_frame():
    body = upright_body()
    text = skeleton_text([[("7", body), ("7", body)]])
    with pytest.raises(DataError, match="line 30: body 7 appears twice in frame 1"):
        parse_ntu_skeleton(text.encode(), "x.skeleton")


def test_only_empty_frames():
    with pytest.raises(DataError, match="no body in any of the 3 frames"):
        parse_ntu_skeleton(b"3\r\n0\r\n0\r\n0\r\n", "x.skeleton")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(DataError, match="skeleton file not found") as caught:
        read_ntu_skeleton(tmp_path / "nope.skeleton")
    assert str(tmp_path / "nope.skeleton") in str(caught.value)
    with pytest.raises(DataError, match="cannot read the skeleton file"):
        read_ntu_skeleton(tmp_path)


def test_any_truncation_or_corruption_is_a_data_error_never_a_crash(tmp_path):
    """Cut the file anywhere or garble bytes: the reader raises DataError or succeeds."""
    path, _ = write_sequence(tmp_path / "g.skeleton", seed=5, num_frames=6, num_actors=2)
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    for keep in range(1, len(lines)):              # every line-level truncation is an error
        with pytest.raises(DataError, match="line"):
            parse_ntu_skeleton(b"".join(lines[:keep]), "cut")
    rng = np.random.default_rng(0)
    for cut in rng.integers(1, len(data), size=200):
        try:
            parse_ntu_skeleton(data[:cut], "cut")
        except DataError:
            pass
    garbage = b"x-.# \n\r09e"
    for _ in range(200):
        corrupted = bytearray(data)
        for position in rng.integers(0, len(data), size=3):
            corrupted[position] = garbage[rng.integers(0, len(garbage))]
        try:
            parse_ntu_skeleton(bytes(corrupted), "corrupt")
        except DataError:
            pass
