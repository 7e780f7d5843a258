import json

import pytest
from click.testing import CliRunner

from data_manifest.errors import DataError
from data_manifest.manifest import read_manifest
from data_manifest.workdir import Workdir
from pipeline.cli.main import cli
from pipeline.manifest_builder import build_manifest


def test_ntu_folder_pairs_skeletons_with_videos_and_reports_orphans(shared_dir, tmp_path):
    report = build_manifest("ntu120", shared_dir / "data/ntu", tmp_path / "w")
    samples = read_manifest(tmp_path / "w/manifest.jsonl")
    assert [s.id for s in samples] == ["S001C001P001R001A001"]   # the only one with a skeleton
    sample = samples[0]
    assert sample.label == 0 and sample.meta == {"setup": 1, "camera": 1, "performer": 1,
                                                 "replication": 1, "action": 1}
    assert sample.video.endswith("S001C001P001R001A001_rgb.avi")
    assert sample.skeleton.endswith("S001C001P001R001A001.skeleton")
    orphans = {o["name"]: o["reason"] for o in report.orphans}
    assert orphans == {"S001C001P001R001A002": "no skeleton file",
                       "S018C001P008R001A062": "no skeleton file"}
    lines = (tmp_path / "w/orphans.jsonl").read_text().splitlines()
    assert len(lines) == 2


def test_ntu60_leaves_out_ntu120_samples_and_require_any_keeps_videos(shared_dir, tmp_path):
    build_manifest("ntu60", shared_dir / "data/ntu", tmp_path / "w", require="any")
    ids = [s.id for s in read_manifest(tmp_path / "w/manifest.jsonl")]
    assert ids == ["S001C001P001R001A001", "S001C001P001R001A002"]


def test_nw_ucla_labels_and_metadata(shared_dir, tmp_path):
    report = build_manifest("nw-ucla", shared_dir / "data/nw-ucla/all_sqe", tmp_path / "w")
    assert report.num_samples == 1484 and report.orphans == []
    samples = Workdir(tmp_path / "w").samples
    by_id = {s.id: s for s in samples}
    assert by_id["a01_s01_e00_v01"].label == 0
    assert by_id["a12_s01_e00_v01"].label == 9        # a12 is the 10th class
    assert {s.label for s in samples if s.meta["action"] == 8} == {6}
    assert by_id["a01_s02_e03_v03"].meta == {"action": 1, "subject": 2, "episode": 3, "view": 3}
    assert sorted({s.label for s in samples}) == list(range(10))


def test_rebuilding_is_a_no_op_and_another_dataset_is_refused(shared_dir, tmp_path):
    root = shared_dir / "data/ntu"
    build_manifest("ntu60", root, tmp_path / "w")
    digest = Workdir(tmp_path / "w").info.manifest_digest
    assert build_manifest("ntu60", root, tmp_path / "w").unchanged
    with pytest.raises(DataError, match="made for ntu60, not ntu120"):
        build_manifest("ntu120", root, tmp_path / "w")
    with pytest.raises(DataError, match="--overwrite"):
        build_manifest("ntu60", root, tmp_path / "w", require="any")
    assert Workdir(tmp_path / "w").info.manifest_digest == digest
    build_manifest("ntu60", root, tmp_path / "w", require="any", overwrite=True)
    assert Workdir(tmp_path / "w").info.num_samples == 2


def test_ignore_list_leaves_samples_out(shared_dir, tmp_path):
    ignore = tmp_path / "missing.txt"
    ignore.write_text("S001C001P001R001A002\n")
    report = build_manifest("ntu60", shared_dir / "data/ntu", tmp_path / "w", require="any",
                            ignore_list=ignore)
    assert report.num_samples == 1 and report.ignored == 1


def _csv(tmp_path, text):
    (tmp_path / "a.npy").write_bytes(b"x")
    (tmp_path / "b.avi").write_bytes(b"x")
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_csv_manifest_with_split_column(tmp_path):
    path = _csv(tmp_path, "id,label,skeleton,video,split\nx1,3,a.npy,b.avi,train\nx2,0,a.npy,,test\n")
    build_manifest("csv", path, tmp_path / "w")
    samples = Workdir(tmp_path / "w").samples
    assert [(s.id, s.label, s.split) for s in samples] == [("x1", 3, "train"), ("x2", 0, "test")]
    assert samples[1].video is None and samples[0].skeleton == str((tmp_path / "a.npy").resolve())


@pytest.mark.parametrize("text, message", [
    ("id,label,skeleton\nx,1,a.npy\n", "missing column"),
    ("id,label,skeleton,video\nx,one,a.npy,\n", "line 2: label 'one' is not an integer"),
    ("id,label,skeleton,video\nx,1,a.npy,\nx,2,a.npy,\n", "line 3: duplicate id"),
    ("id,label,skeleton,video\nx,1,nope.npy,\n", "line 2: skeleton file nope.npy does not exist"),
    ("id,label,skeleton,video,split\nx,1,a.npy,,val\n", "split 'val'"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    path = _csv(tmp_path, text)
    with pytest.raises(DataError, match=message) as info:
        build_manifest("csv", path, tmp_path / "w")
    assert "data.csv" in str(info.value)


def test_cli_unknown_dataset_and_missing_root(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["manifest", "kinetics", str(tmp_path), str(tmp_path / "w")])
    assert result.exit_code == 2 and "kinetics" in result.output
    result = runner.invoke(cli, ["manifest", "ntu60", str(tmp_path / "nope"), str(tmp_path / "w")])
    assert result.exit_code == 2 and "nope: does not exist" in result.output
    result = runner.invoke(cli, ["status", str(tmp_path)])
    assert result.exit_code == 2 and "not a WORKDIR" in result.output


def test_cli_manifest_then_status(shared_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["manifest", "nw-ucla", str(shared_dir / "data/nw-ucla"),
                                 str(tmp_path / "w"), "--shard-size", "100"])
    assert result.exit_code == 0, result.output
    assert "1484 samples" in result.output
    result = runner.invoke(cli, ["status", str(tmp_path / "w")])
    assert "nw-ucla, 1484 samples in 15 shard(s) of 100" in result.output
    info = json.loads((tmp_path / "w/workdir.json").read_text())
    assert info["layout"] == "nw-ucla"


def _nw_ucla_files(root, names):
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / f"{name}.json").write_text("{}")
    return root


def test_nw_ucla_action_outside_the_ten_classes_is_an_orphan(tmp_path):
    root = _nw_ucla_files(tmp_path / "d", ["a01_s01_e00_v01", "a07_s01_e00_v01",
                                           "a12_s01_e00_v01"])
    report = build_manifest("nw-ucla", root, tmp_path / "w")
    assert [s.id for s in Workdir(tmp_path / "w").samples] == ["a01_s01_e00_v01",
                                                               "a12_s01_e00_v01"]
    assert report.orphans == [{"name": "a07_s01_e00_v01",
                               "file": str(root / "a07_s01_e00_v01.json"),
                               "reason": "NW-UCLA action a07 is not one of the 10 classes"}]
    assert "a07" in (tmp_path / "w/orphans.jsonl").read_text()


def test_a_run_killed_between_manifest_and_info_finishes_on_rerun(tmp_path, monkeypatch):
    root = _nw_ucla_files(tmp_path / "d", ["a01_s01_e00_v01"])
    build_manifest("nw-ucla", root, tmp_path / "w")
    _nw_ucla_files(root, ["a02_s01_e00_v01"])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Workdir, "write_info", staticmethod(killed))
    try:
        build_manifest("nw-ucla", root, tmp_path / "w", overwrite=True)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert Workdir(tmp_path / "w").info.num_samples == 1      # the info file is behind
    report = build_manifest("nw-ucla", root, tmp_path / "w")  # no --overwrite needed
    assert report.num_samples == 2
    workdir = Workdir(tmp_path / "w")
    assert workdir.info.num_samples == 2
    workdir.check_manifest_unchanged()
    assert [s.id for s in workdir.samples] == ["a01_s01_e00_v01", "a02_s01_e00_v01"]
