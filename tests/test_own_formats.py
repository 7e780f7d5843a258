"""Own-data skeleton files: .npz, .json, CSV of frames, MATLAB .mat (v7.3, and v5 with
scipy), and remapping."""

from __future__ import annotations

import importlib.util
import json

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from data_manifest.errors import DataError
from data_manifest.formats.load import load_skeleton_sample, survey_file
from data_manifest.formats.reading import SkeletonReading
from data_manifest.layouts import NW_UCLA, load_layout, resolve_joint_map
from pipeline.synthetic.own_data import (KINECT_V1_HEAD_FIRST, write_mat_v73,
                                         write_skeleton_file)

HEAD_FIRST = load_layout(KINECT_V1_HEAD_FIRST)
READING = SkeletonReading("csv", HEAD_FIRST)


def _array(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("file_format", ["npy", "npz", "json", "csv", "mat"])
def test_every_format_reads_the_same_array(tmp_path, file_format):
    array = _array((9, 20, 3))
    path = write_skeleton_file(tmp_path / "clip", array, file_format)
    values = load_skeleton_sample(path, READING)
    np.testing.assert_allclose(values["joints"][:, 0], array, atol=1e-5)
    assert values["joints"].shape == (9, 1, 20, 3) and values["num_actors"] == 1
    assert survey_file(path, READING) == (20, 1, 3)


def test_npz_with_scores_and_several_arrays(tmp_path):
    xy, scores = _array((6, 2, 17, 2)), np.abs(_array((6, 2, 17), 1))
    np.savez(tmp_path / "a.npz", joints=xy, scores=scores, extra=np.zeros(3))
    values = load_skeleton_sample(tmp_path / "a.npz", SkeletonReading("csv",
                                                                      channels="xy-score"))
    np.testing.assert_array_equal(values["joints"][..., :2], xy)
    np.testing.assert_array_equal(values["joints"][..., 2], scores)
    np.savez(tmp_path / "b.npz", first=xy, second=xy)
    with pytest.raises(DataError, match="several arrays needs one named 'joints' "
                                        r"\(found: first, second\)"):
        load_skeleton_sample(tmp_path / "b.npz", "csv")
    np.savez(tmp_path / "c.npz", keypoints=xy)          # one array: whatever its name
    assert load_skeleton_sample(tmp_path / "c.npz", "csv")["joints"].shape == (6, 2, 17, 2)
    np.savez(tmp_path / "d.npz", joints=xy, scores=scores[:, :, :3])
    with pytest.raises(DataError, match="scores of shape"):
        load_skeleton_sample(tmp_path / "d.npz", "csv")
    (tmp_path / "e.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable .npz archive"):
        load_skeleton_sample(tmp_path / "e.npz", "csv")


def test_json_forms(tmp_path):
    array = _array((5, 2, 20, 2))
    (tmp_path / "list.json").write_text(json.dumps(array.tolist()))
    (tmp_path / "obj.json").write_text(json.dumps({"joints": array[:, 0].tolist(),
                                                   "scores": np.ones((5, 20)).tolist()}))
    listed = load_skeleton_sample(tmp_path / "list.json", "csv")
    np.testing.assert_allclose(listed["joints"], array, rtol=1e-6)
    scored = load_skeleton_sample(tmp_path / "obj.json", "csv")
    assert scored["joints"].shape == (5, 1, 20, 3) and (scored["joints"][..., 2] == 1).all()
    (tmp_path / "bad.json").write_text(json.dumps({"frames": []}))
    with pytest.raises(DataError, match="needs a 'joints' or 'skeletons' key"):
        load_skeleton_sample(tmp_path / "bad.json", "csv")
    (tmp_path / "ragged.json").write_text(json.dumps([[[1, 2]], [[1]]]))
    with pytest.raises(DataError, match="ragged"):
        load_skeleton_sample(tmp_path / "ragged.json", "csv")


def test_csv_of_frames_with_persons_gaps_and_any_column_order(tmp_path):
    joints = HEAD_FIRST.joints
    columns = [f"{joint}_{axis}" for joint in reversed(joints) for axis in ("y", "x", "score")]
    rng = np.random.default_rng(3)
    rows, expected = [], np.zeros((4, 2, 20, 3), np.float32)
    for frame, person in [(10, "bob"), (10, "ann"), (11, "bob"), (13, "bob")]:
        values = rng.uniform(1, 2, size=(20, 3)).astype(np.float32)
        slot = {"bob": 0, "ann": 1}[person]
        expected[frame - 10, slot] = values
        cells = {f"{j}_{axis}": f"{values[i, k]:.6f}" for i, j in enumerate(joints)
                 for k, axis in enumerate(("x", "y", "score"))}
        rows.append(",".join([person, str(frame), "ignored"] + [cells[c] for c in columns]))
    path = tmp_path / "frames.csv"
    path.write_text("person,frame,note," + ",".join(columns) + "\n" + "\n".join(rows) + "\n")
    values = load_skeleton_sample(path, SkeletonReading("csv", HEAD_FIRST,
                                                        channels="xy-score"))
    # frame 12 had nobody: removed like padding, its index kept
    assert values["frame_index"].tolist() == [0, 1, 3] and values["source_frames"] == 4
    np.testing.assert_allclose(values["joints"], expected[[0, 1, 3]], rtol=1e-5)
    assert values["num_actors"] == 2


@pytest.mark.parametrize("header, row, message", [
    ("frame,head_x", "0,1", "no column for head_y"),
    (None, "0", "both z and score columns"),
    ("frame," + ",".join(f"{j}_{a}" for j in HEAD_FIRST.joints for a in "xy") + ",head_z",
     None, "z columns for some joints only"),
    (None, "x", "is not a number"),
])
def test_csv_of_frames_errors(tmp_path, header, row, message):
    full = [f"{j}_{a}" for j in HEAD_FIRST.joints for a in ("x", "y", "z")]
    if header is None:
        header = "frame," + ",".join(full) + (",head_score" if row == "0" else "")
    width = header.count(",")
    line = "0," + ",".join(["1"] * width) if row in (None, "0", "0,1") else \
        "0," + ",".join(["x"] + ["1"] * (width - 1))
    path = tmp_path / "bad.csv"
    path.write_text(f"{header}\n{line}\n")
    with pytest.raises(DataError) as caught:
        load_skeleton_sample(path, READING)
    assert message in str(caught.value) and "bad.csv" in str(caught.value)


def test_csv_of_frames_needs_a_layout(tmp_path):
    path = write_skeleton_file(tmp_path / "a", _array((3, 20, 3)), "csv")
    with pytest.raises(DataError, match="names its columns after the layout's joints"):
        load_skeleton_sample(path, "csv")


def test_mat_files(tmp_path):
    array = _array((7, 2, 20, 3))
    write_mat_v73(tmp_path / "a.mat", "joints", array)
    with h5py.File(tmp_path / "a.mat", "r") as handle:   # stored as MATLAB does: reversed
        assert handle["joints"].shape == (3, 20, 2, 7)
    np.testing.assert_array_equal(load_skeleton_sample(tmp_path / "a.mat", "csv")["joints"],
                                  array)
    with h5py.File(tmp_path / "b.mat", "w") as handle:
        handle["first"], handle["second"] = array.T, array.T
    with pytest.raises(DataError, match="cannot tell which variable.*first, second"):
        load_skeleton_sample(tmp_path / "b.mat", "csv")
    (tmp_path / "old.mat").write_bytes(b"MATLAB 5.0 MAT-file, Platform: GLNXA64" + bytes(200))
    with pytest.raises(DataError, match="not a readable MATLAB v5/v7 .mat file"):
        load_skeleton_sample(tmp_path / "old.mat", "csv")
    (tmp_path / "text.mat").write_text("x = 1")
    with pytest.raises(DataError, match="not a MATLAB .mat file"):
        load_skeleton_sample(tmp_path / "text.mat", "csv")


def test_matlab_v5_files_and_utd_mhad_d_skel(tmp_path, monkeypatch):
    """MATLAB's default format through scipy, and UTD-MHAD's d_skel (joints x 3 x frames)
    in either format."""
    array = _array((9, 20, 3))
    savemat(tmp_path / "a.mat", {"joints": array, "fps": np.float64(30)})
    assert (tmp_path / "a.mat").read_bytes().startswith(b"MATLAB 5.0")
    np.testing.assert_array_equal(load_skeleton_sample(tmp_path / "a.mat", "csv")["joints"],
                                  array[:, None])
    d_skel = np.ascontiguousarray(array.transpose(1, 2, 0))          # (20, 3, T)
    savemat(tmp_path / "a1_s1_t1_skeleton.mat", {"d_skel": d_skel})
    write_mat_v73(tmp_path / "v73_skeleton.mat", "d_skel", d_skel)
    for name in ("a1_s1_t1_skeleton.mat", "v73_skeleton.mat"):
        read = load_skeleton_sample(tmp_path / name, "csv")["joints"]
        assert read.shape == (9, 1, 20, 3)
        np.testing.assert_array_equal(read[:, 0], array)
    savemat(tmp_path / "two.mat", {"first": array, "second": array})
    with pytest.raises(DataError, match="cannot tell which variable.*first, second"):
        load_skeleton_sample(tmp_path / "two.mat", "csv")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "scipy" else real_find_spec(name, *a))
    with pytest.raises(DataError, match=r"needs scipy \(pip install 'mmcl-toolkit\[mat\]'\), "
                                        "or save it as v7.3"):
        load_skeleton_sample(tmp_path / "a.mat", "csv")


def test_files_in_another_layout_are_remapped_and_checked(tmp_path):
    """Data stored head first, read into NW-UCLA's joint order by configuration."""
    array = _array((8, 20, 3))
    path = write_skeleton_file(tmp_path / "clip", array, "npy")
    reading = SkeletonReading("csv", NW_UCLA, resolve_joint_map(HEAD_FIRST, NW_UCLA),
                              channels="xyz", max_persons=2)
    values = load_skeleton_sample(path, reading)
    order = [HEAD_FIRST.index(name) for name in NW_UCLA.joints]
    np.testing.assert_array_equal(values["joints"][:, 0], array[:, order])
    assert values["joints"].shape == (8, 2, 20, 3) and not values["joints"][:, 1].any()
    np.save(tmp_path / "short.npy", _array((8, 17, 3)))
    with pytest.raises(DataError, match="has 17 joints per person; the kinect-v1-head-first "
                                        "layout has 20"):
        load_skeleton_sample(tmp_path / "short.npy", reading)
    # the reading survives its own params: a run can read new files without the WORKDIR
    again = SkeletonReading.from_params(reading.params())
    assert again == reading
    np.testing.assert_array_equal(load_skeleton_sample(path, again)["joints"],
                                  values["joints"])
