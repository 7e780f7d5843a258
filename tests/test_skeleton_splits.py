"""Split protocols give the published sample counts on the usable-sample lists."""

from functools import lru_cache

import pytest

from data_manifest.datasets.ntu import parse_ntu_name
from data_manifest.sample import Sample
from data_manifest.splits import select
from data_manifest.workdir import Workdir
from pipeline.manifest_builder import build_manifest
from skeleton_factories import NTU_LISTS, NW_UCLA_DIR


@lru_cache(maxsize=None)
def ntu_samples(dataset: str) -> tuple[Sample, ...]:
    names = (NTU_LISTS / f"{dataset}_available.txt").read_text().split()
    samples = []
    for name in names:
        meta = parse_ntu_name(name)
        assert meta is not None, name
        samples.append(Sample(id=name, dataset=dataset, label=meta["action"] - 1, meta=meta))
    return tuple(samples)


@pytest.mark.parametrize("dataset, protocol, train, test", [
    ("ntu60", "ntu60-xsub", 40_091, 16_487),
    ("ntu60", "ntu60-xview", 37_646, 18_932),
    ("ntu120", "ntu120-xsub", 63_026, 50_919),
    ("ntu120", "ntu120-xset", 54_468, 59_477),
])
def test_ntu_split_counts(dataset, protocol, train, test):
    samples = ntu_samples(dataset)
    assert len(samples) == {"ntu60": 56_578, "ntu120": 113_945}[dataset]
    train_part, test_part = select(samples, protocol, "train"), select(samples, protocol, "test")
    assert (len(train_part), len(test_part)) == (train, test)
    assert not {s.id for s in train_part} & {s.id for s in test_part}


def test_nw_ucla_split_counts_from_a_manifest_of_the_real_folder(tmp_path):
    build_manifest("nw-ucla", NW_UCLA_DIR, tmp_path / "work")
    samples = Workdir(tmp_path / "work").samples
    assert len(samples) == 1484
    train = select(samples, "nw-ucla-xview", "train")
    test = select(samples, "nw-ucla-xview", "test")
    assert (len(train), len(test)) == (1020, 464)
    assert {s.meta["view"] for s in test} == {3}
    assert sorted({s.label for s in samples}) == list(range(10))
