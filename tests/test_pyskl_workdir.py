"""pyskl files through the toolkit: manifest (split lists as protocols, layout, class
names), skeleton stage, export back to pyskl, and training on imported 2-D keypoints."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from data_manifest.errors import DataError
from data_manifest.sample import Sample
from data_manifest.schemas import SKELETONS
from data_manifest.splits import select
from data_manifest.workdir import Workdir
from model_factories import single_thread  # noqa: F401 (autouse)
from pipeline.cli.main import cli as pipeline_cli
from pipeline.export_pyskl import export_pyskl
from pipeline.manifest_builder import build_manifest
from pipeline.manifest_pyskl import ARRAYS_DIR
from pipeline.stages.extract_skeletons import extract_skeletons
from pyskl_factories import REAL_ID, coco_2d_content, ntu_3d_content, real_ntu_keypoint, \
    write_pickle
from skeleton_factories import write_ntu_files
from train.config import resolve_config
from train.data.dataset import load_data
from train.loop import train
from train_factories import tiny_builder


def _import(path, work, **options) -> Workdir:
    build_manifest("pyskl", path, work, **options)
    assert extract_skeletons(work, progress=False).failures == []
    return Workdir(work)


def _cache(workdir: Workdir) -> dict[str, dict]:
    with workdir.reader(SKELETONS) as reader:
        return {s.id: reader.get(s.id, ["joints", "frame_index", "num_actors"])
                for s in workdir.samples}


def _assert_same_caches(first: Workdir, second: Workdir) -> None:
    one, two = _cache(first), _cache(second)
    assert list(one) == list(two)
    for sample_id in one:
        for field in ("joints", "frame_index", "num_actors"):
            np.testing.assert_array_equal(one[sample_id][field], two[sample_id][field])
    def described(workdir):    # the checksum is of the stored arrays: float16, float32
        return [(s.id, s.label, {k: v for k, v in s.meta.items() if k != "crc32"})
                for s in workdir.samples]
    assert described(first) == described(second)


# --------------------------------------------------------------------------- round trips


def test_ntu_3d_data_round_trips_import_export_import(tmp_path):
    """The real NTU sample and generated ones (2 persons, one entering late) in pyskl's
    NTU 3-D form: import, export, import give equal arrays, labels and split lists."""
    content = ntu_3d_content()
    source = write_pickle(tmp_path / "ntu60_3danno.pkl", content)
    first = _import(source, tmp_path / "one", split="xsub")
    assert first.layout.name == "ntu" and first.info.channels == "xyz"
    assert first.info.max_persons == 2 and first.info.protocol == "pyskl-xsub"
    assert first.class_names[0] == "drink water"             # NTU60's, from its splits
    stored = _cache(first)[REAL_ID]
    np.testing.assert_array_equal(stored["joints"][:, :1].transpose(1, 0, 2, 3),
                                  real_ntu_keypoint().astype(np.float32))

    exported = export_pyskl(first, tmp_path / "out.pkl", progress=False)
    assert exported.exported == 8 and exported.failed == []
    with open(tmp_path / "out.pkl", "rb") as handle:
        written = pickle.load(handle)
    assert written["split"] == content["split"]
    for got, want in zip(written["annotations"], content["annotations"]):
        assert (got["frame_dir"], got["label"]) == (want["frame_dir"], int(want["label"]))
        np.testing.assert_array_equal(got["keypoint"], want["keypoint"].astype(np.float32))
        assert got["total_frames"] == want["total_frames"] and "keypoint_score" not in got

    second = _import(tmp_path / "out.pkl", tmp_path / "two", split="xsub")
    _assert_same_caches(first, second)

    listed = CliRunner().invoke(pipeline_cli, ["split", str(first.path), "--protocol",
                                               "pyskl-xview", "--part", "test"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.split() == content["split"]["xview_val"]

    export_pyskl(first, tmp_path / "xview.pkl", protocols=["pyskl-xview"], progress=False)
    with open(tmp_path / "xview.pkl", "rb") as handle:
        assert pickle.load(handle)["split"] == {name: content["split"][name]
                                                for name in ("xview_train", "xview_val")}
    with pytest.raises(DataError, match="--protocol pyskl-xset: .*no such pair of split "
                                        "lists; its protocols: pyskl-xsub, pyskl-xview"):
        export_pyskl(first, tmp_path / "xset.pkl", protocols=["pyskl-xset"], progress=False)
    assert not (tmp_path / "xset.pkl").exists()


def test_2d_coco_keypoints_with_scores_round_trip(tmp_path):
    content = coco_2d_content()
    source = write_pickle(tmp_path / "gym_hrnet.pkl", content, protocol=4)
    first = _import(source, tmp_path / "one")
    assert first.layout.name == "coco-17" and first.info.channels == "xy-score"
    assert first.info.protocol == "pyskl" and first.class_names is None
    joints = _cache(first)["clip_001"]["joints"]                          # 2 persons
    want = content["annotations"][1]
    np.testing.assert_array_equal(joints[..., :2].transpose(1, 0, 2, 3),
                                  want["keypoint"].astype(np.float32))
    np.testing.assert_array_equal(joints[..., 2].transpose(1, 0, 2),
                                  want["keypoint_score"].astype(np.float32))

    export_pyskl(first, tmp_path / "out.pkl", progress=False)
    with open(tmp_path / "out.pkl", "rb") as handle:
        written = pickle.load(handle)
    assert written["split"] == content["split"]
    for got, want in zip(written["annotations"], content["annotations"]):
        np.testing.assert_array_equal(got["keypoint"], want["keypoint"].astype(np.float32))
        np.testing.assert_array_equal(got["keypoint_score"],
                                      want["keypoint_score"].astype(np.float32))
        assert got["img_shape"] == got["original_shape"] == (480, 640)
    second = _import(tmp_path / "out.pkl", tmp_path / "two")
    _assert_same_caches(first, second)


def test_an_ntu_workdir_exports_its_protocols_as_pyskl_split_lists(tmp_path):
    write_ntu_files(tmp_path / "raw", 6)
    build_manifest("ntu60", tmp_path / "raw", tmp_path / "work", shard_size=4)
    assert extract_skeletons(tmp_path / "work", progress=False).failures == []
    workdir = Workdir(tmp_path / "work")
    report = export_pyskl(workdir, tmp_path / "ntu.pkl", protocols=["ntu60-xsub"],
                          progress=False)
    with open(tmp_path / "ntu.pkl", "rb") as handle:
        written = pickle.load(handle)
    assert set(written["split"]) == {"xsub_train", "xsub_val"}
    assert written["split"]["xsub_train"] == [s.id for s in select(workdir.samples,
                                                                   "ntu60-xsub", "train")]
    assert report.lists == {name: len(ids) for name, ids in written["split"].items()}
    with pytest.raises(DataError, match="already exists; pass --overwrite"):
        export_pyskl(workdir, tmp_path / "ntu.pkl", progress=False)
    with pytest.raises(DataError, match="--protocol ntu120-xsub: split protocol"):
        export_pyskl(workdir, tmp_path / "ntu.pkl", protocols=["ntu120-xsub"],
                     overwrite=True, progress=False)
    again = _import(tmp_path / "ntu.pkl", tmp_path / "back")
    assert again.info.protocol == "pyskl-xsub" and again.layout.name == "ntu"
    ntu = _cache(workdir)
    for sample_id, values in _cache(again).items():
        actors = ntu[sample_id]["num_actors"]
        np.testing.assert_array_equal(values["joints"][:, :actors],
                                      ntu[sample_id]["joints"][:, :actors])


def test_the_export_command_writes_a_pyskl_file(tmp_path):
    source = write_pickle(tmp_path / "in.pkl", coco_2d_content(count=4))
    runner = CliRunner()
    done = runner.invoke(pipeline_cli, ["manifest", "pyskl", str(source), str(tmp_path / "w"),
                                        "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "pyskl: 3 train / 1 test" in done.output
    assert "split lists: pyskl = train/val; data.protocol auto: pyskl" in done.output
    assert runner.invoke(pipeline_cli, ["extract-skeletons", str(tmp_path / "w"),
                                        "--no-progress"]).exit_code == 0
    done = runner.invoke(pipeline_cli, ["export-pyskl", str(tmp_path / "w"),
                                        str(tmp_path / "out.pkl"), "--no-progress"])
    assert done.exit_code == 0, done.output
    assert "4 annotations in" in done.output and "train (3), val (1)" in done.output
    assert not list(tmp_path.glob(".out.pkl*"))        # no temporary file left


# --------------------------------------------------------------------------- the manifest


def test_each_pair_of_split_lists_is_a_protocol(tmp_path):
    content = ntu_3d_content()
    content["split"]["xsub_test"] = content["split"]["xsub_val"][:1]   # beside xsub_val
    content["split"]["train1"] = content["split"]["xsub_train"]
    content["split"]["test1"] = content["split"]["xsub_val"]
    content["split"]["extra"] = [REAL_ID]
    source = write_pickle(tmp_path / "file.pkl", content)
    with pytest.raises(DataError, match=r"several splits \(.*xsub \(xsub_train/xsub_test\)"
                                        r".*choose the default one with --split"):
        build_manifest("pyskl", source, tmp_path / "work")
    with pytest.raises(DataError, match="--split xset: no such pair of split lists"):
        build_manifest("pyskl", source, tmp_path / "work", split="xset")
    build_manifest("pyskl", source, tmp_path / "work", split="xview")
    workdir = Workdir(tmp_path / "work")
    assert workdir.default_protocol == "pyskl-xview"
    samples = workdir.samples
    ids = lambda chosen: [s.id for s in chosen]  # noqa: E731
    assert ids(select(samples, "pyskl-xview", "train")) == content["split"]["xview_train"]
    assert ids(select(samples, "pyskl-xview", "test")) == content["split"]["xview_val"]
    assert ids(select(samples, "pyskl-xsub", "test")) == content["split"]["xsub_test"]
    assert len(select(samples, "pyskl-xsub", "train")) == 4     # the rest: in neither
    assert ids(select(samples, "pyskl-1", "test")) == content["split"]["test1"]
    with pytest.raises(ValueError, match="'pyskl-xset': the pyskl file had no such pair of "
                                         "split lists; its protocols: pyskl-1, pyskl-xsub, "
                                         "pyskl-xview"):
        select(samples, "pyskl-xset", "train")
    with pytest.raises(ValueError, match="is for pyskl data, not 'csv'"):
        select([Sample(id="a", dataset="csv", label=0, split="train")], "pyskl-1", "train")
    # a new default split alone is not a new manifest: no --overwrite needed
    report = build_manifest("pyskl", source, tmp_path / "work", split="xsub")
    assert report.unchanged and Workdir(tmp_path / "work").default_protocol == "pyskl-xsub"
    assert report.splits == ["pyskl-1: 4 train / 4 test",
                             "pyskl-xsub: 4 train / 1 test, 3 in neither of its lists",
                             "pyskl-xview: 5 train / 3 test"]


def test_a_sample_in_both_lists_of_a_pair_is_an_error(tmp_path):
    content = ntu_3d_content()
    content["split"]["xsub_val"].append(content["split"]["xsub_train"][0])
    source = write_pickle(tmp_path / "file.pkl", content)
    with pytest.raises(DataError, match=f"1 sample.* in both parts of a split, e.g. {REAL_ID} "
                                        "is in both xsub_train and xsub_val"):
        build_manifest("pyskl", source, tmp_path / "work", split="xsub")


def test_layouts_classes_and_options_of_pyskl_files(tmp_path):
    content = ntu_3d_content(count=3)
    for item in content["annotations"]:
        item["keypoint"] = item["keypoint"][:, :, :20]            # 20 joints: Kinect v1?
    content["split"] = {"train": content["split"]["xsub_train"],
                        "val": content["split"]["xsub_val"]}
    source = write_pickle(tmp_path / "file.pkl", content)
    with pytest.raises(DataError, match="holds 20 joints of xyz values, not a layout known "
                                        "for pyskl files .* give --layout"):
        build_manifest("pyskl", source, tmp_path / "work")
    with pytest.raises(DataError, match="holds 20 joints per person; the ntu layout has 25"):
        build_manifest("pyskl", source, tmp_path / "work", layout="ntu")
    with pytest.raises(DataError, match="--channels xy-score does not apply"):
        build_manifest("pyskl", source, tmp_path / "work", layout="nw-ucla",
                       channels="xy-score")
    with pytest.raises(DataError, match="pyskl labels count from 0"):
        build_manifest("pyskl", source, tmp_path / "work", layout="nw-ucla", label_base=1)
    with pytest.raises(DataError, match="--split is for pyskl files"):
        build_manifest("csv", source, tmp_path / "work", split="xsub")
    classes = tmp_path / "classes.txt"
    classes.write_text("".join(f"action {k}\n" for k in range(5)))
    ignore = tmp_path / "ignore.txt"
    ignore.write_text(f"{REAL_ID}\n")
    report = build_manifest("pyskl", source, tmp_path / "work", layout="nw-ucla",
                            classes=classes, ignore_list=ignore, max_persons=1)
    workdir = Workdir(tmp_path / "work")
    assert workdir.layout.name == "nw-ucla" and workdir.class_names[4] == "action 4"
    assert report.ignored == 1 and REAL_ID not in workdir.samples_by_id
    assert workdir.info.max_persons == 1
    assert extract_skeletons(workdir, progress=False).failures == []
    assert _cache(workdir)[workdir.samples[0].id]["joints"].shape[1:] == (1, 20, 3)


def test_running_the_manifest_again_keeps_or_replaces_the_arrays(tmp_path):
    content = coco_2d_content(count=6)
    source = write_pickle(tmp_path / "file.pkl", content)
    work = tmp_path / "work"
    build_manifest("pyskl", source, work)
    arrays = sorted((work / ARRAYS_DIR).glob("*/*.npz"))
    assert len(arrays) == 6
    arrays[0].unlink()                                   # a lost array file is rewritten
    assert build_manifest("pyskl", source, work).unchanged
    assert arrays[0].is_file()

    content["annotations"][2]["keypoint"][0, 0, 0, 0] += 1      # other data, same ids
    del content["annotations"][5]
    content["split"] = {name: [i for i in ids if i != "clip_005"]
                        for name, ids in content["split"].items()}
    write_pickle(source, content)
    before = sorted(p.read_bytes() for p in arrays if p.is_file())
    with pytest.raises(DataError, match="already has a different manifest"):
        build_manifest("pyskl", source, work)
    assert sorted(p.read_bytes() for p in arrays if p.is_file()) == before   # untouched
    build_manifest("pyskl", source, work, overwrite=True)
    assert len(list((work / ARRAYS_DIR).glob("*/*.npz"))) == 5             # stale removed
    sample = Workdir(work).samples_by_id["clip_002"]
    with np.load(sample.skeleton) as stored:
        assert stored["joints"][0, 0, 0, 0] == content["annotations"][2]["keypoint"][0, 0, 0, 0]


def test_sample_ids_that_are_not_file_names_get_distinct_array_files(tmp_path):
    content = coco_2d_content(count=5)
    for item, name in zip(content["annotations"], ("a/b", "a_b", "../up", ".hidden",
                                                   "clip.v2")):
        item["frame_dir"] = name
    content["split"] = {"train": ["a/b", "a_b"], "val": ["../up", ".hidden"]}
    work = tmp_path / "work"
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("clip.v2\n")                   # an id as written, not a file's stem
    report = build_manifest("pyskl", write_pickle(tmp_path / "file.pkl", content), work,
                            ignore_list=ignore)
    assert report.ignored == 1
    paths = [s.skeleton for s in Workdir(work).samples]
    assert len(set(paths)) == 4
    root = (work / ARRAYS_DIR).resolve()
    assert all(str(path).startswith(f"{root}/") and path.count("/") == str(root).count("/") + 2
               for path in paths)


# --------------------------------------------------------------------------- training


def test_a_short_run_trains_on_imported_2d_keypoints(tmp_path):
    source = write_pickle(tmp_path / "file.pkl", coco_2d_content(count=12))
    work = _import(source, tmp_path / "work").path
    config = resolve_config("custom", overrides=[
        f"data.workdir={work}", "schedule.epochs=1", "schedule.warmup_epochs=0",
        "optim.batch_size=4", "data.num_workers=0", "run.progress=false",
        "data.val_fraction=0"])
    assert config.data.protocol == "auto"
    result = train(config, tmp_path / "run", model_builder=tiny_builder)
    recorded = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert recorded["data"]["protocol"] == "pyskl"
    assert (recorded["data"]["channels"], recorded["model"]["in_channels"]) == ("xy-score", 3)
    assert recorded["model"]["layout"] == "coco-17"
    assert recorded["model"]["num_persons"] == 2 and recorded["model"]["num_classes"] == 3
    assert result.history[-1]["train_samples"] > 0
    summary = json.loads((tmp_path / "run" / "data.json").read_text())
    assert (summary["protocol"], summary["train"], summary["test"]) == ("pyskl", 9, 3)


def test_the_protocol_can_be_any_pair_of_the_file(tmp_path):
    work = _import(write_pickle(tmp_path / "file.pkl", ntu_3d_content()), tmp_path / "work",
                   split="xsub").path
    bundle = load_data(resolve_config("custom", overrides=[
        f"data.workdir={work}", "data.protocol=pyskl-xview", "data.val_fraction=0"]))
    assert bundle.config.data.protocol == "pyskl-xview"
    assert [s.id for s in bundle.split.test] == ntu_3d_content()["split"]["xview_val"]
    default = load_data(resolve_config("custom", overrides=[f"data.workdir={work}",
                                                             "data.val_fraction=0"]))
    assert default.config.data.protocol == "pyskl-xsub"


def test_samples_the_skeleton_stage_failed_on_are_left_out_of_the_export(tmp_path):
    source = write_pickle(tmp_path / "file.pkl", coco_2d_content(count=4))
    build_manifest("pyskl", source, tmp_path / "work")
    workdir = Workdir(tmp_path / "work")
    broken = workdir.samples_by_id["clip_001"]
    open(broken.skeleton, "wb").write(b"damaged")
    assert [f["id"] for f in extract_skeletons(workdir, progress=False).failures] == \
        ["clip_001"]
    report = export_pyskl(workdir, tmp_path / "out.pkl", progress=False)
    assert (report.exported, report.failed) == (3, ["clip_001"])
    assert "1 sample(s) left out: the skeleton stage failed on them" in report.summary()
    with open(tmp_path / "out.pkl", "rb") as handle:
        written = pickle.load(handle)
    assert [a["frame_dir"] for a in written["annotations"]] == ["clip_000", "clip_002",
                                                                 "clip_003"]
    assert "clip_001" not in written["split"]["train"]


def test_array_files_are_flushed_one_by_one_not_the_whole_machine(tmp_path, monkeypatch):
    import os

    def whole_machine():
        raise AssertionError("os.sync flushes every file system of the machine")
    monkeypatch.setattr(os, "sync", whole_machine)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    source = write_pickle(tmp_path / "ntu.pkl", ntu_3d_content(count=3))
    _import(source, tmp_path / "work", split="xsub")
    root = (tmp_path / "work" / ARRAYS_DIR).resolve()
    arrays = sorted(root.glob("*/*.npz"))
    assert len(arrays) == 4
    flushed_files = [path for path in synced if ".npz.tmp-" in path]
    assert sorted(path.split("/")[-1].split(".tmp-")[0].lstrip(".")
                  for path in flushed_files) == sorted(a.name for a in arrays)
    folders = {str(a.parent) for a in arrays} | {str(root)}
    assert folders <= set(synced)
    assert all(synced.count(folder) == 1 for folder in folders)
