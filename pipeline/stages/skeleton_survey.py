"""The survey of own skeleton files, recorded in the WORKDIR so it is made once.

Own data whose channels or persons the manifest did not fix takes them from its files:
each file's joints, persons with data and values per joint (:func:`survey_file`). Reading
114k files before every run, resume and process would cost minutes each time, and two
processes surveying files edited in between could settle on different settings. So the
result is recorded in ``WORKDIR/skeleton_survey.json`` with each file's size and mtime:
a later call re-surveys only the files whose size or mtime changed (or that are new),
and processes take turns (an exclusive lock beside the record), so every process of a
run reads the record the first one wrote and settles on the same settings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from data_manifest.formats.load import survey_file
from data_manifest.formats.reading import SkeletonReading
from data_manifest.store import input_stats, write_text_atomic
from pipeline.cache_lock import exclusive_lock

log = logging.getLogger(__name__)
SURVEY_FILE = "skeleton_survey.json"
SURVEY_LOCK_FILE = ".skeleton_survey.lock"
SURVEY_VERSION = 1

Found = tuple[int, int, int] | None     # (joints, persons with data, values per joint)


def _context(reading: SkeletonReading) -> dict[str, Any]:
    """What a file's survey depends on besides the file (how it is read)."""
    layout = reading.stored_layout
    return {"version": SURVEY_VERSION, "dataset": reading.dataset,
            "stored_layout": None if layout is None else layout.digest}


def _load(path: Path, context: dict[str, Any]) -> dict[str, list]:
    """path -> [size, mtime_ns, joints, persons, values] (or [size, mtime_ns] for a file
    that could not be read) from the record; empty if there is none for ``context``."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict) or record.get("context") != context:
        return {}
    files = record.get("files")
    return files if isinstance(files, dict) else {}


def survey_files(workdir_path: str | Path, paths: Sequence[str], reading: SkeletonReading,
                 progress: bool = False) -> list[Found]:
    """:func:`survey_file` of every path, in order, from the WORKDIR's record where the
    file's size and mtime are still those recorded; the others are read (see the module
    docstring)."""
    workdir_path = Path(workdir_path)
    context = _context(reading)
    stats = input_stats(dict.fromkeys(paths))
    with exclusive_lock(workdir_path / SURVEY_LOCK_FILE):
        recorded = _load(workdir_path / SURVEY_FILE, context)
        files: dict[str, list] = {}
        todo = []
        for path, stat in stats.items():
            entry = recorded.get(path)
            if stat is not None and entry is not None and entry[:2] == stat:
                files[path] = entry
            else:
                todo.append(path)
        for path in tqdm(todo, desc="surveying skeleton files", disable=not progress,
                         leave=False):
            found = survey_file(path, reading)
            files[path] = (stats[path] or [None, None]) + (list(found) if found else [])
        if todo or set(recorded) != set(files):
            write_text_atomic(workdir_path / SURVEY_FILE,
                              json.dumps({"context": context, "files": files}))
        if todo:
            log.info("surveyed %d of %d skeleton file(s) (the others are recorded in %s)",
                     len(todo), len(files), workdir_path / SURVEY_FILE)
    return [tuple(files[path][2:]) if len(files[path]) == 5 else None for path in paths]
