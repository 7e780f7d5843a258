"""A CSV of frames: one row per frame (and person), one column per joint coordinate.

::

    frame,person,head_x,head_y,head_z,neck_x,neck_y,neck_z,...
    0,0,0.12,1.53,3.02,...

Joint columns are ``<joint>_<axis>`` with the joint names of the layout the file is stored
in and the axes ``x, y`` (2-D), ``x, y, z`` (3-D) or ``x, y, score`` (2-D with confidence),
the same for every joint; their order does not matter. ``frame`` (integers; missing frames
are empty) and ``person`` (any id; persons are numbered in order of appearance) are
optional: without ``frame`` each person's rows are its frames in order; without ``person``
there is one person. An empty cell is a missing joint (zeros, like padding). Other columns
are ignored.
"""

from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.arrays import as_sequence

AXES = {("x", "y"): "xy", ("x", "y", "z"): "xyz", ("x", "y", "score"): "xy-score"}


def read_frames_csv(path: str | os.PathLike, joints: Sequence[str]) -> np.ndarray:
    """(T, M, V, C) float32 in the order of ``joints``."""
    path = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise DataError("empty CSV file", path=path)
            rows = list(reader)
    except FileNotFoundError:
        raise DataError("skeleton file not found", path=path) from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read the CSV file ({error})", path=path) from None
    header = [name.strip() for name in header]
    columns = {name: i for i, name in enumerate(header)}
    axes = _axes(header, joints, path)
    wanted = [columns[f"{joint}_{axis}"] for joint in joints for axis in axes]
    frame_col, person_col = columns.get("frame"), columns.get("person")
    if not rows:
        raise DataError("the CSV file has a header but no frames", path=path)

    persons: dict[str, int] = {}
    frames_seen: dict[int, int] = {}
    entries = []
    for line, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise DataError(f"{len(row)} values, the header has {len(header)}", path=path,
                            line=line)
        person = persons.setdefault(row[person_col].strip() if person_col is not None
                                    else "", len(persons))
        if frame_col is None:
            frame = frames_seen.get(person, 0)
            frames_seen[person] = frame + 1
        else:
            try:
                frame = int(row[frame_col])
            except ValueError:
                raise DataError(f"frame {row[frame_col]!r} is not an integer", path=path,
                                line=line) from None
        try:
            values = [float(row[i]) if row[i].strip() else 0.0 for i in wanted]
        except ValueError:
            bad = next(header[i] for i in wanted if row[i].strip() and not _is_number(row[i]))
            raise DataError(f"column {bad}: {row[columns[bad]]!r} is not a number", path=path,
                            line=line) from None
        entries.append((frame, person, line, values))

    first = min(frame for frame, *_ in entries)
    last = max(frame for frame, *_ in entries)
    array = np.zeros((last - first + 1, len(persons), len(joints), len(axes)), np.float32)
    filled = np.zeros(array.shape[:2], dtype=bool)
    for frame, person, line, values in entries:
        if filled[frame - first, person]:
            raise DataError(f"a second row for frame {frame} of the same person", path=path,
                            line=line)
        filled[frame - first, person] = True
        array[frame - first, person] = np.asarray(values).reshape(len(joints), len(axes))
    return as_sequence(array, path, "CSV data")


def _axes(header: list[str], joints: Sequence[str], path: str) -> tuple[str, ...]:
    present = set(header)

    def lacking(axis: str) -> list[str]:
        return [f"{joint}_{axis}" for joint in joints if f"{joint}_{axis}" not in present]

    missing = [f"{joint}_{axis}" for joint in joints for axis in ("x", "y")
               if f"{joint}_{axis}" not in present]
    if missing:
        known = {f"{joint}_{axis}" for joint in joints for axis in ("x", "y", "z", "score")}
        unused = [name for name in header if name not in known | {"frame", "person"}]
        raise DataError(f"no column for {', '.join(missing[:8])}"
                        + (f" (and {len(missing) - 8} more)" if len(missing) > 8 else "")
                        + "; joint columns are <joint>_x, <joint>_y[, <joint>_z or "
                          "<joint>_score] with the layout's joint names"
                        + (f" (unused columns: {', '.join(unused[:8])})" if unused else ""),
                        path=path, line=1)
    third = [axis for axis in ("z", "score") if len(lacking(axis)) < len(joints)]
    if len(third) > 1:
        raise DataError("both z and score columns: give x, y, z or x, y, score", path=path,
                        line=1)
    if third and lacking(third[0]):
        raise DataError(f"{third[0]} columns for some joints only; missing: "
                        f"{', '.join(lacking(third[0])[:8])}", path=path, line=1)
    return ("x", "y", *third)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
