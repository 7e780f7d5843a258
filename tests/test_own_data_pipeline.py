"""Own data in the pipeline: ``manifest csv`` with a layout, class names and the other
settings recorded in the WORKDIR, and the skeleton stage that reads it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from data_manifest.errors import DataError, StaleCacheError
from data_manifest.formats.reading import SkeletonReading
from data_manifest.layouts import NW_UCLA, load_layout
from data_manifest.schemas import SKELETONS
from data_manifest.workdir import Workdir
from pipeline.cli.main import cli
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_skeletons import extract_skeletons
from pipeline.stages.preview import _draw_actor, _layout_for
from pipeline.stages.stitch import Placement
from pipeline.workdir_settings import resolve_settings
from pipeline.synthetic.own_data import (KINECT_V1_HEAD_FIRST, OWN_CLASSES,
                                         write_own_dataset)


@pytest.fixture()
def own(tmp_path):
    return write_own_dataset(tmp_path / "mine", per_class=2, frames=(12, 20))


def test_manifest_records_layout_and_classes_so_the_user_files_can_go(own, tmp_path):
    result = CliRunner().invoke(cli, [
        "manifest", "csv", str(own.csv), str(tmp_path / "work"), "--layout", str(own.layout),
        "--classes", str(own.classes), "--label-base", "1"])
    assert result.exit_code == 0, result.output
    assert "layout: kinect-v1-head-first (20 joints)" in result.output
    assert "class names: 6" in result.output
    own.layout.unlink()                  # the WORKDIR has its own copies
    own.classes.write_text("renamed\n")
    workdir = Workdir(tmp_path / "work")
    assert workdir.layout == load_layout(KINECT_V1_HEAD_FIRST)
    assert workdir.class_names == list(OWN_CLASSES)
    assert workdir.info.layout == "kinect-v1-head-first"
    assert sorted({s.label for s in workdir.samples}) == list(range(6))   # stored 0-based
    assert {s.id: s.label for s in workdir.samples} == own.labels


def test_manifest_problems_are_listed_together(own, tmp_path):
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(
        {"name": "broken", "joints": ["a", "b"], "parents": {"a": "b", "b": "a"},
         "center": "a"}))
    (tmp_path / "few.txt").write_text("one\ntwo\n")
    with pytest.raises(DataError) as caught:
        build_manifest("csv", own.csv, tmp_path / "w", layout=tmp_path / "broken.yaml",
                       classes=tmp_path / "few.txt", label_base=1)
    text = str(caught.value)
    assert "cycle in parents: a -> b -> a" in text
    assert "2 class names, but the data has label(s) 3, 4, 5, 6" in text
    with pytest.raises(DataError, match="--layout, --channels: only for own data"):
        resolve_settings("nw-ucla", [], layout="ntu", channels="xy")
    with pytest.raises(DataError, match="label 0 is below the label base 1"):
        (tmp_path / "zero.csv").write_text("id,label,skeleton,video\na,0,mine/skeletons/"
                                           "c00_000.npy,\n")
        build_manifest("csv", tmp_path / "zero.csv", tmp_path / "z", label_base=1)


def test_changed_settings_need_overwrite_and_make_the_cache_stale(own, tmp_path):
    work = tmp_path / "work"
    options = dict(layout=own.layout, label_base=1)
    build_manifest("csv", own.csv, work, **options)
    assert build_manifest("csv", own.csv, work, **options).unchanged
    extract_skeletons(work, progress=False)
    with pytest.raises(DataError, match=r"other settings \(layout kinect-v1-head-first -> "
                                        r"nw-ucla, joint mapping\).*--overwrite"):
        build_manifest("csv", own.csv, work, layout="nw-ucla", from_layout=own.layout,
                       label_base=1)
    build_manifest("csv", own.csv, work, layout="nw-ucla", from_layout=own.layout,
                   label_base=1, overwrite=True)
    with pytest.raises(StaleCacheError):
        extract_skeletons(work, progress=False)


def test_a_layout_edited_under_the_same_name_is_named_as_edited(own, tmp_path):
    """Regression: the refusal read "layout kinect-v1-head-first -> kinect-v1-head-first"."""
    work = tmp_path / "work"
    build_manifest("csv", own.csv, work, layout=own.layout, label_base=1)
    edited = yaml.safe_load(own.layout.read_text())
    edited["dims"] = [3]
    changed = tmp_path / "edited.yaml"
    changed.write_text(yaml.safe_dump(edited, sort_keys=False))
    with pytest.raises(DataError, match=r"other settings \(layout kinect-v1-head-first: its "
                                        r"definition differs .*\).*--overwrite"):
        build_manifest("csv", own.csv, work, layout=changed, label_base=1)


def test_skeleton_stage_takes_persons_and_channels_from_the_files(own, tmp_path):
    build_manifest("csv", own.csv, tmp_path / "work", layout=own.layout, label_base=1,
                   shard_size=4)
    result = extract_skeletons(tmp_path / "work", progress=False)
    assert result.failures == []
    reader = Workdir(tmp_path / "work").reader(SKELETONS)
    params = reader.spec.params
    # single-person data: one person, no zero second person
    assert (params["max_persons"], params["channels"], params["num_joints"]) == (1, "xyz", 20)
    assert load_layout(params["layout"]) == load_layout(KINECT_V1_HEAD_FIRST)
    stored = reader.get("c03_001")["joints"]
    np.testing.assert_array_equal(stored[:, 0], np.load(own.files["c03_001"]))
    assert SkeletonReading.from_params(params).layout.name == "kinect-v1-head-first"


def test_data_stored_in_another_order_is_remapped_by_configuration(own, tmp_path):
    result = CliRunner().invoke(cli, [
        "manifest", "csv", str(own.csv), str(tmp_path / "work"), "--layout", "nw-ucla",
        "--from-layout", str(own.layout), "--label-base", "1", "--max-persons", "2"])
    assert result.exit_code == 0, result.output
    assert "mapped from kinect-v1-head-first" in result.output
    extract_skeletons(tmp_path / "work", progress=False)
    workdir = Workdir(tmp_path / "work")
    assert workdir.layout == NW_UCLA and workdir.joint_map is not None
    joints = workdir.reader(SKELETONS).get("c00_000")["joints"]
    raw = np.load(own.files["c00_000"])
    source = load_layout(KINECT_V1_HEAD_FIRST)
    assert joints.shape[1:] == (2, 20, 3) and not joints[:, 1].any()
    np.testing.assert_array_equal(joints[:, 0], raw[:, [source.index(n) for n in NW_UCLA.joints]])


def test_builtin_dataset_cache_params_are_unchanged():
    """Existing NTU and NW-UCLA skeleton caches stay valid: same params as before."""
    assert SkeletonReading.for_dataset("ntu60").params() == {
        "format_version": 1, "dataset": "ntu60", "max_persons": 2, "num_joints": 25,
        "origin_joint": 2, "denoise": {"version": 2, "max_noise_length": 11,
                                       "spread_ratio": 0.8, "max_noisy_ratio": 0.69754,
                                       "max_actors": 2, "origin_joint": 2}}
    assert SkeletonReading.for_dataset("nw-ucla").params() == {
        "format_version": 1, "dataset": "nw-ucla", "max_persons": 1, "num_joints": 20,
        "origin_joint": 2}


def test_preview_draws_the_workdirs_layout_and_never_guesses_one(own, tmp_path):
    build_manifest("csv", own.csv, tmp_path / "mine", layout=own.layout, label_base=1)
    build_manifest("csv", own.csv, tmp_path / "bare", label_base=1)
    layout = _layout_for(Workdir(tmp_path / "mine"), 20)
    assert layout.name == "kinect-v1-head-first"
    assert _layout_for(Workdir(tmp_path / "bare"), 20) is None   # not NW-UCLA's by count
    image = np.zeros((100, 100, 3), np.uint8)
    points = np.full((20, 2), np.nan)
    points[layout.index("head")] = (10, 10)
    points[layout.index("shoulder_center")] = (10, 90)
    assert _draw_actor(image, points, layout, (0, 255, 0), Placement(0, 0, 100, 100)) == 2
    assert image[50, 10, 1] > 100                    # the head-neck bone is drawn
    bare = np.zeros_like(image)
    _draw_actor(bare, points, None, (0, 255, 0), Placement(0, 0, 100, 100))
    assert bare[50, 10, 1] == 0


def test_the_survey_of_own_files_is_recorded_and_redone_only_for_changed_files(
        own, tmp_path, monkeypatch):
    import pipeline.stages.skeleton_survey as survey_module
    from pipeline.stages.extract_skeletons import stage_reading

    build_manifest("csv", own.csv, tmp_path / "work", layout=own.layout, label_base=1,
                   shard_size=4)
    workdir = Workdir(tmp_path / "work")
    surveyed = []
    real = survey_module.survey_file
    monkeypatch.setattr(survey_module, "survey_file",
                        lambda path, reading: surveyed.append(path) or real(path, reading))
    first = stage_reading(workdir)
    assert len(surveyed) == len(workdir.samples)
    assert (tmp_path / "work" / "skeleton_survey.json").is_file()

    surveyed.clear()
    assert stage_reading(Workdir(tmp_path / "work")) == first     # a resumed run
    assert surveyed == []

    edited = own.files["c03_001"]
    np.save(edited, np.concatenate([np.load(edited)] * 2))       # same shape per frame
    assert stage_reading(Workdir(tmp_path / "work")) == first
    assert surveyed == [str(edited)]


def test_processes_starting_together_survey_once_and_agree(own, tmp_path):
    """Two processes (as two ranks would) take turns on the record: one surveys every
    file, the other none, and both settle on the same reading."""
    import subprocess
    import sys
    from pathlib import Path

    build_manifest("csv", own.csv, tmp_path / "work", layout=own.layout, label_base=1,
                   shard_size=4)
    script = (
        "import sys, json\n"
        "import pipeline.stages.skeleton_survey as m\n"
        "from data_manifest.workdir import Workdir\n"
        "from pipeline.stages.extract_skeletons import stage_reading\n"
        "count = []\n"
        "real = m.survey_file\n"
        "m.survey_file = lambda p, r: count.append(p) or real(p, r)\n"
        "reading = stage_reading(Workdir(sys.argv[1]))\n"
        "print(json.dumps([len(count), reading.channels, reading.max_persons]))\n")
    repo = Path(__file__).resolve().parents[1]
    runs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "work")],
                             stdout=subprocess.PIPE, text=True, cwd=repo)
            for _ in range(2)]
    results = sorted(json.loads(run.communicate(timeout=120)[0]) for run in runs)
    assert results == [[0, "xyz", 1], [len(Workdir(tmp_path / "work").samples), "xyz", 1]]
