"""``pipeline extract-skeletons``: failures, exit codes, resume, parallel runs, CSV data."""

import copy
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import pipeline.stages.extract_skeletons as stage_module
from data_manifest.errors import DataError, StaleCacheError
from data_manifest.formats.load import load_skeleton_sample
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import SKELETON_FIELDS, SKELETONS
from data_manifest.store import read_shard_header
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.cli.main import cli
from pipeline.manifest_builder import build_manifest
from pipeline.stages.extract_skeletons import extract_skeletons
from skeleton_factories import (NW_UCLA_DIR, REAL_NTU, ntu_workdir, skeleton_text,
                                upright_body, write_ntu_files)


def cache_contents(workdir: Workdir, name: str = "default") -> dict:
    with workdir.reader(SKELETONS, name) as reader:
        return {sample_id: reader.get(sample_id) for sample_id in reader.ids}


def assert_same_contents(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for sample_id in a:
        assert set(a[sample_id]) == set(SKELETON_FIELDS)
        for field in SKELETON_FIELDS:
            np.testing.assert_array_equal(a[sample_id][field], b[sample_id][field],
                                          err_msg=f"{sample_id} {field}")


def shard_identity(workdir: Workdir) -> dict:
    cache = workdir.cache_dir(SKELETONS)
    return {i: (p.stat().st_ino, p.stat().st_mtime_ns) for i, p in cache.shard_files().items()}


@pytest.fixture
def mixed_data(tmp_path):
    """Six good NTU files, three bad ones and a short one-body file (names sort so they
    spread over shards)."""
    data = tmp_path / "data"
    good = write_ntu_files(data, 6)
    bad = {
        "S002C001P001R001A001": "",                                        # empty
        "S002C001P001R001A002": "\n".join(skeleton_text(
            [[("7", upright_body())]] * 14).splitlines()[:40]) + "\n",     # truncated
        "S002C001P001R001A003": skeleton_text([[("7", upright_body())]] * 14).replace(
            "\n25\n", "\n2x5\n", 1),                                       # garbled count
    }
    for name, text in bad.items():
        (data / f"{name}.skeleton").write_text(text)
    # one body in 5 frames: kept, as the reference never length-filters a lone body
    short = data / "S002C001P001R001A004.skeleton"
    short.write_text(skeleton_text([[("7", upright_body())]] * 5))
    return data, good + [short], bad


def test_cli_keeps_good_samples_records_failures_and_sets_the_exit_code(tmp_path, mixed_data):
    data, good, bad = mixed_data
    workdir = ntu_workdir(data, tmp_path / "work", shard_size=3)
    runner = CliRunner()
    result = runner.invoke(cli, ["extract-skeletons", str(workdir.path), "--no-progress"])
    assert result.exit_code == 1, result.output
    assert "3 failure(s)" in result.output
    assert "re-run with --skip-failures" in result.output

    ledger_path = workdir.cache_dir(SKELETONS).path / "failures.jsonl"
    ledger = {f["id"]: f["reason"] for f in map(json.loads, ledger_path.read_text().splitlines())}
    assert sorted(ledger) == sorted(bad)
    path = str((data / "S002C001P001R001A001.skeleton").resolve())
    assert ledger["S002C001P001R001A001"] == f"{path}: empty skeleton file"
    assert ("S002C001P001R001A002.skeleton, line 41: file ends early"
            in ledger["S002C001P001R001A002"])
    assert ("S002C001P001R001A003.skeleton, line 4: expected the joint count"
            in ledger["S002C001P001R001A003"])

    contents = cache_contents(workdir)
    assert sorted(contents) == sorted(p.stem for p in good)
    assert contents["S002C001P001R001A004"]["joints"].shape == (5, 2, 25, 3)
    for path in good:
        expected = load_skeleton_sample(path, "ntu60")
        for field in SKELETON_FIELDS:
            np.testing.assert_array_equal(contents[path.stem][field], expected[field])

    again = runner.invoke(cli, ["extract-skeletons", str(workdir.path), "--no-progress",
                                "--skip-failures"])
    assert again.exit_code == 0, again.output
    assert "0 shard(s) written, 4 already done" in again.output

    status = runner.invoke(cli, ["status", str(workdir.path)])
    assert "skeletons/default: 4/4 shards (complete), 7 samples, 3 failed" in status.output


def test_a_file_removed_after_the_manifest_is_a_recorded_failure(tmp_path):
    data = tmp_path / "data"
    paths = write_ntu_files(data, 3)
    workdir = ntu_workdir(data, tmp_path / "work")
    paths[1].unlink()
    result = extract_skeletons(workdir, progress=False)
    assert [f["id"] for f in result.failures] == [paths[1].stem]
    assert "skeleton file not found" in result.failures[0]["reason"]
    assert str(paths[1].resolve()) in result.failures[0]["reason"]
    assert result.samples_written == 2


def test_interrupted_run_resumes_to_the_same_cache(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_ntu_files(data, 11, num_actors=1, noise_bodies=1)
    reference = ntu_workdir(data, tmp_path / "reference", shard_size=2)
    extract_skeletons(reference, progress=False)

    workdir = ntu_workdir(data, tmp_path / "work", shard_size=2)
    calls = []
    real_load = stage_module.load_skeleton_sample

    def load_then_die(path, dataset):
        calls.append(path)
        if len(calls) == 7:                     # inside shard 3 (samples 6-7)
            raise KeyboardInterrupt
        return real_load(path, dataset)

    monkeypatch.setattr(stage_module, "load_skeleton_sample", load_then_die)
    with pytest.raises(KeyboardInterrupt):
        extract_skeletons(workdir, progress=False)
    monkeypatch.undo()
    cache = workdir.cache_dir(SKELETONS)
    assert cache.finished_shards() == {0, 1, 2}
    before = shard_identity(workdir)

    result = extract_skeletons(workdir, progress=False)
    assert (result.shards_skipped, result.shards_written, result.shards_total) == (3, 3, 6)
    after = shard_identity(workdir)
    assert {i: after[i] for i in before} == before          # finished shards not rewritten
    assert_same_contents(cache_contents(workdir), cache_contents(reference))
    assert not list(cache.path.glob(".*tmp-*"))


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_cache(tmp_path):
    data = tmp_path / "data"
    write_ntu_files(data, 160)
    reference = ntu_workdir(data, tmp_path / "reference", shard_size=2)
    extract_skeletons(reference, progress=False)
    workdir = ntu_workdir(data, tmp_path / "work", shard_size=2)
    cache = workdir.cache_dir(SKELETONS)

    process = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli.main import cli; cli()",
         "extract-skeletons", str(workdir.path), "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(cache.shard_files()) < 3 and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.returncode != -signal.SIGKILL:
        pytest.skip("the run finished before it could be killed")
    done = cache.finished_shards()
    assert 3 <= len(done) < workdir.num_shards
    before = shard_identity(workdir)

    result = extract_skeletons(workdir, progress=False)
    assert result.shards_skipped == len(done)
    after = shard_identity(workdir)
    assert {i: after[i] for i in before} == before
    assert_same_contents(cache_contents(workdir), cache_contents(reference))
    assert not list(cache.path.glob(".*tmp-*"))


def test_two_workers_write_the_same_cache_as_one(tmp_path, mixed_data):
    data, _, _ = mixed_data
    serial = ntu_workdir(data, tmp_path / "serial", shard_size=2)
    parallel = ntu_workdir(data, tmp_path / "parallel", shard_size=2)
    one = extract_skeletons(serial, jobs=1, progress=False)
    two = extract_skeletons(parallel, jobs=2, progress=False)
    assert_same_contents(cache_contents(serial), cache_contents(parallel))
    assert sorted(map(str, one.failures)) == sorted(map(str, two.failures))
    for index in range(serial.num_shards):
        a = read_shard_header(serial.cache_dir(SKELETONS).shard_path(index))
        b = read_shard_header(parallel.cache_dir(SKELETONS).shard_path(index))
        assert (a["sample_ids"], a["failures"], a["fingerprint"]) == (
            b["sample_ids"], b["failures"], b["fingerprint"])


def test_changed_settings_refuse_the_old_cache(tmp_path, monkeypatch):
    data = tmp_path / "data"
    write_ntu_files(data, 3)
    workdir = ntu_workdir(data, tmp_path / "work")
    extract_skeletons(workdir, progress=False)
    real_spec = stage_module.skeleton_spec

    def stricter(workdir, reading=None):
        params = copy.deepcopy(real_spec(workdir, reading).params)
        params["denoise"]["max_noise_length"] = 20
        return workdir.spec(SKELETONS, params)

    monkeypatch.setattr(stage_module, "skeleton_spec", stricter)
    with pytest.raises(StaleCacheError, match="denoise"):
        extract_skeletons(workdir, progress=False)
    result = CliRunner().invoke(cli, ["extract-skeletons", str(workdir.path), "--no-progress"])
    assert result.exit_code == 2 and "--overwrite" in result.output
    rebuilt = extract_skeletons(workdir, progress=False, overwrite=True)
    assert rebuilt.shards_written == workdir.num_shards
    assert Workdir(workdir.path).reader(SKELETONS).spec.params["denoise"]["max_noise_length"] == 20


def test_csv_data_with_mixed_formats_and_joint_counts(tmp_path):
    root = tmp_path / "user"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(root / f"clip{i}.npy", rng.normal(size=(9 + i, 25, 3)).astype(np.float32))
    (root / "real.skeleton").write_bytes(REAL_NTU.read_bytes())
    (root / "ucla.json").write_bytes((NW_UCLA_DIR / "a01_s01_e00_v01.json").read_bytes())
    (root / "only.avi").write_bytes(b"not really a video")
    rows = ["id,label,skeleton,video,split", "c0,0,clip0.npy,,train", "c1,1,clip1.npy,,test",
            "c2,0,clip2.npy,,train", "real,2,real.skeleton,,train", "ucla,1,ucla.json,,test",
            "vid,0,,only.avi,train"]
    (root / "data.csv").write_text("\n".join(rows) + "\n")
    # without a layout, 25 joints are not taken to mean NTU's: the stage asks for one
    build_manifest("csv", root / "data.csv", tmp_path / "bare", shard_size=2)
    with pytest.raises(DataError, match="without a skeleton layout: rebuild its manifest "
                                        "with --layout"):
        extract_skeletons(tmp_path / "bare", progress=False)
    outcome = CliRunner().invoke(cli, ["extract-skeletons", str(tmp_path / "bare"),
                                       "--no-progress"])
    assert outcome.exit_code == 2 and "--layout" in outcome.output

    build_manifest("csv", root / "data.csv", tmp_path / "work", shard_size=2, layout="ntu")
    workdir = Workdir(tmp_path / "work")
    result = extract_skeletons(workdir, progress=False)
    failures = {f["id"]: f["reason"] for f in result.failures}
    assert set(failures) == {"ucla", "vid"}
    assert "has 20 joints per person; the ntu layout has 25" in failures["ucla"]
    assert "ucla.json" in failures["ucla"]
    assert failures["vid"] == ("sample vid: has no skeleton file, only a video "
                               "(`pipeline extract-poses` estimates poses from videos)")
    reader = workdir.reader(SKELETONS)
    # persons from the data: the .skeleton file may hold 2 actors
    params = reader.spec.params
    assert (params["num_joints"], params["max_persons"], params["channels"]) == (25, 2, "xyz")
    assert params["layout"] == "ntu" and Workdir(workdir.path).info.layout == "ntu"
    assert reader.get("c1")["joints"].shape == (10, 2, 25, 3)
    assert reader.get("real")["joints"].shape == (103, 2, 25, 3)
    assert int(reader.get("real")["num_actors"]) == 1


def test_unknown_dataset_and_foreign_samples(tmp_path):
    samples = [Sample(id="S001C001P001R001A001", dataset="nw-ucla", label=0,
                      skeleton=str(REAL_NTU))]
    work = tmp_path / "work"
    digest = write_manifest(samples, work / "manifest.jsonl")
    Workdir.write_info(work, WorkdirInfo("ntu60", str(tmp_path), digest, 1, 4, "ntu"))
    result = extract_skeletons(work, progress=False)
    assert "is a nw-ucla sample in a ntu60 WORKDIR" in result.failures[0]["reason"]

    Workdir.write_info(work, WorkdirInfo("kinetics", str(tmp_path), digest, 1, 4))
    outcome = CliRunner().invoke(cli, ["extract-skeletons", str(work), "--no-progress"])
    assert outcome.exit_code == 2
    assert "unknown dataset 'kinetics'" in outcome.output
    outcome = CliRunner().invoke(cli, ["extract-skeletons", str(tmp_path), "--no-progress"])
    assert outcome.exit_code == 2 and "is not a WORKDIR" in outcome.output


def test_nw_ucla_workdir(tmp_path):
    data = tmp_path / "ucla"
    data.mkdir()
    names = sorted(p.name for p in NW_UCLA_DIR.glob("*.json"))[:40:4]
    for name in names:
        os.symlink(NW_UCLA_DIR / name, data / name)
    (data / "a02_s01_e00_v01.json").write_text('{"file_name": "a02_s01_e00_v01"}')
    build_manifest("nw-ucla", data, tmp_path / "work", shard_size=4)
    workdir = Workdir(tmp_path / "work")
    result = extract_skeletons(workdir, progress=False)
    assert [f["id"] for f in result.failures] == ["a02_s01_e00_v01"]
    assert "no 'skeletons' key" in result.failures[0]["reason"]
    reader = workdir.reader(SKELETONS)
    assert len(reader) == len(names)
    assert reader.spec.params["num_joints"] == 20 and "denoise" not in reader.spec.params
    assert reader.get(names[0][:-5])["joints"].shape[1:] == (1, 20, 3)
