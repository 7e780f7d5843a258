"""Decode chosen frames exactly, decoding only from the key frame before each (PyAV).

First a packet index: one pass over the file that demuxes without decoding (a few ms for
an NTU clip) and keeps each packet's presentation timestamp (pts) and key-frame flag.
Frame ``i`` is the packet with the i-th smallest pts: the i-th frame that decoding every
frame gives, since each packet holds one picture (as in NTU's files and whatever FFmpeg's
encoders write). To produce frame ``i`` the reader decodes from the last key frame before
it (in decode order, shown no later than it) up to it, and passes over every other packet
by demuxing alone; stretches that meet are decoded once. NTU's files have a key frame
every 12 frames, so 5 frames of a 103-frame clip cost 25 decoded frames instead of 103.

Each decoded stretch is checked against the index: every packet fed must give one
picture, in pts order, and the key frame it starts at must decode as one. A stream that
breaks the rules (packets without timestamps, timestamps in decode order for reordered
pictures as AVI stores H.264 with B-frames, a packet that gives no picture, a false
key-frame flag, discarded packets, ...) is decoded from its first frame instead, which
is exact by definition. A flaw in a stretch that is never decoded goes unseen; no file we
know of has one. Frames are converted to BGR by FFmpeg's swscale, as OpenCV's
``VideoCapture`` does (bit-identical to OpenCV's frames on NTU's files and on the formats
the tests write).
"""

from __future__ import annotations

import heapq
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator

import av
import numpy as np

from data_manifest.errors import DataError
from pipeline.video.reader import VideoInfo, check_video_file, undecodable_frame
from pipeline.video.selection import nearest_keyframes


def _bgr(picture: av.VideoFrame) -> np.ndarray:
    # one thread: a frame converts in about 1 ms, and more threads only wait for each
    # other on a busy machine (PyAV's default is one per CPU)
    return picture.to_ndarray(format="bgr24", threads=1)


class IndexMismatch(Exception):
    """The stream does not decode the way its packet index says (decode it all instead)."""


@dataclass(frozen=True)
class PacketIndex:
    """The video stream's packets in decode order: pts and key-frame flag of each."""

    pts: np.ndarray          # int64, one per packet
    keyframe: np.ndarray     # bool

    @property
    def frame_count(self) -> int:
        return len(self.pts)

    @cached_property
    def position_of_frame(self) -> np.ndarray:
        """Frame index -> decode position (frames are in pts order)."""
        return np.argsort(self.pts, kind="stable")

    @cached_property
    def sorted_pts(self) -> np.ndarray:
        return self.pts[self.position_of_frame]

    def frame_of_pts(self, pts: int) -> int | None:
        frame = int(np.searchsorted(self.sorted_pts, pts))
        return frame if frame < len(self.pts) and self.sorted_pts[frame] == pts else None

    @cached_property
    def keyframe_frames(self) -> tuple[int, ...]:
        """Frame indices of the key frames, increasing."""
        frame_of_position = np.empty(len(self.pts), dtype=np.int64)
        frame_of_position[self.position_of_frame] = np.arange(len(self.pts))
        return tuple(sorted(frame_of_position[self.keyframe].tolist()))

    def start_of(self, frame: int) -> int:
        """Decode position of the key frame to start from for ``frame``: the last one
        decoded no later than it and shown no later than it."""
        position = int(self.position_of_frame[frame])
        target_pts = self.pts[position]
        keys = np.flatnonzero(self.keyframe[:position + 1])
        usable = keys[self.pts[keys] <= target_pts]
        if not len(usable):
            raise IndexMismatch(f"no key frame before frame {frame}")
        return int(usable[-1])


def build_packet_index(container: av.container.InputContainer,
                       stream: av.video.stream.VideoStream) -> PacketIndex | None:
    """The index of ``stream``, or None where packets cannot be told apart by pts."""
    pts, keyframe = [], []
    for packet in container.demux(stream):
        if not packet.size:           # the end-of-stream marker
            continue
        if packet.pts is None or packet.is_discard:
            return None
        pts.append(packet.pts)
        keyframe.append(packet.is_keyframe)
    pts_array = np.array(pts, dtype=np.int64)
    if len(np.unique(pts_array)) != len(pts_array):
        return None
    if stream.codec_context.has_b_frames and (np.diff(pts_array) > 0).all():
        return None     # pictures are reordered, so these are decode-order stamps (AVI)
    return PacketIndex(pts_array, np.array(keyframe, dtype=bool))


class IndexedVideoReader:
    """A video opened with PyAV for reading selected frames (see the module docstring).

    The same interface as :class:`pipeline.video.VideoReader`: ``info``, ``frames(indices)``
    (``(index, BGR uint8 frame)`` in increasing order), ``count_frames()``, plus
    ``nearest_keyframes(indices)``. ``threads``: FFmpeg decoding threads (None: FFmpeg's
    choice, one per CPU).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        check_video_file(path)
        self.path = str(path)
        self.threads = threads
        self._container, self._stream = self._open()
        context, rate = self._stream.codec_context, self._stream.average_rate
        self.info = VideoInfo(frame_count=max(int(self._stream.frames), 0),
                              width=int(context.width), height=int(context.height),
                              fps=float(rate) if rate else 0.0)
        self.packets_decoded = 0      # packets sent to the decoder (for benchmarks)
        self._demuxed = False         # the container was read from: reopen to start over

    def _open(self):
        try:
            container = av.open(self.path)
        except av.error.FFmpegError as error:
            raise DataError("cannot open as a video (corrupt file or unsupported format: "
                            f"{error})", path=self.path) from error
        stream = container.streams.best("video")
        if stream is None:
            container.close()
            raise DataError("the file has no video stream", path=self.path)
        context = stream.codec_context
        if self.threads == 1:
            context.thread_count = 1
        else:
            context.thread_type = "AUTO"
            context.thread_count = self.threads or 0
        return container, stream

    @cached_property
    def packet_index(self) -> PacketIndex | None:
        container, stream = self._open()
        try:
            return build_packet_index(container, stream)
        except av.error.FFmpegError:   # damaged past some point: decoding will tell where
            return None
        finally:
            container.close()

    def count_frames(self) -> int:
        """Frames in the file (from the packet index; by decoding when there is none)."""
        if self.packet_index is not None:
            return self.packet_index.frame_count
        return sum(1 for _ in self._pictures_from_start())

    def keyframes(self) -> tuple[int, ...] | None:
        """Frame indices of the key frames (None when the stream has no usable index)."""
        index = self.packet_index
        return None if index is None else index.keyframe_frames

    def nearest_keyframes(self, indices: Iterable[int], max_distance: int) -> tuple[int, ...]:
        """Each index moved to the nearest key frame at most ``max_distance`` away (the
        earlier one on a tie), or kept; a DataError for an index past the last frame."""
        indices = tuple(int(i) for i in indices)
        keyframes = self.keyframes()
        if keyframes is None:
            return indices
        for frame in indices:
            if frame >= self.packet_index.frame_count:
                raise undecodable_frame(frame, self.info.frame_count, self.path)
        return nearest_keyframes(indices, keyframes, max_distance)

    def frames(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        targets = sorted(set(int(i) for i in indices))
        if not targets:
            return
        if targets[0] < 0:
            raise ValueError(f"frame index {targets[0]} is negative")
        index = self.packet_index
        reachable = targets if index is None else [t for t in targets
                                                   if t < index.frame_count]
        done = set()
        try:
            if index is None:
                raise IndexMismatch("no packet index")
            for frame, image in self._decode_from_keyframes(reachable, index):
                done.add(frame)
                yield frame, image
        except IndexMismatch:
            yield from self._decode_everything([t for t in reachable if t not in done])
        if len(reachable) < len(targets):
            raise undecodable_frame(targets[len(reachable)], self.info.frame_count,
                                    self.path)

    def _decode_from_keyframes(self, targets: list[int], index: PacketIndex):
        starts = [index.start_of(t) for t in targets]
        if starts != sorted(starts):
            raise IndexMismatch("key frames out of order")
        ends = [int(index.position_of_frame[t]) for t in targets]
        container, stream = self._from_the_start()
        context = stream.codec_context
        wanted = set(targets)
        joined = 0            # targets whose stretch has begun
        emitted = 0
        last_needed = -1      # the last packet the current stretch must decode
        stretch_pts = None    # pts of the key frame the current stretch began at
        pending = []          # frames fed in this stretch, not out yet (a heap)

        def emit(pictures):
            nonlocal emitted
            for picture in pictures:
                if picture.pts is None:
                    raise IndexMismatch("a picture without a timestamp")
                if picture.pts < stretch_pts:
                    continue    # shown before the key frame we started at: not needed
                if picture.pts == stretch_pts and not picture.key_frame:
                    raise IndexMismatch("a packet flagged as a key frame is not one")
                frame = index.frame_of_pts(picture.pts)
                if not pending or heapq.heappop(pending) != frame:
                    raise IndexMismatch(f"frame {frame} came out of turn")
                if frame in wanted:
                    emitted += 1
                    yield frame, _bgr(picture)

        position = -1
        try:
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                position += 1
                if position >= index.frame_count or packet.pts != index.pts[position]:
                    raise IndexMismatch("the packets differ from the index")
                began = joined
                while joined < len(targets) and starts[joined] <= position:
                    last_needed = max(last_needed, ends[joined])
                    joined += 1
                if stretch_pts is None:
                    if joined == began:
                        continue               # between stretches: demux only
                    context.flush_buffers()
                    stretch_pts = packet.pts
                if packet.pts >= stretch_pts:
                    heapq.heappush(pending, index.frame_of_pts(packet.pts))
                self.packets_decoded += 1
                yield from emit(context.decode(packet))
                next_start = starts[joined] if joined < len(targets) else None
                if position >= last_needed and (next_start is None
                                                or next_start > position + 1):
                    yield from emit(context.decode(None))     # drain, then stop decoding
                    stretch_pts = None
                    if pending or emitted < joined:
                        raise IndexMismatch("a packet gave no picture")
                    if next_start is None:
                        return
        except av.error.FFmpegError as error:
            raise DataError(f"cannot decode the video ({error})", path=self.path) from error
        if emitted < len(targets):
            raise IndexMismatch("the stream ended before the chosen frames")

    def _from_the_start(self):
        """The reader's container and stream, at the start of the file (opened again if an
        earlier call read from it: demuxing only goes forward)."""
        if self._demuxed:
            self._container.close()
            self._container, self._stream = self._open()
        self._demuxed = True
        return self._container, self._stream

    def _decode_everything(self, targets: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Decode from the first frame, counting pictures: the reference, always exact."""
        pending = sorted(targets, reverse=True)
        if not pending:
            return
        for frame, picture in enumerate(self._pictures_from_start()):
            if frame == pending[-1]:
                pending.pop()
                yield frame, _bgr(picture)
                if not pending:
                    return
        if pending:
            raise undecodable_frame(pending[-1], self.info.frame_count, self.path)

    def _pictures_from_start(self):
        container, stream = self._open()
        try:
            for packet in container.demux(stream):
                self.packets_decoded += bool(packet.size)
                yield from packet.decode()       # the last, empty packet drains
        except av.error.FFmpegError as error:
            raise DataError(f"cannot decode the video ({error})", path=self.path) from error
        finally:
            container.close()

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "IndexedVideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
