"""Build ``WORKDIR/manifest.jsonl`` from a dataset's files on disk."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from data_manifest.datasets import dataset_info
from data_manifest.datasets.ntu import in_ntu60, parse_ntu_name
from data_manifest.datasets.nw_ucla import nw_ucla_label, parse_nw_ucla_name
from data_manifest.errors import DataError
from data_manifest.manifest import manifest_digest, write_manifest
from data_manifest.sample import Sample
from data_manifest.splits import describe_splits
from data_manifest.store import publish, write_text_atomic
from data_manifest.workdir import (DEFAULT_SHARD_SIZE, MANIFEST_FILE, ORPHANS_FILE,
                                   WORKDIR_FILE, Workdir, WorkdirInfo)
from pipeline.manifest_pyskl import PysklImport, prepare_pyskl
from pipeline.workdir_settings import WorkdirSettings, recorded_settings, resolve_settings

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm")
REQUIRE_CHOICES = ("skeleton", "video", "both", "any")


@dataclass
class ManifestReport:
    workdir: Path
    num_samples: int
    orphans: list[dict[str, str]] = field(default_factory=list)
    ignored: int = 0
    unchanged: bool = False
    settings: WorkdirSettings = field(default_factory=WorkdirSettings)
    splits: list[str] = field(default_factory=list)   # train/test counts per protocol
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.num_samples} samples in {self.workdir / 'manifest.jsonl'}"
        if self.unchanged:
            text += " (unchanged)"
        if self.ignored:
            text += f"; {self.ignored} ignored by the ignore list"
        if self.orphans:
            text += (f"; {len(self.orphans)} file(s) left unpaired, listed in "
                     f"{self.workdir / ORPHANS_FILE}")
        layout = self.settings.layout
        if layout is not None:
            text += f"\nlayout: {layout.name} ({layout.num_joints} joints)"
            if self.settings.joint_map is not None:
                text += f", mapped from {self.settings.joint_map.source.name}"
        if self.settings.class_names:
            text += f"\nclass names: {len(self.settings.class_names)}"
        return "\n".join([text, *self.splits, *self.notes])


def _video_stem(path: Path) -> str:
    stem = path.stem
    return stem[:-4] if stem.endswith("_rgb") else stem


def _scan(root: Path, suffixes: Iterable[str]) -> dict[str, Path]:
    """name -> path for files under root with one of the suffixes; duplicates are errors."""
    found: dict[str, Path] = {}
    suffixes = tuple(suffixes)
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in suffixes or not path.is_file():
            continue
        name = _video_stem(path) if path.suffix.lower() in VIDEO_EXTENSIONS else path.stem
        if name in found:
            raise DataError(f"two files for sample {name}: {found[name]} and {path}",
                            path=str(path))
        found[name] = path
    return found


def _read_ignore_list(path: str | os.PathLike | None, stems: bool = True) -> set[str]:
    """Sample names to leave out: file names (their stems), or ids as written."""
    if path is None:
        return set()
    names = set()
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(Path(line).stem if stems else line)
    return names


def _pair(dataset: str, root: Path, video_root: Path, require: str,
          ignore: set[str]) -> tuple[list[Sample], list[dict[str, str]], int]:
    skeleton_suffix = ".json" if dataset == "nw-ucla" else ".skeleton"
    skeletons = _scan(root, (skeleton_suffix,))
    videos = _scan(video_root, VIDEO_EXTENSIONS)
    samples, orphans, ignored = [], [], 0
    for name in sorted(set(skeletons) | set(videos)):
        skeleton, video = skeletons.get(name), videos.get(name)
        meta = parse_ntu_name(name) if dataset.startswith("ntu") else parse_nw_ucla_name(name)
        if meta is None:
            orphans.append({"name": name, "file": str(skeleton or video),
                            "reason": f"name is not a {dataset} sample name"})
            continue
        if dataset == "ntu60" and not in_ntu60(meta):
            continue   # an NTU120-only sample in an NTU120 folder: not part of NTU60
        try:
            label = meta["action"] - 1 if dataset.startswith("ntu") else nw_ucla_label(
                meta["action"])
        except ValueError as error:   # e.g. NW-UCLA a07, not one of its 10 classes
            orphans.append({"name": name, "file": str(skeleton or video),
                            "reason": str(error)})
            continue
        if name in ignore:
            ignored += 1
            continue
        if skeleton is None or (video is None and videos):   # a set without videos: no orphans
            missing = "skeleton" if skeleton is None else "video"
            orphans.append({"name": name, "file": str(skeleton or video),
                            "reason": f"no {missing} file"})
        if require == "both" and (skeleton is None or video is None) or (
                require == "skeleton" and skeleton is None) or (
                require == "video" and video is None):
            continue
        samples.append(Sample(id=name, dataset=dataset, label=label,
                              skeleton=str(skeleton.resolve()) if skeleton else None,
                              video=str(video.resolve()) if video else None, meta=meta))
    return samples, orphans, ignored


def _read_csv(path: Path, label_base: int = 0) -> list[Sample]:
    """``id,label,skeleton,video[,split]``; relative paths are relative to the CSV file;
    labels count from ``label_base`` (stored from 0)."""
    base = path.parent
    samples, seen = [], set()
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in ("id", "label", "skeleton", "video") if c not in columns]
        if missing:
            raise DataError(f"missing column(s) {missing}; expected id,label,skeleton,video"
                            "[,split]", path=str(path), line=1)
        for line_number, row in enumerate(reader, start=2):
            sample_id = (row["id"] or "").strip()
            if not sample_id:
                raise DataError("empty id", path=str(path), line=line_number)
            if sample_id in seen:
                raise DataError(f"duplicate id {sample_id!r}", path=str(path), line=line_number)
            seen.add(sample_id)
            try:
                label = int(row["label"])
            except (TypeError, ValueError):
                raise DataError(f"label {row['label']!r} is not an integer", path=str(path),
                                line=line_number) from None
            if label < label_base:
                raise DataError(f"label {label} is " + ("negative" if label_base == 0 else
                                                        f"below the label base {label_base}"),
                                path=str(path), line=line_number)
            label -= label_base
            paths = {}
            for key in ("skeleton", "video"):
                value = (row.get(key) or "").strip()
                if value:
                    resolved = (base / value).resolve()
                    if not resolved.is_file():
                        raise DataError(f"{key} file {value} does not exist", path=str(path),
                                        line=line_number)
                    paths[key] = str(resolved)
                else:
                    paths[key] = None
            if paths["skeleton"] is None and paths["video"] is None:
                raise DataError("neither a skeleton nor a video", path=str(path),
                                line=line_number)
            split = (row.get("split") or "").strip() or None
            if split is not None and split not in ("train", "test"):
                raise DataError(f"split {split!r} must be 'train' or 'test'", path=str(path),
                                line=line_number)
            samples.append(Sample(id=sample_id, dataset="csv", label=label, split=split,
                                  **paths))
    return samples


def build_manifest(dataset: str, root: str | os.PathLike, workdir: str | os.PathLike, *,
                   video_root: str | os.PathLike | None = None, require: str = "skeleton",
                   ignore_list: str | os.PathLike | None = None,
                   shard_size: int = DEFAULT_SHARD_SIZE, overwrite: bool = False,
                   layout: str | os.PathLike | None = None,
                   from_layout: str | os.PathLike | None = None,
                   joint_map: str | os.PathLike | None = None,
                   classes: str | os.PathLike | None = None, label_base: int = 0,
                   channels: str | None = None, max_persons: int | None = None,
                   split: str | None = None, progress: bool = False) -> ManifestReport:
    """Write WORKDIR's manifest and settings (see :func:`resolve_settings` for the
    layout, joint mapping, class names, channels and persons options; pyskl files:
    :mod:`pipeline.manifest_pyskl`, ``split`` their default split)."""
    dataset_info(dataset)   # unknown dataset names fail here
    if require not in REQUIRE_CHOICES:
        raise ValueError(f"require must be one of {REQUIRE_CHOICES}, not {require!r}")
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    root, workdir = Path(root), Path(workdir)
    if not root.exists():
        raise DataError("does not exist", path=str(root))
    if split is not None and dataset != "pyskl":
        raise DataError(f"--split is for pyskl files; {dataset} data has its own protocols")
    pyskl: PysklImport | None = None
    if dataset in ("csv", "pyskl") and not root.is_file():
        raise DataError(f"for {dataset} data, ROOT is the {dataset.upper()} file",
                        path=str(root))
    if dataset == "pyskl":
        if video_root is not None:
            raise DataError("--video-root: a pyskl file has no videos", path=str(root))
        pyskl = prepare_pyskl(root, workdir, split=split, layout=layout,
                              from_layout=from_layout, joint_map=joint_map, classes=classes,
                              label_base=label_base, channels=channels,
                              max_persons=max_persons,
                              ignore=_read_ignore_list(ignore_list, stems=False),
                              progress=progress)
        samples, orphans, ignored = pyskl.samples, [], pyskl.ignored
    elif dataset == "csv":
        samples, orphans, ignored = _read_csv(root, label_base), [], 0
    else:
        if not root.is_dir():
            raise DataError("is not a directory", path=str(root))
        samples, orphans, ignored = _pair(dataset, root, Path(video_root or root), require,
                                          _read_ignore_list(ignore_list))
    if not samples:
        raise DataError(f"no {dataset} samples found", path=str(root))
    settings = pyskl.settings if pyskl else resolve_settings(
        dataset, samples, layout=layout, from_layout=from_layout, joint_map=joint_map,
        classes=classes, label_base=label_base, channels=channels, max_persons=max_persons)
    protocol = pyskl.protocol if pyskl else None
    notes = pyskl.notes if pyskl else []
    info = WorkdirInfo(dataset=dataset, source_root=str(root.resolve()), manifest_digest="",
                       num_samples=len(samples), shard_size=shard_size,
                       layout=settings.layout.name if settings.layout else None,
                       channels=settings.channels, max_persons=settings.max_persons,
                       protocol=protocol)

    existing = workdir / WORKDIR_FILE
    if existing.is_file():
        old = Workdir(workdir).info
        if old.dataset != dataset:
            raise DataError(f"this WORKDIR was made for {old.dataset}, not {dataset}; use "
                            "another WORKDIR", path=str(workdir))
    tmp_manifest = workdir / ".manifest.jsonl.new"
    manifest_path = workdir / MANIFEST_FILE
    workdir.mkdir(parents=True, exist_ok=True)
    digest = write_manifest(samples, tmp_manifest)
    if existing.is_file():
        old_workdir = Workdir(workdir)
        old = old_workdir.info
        changed = settings.differences(recorded_settings(old_workdir))
        if old.manifest_digest == digest and old.shard_size == shard_size and not changed:
            tmp_manifest.unlink()
            if pyskl:
                pyskl.write_arrays(workdir, only_missing=True, progress=progress)
            if old.protocol != protocol:     # the default protocol alone: no cache uses it
                Workdir.write_info(workdir, dataclasses.replace(info, manifest_digest=digest))
            return ManifestReport(workdir, len(samples), orphans, ignored, unchanged=True,
                                  settings=settings, splits=describe_splits(samples),
                                  notes=notes)
        # the manifest on disk already being the new one means an earlier run was stopped
        # between writing it and WORKDIR_FILE: no cache was built for it, so just finish
        finishing = old.manifest_digest != digest and manifest_path.is_file() \
            and manifest_digest(manifest_path) == digest
        if not overwrite and not finishing:
            tmp_manifest.unlink()
            what = "a different manifest (other files or shard size)" if not changed else \
                f"other settings ({', '.join(changed)})"
            raise DataError(f"this WORKDIR already has {what}; its caches were built for "
                            "it. Pass --overwrite to replace it (existing caches will then be "
                            "refused as stale; after a change of shard size alone, every "
                            "shard is redone)", path=str(workdir))
    if pyskl:
        pyskl.write_arrays(workdir, progress=progress)
    publish(tmp_manifest, manifest_path)
    write_text_atomic(workdir / ORPHANS_FILE,
                      "".join(json.dumps(orphan) + "\n" for orphan in orphans))
    settings.write(workdir)
    Workdir.write_info(workdir, dataclasses.replace(info, manifest_digest=digest))
    return ManifestReport(workdir, len(samples), orphans, ignored, settings=settings,
                          splits=describe_splits(samples), notes=notes)
