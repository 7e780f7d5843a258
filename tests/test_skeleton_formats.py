"""NW-UCLA JSON, own-data arrays (.npy), and ``load_skeleton_sample`` for every dataset kind.

The other own-data formats (.npz, .json, CSV of frames, .mat) are in test_own_formats.py."""

import json

import numpy as np
import pytest

from data_manifest.errors import DataError
from data_manifest.formats.load import load_skeleton_sample, survey_file
from data_manifest.formats.reading import SkeletonReading
from data_manifest.formats.nw_ucla import read_nw_ucla_json
from data_manifest.schemas import SKELETON_FIELDS
from skeleton_factories import NW_UCLA_DIR, REAL_NTU


def test_every_real_nw_ucla_file_loads():
    files = sorted(NW_UCLA_DIR.glob("*.json"))
    assert len(files) == 1484
    for path in files[::7]:
        content = json.loads(path.read_text())
        values = load_skeleton_sample(path, "nw-ucla")
        assert set(values) == set(SKELETON_FIELDS)
        frames = len(content["skeletons"])
        assert values["joints"].shape == (frames, 1, 20, 3)
        assert values["color_xy"].shape == (frames, 1, 20, 2)
        assert np.isnan(values["color_xy"]).all()
        assert values["frame_index"].tolist() == list(range(frames))
        assert values["source_frames"] == frames and values["num_actors"] == 1
        raw = np.asarray(content["skeletons"], dtype=np.float32)
        np.testing.assert_allclose(values["joints"][:, 0], raw - raw[0, 1], atol=1e-6)


def test_nw_ucla_reader_values():
    path = NW_UCLA_DIR / "a01_s01_e00_v01.json"
    skeletons = read_nw_ucla_json(path)
    assert skeletons.dtype == np.float32 and skeletons.shape[1:] == (20, 3)
    np.testing.assert_allclose(skeletons[0, 0], [-0.619699, 0.328046, 3.18186], rtol=1e-6)


@pytest.mark.parametrize("content, message, line", [
    ("", "empty skeleton file", None),
    ('{"file_name": "a01_s01_e00_v01"}', "no 'skeletons' key (keys: file_name)", None),
    ('{"skeletons": [[[1, 2, 3]], [[1, 2]]]}', "ragged or holds non-numbers", None),
    ('{"skeletons": [[["a", 2, 3]]]}', "ragged or holds non-numbers", None),
    (json.dumps({"skeletons": [[[1, 2, 3]] * 20, [[1, 2, None]] * 20]}),
     "frame 2 holds a non-finite value", None),
    ('{"skeletons": [[1, 2, 3]]}', "must have shape [frames][joints][3], found [1, 3]", None),
    ('{"skeletons": [[[1, 2, 3, 4]]]}', "found [1, 1, 4]", None),
    ('{"skeletons": []}', "no frames", None),
    ('{"skeletons": [[[1, 2, 3]]]}', "has 1 joints per frame, expected 20", None),
    ('[1, 2]', "found a list", None),
    ('{"skeletons":\n [[[1, 2, 3]],\n oops]}', "not valid JSON", 3),
])
def test_bad_nw_ucla_json_names_the_file(tmp_path, content, message, line):
    path = tmp_path / "a01_s01_e00_v01.json"
    path.write_text(content)
    with pytest.raises(DataError) as caught:
        load_skeleton_sample(path, "nw-ucla")
    assert str(path) in str(caught.value)
    assert message in caught.value.reason
    assert caught.value.line == line


def test_missing_files_for_every_format(tmp_path):
    for dataset, name in [("ntu60", "x.skeleton"), ("nw-ucla", "x.json"), ("csv", "x.npy"),
                          ("csv", "x.skeleton"), ("csv", "x.json")]:
        with pytest.raises(DataError, match="skeleton file not found") as caught:
            load_skeleton_sample(tmp_path / name, dataset)
        assert str(tmp_path / name) in str(caught.value)


def test_unknown_dataset_and_file_type(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'kinetics'"):
        load_skeleton_sample(REAL_NTU, "kinetics")
    with pytest.raises(DataError, match="unsupported skeleton file type '.txt'"):
        load_skeleton_sample(tmp_path / "x.txt", "csv")


def test_csv_accepts_ntu_and_nw_ucla_files_with_their_own_persons():
    ntu = load_skeleton_sample(REAL_NTU, "csv")
    reference = load_skeleton_sample(REAL_NTU, "ntu60")
    for name in SKELETON_FIELDS:
        np.testing.assert_array_equal(ntu[name], reference[name])
    path = NW_UCLA_DIR / "a01_s01_e00_v01.json"
    ucla = load_skeleton_sample(path, "csv")
    # own data is kept as given (the feeders centre it) and has its own person count
    assert ucla["joints"].shape[1:] == (1, 20, 3)
    np.testing.assert_array_equal(ucla["joints"][:, 0], read_nw_ucla_json(path))
    padded = load_skeleton_sample(path, SkeletonReading("csv", max_persons=2))
    assert padded["joints"].shape[1] == 2 and (padded["joints"][:, 1] == 0).all()
    assert np.isnan(padded["color_xy"]).all() and padded["num_actors"] == 1


def test_npy_arrays(tmp_path):
    rng = np.random.default_rng(0)
    tvc = rng.normal(size=(12, 17, 3)).astype(np.float64)
    tvc[[0, 5]] = 0                                           # padding frames
    np.save(tmp_path / "tvc.npy", tvc)
    values = load_skeleton_sample(tmp_path / "tvc.npy", "csv")
    assert set(values) == set(SKELETON_FIELDS)
    kept = [t for t in range(12) if t not in (0, 5)]
    assert values["frame_index"].tolist() == kept and values["source_frames"] == 12
    assert values["joints"].shape == (10, 1, 17, 3) and values["joints"].dtype == np.float32
    np.testing.assert_allclose(values["joints"][:, 0], tvc[kept], rtol=1e-6)  # not translated
    assert values["num_actors"] == 1 and np.isnan(values["color_xy"]).all()
    assert survey_file(tmp_path / "tvc.npy", SkeletonReading("csv")) == (17, 1, 3)

    tmvc = rng.normal(size=(8, 3, 17, 2)).astype(np.float32)   # 2D points, 3 persons
    tmvc[3:, 2] = 0
    tmvc[:, 1] = 0                                             # a padding person
    np.save(tmp_path / "tmvc.npy", tmvc)
    values = load_skeleton_sample(tmp_path / "tmvc.npy", "csv")
    # 2-D points keep their 2 channels; the all-zero person is dropped
    assert values["joints"].shape == (8, 2, 17, 2) and values["num_actors"] == 2
    np.testing.assert_array_equal(values["joints"], tmvc[:, [0, 2]])
    assert survey_file(tmp_path / "tmvc.npy", SkeletonReading("csv")) == (17, 2, 2)
    capped = load_skeleton_sample(tmp_path / "tmvc.npy", SkeletonReading("csv", max_persons=1))
    np.testing.assert_array_equal(capped["joints"][:, 0], tmvc[:, 0])
    assert capped["joints"].shape[1] == 1 and capped["num_actors"] == 1
    with pytest.raises(DataError, match="holds 2 values per joint; this data's channels are "
                                        "xyz"):
        load_skeleton_sample(tmp_path / "tmvc.npy", SkeletonReading("csv", channels="xyz"))


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 5, 4)), "2 or 3 values per joint"),
    (np.zeros((4, 5)), "expected (T, V, C) or (T, M, V, C)"),
    (np.zeros((0, 5, 3)), "holds no joints"),
    (np.zeros((4, 5, 3)), "every joint position is zero"),
    (np.full((4, 5, 3), np.nan), "non-finite"),
    (np.array([["a", "b"]]), "expected numbers"),
    (np.array([{"x": 1}], dtype=object), "not a readable .npy array"),
])
def test_bad_npy_names_the_file(tmp_path, array, message):
    path = tmp_path / "bad.npy"
    np.save(path, array, allow_pickle=True)
    with pytest.raises(DataError) as caught:
        load_skeleton_sample(path, "csv")
    assert str(path) in str(caught.value) and message in caught.value.reason


def test_npy_that_is_not_an_array_file(tmp_path):
    path = tmp_path / "text.npy"
    path.write_text("hello")
    with pytest.raises(DataError, match="not a readable .npy array"):
        load_skeleton_sample(path, "csv")
    assert survey_file(path, SkeletonReading("csv")) is None
