"""Readers that cannot misread (issue 9, item 3), a bounded number of open files (item 4)
and reading without HDF5 file locks (item 6)."""

import fcntl
import gc
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from data_manifest.errors import StaleCacheError
from data_manifest.store import CacheDir, CacheReader, CacheSpec, HandlePool, ShardWriter
from data_manifest.store.handles import LIMIT_ENV, default_limit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _spec(**params):
    return CacheSpec(stage="skeletons", params={"v": 1, **params}, manifest_digest="abc")


def _write(cache, spec, index, samples, failures=()):
    with ShardWriter(cache.shard_path(index), spec, index) as writer:
        for sample_id, value in samples.items():
            writer.add(sample_id, {"x": np.asarray(value, dtype=np.float64)})
        for sample_id in failures:
            writer.fail(sample_id, "bad file")


@pytest.fixture
def cache(tmp_path):
    cache = CacheDir(tmp_path / "cache" / "skeletons" / "c")
    cache.prepare(_spec())
    return cache


# ------------------------------------------------------------------ item 3: tokens


def test_issue_repro_a_shard_republished_after_indexing_is_indexed_again(cache):
    _write(cache, _spec(), 0, {"a": [1.0], "b": [2.0, 2.0]})
    reader = CacheReader(cache.path)                 # indexes: a at 0, b at 1
    _write(cache, _spec(), 0, {"b": [3.0, 3.0], "a": [4.0]})   # republished, other order
    assert reader.get("b")["x"].tolist() == [3.0, 3.0]          # never a's arrays
    assert reader.get("a")["x"].tolist() == [4.0]


def test_a_shard_republished_after_it_was_read_is_read_again_from_its_new_write(cache):
    _write(cache, _spec(), 0, {"a": [1.0], "b": [2.0]})
    reader = CacheReader(cache.path)
    assert reader.get("a")["x"].tolist() == [1.0]   # layout read, HDF5 handle in the pool
    _write(cache, _spec(), 0, {"b": [5.0], "a": [6.0]})
    assert reader.get("b")["x"].tolist() == [5.0]   # another file: indexed again
    assert reader.get("a")["x"].tolist() == [6.0]


def test_a_reader_opened_after_a_republication_never_reads_the_older_write(cache):
    """Readers of one process share open files: an older reader's handle on the replaced
    file must not serve a newer reader."""
    _write(cache, _spec(), 0, {"a": [1.0]})
    older = CacheReader(cache.path)
    assert older.get("a")["x"].tolist() == [1.0]    # leaves the old file open in the pool
    _write(cache, _spec(), 0, {"a": [2.0]})
    newer = CacheReader(cache.path)
    assert newer.get("a")["x"].tolist() == [2.0]
    assert older.get("a")["x"].tolist() == [2.0]    # the older one is indexed again


def test_a_sample_dropped_by_the_republished_shard_is_a_clear_key_error(cache):
    _write(cache, _spec(), 0, {"a": [1.0], "b": [2.0]})
    reader = CacheReader(cache.path)
    _write(cache, _spec(), 0, {"b": [2.5]}, failures=["a"])
    with pytest.raises(KeyError, match="a is no longer in the skeletons cache"):
        reader.get("a")
    assert reader.failures == [{"id": "a", "reason": "bad file"}]
    assert reader.get("b")["x"].tolist() == [2.5]


def test_a_shard_rewritten_with_other_settings_or_deleted_is_refused(cache):
    _write(cache, _spec(), 0, {"a": [1.0]})
    _write(cache, _spec(), 1, {"b": [2.0]})
    reader = CacheReader(cache.path)
    _write(cache, _spec(v=2), 0, {"a": [9.0]})
    with pytest.raises(StaleCacheError, match="shard 0 .* rewritten with other settings"):
        reader.get("a")
    cache.shard_path(1).unlink()
    with pytest.raises(StaleCacheError, match="shard-00001.h5 was deleted"):
        reader.get("b")


def test_a_shard_rewritten_for_another_plan_is_refused(tmp_path):
    from data_manifest.store import ShardPlan
    cache = CacheDir(tmp_path / "c")
    spec = _spec()
    cache.prepare(spec)
    plan = ShardPlan({0: ["a", "b"]})
    with ShardWriter(cache.shard_path(0), spec, 0, planned_ids=["a", "b"]) as writer:
        writer.add("a", {"x": [1.0]})
        writer.add("b", {"x": [2.0]})
    reader = CacheReader(cache.path, plan=plan)
    with ShardWriter(cache.shard_path(0), spec, 0, planned_ids=["a"]) as writer:
        writer.add("a", {"x": [3.0]})
    with pytest.raises(StaleCacheError, match="rewritten for another shard plan"):
        reader.get("a")


def test_a_failed_reopen_releases_the_pools_handle_once(cache):
    _write(cache, _spec(), 0, {"a": [1.0]})
    pool = HandlePool(limit=4)
    older = CacheReader(cache.path, pool=pool)
    older.get("a")                                  # leaves that write open in the pool
    old = pool.acquire(cache.shard_path(0))
    pool.release(old)
    _write(cache, _spec(), 0, {"a": [2.0]})
    newer = CacheReader(cache.path, pool=pool)      # indexes the new write
    cache.shard_path(0).unlink()                    # so reopening it fails
    with pytest.raises(StaleCacheError, match="was deleted"):
        newer.get("a")
    assert old.users == 0 and older.shard_indices == [0]


def test_a_reader_of_some_shards_opens_only_those(cache, monkeypatch):
    """A stage's reader of its upstream shard k: no listing of the folder's 891 files."""
    _many_shards(cache, 3)
    monkeypatch.setattr(CacheDir, "shard_files", lambda self: pytest.fail("listed"))
    reader = CacheReader(cache.path, shards=[1, 7])
    assert reader.shard_indices == [1] and reader.get("s1-0")["x"].tolist() == [1, 0]


# ------------------------------------------------------------------ item 4: open files


def _many_shards(cache, count, per_shard=2):
    spec = _spec()
    for index in range(count):
        _write(cache, spec, index, {f"s{index}-{k}": [index, k] for k in range(per_shard)})
    return [f"s{index}-{k}" for index in range(count) for k in range(per_shard)]


def _open_files(under):
    """Paths of the HDF5 files open in this process under the folder ``under``."""
    return sorted(path for path in (f.name.decode() for f in
                                    h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE))
                  if path.startswith(str(under)))


def _descriptors(under):
    """How many file descriptors of this process are open on files under ``under`` (HDF5's
    and plain ones alike)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(str(under))
    return count


def test_a_reader_touching_many_shards_never_holds_more_than_the_bound(cache):
    ids = _many_shards(cache, 20)
    pool = HandlePool(limit=4)
    reader = CacheReader(cache.path, pool=pool)
    most = 0
    for sample_id in np.random.default_rng(0).permutation(ids * 2):
        index, k = map(int, sample_id[1:].split("-"))
        assert reader.get(sample_id)["x"].tolist() == [index, k]
        most = max(most, _descriptors(cache.path))
    assert pool.peak == 4 and most == 4 and len(pool) == 4
    reader.close()
    assert len(pool) == 0 and _descriptors(cache.path) == 0


def test_a_reader_that_is_gone_leaves_no_file_open(cache):
    ids = _many_shards(cache, 3)
    pool = HandlePool(limit=8)
    reader = CacheReader(cache.path, pool=pool)
    for sample_id in ids:
        reader.get(sample_id)
    assert len(pool) == 6 == _descriptors(cache.path)   # per shard: HDF5's and the pread one
    del reader
    gc.collect()
    assert len(pool) == 0 and _descriptors(cache.path) == 0


def test_readers_of_one_process_share_one_budget(tmp_path):
    first, second = (CacheDir(tmp_path / name) for name in ("a", "b"))
    pool = HandlePool(limit=3)
    readers = []
    for cache in (first, second):
        cache.prepare(_spec())
        ids = _many_shards(cache, 5)
        readers.append((CacheReader(cache.path, pool=pool), ids))
    (reader_a, ids_a), (reader_b, ids_b) = readers
    for a, b in zip(ids_a, ids_b):
        reader_a.get(a)
        reader_b.get(b)
    assert pool.peak == 3 and _descriptors(tmp_path) == 3


def test_the_least_recently_used_file_is_closed_first(cache):
    _many_shards(cache, 3, per_shard=1)
    pool = HandlePool(limit=2)
    for index in (0, 1, 0, 2):
        with pool.lease(cache.shard_path(index)):
            pass
    assert [os.path.basename(path) for path in _open_files(cache.path)] == [
        "shard-00000.h5", "shard-00002.h5"]
    pool.close(cache.shard_files().values())


def test_numeric_fields_are_read_without_an_hdf5_handle_once_a_shard_is_known(cache):
    spec = _spec()
    with ShardWriter(cache.shard_path(0), spec, 0) as writer:
        writer.add("a", {"x": np.arange(6.0).reshape(2, 3), "n": 4, "blob": b"\x00\x01",
                         "note": "hello", "half": np.ones((1, 2), np.float16)})
    pool = HandlePool(limit=4)
    reader = CacheReader(cache.path, pool=pool)
    reader.get("a")
    pool.close([cache.shard_path(0)])
    numeric = reader.get("a", ["x", "n", "blob", "half"])
    assert len(pool) == 1 == _descriptors(cache.path) and _open_files(cache.path) == []
    assert numeric["x"].tolist() == [[0, 1, 2], [3, 4, 5]] and numeric["x"].flags.writeable
    assert int(numeric["n"]) == 4 and numeric["blob"] == b"\x00\x01"
    assert numeric["half"].dtype == np.float16
    assert reader.get("a", ["note"]) == {"note": "hello"}   # strings: through HDF5
    assert len(pool) == 2 == _descriptors(cache.path)
    with pytest.raises(KeyError, match=r"no field\(s\) \['y'\]"):
        reader.get("a", ["y"])


def test_repeated_reads_keep_their_descriptor_open(cache, monkeypatch):
    """One pread per read, no open/close (a round trip each on NFS)."""
    _write(cache, _spec(), 0, {"a": [1.0], "b": [2.0]})
    reader = CacheReader(cache.path, pool=HandlePool(limit=4))
    reader.get("a")
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    for _ in range(50):
        assert reader.get("b")["x"].tolist() == [2.0]
    assert opened == []
    _write(cache, _spec(), 0, {"b": [7.0]})       # republished: noticed through fstat
    opened.clear()                                 # (the writer syncs the folder)
    assert reader.get("b")["x"].tolist() == [7.0]
    assert opened == [str(cache.shard_path(0))]


def test_a_file_in_use_is_not_closed_under_its_user(cache):
    _many_shards(cache, 2, per_shard=1)
    pool = HandlePool(limit=1)
    held = pool.acquire(cache.shard_path(0))
    with pool.lease(cache.shard_path(1)) as other:   # over the limit while 0 is in use
        assert held.handle.id.valid and other.handle.id.valid
    pool.close([cache.shard_path(0)])
    assert held.handle.id.valid                       # closed only when released
    pool.release(held)
    assert not held.handle.id.valid


def test_the_default_bound_follows_the_open_file_limit_and_the_environment(monkeypatch):
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    import resource
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    expected = 128 if soft == resource.RLIM_INFINITY else max(4, min(128, soft // 8))
    assert default_limit() == expected
    monkeypatch.setenv(LIMIT_ENV, "7")
    assert default_limit() == 7 and HandlePool().limit == 7
    monkeypatch.setenv(LIMIT_ENV, "0")
    with pytest.raises(ValueError, match=f"{LIMIT_ENV}='0' must be a positive integer"):
        default_limit()


def test_reading_200_shards_under_ulimit_n_64(tmp_path):
    script = textwrap.dedent(f"""
        import resource, sys
        import numpy as np
        from data_manifest.store import CacheDir, CacheReader, CacheSpec, ShardWriter, shared_pool
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        spec = CacheSpec("skeletons", {{"v": 1}}, "abc")
        cache = CacheDir({str(tmp_path / "c")!r})
        cache.prepare(spec)
        for index in range(200):
            with ShardWriter(cache.shard_path(index), spec, index) as writer:
                writer.add(f"s{{index}}", {{"x": np.full(3, index)}})
        reader = CacheReader(cache.path)
        for index in np.random.default_rng(0).permutation(200):
            assert reader.get(f"s{{index}}")["x"].tolist() == [index] * 3
        print(shared_pool().limit, shared_pool().peak)
    """)
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop(LIMIT_ENV, None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["8", "8"]


# ------------------------------------------------------------------ item 6: no file locks


def test_published_shards_are_read_while_another_process_holds_a_lock_on_them(cache):
    """HDF5's own locking fails on many NFS/Lustre mounts; a held lock stands in for it."""
    _write(cache, _spec(), 0, {"a": [1.0]})
    with open(cache.shard_path(0), "rb") as locked:
        fcntl.flock(locked.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        reader = CacheReader(cache.path)                # reads every header
        assert reader.get("a")["x"].tolist() == [1.0]
        assert cache.finished_shards() == {0}
        reader.close()
