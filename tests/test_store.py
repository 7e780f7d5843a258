import json
import pickle

import numpy as np
import pytest

from data_manifest.errors import MissingCacheError, StaleCacheError
from data_manifest.store import (CacheDir, CacheReader, CacheSpec, ShardWriter, open_shard_file,
                                 read_shard_header)


def _spec(**params):
    return CacheSpec(stage="skeletons", params={"version": 1, **params}, manifest_digest="abc")


def _write(cache: CacheDir, spec: CacheSpec, index: int, samples: dict):
    with ShardWriter(cache.shard_path(index), spec, index) as writer:
        for sample_id, values in samples.items():
            writer.add(sample_id, values)
    return cache.shard_path(index)


def test_ragged_arrays_scalars_strings_and_bytes_round_trip(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    rng = np.random.default_rng(0)
    samples = {
        f"s{i}": {"joints": rng.normal(size=(10 + i, 2, 25, 3)).astype(np.float32),
                  "n": 7 + i, "answer": f"yes {i}", "names": ["a", f"b{i}"],
                  "blob": bytes([i, 1, 2, 255]), "half": rng.normal(size=(i + 1, 4)).astype(np.float16)}
        for i in range(5)}
    _write(cache, spec, 0, dict(list(samples.items())[:3]))
    _write(cache, spec, 1, dict(list(samples.items())[3:]))
    reader = CacheReader(cache.path, expect=spec)
    assert sorted(reader.ids) == sorted(samples)
    for sample_id, values in samples.items():
        got = reader.get(sample_id)
        np.testing.assert_array_equal(got["joints"], values["joints"])
        assert got["joints"].dtype == np.float32 and got["half"].dtype == np.float16
        np.testing.assert_array_equal(got["half"], values["half"])
        assert int(got["n"]) == values["n"]
        assert got["answer"] == values["answer"]
        assert got["names"] == values["names"]
        assert got["blob"] == values["blob"]
    with open_shard_file(cache.shard_path(0)) as handle:   # unpadded: 10 + 11 + 12 frames
        assert handle["joints/data"].shape == (33, 2, 25, 3)
    assert reader.get("s1", fields=["n"]).keys() == {"n"}
    with pytest.raises(KeyError, match="s9"):
        reader.get("s9")


def test_shard_attributes_record_what_made_it(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = CacheSpec(stage="frames", params={"m": 5}, manifest_digest="d1",
                     upstream={"skeletons/default": "ff"})
    cache.prepare(spec)
    with ShardWriter(cache.shard_path(3), spec, 3) as writer:
        writer.add("a", {"x": np.zeros(2)})
        writer.fail("b", "video.avi: cannot be opened")
    header = read_shard_header(cache.shard_path(3))
    assert header["stage"] == "frames" and header["params"] == {"m": 5}
    assert header["fingerprint"] == spec.fingerprint and header["shard_index"] == 3
    assert header["sample_ids"] == ["a"]
    assert header["failures"] == [{"id": "b", "reason": "video.avi: cannot be opened"}]
    assert header["upstream"] == {"skeletons/default": "ff"}
    assert cache.failures() == [{"id": "b", "reason": "video.avi: cannot be opened", "shard": 3}]


def test_failed_write_publishes_nothing(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    with pytest.raises(RuntimeError):
        with ShardWriter(cache.shard_path(0), spec, 0) as writer:
            writer.add("a", {"x": np.zeros(3)})
            raise RuntimeError("killed")
    assert not cache.shard_path(0).exists()
    assert list(cache.path.glob(".shard-*")) == []
    assert cache.finished_shards() == set()


def test_leftover_temporary_shard_is_removed_and_not_counted(tmp_path):
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    dead_pid = 2 ** 22 + 12345   # above any pid_max default: never alive
    leftover = cache.path / f".shard-00000.h5.tmp-{dead_pid}"
    leftover.write_bytes(b"half written")
    assert cache.finished_shards() == set()
    cache.prepare(spec)
    assert not leftover.exists()


def test_inconsistent_fields_are_rejected(tmp_path):
    writer = ShardWriter(tmp_path / "s.h5", _spec(), 0)
    writer.add("a", {"x": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="trailing shape"):
        writer.add("b", {"x": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="fields"):
        writer.add("c", {"y": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="twice"):
        writer.add("a", {"x": np.zeros((1, 3))})


def test_cache_made_with_other_parameters_is_refused(tmp_path):
    cache = CacheDir(tmp_path / "cache" / "skeletons" / "c")   # a WORKDIR's cache folder
    old = _spec(m=5)
    cache.prepare(old)
    _write(cache, old, 0, {"a": {"x": np.ones(2)}})
    new = _spec(m=8)
    with pytest.raises(StaleCacheError, match="m: cache has 5, asked for 8"):
        CacheReader(cache.path, expect=new)
    with pytest.raises(StaleCacheError, match="--overwrite"):
        cache.prepare(new)
    assert cache.shard_path(0).exists()          # refused: nothing was deleted
    cache.prepare(new, overwrite=True)
    assert not cache.shard_path(0).exists()
    assert cache.spec().fingerprint == new.fingerprint


def test_manifest_change_changes_the_fingerprint():
    a = CacheSpec("skeletons", {"v": 1}, "digest-a")
    b = CacheSpec("skeletons", {"v": 1}, "digest-b")
    assert a.fingerprint != b.fingerprint
    assert CacheSpec.from_json(json.loads(json.dumps(a.to_json()))) == a


def test_missing_cache_names_the_stage(tmp_path):
    with pytest.raises(MissingCacheError, match="run the skeletons stage"):
        CacheReader(tmp_path / "nothing", expect_stage="skeletons")


def _read_in_child(reader, sample_id, queue):
    queue.put(reader.get(sample_id)["x"].tolist())


def test_reader_is_safe_to_hand_to_worker_processes(tmp_path):
    import multiprocessing as mp

    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    _write(cache, spec, 0, {"a": {"x": np.arange(3.0)}, "b": {"x": np.arange(4.0)}})
    reader = CacheReader(cache.path)
    assert reader.get("a")["x"].tolist() == [0.0, 1.0, 2.0]   # parent opens a handle
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.get("b")["x"].tolist() == [0.0, 1.0, 2.0, 3.0]
    context = mp.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(reader, "b", queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert queue.get(timeout=5) == [0.0, 1.0, 2.0, 3.0]
    assert reader.get("a")["x"].tolist() == [0.0, 1.0, 2.0]   # the parent's handle still works
