"""The empty second person slot of single-actor samples: zeros (CTR-GCN's NTU60 script) or a
copy of the actor (its NTU120 script), per dataset by default and as an explicit option."""

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import StaleCacheError
from data_manifest.formats.load import load_skeleton_sample
from data_manifest.formats.reading import SkeletonReading
from data_manifest.formats.ntu_skeleton import parse_ntu_skeleton
from data_manifest.schemas import SKELETONS
from data_manifest.workdir import Workdir
from pipeline.cli.main import cli
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_skeletons import extract_skeletons
from skeleton_factories import REAL_NTU, skeleton_text, upright_body, write_ntu_files


def _reading(dataset, absent_actor=None):
    reading = SkeletonReading.for_dataset(dataset)
    return reading if absent_actor is None else dataclasses.replace(reading,
                                                                     absent_actor=absent_actor)


def _hand_read_single_body(path):
    """The real file's xyz joints read line by line, independently of the toolkit's parser:
    frame count, then per frame a body count, a body line, a joint count, 25 joint lines."""
    lines = [line.split() for line in path.read_text().splitlines()]
    frames, row, joints = int(lines[0][0]), 1, []
    for _ in range(frames):
        assert int(lines[row][0]) == 1          # the sample has one body in every frame
        assert int(lines[row + 2][0]) == 25
        joints.append([[float(v) for v in lines[row + 3 + j][:3]] for j in range(25)])
        row += 3 + 25
    return np.array(joints, dtype=np.float32)                     # (T, 25, 3)


@pytest.mark.parametrize("dataset, option, copied", [
    ("ntu60", None, False), ("ntu120", None, True),               # per-dataset defaults
    ("ntu60", "copy", True), ("ntu120", "zeros", False)])         # explicit choices
def test_real_single_actor_sample_against_a_hand_built_expectation(dataset, option, copied):
    raw = _hand_read_single_body(REAL_NTU)
    actor = raw - raw[0, 1]                          # translated by frame 1's spine middle
    expected = np.zeros((len(raw), 2, 25, 3), np.float32)
    expected[:, 0] = actor
    if copied:
        expected[:, 1] = actor
    values = load_skeleton_sample(REAL_NTU, _reading(dataset, option))
    np.testing.assert_allclose(values["joints"], expected, atol=1e-6)
    # the copy is no second person: one actor, no colour-image position for slot 2
    assert values["num_actors"] == 1
    assert np.isnan(values["color_xy"][:, 1]).all()
    assert not np.isnan(values["color_xy"][:, 0]).any()


def test_the_copy_changes_joints_only():
    zeros = load_skeleton_sample(REAL_NTU, _reading("ntu120", "zeros"))
    copy = load_skeleton_sample(REAL_NTU, _reading("ntu120", "copy"))
    for field in ("color_xy", "frame_index", "source_frames", "num_actors"):
        np.testing.assert_array_equal(zeros[field], copy[field], err_msg=field)
    np.testing.assert_array_equal(zeros["joints"][:, 0], copy["joints"][:, 0])


def _bodies_file(tmp_path, spans):
    frames = []
    for t in range(max(span.stop for span in spans.values())):
        frames.append([(body_id, upright_body((index * 0.3 + 0.1 * np.sin(t), 0.0, 3.0),
                                              seed=index))
                       for index, (body_id, span) in enumerate(spans.items()) if t in span])
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(skeleton_text(frames))
    return path


def test_copy_follows_the_reference_rule_of_one_body_after_denoising(tmp_path):
    # two bodies that never overlap are merged into actor 1: the reference's sample then
    # has two actor columns (the second empty), so nothing is copied, as there
    merged = _bodies_file(tmp_path, {"A": range(0, 20), "B": range(20, 40)})
    values = load_skeleton_sample(merged, "ntu120")
    assert values["num_actors"] == 1 and (values["joints"][:, 1] == 0).all()
    assert len(parse_ntu_skeleton(merged.read_bytes(), "x").bodies) == 2
    # two actors: both slots hold their own data, whatever the option
    two = _bodies_file(tmp_path, {"A": range(0, 30), "B": range(0, 30)})
    for option in ("zeros", "copy"):
        values = load_skeleton_sample(two, _reading("ntu120", option))
        assert values["num_actors"] == 2
        assert not np.allclose(values["joints"][:, 0], values["joints"][:, 1])


def test_arrays_copy_the_one_person_they_hold(tmp_path):
    person = np.random.default_rng(0).normal(size=(6, 17, 3)).astype(np.float32)
    np.save(tmp_path / "p.npy", person)                       # (T, V, C): one person
    zeros = load_skeleton_sample(tmp_path / "p.npy", SkeletonReading("csv", max_persons=2))
    assert (zeros["joints"][:, 1] == 0).all()
    copied = load_skeleton_sample(tmp_path / "p.npy",
                                  SkeletonReading("csv", max_persons=2, absent_actor="copy"))
    np.testing.assert_array_equal(copied["joints"][:, 0], person)
    np.testing.assert_array_equal(copied["joints"][:, 1], person)
    assert copied["num_actors"] == 1 and np.isnan(copied["color_xy"][:, 1]).all()


def test_the_rule_is_checked_and_travels_with_the_params():
    with pytest.raises(ValueError, match="absent_actor must be one of zeros, copy"):
        _reading("ntu120", "mirror")
    with pytest.raises(ValueError, match="nw-ucla samples hold one person"):
        _reading("nw-ucla", "copy")
    assert SkeletonReading.for_dataset("ntu120").absent_actor == "copy"
    assert SkeletonReading.for_dataset("ntu60").absent_actor == "zeros"
    for dataset, rule in (("ntu120", "copy"), ("ntu120", "zeros"), ("ntu60", "copy")):
        params = _reading(dataset, rule).params()
        assert SkeletonReading.from_params(params).absent_actor == rule
    # zeros stays out of the params: caches made before the rule keep their fingerprints
    assert "absent_actor" not in _reading("ntu60").params()
    old_ntu120 = _reading("ntu120", "zeros").params()
    assert "absent_actor" not in old_ntu120
    assert SkeletonReading.from_params(old_ntu120).absent_actor == "zeros"


def _ntu120_workdir(tmp_path):
    data = tmp_path / "data"
    write_ntu_files(data, 3)                     # one actor each (actions < 50)
    build_manifest("ntu120", data, tmp_path / "work", shard_size=4)
    return Workdir(tmp_path / "work")


def test_stage_records_the_rule_and_a_changed_rule_is_a_stale_cache(tmp_path):
    workdir = _ntu120_workdir(tmp_path)
    extract_skeletons(workdir, progress=False)
    with workdir.reader(SKELETONS) as reader:
        assert reader.spec.params["absent_actor"] == "copy"
        copy_fingerprint = reader.spec.fingerprint
        stored = {i: reader.get(i, ["joints", "num_actors"]) for i in reader.ids}
    for sample_id, values in stored.items():
        assert values["num_actors"] == 1, sample_id
        np.testing.assert_array_equal(values["joints"][:, 1], values["joints"][:, 0])
    runner = CliRunner()
    refused = runner.invoke(cli, ["extract-skeletons", str(workdir.path), "--no-progress",
                                  "--absent-actor", "zeros"])
    assert refused.exit_code == 2 and "absent_actor" in refused.output, refused.output
    with pytest.raises(StaleCacheError, match="absent_actor"):
        extract_skeletons(workdir, progress=False, absent_actor="zeros")
    done = runner.invoke(cli, ["extract-skeletons", str(workdir.path), "--no-progress",
                               "--absent-actor", "zeros", "--overwrite"])
    assert done.exit_code == 0, done.output
    with Workdir(workdir.path).reader(SKELETONS) as reader:
        assert "absent_actor" not in reader.spec.params
        assert reader.spec.fingerprint != copy_fingerprint
        assert all((reader.get(i, ["joints"])["joints"][:, 1] == 0).all() for i in reader.ids)


def test_help_documents_the_option_and_its_defaults():
    shown = CliRunner().invoke(cli, ["extract-skeletons", "--help"]).output
    assert "--absent-actor [zeros|copy]" in shown and "copy for ntu120" in shown
