"""Shard integrity: per-write tokens, damaged files, other machines' temporary files."""

import os
import socket

import numpy as np
import pytest

import data_manifest.store as store
import data_manifest.store.cachedir as cachedir_module
import data_manifest.store.files as files_module
from data_manifest.errors import DataError
from data_manifest.store import CacheDir, CacheReader, CacheSpec, ShardWriter, read_shard_header

DEAD_PID = 2 ** 22 + 12345   # above any pid_max default: never alive


def _spec():
    return CacheSpec(stage="frames", params={"m": 5}, manifest_digest="abc",
                     upstream={"skeletons/default": "ff"})


def _write(cache, spec, index, upstream_tokens=None):
    with ShardWriter(cache.shard_path(index), spec, index,
                     upstream_tokens=upstream_tokens) as writer:
        writer.add(f"s{index}", {"x": np.arange(3.0) + index})
    return cache.shard_path(index)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_every_commit_gets_a_new_token_and_records_upstream_tokens(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    first = read_shard_header(_write(cache, spec, 0, {"skeletons/default": "t1"}))
    second = read_shard_header(_write(cache, spec, 0, {"skeletons/default": "t1"}))
    assert len(first["token"]) == 32 and first["token"] != second["token"]
    assert second["upstream_tokens"] == {"skeletons/default": "t1"}
    assert read_shard_header(_write(cache, spec, 1))["upstream_tokens"] == {}


def test_a_shard_built_on_another_upstream_write_is_not_finished(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    _write(cache, spec, 0, {"skeletons/default": "t1"})
    _write(cache, spec, 1, {"skeletons/default": "t1"})
    assert cache.finished_shards(spec) == {0, 1}
    current = {0: {"skeletons/default": "t1"}, 1: {"skeletons/default": "t2"}}
    assert cache.finished_shards(spec, upstream_tokens_by_shard=current) == {0}
    # an upstream shard that is missing now (no token known) is left to the stage to report
    assert cache.finished_shards(spec, upstream_tokens_by_shard={0: {}, 1: {}}) == {0, 1}


def test_a_shard_from_before_tokens_is_redone_once_upstream_tokens_are_known(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    path = _write(cache, spec, 0)
    import h5py
    with h5py.File(path, "a") as handle:          # as written by the previous version
        del handle.attrs["upstream_tokens"], handle.attrs["token"]
    header = read_shard_header(path)
    assert header["token"] is None and header["upstream_tokens"] is None
    assert cache.finished_shards(spec) == {0}
    assert cache.finished_shards(spec, {0: {"skeletons/default": "t1"}}) == set()


def test_a_damaged_shard_is_a_clear_error_and_counted_as_damaged(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    _write(cache, spec, 0)
    with ShardWriter(cache.shard_path(1), spec, 1) as writer:
        writer.fail("bad", "video.avi: cannot be opened")
    _truncate(cache.shard_path(0))
    with pytest.raises(DataError, match="shard-00000.h5.*damaged.*re-run the frames stage"):
        read_shard_header(cache.shard_path(0))
    with pytest.raises(DataError, match="shard-00000.h5.*damaged"):
        CacheReader(cache.path)
    assert cache.damaged_shards() == [0]
    assert cache.finished_shards() == {1}
    assert cache.failures() == [{"id": "bad", "reason": "video.avi: cannot be opened",
                                 "shard": 1}]
    assert CacheReader(cache.path, shards=[1]).failures[0]["id"] == "bad"


def test_temporary_files_of_other_machines_and_live_writers_are_kept(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    host = store.host_name()
    other_host = cache.path / f".shard-00000.h5.tmp-{host}x-{DEAD_PID}"
    mine_dead = cache.path / f".shard-00001.h5.tmp-{host}-{DEAD_PID}"
    mine_live = cache.path / f".shard-00002.h5.tmp-{host}-{os.getppid()}"
    legacy_dead = cache.path / f".shard-00003.h5.tmp-{DEAD_PID}"
    spec_dead = cache.path / f".spec.json.tmp-{host}-{DEAD_PID}"
    ledger_dead = cache.path / f".failures.jsonl.tmp-{host}-{DEAD_PID}"
    for path in (other_host, mine_dead, mine_live, legacy_dead, spec_dead, ledger_dead):
        path.write_bytes(b"half written")
    removed = cache.remove_temporary_files()
    assert sorted(removed) == sorted([mine_dead, legacy_dead, spec_dead, ledger_dead])
    assert other_host.exists() and mine_live.exists()
    assert (cache.path / "spec.json").is_file()


def test_host_names_with_dashes_parse(tmp_path, monkeypatch):
    monkeypatch.setattr(cachedir_module, "host_name", lambda: "node-7.cluster")
    cache = CacheDir(tmp_path / "c")
    cache.prepare(_spec())
    mine = cache.path / f".shard-00000.h5.tmp-node-7.cluster-{DEAD_PID}"
    other = cache.path / f".shard-00001.h5.tmp-node-8.cluster-{DEAD_PID}"
    mine.write_bytes(b"x")
    other.write_bytes(b"x")
    assert cache.remove_temporary_files() == [mine]


def test_commit_writes_a_host_named_temporary_and_syncs_file_and_directory(tmp_path,
                                                                           monkeypatch):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    synced, replaced = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(src, dst):
        replaced.append((os.path.basename(src), os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(files_module.os, "fsync", fsync)
    monkeypatch.setattr(files_module.os, "replace", replace)
    cache.prepare(spec)
    _write(cache, spec, 0)
    prefix = f".shard-00000.h5.tmp-{store.host_name()}-{os.getpid()}"
    assert (prefix, "shard-00000.h5") in replaced
    assert (f".spec.json.tmp-{store.host_name()}-{os.getpid()}", "spec.json") in replaced
    assert str(cache.path / prefix) in synced           # the data, before the rename
    assert synced.count(str(cache.path)) >= 2           # the directory after each rename
    assert socket.gethostname() and store.host_name()
