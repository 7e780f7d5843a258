"""Split protocols: each maps a sample to "train" or "test" from its metadata."""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from data_manifest.sample import Sample

NTU60_XSUB_TRAIN_SUBJECTS = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
NTU120_XSUB_TRAIN_SUBJECTS = NTU60_XSUB_TRAIN_SUBJECTS | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84,
     85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103))
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))
NW_UCLA_TRAIN_VIEWS = frozenset((1, 2))


def _by(key: str, train_values: frozenset[int]) -> Callable[[Sample], str]:
    def assign(sample: Sample) -> str:
        return "train" if sample.meta[key] in train_values else "test"
    return assign


def _ntu120_xset(sample: Sample) -> str:
    return "train" if sample.meta["setup"] % 2 == 0 else "test"


def _from_column(sample: Sample) -> str:
    if sample.split is None:
        raise ValueError(f"sample {sample.id} has no split column value")
    return sample.split


PROTOCOLS: dict[str, tuple[tuple[str, ...], Callable[[Sample], str]]] = {
    # protocol name: (datasets it applies to, assignment)
    "ntu60-xsub": (("ntu60",), _by("performer", NTU60_XSUB_TRAIN_SUBJECTS)),
    "ntu60-xview": (("ntu60",), _by("camera", NTU60_XVIEW_TRAIN_CAMERAS)),
    "ntu120-xsub": (("ntu120",), _by("performer", NTU120_XSUB_TRAIN_SUBJECTS)),
    "ntu120-xset": (("ntu120",), _ntu120_xset),
    "nw-ucla-xview": (("nw-ucla",), _by("view", NW_UCLA_TRAIN_VIEWS)),
    "csv": (("csv",), _from_column),
}


def split_of(sample: Sample, protocol: str) -> str:
    return _lookup(protocol, sample.dataset)(sample)


def select(samples: Iterable[Sample], protocol: str, part: str) -> list[Sample]:
    """The samples of one part ("train" or "test") of a split protocol."""
    if part not in ("train", "test"):
        raise ValueError(f"split part must be 'train' or 'test', not {part!r}")
    chosen = []
    for sample in samples:
        if _lookup(protocol, sample.dataset)(sample) == part:
            chosen.append(sample)
    return chosen


def _lookup(protocol: str, dataset: str) -> Callable[[Sample], str]:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown split protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    datasets, assign = PROTOCOLS[protocol]
    if dataset not in datasets:
        raise ValueError(f"split protocol {protocol!r} is for {'/'.join(datasets)} data, "
                         f"not {dataset!r}")
    return assign


def protocols_for(dataset: str) -> list[str]:
    """The split protocols that apply to ``dataset``'s samples."""
    return [name for name, (datasets, _) in PROTOCOLS.items() if dataset in datasets]


def split_counts(samples: Iterable[Sample], protocol: str) -> dict[str, int]:
    """Samples per part of ``protocol``: ``train`` and ``test``, plus ``none`` for CSV
    samples without a split value."""
    counts = {"train": 0, "test": 0}
    for sample in samples:
        part = ("none" if sample.dataset == "csv" and sample.split is None
                else split_of(sample, protocol))
        counts[part] = counts.get(part, 0) + 1
    return counts


def describe_splits(samples: Sequence[Sample]) -> list[str]:
    """One line per protocol that applies, e.g. ``ntu120-xsub: 63,026 train / 50,919 test``
    (CSV data without a split column has none)."""
    if not samples:
        return []
    lines = []
    for protocol in protocols_for(samples[0].dataset):
        counts = split_counts(samples, protocol)
        if counts["train"] + counts["test"] == 0:
            continue
        line = f"{protocol}: {counts['train']:,} train / {counts['test']:,} test"
        if counts.get("none"):
            line += f", {counts['none']:,} without a split value"
        lines.append(line)
    return lines
