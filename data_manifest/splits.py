"""Split protocols: each maps a sample to "train" or "test" from its metadata.

Besides the fixed protocols of :data:`PROTOCOLS`, pyskl data (``pipeline manifest pyskl``)
has one protocol per pair of its split lists: ``pyskl-<name>`` for ``<name>_train`` with
``<name>_val`` (NTU's ``xsub``, ``xview``, ``xset``) or ``train<name>`` with
``test<name>`` (UCF101's ``1``, ``2``, ``3``), and ``pyskl`` for a plain ``train`` with
``val``/``test`` (FineGYM). pyskl calls its test part ``val``: a ``_test`` list, where a
file has one besides ``_val``, is the test part instead. Each sample records its part of
each pair in its metadata (``split:<name>``: 0 train, 1 test; absent: in neither list),
and every list it is in (``list:<list name>``), so pyskl's lists can be written back.
"""

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


PYSKL = "pyskl"
PYSKL_SPLIT_KEY = "split:"     # + split name: the sample's part of that pair (0/1)
PYSKL_LIST_KEY = "list:"       # + list name: the sample is in that pyskl split list
PARTS = ("train", "test")


def pyskl_protocol(split_name: str) -> str:
    """The protocol of a pyskl split (``xsub`` -> ``pyskl-xsub``; ``""`` -> ``pyskl``)."""
    return f"{PYSKL}-{split_name}" if split_name else PYSKL


def pyskl_split_name(protocol: str) -> str | None:
    """The split name of a pyskl protocol, None for any other protocol."""
    if protocol == PYSKL:
        return ""
    return protocol[len(PYSKL) + 1:] if protocol.startswith(f"{PYSKL}-") else None


def pyskl_split_pairs(list_names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """split name -> (train list, test list) among pyskl split list names (see the
    module docstring); lists without a partner are in no pair."""
    names = set(list_names)
    pairs: dict[str, tuple[str, str]] = {}
    for train_list in sorted(names):
        if train_list.endswith("_train"):
            name = train_list[:-len("_train")]
            tests = (f"{name}_test", f"{name}_val")
        elif train_list.startswith("train"):
            name = train_list[len("train"):]
            tests = (f"test{name}", f"val{name}")
        else:
            continue
        test_list = next((test for test in tests if test in names), None)
        if test_list is None:
            continue
        if name in pairs:
            raise ValueError(f"split lists {pairs[name][0]!r} and {train_list!r} would both "
                             f"be split {name or '(unnamed)'!r}; rename one")
        pairs[name] = (train_list, test_list)
    return pairs


def pyskl_splits_of(samples: Iterable[Sample]) -> list[str]:
    """The pyskl split names the samples' metadata records, sorted."""
    return sorted({key[len(PYSKL_SPLIT_KEY):] for sample in samples for key in sample.meta
                   if key.startswith(PYSKL_SPLIT_KEY)})


def protocol_dataset(protocol: str) -> str | None:
    """The dataset a protocol is for; None for an unknown protocol."""
    if pyskl_split_name(protocol) is not None:
        return PYSKL
    datasets = PROTOCOLS.get(protocol, ((),))[0]
    return datasets[0] if len(datasets) == 1 else None


def split_of(sample: Sample, protocol: str) -> str | None:
    """``train`` or ``test``; None for a pyskl sample in neither list of the pair."""
    return _lookup(protocol, sample.dataset)(sample)


def select(samples: Iterable[Sample], protocol: str, part: str) -> list[Sample]:
    """The samples of one part ("train" or "test") of a split protocol."""
    if part not in PARTS:
        raise ValueError(f"split part must be 'train' or 'test', not {part!r}")
    samples = list(samples)
    split_name = pyskl_split_name(protocol)
    if split_name is not None and samples and samples[0].dataset == PYSKL:
        _check_pyskl_split(samples, split_name)
    chosen = []
    for sample in samples:
        if _lookup(protocol, sample.dataset)(sample) == part:
            chosen.append(sample)
    return chosen


def _check_pyskl_split(samples: Sequence[Sample], split_name: str) -> None:
    key = PYSKL_SPLIT_KEY + split_name
    if not any(key in sample.meta for sample in samples):
        known = ", ".join(pyskl_protocol(name) for name in pyskl_splits_of(samples))
        raise ValueError(f"split protocol {pyskl_protocol(split_name)!r}: the pyskl file had "
                         f"no such pair of split lists; its protocols: {known or 'none'}")


def _pyskl_assign(split_name: str) -> Callable[[Sample], str | None]:
    key = PYSKL_SPLIT_KEY + split_name

    def assign(sample: Sample) -> str | None:
        part = sample.meta.get(key)
        return None if part is None else PARTS[part]
    return assign


def _lookup(protocol: str, dataset: str) -> Callable[[Sample], str | None]:
    split_name = pyskl_split_name(protocol)
    if split_name is not None:
        if dataset != PYSKL:
            raise ValueError(f"split protocol {protocol!r} is for pyskl data, not {dataset!r}")
        return _pyskl_assign(split_name)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown split protocol {protocol!r}; known: {', '.join(PROTOCOLS)}"
                         f", and pyskl-<split> for pyskl data")
    datasets, assign = PROTOCOLS[protocol]
    if dataset not in datasets:
        raise ValueError(f"split protocol {protocol!r} is for {'/'.join(datasets)} data, "
                         f"not {dataset!r}")
    return assign


def protocols_for(dataset: str) -> list[str]:
    """The fixed split protocols that apply to ``dataset``'s samples (pyskl data's come
    from its samples: :func:`pyskl_splits_of`)."""
    return [name for name, (datasets, _) in PROTOCOLS.items() if dataset in datasets]


def protocols_of(samples: Sequence[Sample]) -> list[str]:
    """The split protocols that apply to these samples (a WORKDIR's): its dataset's fixed
    ones, or for pyskl data one per pair of its split lists."""
    if not samples:
        return []
    dataset = samples[0].dataset
    if dataset == PYSKL:
        return [pyskl_protocol(name) for name in pyskl_splits_of(samples)]
    return protocols_for(dataset)


def split_counts(samples: Iterable[Sample], protocol: str) -> dict[str, int]:
    """Samples per part of ``protocol``: ``train`` and ``test``, plus ``none`` for CSV
    samples without a split value and pyskl samples in neither list of the pair."""
    counts = {"train": 0, "test": 0}
    for sample in samples:
        part = (None if sample.dataset == "csv" and sample.split is None
                else split_of(sample, protocol))
        counts[part or "none"] = counts.get(part or "none", 0) + 1
    return counts


def describe_splits(samples: Sequence[Sample]) -> list[str]:
    """One line per protocol that applies, e.g. ``ntu120-xsub: 63,026 train / 50,919 test``
    (CSV data without a split column has none)."""
    if not samples:
        return []
    lines = []
    dataset = samples[0].dataset
    for protocol in protocols_of(samples):
        counts = split_counts(samples, protocol)
        if counts["train"] + counts["test"] == 0:
            continue
        line = f"{protocol}: {counts['train']:,} train / {counts['test']:,} test"
        if counts.get("none"):
            line += f", {counts['none']:,} " + ("in neither of its lists" if dataset == PYSKL
                                                else "without a split value")
        lines.append(line)
    return lines
