"""``pipeline export-pyskl WORKDIR OUT.pkl``: a WORKDIR's skeleton cache as a pyskl
annotation file, for users who go on with pyskl.

Every sample the skeleton cache holds becomes an annotation (see
:mod:`data_manifest.formats.pyskl`): ``frame_dir`` (its id), ``label``, ``keypoint``
``M x T x V x C`` (float32; the persons with data, without the cache's padding persons;
the cache's frames, which leave out frames without any person), ``keypoint_score`` for
``xy-score`` data, ``total_frames``, and ``img_shape``/``original_shape`` when the sample
came from a pyskl file that had them. Values are the cache's (NTU and NW-UCLA caches are
translated by the spine joint of the first frame; pyskl centres them again).

Split lists come from the WORKDIR's protocols: a pyskl WORKDIR's lists keep their names;
any other protocol gives ``<name>_train`` and ``<name>_val`` (pyskl's name for the test
part), e.g. ``ntu60-xsub`` -> ``xsub_train``/``xsub_val``, ``csv`` -> ``train``/``val``.
Samples the skeleton stage failed on are left out (and counted). The file is written
atomically, annotation by annotation (never the whole dataset in memory), and loads in
pyskl's Python with NumPy 1.x or 2.x.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from tqdm.auto import tqdm

from data_manifest.datasets import dataset_info
from data_manifest.errors import DataError
from data_manifest.formats.pyskl import SHAPE_KEYS, annotation, write_pyskl
from data_manifest.sample import Sample
from data_manifest.schemas import SKELETONS
from data_manifest.splits import (PYSKL, PYSKL_LIST_KEY, pyskl_split_name, pyskl_split_pairs,
                                  select)
from data_manifest.store import CacheReader
from data_manifest.workdir import DEFAULT_CACHE_NAME, Workdir


@dataclass
class ExportReport:
    path: Path
    exported: int
    lists: dict[str, int]                               # split list -> samples
    failed: list[str] = field(default_factory=list)     # ids left out: the stage failed

    def summary(self) -> str:
        text = f"{self.exported} annotations in {self.path}"
        if self.failed:
            text += (f"; {len(self.failed)} sample(s) left out: the skeleton stage failed "
                     f"on them (e.g. {', '.join(self.failed[:3])})")
        lists = ", ".join(f"{name} ({count})" for name, count in self.lists.items())
        return f"{text}\nsplit lists: {lists or 'none'}"


def _list_names(protocol: str, dataset: str, samples: Sequence[Sample]) -> tuple[str, str]:
    """The (train, test) list names of a protocol (see the module docstring)."""
    split_name = pyskl_split_name(protocol)
    if split_name is not None and dataset == PYSKL:
        names = {key[len(PYSKL_LIST_KEY):] for s in samples for key in s.meta
                 if key.startswith(PYSKL_LIST_KEY)}
        pairs = pyskl_split_pairs(names)
        if split_name in pairs:
            return pairs[split_name]
    name = protocol[len(dataset) + 1:] if protocol.startswith(f"{dataset}-") else (
        "" if protocol == dataset else protocol)
    return (f"{name}_train", f"{name}_val") if name else ("train", "val")


def split_lists(samples: Sequence[Sample], dataset: str,
                protocols: Sequence[str] | None = None) -> dict[str, list[str]]:
    """pyskl split lists of ``samples`` for ``protocols`` (default: every list a pyskl
    WORKDIR recorded, else every protocol of the dataset)."""
    if protocols is None and dataset == PYSKL:
        lists: dict[str, list[str]] = {}
        for sample in samples:
            for key in sample.meta:
                if key.startswith(PYSKL_LIST_KEY):
                    lists.setdefault(key[len(PYSKL_LIST_KEY):], []).append(sample.id)
        return dict(sorted(lists.items()))
    lists = {}
    with_split = [s for s in samples if not (s.dataset == "csv" and s.split is None)]
    for protocol in protocols if protocols is not None else dataset_info(dataset).protocols:
        train_list, test_list = _list_names(protocol, dataset, samples)
        try:
            lists[train_list] = [s.id for s in select(with_split, protocol, "train")]
            lists[test_list] = [s.id for s in select(with_split, protocol, "test")]
        except ValueError as error:
            raise DataError(f"--protocol {protocol}: {error}") from None
    return lists


def _shapes(sample: Sample) -> dict[str, tuple[int, int]]:
    return {key: (sample.meta[f"{key}:h"], sample.meta[f"{key}:w"]) for key in SHAPE_KEYS
            if f"{key}:h" in sample.meta and f"{key}:w" in sample.meta}


def _annotations(reader: CacheReader, samples: Sequence[Sample], channels: str,
                 progress: bool) -> Iterator[dict[str, Any]]:
    for sample in tqdm(samples, desc="exporting annotations", disable=not progress,
                       leave=False):
        values = reader.get(sample.id, ["joints", "num_actors"])
        joints = values["joints"][:, :max(int(values["num_actors"]), 1)]
        yield annotation(sample.id, sample.label, joints, channels, _shapes(sample))


def export_pyskl(workdir: Workdir | str | os.PathLike, out: str | os.PathLike, *,
                 protocols: Sequence[str] | None = None,
                 skeleton_cache: str = DEFAULT_CACHE_NAME, overwrite: bool = False,
                 progress: bool = True) -> ExportReport:
    """Write the skeleton cache ``skeleton_cache`` of ``workdir`` to the pyskl file ``out``."""
    if not isinstance(workdir, Workdir):
        workdir = Workdir(workdir)
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError("already exists; pass --overwrite to replace it", path=str(out))
    reader = workdir.reader(SKELETONS, skeleton_cache)
    try:
        channels = reader.spec.params.get("channels") or "xyz"
        failed = {failure["id"] for failure in reader.failures}
        samples = workdir.samples
        missing = [s.id for s in samples if s.id not in reader and s.id not in failed]
        if missing:
            raise DataError(f"the skeleton cache {skeleton_cache!r} is incomplete: {len(missing)} "
                            f"sample(s) neither stored nor recorded as failed (e.g. "
                            f"{', '.join(missing[:5])}); finish extract-skeletons first",
                            path=str(workdir.path))
        kept = [s for s in samples if s.id in reader]
        if not kept:
            raise DataError(f"the skeleton cache {skeleton_cache!r} holds no sample",
                            path=str(workdir.path))
        lists = split_lists(kept, workdir.dataset, protocols)
        write_pyskl(out, lists, _annotations(reader, kept, channels, progress))
    finally:
        reader.close()
    return ExportReport(out, len(kept), {name: len(ids) for name, ids in lists.items()},
                        sorted(failed))
