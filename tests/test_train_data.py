"""The skeleton Dataset over a WORKDIR, splits, extras, collation and the sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data_manifest.workdir import Workdir
from train.data import EpochSampler, collate_samples, load_data
from train.data.dataset import holdout
from train.errors import ConfigError, TrainError
from train_factories import make_workdir, tiny_config


@pytest.fixture(scope="module")
def ucla(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("ucla") / "wd", per_class_view=4)


def test_dataset_items_follow_the_protocol_and_feeder(ucla):
    config = tiny_config(ucla)
    data = load_data(config)
    assert len(data.split.train) == 3 * 2 * 4 and len(data.split.test) == 3 * 4
    assert all(s.meta["view"] in (1, 2) for s in data.split.train)
    assert all(s.meta["view"] == 3 for s in data.split.test)
    train = data.dataset("train")
    item = train[5]
    assert set(item) == {"x", "label", "id", "index"}
    assert item["x"].shape == (3, 16, 20, 1) and item["x"].dtype == torch.float32
    sample = data.split.train[5]
    assert item["id"] == sample.id and item["label"] == sample.label and item["index"] == 5
    # training items change with the epoch, test items never
    train.set_epoch(1)
    assert not torch.equal(train[5]["x"], item["x"])
    test = data.dataset("test")
    assert torch.equal(test[0]["x"], test[0]["x"])
    # the test item is the feeder's test-time transform of the cached joints
    joints = data.reader.get(test.ids[0], ["joints"])["joints"]
    np.testing.assert_allclose(test[0]["x"].numpy(), data.feeder(joints, train=False))


def test_repeat_multiplies_training_length_only(ucla):
    data = load_data(tiny_config(ucla, overrides=["data.repeat=3"]))
    train = data.dataset("train")
    assert len(train) == 3 * len(data.split.train)
    assert train[len(data.split.train)]["id"] == train[0]["id"]
    assert not torch.equal(train[len(data.split.train)]["x"], train[0]["x"])
    assert len(data.dataset("test")) == len(data.split.test)


def test_val_holdout_is_stratified_and_deterministic(ucla):
    config = tiny_config(ucla, overrides=["data.val_fraction=0.25"])
    first, second = load_data(config).split, load_data(config).split
    assert [s.id for s in first.val] == [s.id for s in second.val]
    assert len(first.val) == 6 and len(first.train) == 18
    assert sorted(s.label for s in first.val) == [0, 0, 1, 1, 2, 2]
    assert not {s.id for s in first.val} & {s.id for s in first.train}
    with pytest.raises(ConfigError, match="holds out no sample"):
        holdout(first.train[:2], 0.1, seed=0)


def test_failed_samples_are_skipped_and_listed(tmp_path):
    root = make_workdir(tmp_path / "wd", per_class_view=2,
                        failed=["a01_s01_e00_v01", "a01_s01_e00_v03"])
    data = load_data(tiny_config(root))
    assert set(data.split.skipped) == {"a01_s01_e00_v01", "a01_s01_e00_v03"}
    assert "a01_s01_e00_v01" not in {s.id for s in data.split.train}
    from train.loop import train
    from train_factories import tiny_builder
    train(tiny_config(root, epochs=1, overrides=["run.eval_every_epochs=0"]),
          tmp_path / "run", model_builder=tiny_builder)
    summary = json.loads((tmp_path / "run" / "data.json").read_text())
    assert summary["skipped"] == {"a01_s01_e00_v01": "synthetic failure",
                                  "a01_s01_e00_v03": "synthetic failure"}
    assert (summary["train"], summary["test"]) == (11, 5)


def test_missing_stage_and_incomplete_cache_are_clear_errors(tmp_path):
    bare = make_workdir(tmp_path / "bare", with_skeletons=False)
    with pytest.raises(TrainError, match="no skeleton cache 'default'"):
        load_data(tiny_config(bare))
    partial = make_workdir(tmp_path / "partial", per_class_view=4, shard_size=8,
                           skip_shards=[1])
    with pytest.raises(TrainError, match="incomplete: 8 samples"):
        load_data(tiny_config(partial))
    with pytest.raises(ConfigError, match="data.workdir is not set"):
        load_data(tiny_config(""))


def test_preset_that_does_not_fit_the_data(ucla, tmp_path):
    with pytest.raises(ConfigError, match="protocol 'ntu60-xsub' is for ntu60"):
        load_data(tiny_config(ucla, preset="ntu60-xsub"))
    with pytest.raises(ConfigError, match="holds 'nw-ucla' skeletons"):
        load_data(tiny_config(ucla, overrides=["model.layout=ntu"]))
    with pytest.raises(ConfigError, match="labels go up to 2"):
        load_data(tiny_config(ucla, overrides=["model.num_classes=2"]))
    ntu = make_workdir(tmp_path / "ntu", dataset="ntu60", per_class_view=1)
    info = Workdir(ntu).info
    # a WORKDIR that does not say its layout is checked on the joint count itself
    Workdir.write_info(ntu, type(info)(**{**info.__dict__, "layout": None}))
    with pytest.raises(ConfigError, match="have 25 joints"):
        load_data(tiny_config(ntu, preset="ntu60-xview",
                              overrides=["model.layout=nw-ucla", "model.num_persons=1",
                                         "data.ucla_center_joint=2"]))
    with pytest.raises(ConfigError, match="hold 2 persons"):
        load_data(tiny_config(ntu, preset="ntu60-xview", overrides=["model.num_persons=1"]))


def test_split_without_samples_is_an_error(tmp_path):
    root = make_workdir(tmp_path / "wd", per_class_view=2, failed=[
        f"a{a:02d}_s{s:02d}_e00_v03" for a in (1, 2, 3) for s in (1, 2)])
    with pytest.raises(TrainError, match="test part of protocol 'nw-ucla-xview' has no usable"):
        load_data(tiny_config(root))


class _Features:
    """An extra per-sample source: a feature vector per id, some ids absent."""

    def __init__(self, ids, width=4, ragged=False):
        self.values = {sample_id: np.full((1 + i % 3 if ragged else width,), i, np.float32)
                       for i, sample_id in enumerate(ids)}

    def get(self, sample_id):
        return self.values[sample_id]

    def missing(self, sample_ids):
        return [i for i in sample_ids if i not in self.values]


def test_extras_are_joined_by_id_and_missing_ones_reported(ucla):
    config = tiny_config(ucla)
    ids = [s.id for s in Workdir(ucla).samples]
    data = load_data(config, extras={"rgb": _Features(ids)})
    item = data.dataset("train")[3]
    np.testing.assert_array_equal(item["rgb"].numpy(),
                                  _Features(ids).get(item["id"]))
    absent = [ids[0], ids[-1]]
    partial = _Features([i for i in ids if i not in absent])
    with pytest.raises(TrainError, match=f"1 train samples have no 'rgb' entry .*{ids[0]}"):
        load_data(config, extras={"rgb": partial})
    data = load_data(config, extras={"rgb": partial}, skip_missing=True)
    assert set(data.split.skipped) == {ids[0]}
    assert ids[0] not in {s.id for s in data.split.train}
    # evaluation runs the backbone alone: test items carry no extras and need none
    assert ids[-1] in data.dataset("test").ids and "rgb" not in data.dataset("test")[0]


def test_collate_stacks_pads_and_keeps_ids():
    items = [{"x": torch.ones(3, 4), "label": 1, "id": "a", "tokens": torch.ones(2, 5)},
             {"x": torch.zeros(3, 4), "label": 0, "id": "b", "tokens": torch.ones(4, 5)}]
    batch = collate_samples(items)
    assert batch["x"].shape == (2, 3, 4) and batch["label"].tolist() == [1, 0]
    assert batch["id"] == ["a", "b"]
    assert batch["tokens"].shape == (2, 4, 5) and batch["tokens_lengths"].tolist() == [2, 4]
    assert batch["tokens"][0, 2:].abs().sum() == 0
    with pytest.raises(ValueError, match="more than their first axis"):
        collate_samples([{"f": torch.ones(2, 3)}, {"f": torch.ones(2, 4)}])


def test_sampler_is_deterministic_resumable_and_process_independent():
    one = EpochSampler(10, 4, shuffle=True, seed=3)
    one.set_epoch(2)
    order = list(one)
    assert sorted(order) == list(range(10)) and order == list(one)
    one.set_epoch(3)
    assert list(one) != order
    one.set_epoch(2, skip_batches=1)
    assert list(one) == order[4:]
    # two processes with half the batch each see exactly the global batches of one
    drop = EpochSampler(10, 4, shuffle=True, seed=3, drop_last=True)
    drop.set_epoch(2)
    reference = list(drop)
    assert len(reference) == 8 and drop.num_batches() == 2
    halves = []
    for rank in (0, 1):
        part = EpochSampler(10, 2, shuffle=True, seed=3, num_replicas=2, rank=rank,
                            drop_last=True)
        part.set_epoch(2)
        halves.append(list(part))
    rebuilt = [i for step in range(2) for r in (0, 1) for i in halves[r][2 * step:2 * step + 2]]
    assert rebuilt == reference
    # without drop_last every process gets the same count, padding wraps around
    padded = [EpochSampler(5, 2, shuffle=False, num_replicas=2, rank=r) for r in (0, 1)]
    assert [list(p) for p in padded] == [[0, 1, 4, 0], [2, 3, 1, 2]]
    with pytest.raises(ValueError, match="do not fill one batch"):
        EpochSampler(3, 4, shuffle=True, drop_last=True)


def test_worker_processes_read_the_cache_lazily(ucla):
    data = load_data(tiny_config(ucla))
    dataset = data.dataset("test")
    dataset.reader.get(dataset.ids[0], ["joints"])       # parent opens a handle first
    loader = DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate_samples)
    ids = [i for batch in loader for i in batch["id"]]
    assert ids == dataset.ids


def test_window_auto_reads_the_lengths_from_the_shard_offsets(tmp_path, monkeypatch):
    """Regression: `window: auto` read every training sample's frame_index (one read per
    sample, 63k at NTU120 scale) at every start; the lengths are the shards' offsets."""
    from data_manifest import schemas
    from data_manifest.store import CacheReader
    from train.config import resolve_config
    from train.data.dataset import fit_to_data
    root = make_workdir(tmp_path / "wd", per_class_view=4, frames=(12, 40), shard_size=8)
    reader = Workdir(root).reader(schemas.SKELETONS)
    ids = reader.ids
    frames = [reader.get(i, ["frame_index"])["frame_index"].shape[0] for i in ids]
    assert reader.lengths("frame_index", ids) == frames == reader.lengths("joints", ids)
    assert len(set(frames)) > 5
    with pytest.raises(KeyError, match="no field 'nope'"):
        reader.lengths("nope", ids[:1])
    with pytest.raises(KeyError, match="sample x is not in"):
        reader.lengths("joints", ["x"])
    reads = []
    real_get = CacheReader.get
    monkeypatch.setattr(CacheReader, "get",
                        lambda self, *args, **kwargs: reads.append(1) or
                        real_get(self, *args, **kwargs))
    config = fit_to_data(resolve_config("custom", overrides=[f"data.workdir={root}"]))
    assert len(reads) == 1                  # the first sample's shape, not every sample
    train_ids = {s.id for s in load_data(config).split.train}
    assert config.data.window == int(round(float(np.median(
        [n for i, n in zip(ids, frames) if i in train_ids]))))
