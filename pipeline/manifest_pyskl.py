"""``pipeline manifest pyskl FILE.pkl WORKDIR``: a pyskl annotation file -> samples, the
WORKDIR's settings, and one small array file per sample.

The pickle is loaded once (it needs about its own size in memory) and checked as a whole
(:func:`~data_manifest.formats.pyskl.read_pyskl`). Each annotation's arrays are written
to ``WORKDIR/pyskl/<xx>/<frame_dir>.npz`` (``joints`` (T, M, V, C) and, for 2-D data,
``scores`` (T, M, V), as stored): the sample's skeleton file, which the skeleton stage
reads as any own ``.npz`` file, in any number of workers, without the pickle. A sample's
metadata records a checksum of its arrays (so a changed file makes another manifest), its
part of every pair of split lists and the lists it is in (:mod:`data_manifest.splits`),
and pyskl's ``img_shape``/``original_shape`` (written back by ``export-pyskl``).

Layout: 25 joints of 3 values is NTU's Kinect (``ntu``), 17 joints of 2 values (with or
without scores) COCO's keypoints (``coco-17``); other data needs ``--layout``. Class
names: ``--classes``, else NTU RGB+D's when the split lists are NTU's (``xsub`` with
``xview`` and labels below 60, or ``xsub`` with ``xset`` and labels below 120).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm.auto import tqdm

from data_manifest.classes import class_names as builtin_class_names
from data_manifest.classes import read_class_names
from data_manifest.errors import DataError
from data_manifest.formats.pyskl import SHAPE_KEYS, PysklAnnotation, read_pyskl
from data_manifest.sample import Sample
from data_manifest.splits import (PYSKL, PYSKL_LIST_KEY, PYSKL_SPLIT_KEY, pyskl_protocol,
                                  pyskl_split_pairs)
from data_manifest.store import sync_directory, temporary_path
from pipeline.workdir_settings import WorkdirSettings, resolve_settings

log = logging.getLogger(__name__)

ARRAYS_DIR = "pyskl"
AUTO_LAYOUTS = {(25, "xyz"): "ntu", (17, "xy"): "coco-17", (17, "xy-score"): "coco-17"}
NTU_SPLITS = {frozenset({"xsub", "xview"}): ("ntu60", 60),
              frozenset({"xsub", "xset"}): ("ntu120", 120)}


def array_path(root: Path, sample_id: str) -> Path:
    """Where a sample's arrays go under ``root``: a file name from its id (with a hash of
    the id when the id is not a plain file name), in one of 256 folders."""
    digest = hashlib.sha1(sample_id.encode("utf-8")).hexdigest()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:100]
    if safe != sample_id or safe.startswith("."):
        safe = f"{safe.lstrip('.')[:80]}-{digest[:16]}"
    return root / digest[:2] / f"{safe}.npz"


def _checksum(annotation: PysklAnnotation) -> int:
    crc = 0
    for array in (annotation.keypoint, annotation.keypoint_score):
        if array is not None:
            crc = zlib.crc32(f"{array.dtype.str}{array.shape}".encode(), crc)
            crc = zlib.crc32(np.ascontiguousarray(array).data, crc)
    return crc


def _persons_with_data(annotation: PysklAnnotation) -> int:
    present = np.any(annotation.keypoint != 0, axis=(1, 2, 3))
    if annotation.keypoint_score is not None:
        present |= np.any(annotation.keypoint_score != 0, axis=(1, 2))
    return int(present.sum())


@dataclass
class PysklImport:
    """What a pyskl file gives a WORKDIR; :meth:`write_arrays` writes the skeleton files."""

    path: str
    samples: list[Sample]
    settings: WorkdirSettings
    protocol: str                                   # the default protocol (--split)
    arrays: dict[str, PysklAnnotation] = field(repr=False)    # skeleton file -> arrays
    notes: list[str] = field(default_factory=list)
    ignored: int = 0                                # annotations on the ignore list

    def write_arrays(self, workdir: Path, only_missing: bool = False,
                     progress: bool = True) -> None:
        """Write every sample's array file (or only those missing), each atomically and
        durably (its data flushed before it is renamed into place, each folder flushed
        once at the end: the manifest that names them comes next), then remove array
        files of samples the manifest no longer has."""
        folders: set[Path] = set()
        for path, annotation in tqdm(self.arrays.items(), desc="writing skeleton arrays",
                                     disable=not progress, leave=False):
            target = Path(path)
            if only_missing and target.is_file():
                continue
            if target.parent not in folders:
                target.parent.mkdir(parents=True, exist_ok=True)
                folders.update((target.parent, target.parent.parent))
            tmp = temporary_path(target)
            arrays = {"joints": annotation.joints()}
            if annotation.keypoint_score is not None:
                arrays["scores"] = annotation.scores()
            try:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **arrays)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
            sync_directory(folder)      # the renames (and new folders) are durable too
        root = (workdir / ARRAYS_DIR).resolve()     # as the samples' skeleton paths are
        for stale in root.glob("*/*.npz") if root.is_dir() else ():
            if str(stale) not in self.arrays:
                stale.unlink()


def prepare_pyskl(path: str | os.PathLike, workdir: str | os.PathLike, *,
                  split: str | None = None, layout: str | os.PathLike | None = None,
                  from_layout: str | os.PathLike | None = None,
                  joint_map: str | os.PathLike | None = None,
                  classes: str | os.PathLike | None = None, label_base: int = 0,
                  channels: str | None = None, max_persons: int | None = None,
                  ignore: Iterable[str] = (), progress: bool = True) -> PysklImport:
    """Read and check a pyskl file and resolve the WORKDIR's settings for it (see the
    module docstring); nothing is written."""
    path = os.fspath(path)
    if label_base != 0:
        raise DataError("pyskl labels count from 0: --label-base is for csv data", path=path)
    names = read_class_names(classes) if classes is not None else None
    pyskl = read_pyskl(path, num_classes=len(names) if names else None, progress=progress)
    ignore = set(ignore)
    annotations = [a for a in pyskl.annotations if a.id not in ignore]
    if not annotations:
        raise DataError("every annotation is on the ignore list", path=path)
    try:
        pairs = pyskl_split_pairs(pyskl.split)
    except ValueError as error:
        raise DataError(str(error), path=path) from None
    default = _default_split(pairs, pyskl.split, split, path)
    if channels is not None and channels != pyskl.channels:
        raise DataError(f"holds {pyskl.channels} keypoints; --channels {channels} does not "
                        "apply (a pyskl file says what its channels are)", path=path)
    if layout is None and from_layout is None and joint_map is None:
        layout = AUTO_LAYOUTS.get((pyskl.num_joints, pyskl.channels))
        if layout is None:
            raise DataError(f"holds {pyskl.num_joints} joints of {pyskl.channels} values, "
                            "not a layout known for pyskl files (ntu: 25 joints in 3-D, "
                            "coco-17: 17 keypoints in 2-D): give --layout NAME|FILE", path=path)
    root = (Path(workdir) / ARRAYS_DIR).resolve()
    samples = _samples(annotations, pyskl.split, pairs, root, path)
    persons = max_persons or max(1, max(_persons_with_data(a) for a in annotations))
    settings = resolve_settings(PYSKL, samples, layout=layout, from_layout=from_layout,
                                joint_map=joint_map, classes=classes, channels=pyskl.channels,
                                max_persons=persons)
    stored = settings.joint_map.source if settings.joint_map else settings.layout
    if stored is not None and stored.num_joints != pyskl.num_joints:
        raise DataError(f"holds {pyskl.num_joints} joints per person; the {stored.name} "
                        f"layout has {stored.num_joints}", path=path)
    notes = [f"pyskl: {len(annotations)} annotations of {pyskl.num_joints} joints, "
             f"{pyskl.channels}, up to {persons} person(s)"]
    if names is None:
        ntu = _ntu_class_names(pairs, samples)
        if ntu is not None:
            settings = dataclasses.replace(settings, class_names=ntu[1])
            notes.append(f"class names: {ntu[0]}'s (the split lists are NTU's)")
    notes.append("split lists: " + ", ".join(
        f"{pyskl_protocol(name)} = {train}/{test}" for name, (train, test) in pairs.items())
        + f"; data.protocol auto: {pyskl_protocol(default)}")
    return PysklImport(path, samples, settings, pyskl_protocol(default),
                       {s.skeleton: a for s, a in zip(samples, annotations)}, notes,
                       ignored=len(pyskl.annotations) - len(annotations))


def _default_split(pairs: dict[str, tuple[str, str]], lists: dict[str, list[str]],
                   split: str | None, path: str) -> str:
    shown = ", ".join(f"{name or '(unnamed)'} ({train}/{test})"
                      for name, (train, test) in pairs.items())
    if split is not None:
        if split not in pairs:
            raise DataError(f"--split {split}: no such pair of split lists; this file's: "
                            f"{shown or 'none'} (lists: {', '.join(lists) or 'none'})",
                            path=path)
        return split
    if len(pairs) == 1:
        return next(iter(pairs))
    if not pairs:
        raise DataError(f"no pair of split lists to train and test on (lists: "
                        f"{', '.join(lists) or 'none'}); pyskl pairs <name>_train with "
                        "<name>_val, or train<name> with test<name>", path=path)
    raise DataError(f"several splits ({shown}): choose the default one with --split NAME "
                    "(each stays selectable as data.protocol=pyskl-NAME)", path=path)


def _samples(annotations: list[PysklAnnotation], lists: dict[str, list[str]],
             pairs: dict[str, tuple[str, str]], root: Path, path: str) -> list[Sample]:
    member: dict[str, set[str]] = {}
    for name, ids in lists.items():
        for sample_id in ids:
            member.setdefault(sample_id, set()).add(name)
    samples, problems = [], []
    for annotation in annotations:
        lists_in = member.get(annotation.id, set())
        meta = {"crc32": _checksum(annotation)}
        meta.update({PYSKL_LIST_KEY + name: 1 for name in sorted(lists_in)})
        for split_name, (train, test) in pairs.items():
            if train in lists_in and test in lists_in:
                problems.append(f"{annotation.id} is in both {train} and {test}")
            elif train in lists_in or test in lists_in:
                meta[PYSKL_SPLIT_KEY + split_name] = int(test in lists_in)
        for key in SHAPE_KEYS:
            if key in annotation.shapes:
                meta[f"{key}:h"], meta[f"{key}:w"] = annotation.shapes[key]
        samples.append(Sample(id=annotation.id, dataset=PYSKL, label=annotation.label,
                              skeleton=str(array_path(root, annotation.id)), meta=meta))
    if problems:
        raise DataError(f"{len(problems)} sample(s) in both parts of a split, e.g. "
                        + "; ".join(problems[:5]), path=path)
    return samples


def _ntu_class_names(pairs: dict[str, tuple[str, str]], samples: list[Sample]
                     ) -> tuple[str, tuple[str, ...]] | None:
    dataset, count = NTU_SPLITS.get(frozenset(pairs), (None, 0))
    if dataset is None or max(s.label for s in samples) >= count:
        return None
    return {"ntu60": "NTU RGB+D 60", "ntu120": "NTU RGB+D 120"}[dataset], \
        tuple(builtin_class_names(dataset))

