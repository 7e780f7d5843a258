"""Split protocols give the published sample counts on the usable-sample lists."""

from functools import lru_cache

import pytest
from click.testing import CliRunner

from data_manifest.datasets.ntu import parse_ntu_name
from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.splits import describe_splits, protocols_for, select
from data_manifest.workdir import Workdir, WorkdirInfo
from pipeline.cli.main import cli
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


# ------------------------------------------------ split counts a user can see (issue 9, item 10)

NTU120_LINES = ["ntu120-xsub: 63,026 train / 50,919 test",
                "ntu120-xset: 54,468 train / 59,477 test"]


def test_the_split_counts_of_every_protocol_that_applies():
    assert describe_splits(list(ntu_samples("ntu120"))) == NTU120_LINES
    assert protocols_for("nw-ucla") == ["nw-ucla-xview"]


@pytest.fixture(scope="module")
def ntu120_workdir(tmp_path_factory):
    """A WORKDIR of the NTU120 names alone (no files are needed to list or count)."""
    root = tmp_path_factory.mktemp("ntu120")
    samples = ntu_samples("ntu120")
    digest = write_manifest(samples, root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo("ntu120", "/nowhere", digest, len(samples), 128,
                                         layout="ntu"))
    return root


def test_status_shows_the_split_counts(ntu120_workdir):
    result = CliRunner().invoke(cli, ["status", str(ntu120_workdir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("ntu120, 113945 samples in 891 shard(s) of 128")
    assert lines[1:3] == [f"  split {line}" for line in NTU120_LINES]


def test_pipeline_split_lists_a_part_in_manifest_order(ntu120_workdir):
    result = CliRunner().invoke(cli, ["split", str(ntu120_workdir), "--protocol",
                                      "ntu120-xsub", "--part", "test"])
    assert result.exit_code == 0, result.output
    ids = result.output.split()
    assert len(ids) == 50_919
    assert ids == [s.id for s in select(ntu_samples("ntu120"), "ntu120-xsub", "test")]
    wrong = CliRunner().invoke(cli, ["split", str(ntu120_workdir), "--protocol",
                                     "ntu60-xsub", "--part", "test"])
    assert wrong.exit_code == 2 and ("split protocol 'ntu60-xsub' does not apply to "
                                     f"{ntu120_workdir} (ntu120 data); its protocols: "
                                     "ntu120-xsub, ntu120-xset") in wrong.output
    default = CliRunner().invoke(cli, ["split", str(ntu120_workdir), "--part", "test"])
    assert default.output == result.output       # ntu120-xsub: the dataset's first


def test_the_manifest_summary_shows_the_split_counts(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"x")
    rows = ["id,label,skeleton,video,split"] + [
        f"s{i},0,a.npy,,{'train' if i % 3 else 'test'}" for i in range(6)] + ["s6,0,a.npy,,"]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(cli, ["manifest", "csv", str(tmp_path / "list.csv"),
                                      str(tmp_path / "wd")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "csv: 4 train / 2 test, 1 without a split value"
