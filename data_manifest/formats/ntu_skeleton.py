"""Reader for NTU RGB+D ``.skeleton`` text files (CRLF or LF line ends).

File layout (one value per line unless noted)::

    frame count
    per frame:   body count (0 = the sensor lost everyone in that frame)
      per body:  bodyID clippedEdges handLeftConfidence handLeftState handRightConfidence
                 handRightState isRestricted leanX leanY trackingState      (10 values)
                 joint count (25)
                 25 lines: x y z depthX depthY colorX colorY orientationW orientationX
                           orientationY orientationZ trackingState           (12 values)

The structure (counts) is walked line by line in Python, which is cheap (a few lines per
body and frame); the joint lines, which are 90% of the file, are converted in one call to
numpy's C parser. Only when that fails is the slow per-line check run, to name the line.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.source import read_source_bytes

NUM_JOINTS = 25
BODY_LINE_VALUES = 10
JOINT_LINE_VALUES = 12
# columns of a joint line that are kept: x, y, z, colorX, colorY; the last (trackingState)
# is read too so that a line cut short after colorY is still caught by the fast path.
_USED_COLUMNS = (0, 1, 2, 5, 6, 11)
# bytes that can appear in a well-formed joint block; anything else sends the block to the
# slow path, which names the offending line (so "nan", "1.#INF", "x" are all reported).
_NUMERIC_BYTES = b"0123456789.-+eE \t\n"


@dataclass(frozen=True)
class RawBody:
    """One tracked body as recorded: its frames and per-frame joints."""

    body_id: str
    frames: np.ndarray      # (n,) int32: 0-based indices of the frames the body appears in
    joints: np.ndarray      # (n, 25, 3) float32: camera-space x, y, z in metres
    color_xy: np.ndarray    # (n, 25, 2) float32: colour-image pixel coordinates


@dataclass(frozen=True)
class RawSkeleton:
    """The content of one ``.skeleton`` file, bodies in order of first appearance."""

    path: str
    num_frames: int          # frame count declared on line 1 (includes empty frames)
    bodies: tuple[RawBody, ...]


class _Lines:
    """The file's lines with 1-based error reporting."""

    def __init__(self, data: bytes, path: str):
        self.path = path
        lines = data.splitlines()
        end = len(lines)
        while end and not lines[end - 1].strip():
            end -= 1          # trailing blank lines are harmless
        self.lines = lines
        self.end = end

    def error(self, index: int, message: str) -> DataError:
        return DataError(message, path=self.path, line=index + 1)

    def count(self, index: int, what: str) -> int:
        if index >= self.end:
            raise self.error(index, f"file ends early: expected the {what}")
        text = self.lines[index].strip()
        if not text.isdigit():
            raise self.error(index, f"expected the {what} (a whole number), found "
                                    f"{_show(self.lines[index])}")
        return int(text)


def read_ntu_skeleton(path: str | os.PathLike) -> RawSkeleton:
    """Parse one ``.skeleton`` file; bad input raises :class:`DataError` naming file and line."""
    path = os.fspath(path)
    data = read_source_bytes(path)
    return parse_ntu_skeleton(data, path)


def parse_ntu_skeleton(data: bytes, path: str = "<bytes>") -> RawSkeleton:
    lines = _Lines(data, path)
    if lines.end == 0:
        raise DataError("empty skeleton file", path=path)
    num_frames = lines.count(0, "frame count")
    if num_frames == 0:
        raise lines.error(0, "the frame count is 0: no skeleton data")

    block_starts: list[int] = []       # line index of each body's first joint line
    block_frames: list[int] = []
    block_bodies: list[int] = []       # index into body_index (order of first appearance)
    body_index: dict[bytes, int] = {}
    seen_in_frame: set[bytes] = set()
    position = 1
    for frame in range(num_frames):
        num_bodies = lines.count(position, f"body count of frame {frame + 1} of {num_frames}")
        position += 1
        seen_in_frame.clear()
        for body in range(num_bodies):
            where = f"body {body + 1} of frame {frame + 1}"
            if position >= lines.end:
                raise lines.error(position, f"file ends early: expected the {where}")
            info = lines.lines[position].split()
            if len(info) != BODY_LINE_VALUES:
                raise lines.error(position, f"expected {BODY_LINE_VALUES} values describing "
                                            f"{where}, found {len(info)}")
            body_id = info[0]
            if body_id in seen_in_frame:
                raise lines.error(position, f"body {body_id.decode(errors='replace')} appears "
                                            f"twice in frame {frame + 1}")
            seen_in_frame.add(body_id)
            position += 1
            num_joints = lines.count(position, f"joint count of {where}")
            if num_joints != NUM_JOINTS:
                raise lines.error(position, f"{where} has {num_joints} joints; NTU skeletons "
                                            f"have {NUM_JOINTS}")
            position += 1
            if position + NUM_JOINTS > lines.end:
                raise lines.error(lines.end, f"file ends early: {where} should have "
                                             f"{NUM_JOINTS} joint lines from line "
                                             f"{position + 1}")
            block_starts.append(position)
            block_frames.append(frame)
            block_bodies.append(body_index.setdefault(body_id, len(body_index)))
            position += NUM_JOINTS
    if position < lines.end:
        raise lines.error(position, f"unexpected content after the last of the {num_frames} "
                                    "frames: the frame or body counts do not match the data")
    if not block_starts:
        raise DataError(f"no body in any of the {num_frames} frames", path=path)

    values = _joint_values(lines, block_starts)          # (K, 25, 6)
    frames = np.asarray(block_frames, dtype=np.int32)
    owners = np.asarray(block_bodies, dtype=np.int32)
    bodies = []
    for body_id, index in body_index.items():
        chosen = np.flatnonzero(owners == index)
        block = values[chosen]
        bodies.append(RawBody(body_id=body_id.decode("ascii", errors="replace"),
                              frames=frames[chosen],
                              joints=np.ascontiguousarray(block[..., 0:3]),
                              color_xy=np.ascontiguousarray(block[..., 3:5])))
    return RawSkeleton(path=path, num_frames=num_frames, bodies=tuple(bodies))


def _joint_values(lines: _Lines, block_starts: list[int]) -> np.ndarray:
    """x, y, z, colorX, colorY, trackingState of every joint line: (K, 25, 6) float32."""
    joint_lines: list[bytes] = []
    for start in block_starts:
        joint_lines.extend(lines.lines[start:start + NUM_JOINTS])
    text = b"\n".join(joint_lines)
    expected_rows = len(joint_lines)
    table = None
    if not text.translate(None, _NUMERIC_BYTES) and _has_all_values(text, expected_rows):
        try:
            table = np.loadtxt(io.StringIO(text.decode("ascii")), dtype=np.float32,
                               usecols=_USED_COLUMNS, comments=None, ndmin=2)
        except ValueError:
            table = None
        if table is not None and table.shape[0] != expected_rows:
            table = None
    if table is None:
        table = _joint_values_slowly(lines, block_starts)
    table = table.reshape(len(block_starts), NUM_JOINTS, len(_USED_COLUMNS))
    if not np.isfinite(table[..., 0:3]).all():
        block, joint = np.argwhere(~np.isfinite(table[..., 0:3]).all(axis=2))[0]
        raise lines.error(block_starts[block] + joint, "joint position is not a finite number")
    colour = table[..., 3:5]
    colour[~np.isfinite(colour)] = np.nan     # an unknown pixel position, not an error
    return table


def _has_all_values(text: bytes, rows: int) -> bool:
    """Whether the lines hold rows * 12 values and none has fewer than 12.

    With single spaces (as NTU writes them), 11 * rows spaces means that every line has
    12 values, or that a line with more is made up for by one with fewer, which then fails
    in loadtxt (its last used column is the 12th). Other spacing is counted token by token.
    """
    if text.count(b" ") == (JOINT_LINE_VALUES - 1) * rows:
        return True
    return len(text.split()) == JOINT_LINE_VALUES * rows


def _joint_values_slowly(lines: _Lines, block_starts: list[int]) -> np.ndarray:
    """Per-line check and conversion; raises on the first bad line."""
    rows = []
    for start in block_starts:
        for index in range(start, start + NUM_JOINTS):
            tokens = lines.lines[index].split()
            if len(tokens) != JOINT_LINE_VALUES:
                raise lines.error(index, f"expected {JOINT_LINE_VALUES} values on a joint "
                                         f"line, found {len(tokens)}")
            try:
                numbers = [float(token) for token in tokens]
            except ValueError:
                bad = next(t for t in tokens if not _is_float(t))
                raise lines.error(index, f"{_show(bad)} is not a number") from None
            rows.append([numbers[c] for c in _USED_COLUMNS])
    return np.asarray(rows, dtype=np.float32)


def _is_float(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _show(raw: bytes, limit: int = 60) -> str:
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return "an empty line"
    return repr(text if len(text) <= limit else text[:limit] + "...")
