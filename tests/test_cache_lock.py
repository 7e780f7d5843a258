"""A cache being written cannot be deleted by another run; writers of one run share it."""

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from data_manifest.store import CacheReader
from pipeline.cache_lock import CacheBusyError, CacheLock, lock_path_for
from pipeline.cli.main import cli
from pipeline.stage_runner import cache_for_writing
from slow_stage import make_workdir, run
from test_workers import wait_until

SLOW_STAGE = Path(__file__).with_name("slow_stage.py")


def test_writers_share_the_lock_and_a_deleter_is_refused(tmp_path):
    cache = tmp_path / "cache" / "toy" / "default"
    first, second, deleter = CacheLock(cache), CacheLock(cache), CacheLock(cache)
    first.hold_shared()
    second.hold_shared()                          # not blocked by the other writer
    with pytest.raises(CacheBusyError) as refused:
        deleter.hold_exclusive("rebuild")
    assert str(cache) in str(refused.value) and str(lock_path_for(cache)) in str(refused.value)
    assert "another process is writing it" in str(refused.value)
    first.release()
    with pytest.raises(CacheBusyError):
        deleter.hold_exclusive("rebuild")
    second.release()
    deleter.hold_exclusive("rebuild")             # nobody writes any more
    deleter.release()


def test_the_lock_file_is_outside_the_cache_folder(tmp_path):
    workdir = make_workdir(tmp_path)
    run(tmp_path)
    cache = workdir.cache_dir("toy")
    lock = lock_path_for(cache.path)
    assert lock.is_file() and lock.parent == cache.path.parent
    with CacheLock(cache.path) as holder:
        holder.hold_shared()
        cache.remove()                            # what a rebuild does once it may
        assert lock.is_file()                     # still the file the others lock


def test_a_writer_waits_while_another_process_deletes_the_cache(tmp_path, caplog):
    make_workdir(tmp_path)
    deleting = CacheLock(tmp_path / "cache" / "toy" / "default")
    deleting.hold_exclusive("rebuild")
    results = []
    writer = threading.Thread(target=lambda: results.append(run(tmp_path)))
    with caplog.at_level(logging.WARNING, logger="pipeline.cache_lock"):
        writer.start()
        assert wait_until(lambda: "waiting: another process is creating, deleting" in caplog.text, 10)
        time.sleep(0.3)
        assert not results and not list((tmp_path / "cache" / "toy").glob("*/shard-*"))
        deleting.release()
        writer.join(20)
    assert results and results[0].shards_written == 4


def test_rebuild_and_overwrite_are_refused_while_another_run_writes(tmp_path):
    workdir = make_workdir(tmp_path)
    run(tmp_path)
    cache = workdir.cache_dir("toy")
    tokens = {i: p.stat().st_mtime_ns for i, p in cache.shard_files().items()}
    with CacheLock(cache.path) as other_run:
        other_run.hold_shared()
        with pytest.raises(CacheBusyError, match="cannot rebuild"):
            run(tmp_path, rebuild=True)
        with pytest.raises(CacheBusyError, match="cannot overwrite"):
            run(tmp_path, overwrite=True, params={"p": 2})
        assert run(tmp_path).shards_skipped == 4          # writing alongside is allowed
    assert {i: p.stat().st_mtime_ns for i, p in cache.shard_files().items()} == tokens
    assert run(tmp_path, overwrite=True, params={"p": 2}).shards_written == 4


def test_an_overwrite_already_done_by_a_process_of_the_same_run_goes_on(tmp_path):
    """Slurm array tasks started together with --overwrite: one deletes the old cache,
    the others find the new one and write beside it instead of being refused."""
    workdir = make_workdir(tmp_path)
    run(tmp_path)                                   # the old settings
    new = workdir.spec("toy", {"p": 2})
    cache = workdir.cache_dir("toy")
    with cache_for_writing(cache, new, overwrite=True):    # the first task, still writing
        result = run(tmp_path, overwrite=True, params={"p": 2})
    assert result.shards_written == 4
    assert len(CacheReader(cache.path, expect=new)) == 10


def test_the_cli_refuses_a_rebuild_under_a_running_stage(tmp_path):
    """A real running stage in another process, and ``--rebuild`` from the command line."""
    from pipeline.manifest_builder import build_manifest
    from pipeline.synthetic.demo_dataset import make_demo_dataset

    make_demo_dataset(tmp_path / "data", num_classes=1, samples_per_class=2, video_size=None)
    build_manifest("ntu60", tmp_path / "data", tmp_path / "work", shard_size=1)
    runner = CliRunner()
    assert runner.invoke(cli, ["extract-skeletons", str(tmp_path / "work"),
                               "--no-progress"]).exit_code == 0
    cache = tmp_path / "work" / "cache" / "skeletons" / "default"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pipeline.cache_lock import CacheLock; "
         "lock = CacheLock(sys.argv[1]); lock.hold_shared(); print('held', flush=True); "
         "time.sleep(60)", str(cache)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline() == "held\n"
        refused = runner.invoke(cli, ["extract-skeletons", str(tmp_path / "work"), "--rebuild",
                                      "--no-progress"])
    finally:
        holder.kill()
        holder.wait()
    assert refused.exit_code == 2, refused.output
    assert "cannot rebuild" in refused.output and "another process is writing it" in refused.output
    assert sorted(p.name for p in cache.glob("shard-*.h5")) == ["shard-00000.h5",
                                                               "shard-00001.h5"]
    again = runner.invoke(cli, ["extract-skeletons", str(tmp_path / "work"), "--rebuild",
                                "--no-progress"])
    assert again.exit_code == 0 and "2 shard(s) written" in again.output


def test_writers_of_one_run_write_at_the_same_time(tmp_path):
    """Two processes, each its part (PIPELINE_PART), write one cache side by side."""
    import os

    make_workdir(tmp_path / "work", n=16, shard_size=1)
    pids = tmp_path / "pids"
    pids.mkdir()
    runs = [subprocess.Popen([sys.executable, str(SLOW_STAGE), str(tmp_path / "work"),
                              "--delay", "0.5", "--pids", str(pids)],
                             env={**os.environ, "PIPELINE_PART": f"{part}/2"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for part in (0, 1)]
    outputs = [process.communicate(timeout=120) for process in runs]
    assert [process.returncode for process in runs] == [0, 0], outputs
    assert all("8 shard(s) written" in out for out, _ in outputs)
    cache = tmp_path / "work" / "cache" / "toy" / "default"
    began = max(p.stat().st_mtime for p in pids.iterdir())
    ended = [max(cache.joinpath(f"shard-{i:05d}.h5").stat().st_mtime
                 for i in range(part, 16, 2)) for part in (0, 1)]
    assert len(list(pids.iterdir())) == 2
    assert began < min(ended), "the second process waited for the first"
    assert len(CacheReader(cache)) == 16
