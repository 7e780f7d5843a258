"""Tiny videos and WORKDIRs for the frames/stitch tests.

Every generated frame carries its own index as a strip of black/white blocks along the
top (read back with :func:`read_index`, robust to JPEG), and may show an "actor": a
coloured rectangle whose corners and centre are given as colour-image joint coordinates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import FRAMES, SKELETONS
from data_manifest.workdir import Workdir, WorkdirInfo

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
NTU_DIR = SHARED / "data" / "ntu"
REAL_WITH_SKELETON = "S001C001P001R001A001"
REAL_VIDEO_ONLY = ("S001C001P001R001A002", "S018C001P008R001A062")

BLOCK = 8
CODE_BITS = 10
BACKGROUND = 90
ACTOR_BGR = (40, 40, 230)

Box = tuple[int, int, int, int]


def indexed_frame(index: int, size: tuple[int, int], box: Box | None = None) -> np.ndarray:
    width, height = size
    frame = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    for bit in range(CODE_BITS):
        value = 255 if (index >> bit) & 1 else 0
        frame[0:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = value
    if box is not None:
        x0, y0, x1, y1 = box
        frame[y0:y1, x0:x1] = ACTOR_BGR
    return frame


def read_index(image: np.ndarray) -> int:
    """The index coded in a full frame's top strip."""
    centre = BLOCK // 2
    bits = [image[centre, bit * BLOCK + centre].mean() > 128 for bit in range(CODE_BITS)]
    return sum(1 << bit for bit, on in enumerate(bits) if on)


def write_video(path: Path, num_frames: int, size: tuple[int, int] = (160, 120), *,
                boxes: Sequence[Box | None] | None = None, fourcc: str = "MJPG",
                fps: float = 30.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cannot write {fourcc} video"
    for index in range(num_frames):
        writer.write(indexed_frame(index, size, boxes[index] if boxes else None))
    writer.release()
    return path


def moving_boxes(num_frames: int, size: tuple[int, int] = (160, 120)) -> list[Box]:
    """An actor box that walks left to right, staying inside the frame."""
    width, height = size
    boxes = []
    for index in range(num_frames):
        x0 = 20 + (index * 3) % (width - 60)
        boxes.append((x0, 30, x0 + 30, 100))
    return boxes


def box_skeleton(boxes: Sequence[Box]) -> np.ndarray:
    """Colour coordinates (T, 1, V, 2) of one actor standing in ``boxes[t]``."""
    return np.stack([box_joints(box)[None] for box in boxes]).astype(np.float32)


def box_joints(box: Box, num_joints: int = 25) -> np.ndarray:
    """(V, 2) joint coordinates on the box's corners, centre and edges (inside it)."""
    x0, y0, x1, y1 = box
    xs = np.linspace(x0, x1 - 1, 5)
    ys = np.linspace(y0, y1 - 1, 5)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return np.resize(grid, (num_joints, 2)).astype(np.float32)


def skeleton_values(color_xy: np.ndarray, frame_index: Sequence[int] | None = None,
                    source_frames: int | None = None) -> dict:
    """Skeleton-cache fields for colour coordinates (T, M, V, 2)."""
    color_xy = np.asarray(color_xy, dtype=np.float32)
    frames = len(color_xy)
    if frame_index is None:
        frame_index = np.arange(frames)
    frame_index = np.asarray(frame_index, dtype=np.int32)
    return {
        "joints": np.zeros(color_xy.shape[:3] + (3,), dtype=np.float32),
        "color_xy": color_xy,
        "frame_index": frame_index,
        "source_frames": int(source_frames if source_frames is not None
                             else (frame_index.max() + 1 if len(frame_index) else 0)),
        "num_actors": int(color_xy.shape[1]),
    }


def make_workdir(root: Path, samples: Sequence[Sample], shard_size: int = 2,
                 dataset: str = "csv") -> Workdir:
    root.mkdir(parents=True, exist_ok=True)
    digest = write_manifest(samples, root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo(dataset, str(root), digest, len(samples),
                                         shard_size, layout="ntu"))
    return Workdir(root)


def write_skeleton_cache(workdir: Workdir, values: dict[str, dict], *,
                         failures: dict[str, str] | None = None, name: str = "default",
                         params: dict | None = None) -> str:
    """A skeletons cache written directly with the store; returns its fingerprint."""
    spec = workdir.spec(SKELETONS, params or {"factory": 1})
    cache = workdir.cache_dir(SKELETONS, name)
    cache.prepare(spec)
    failures = failures or {}
    for index in range(workdir.num_shards):
        with cache.shard_writer(spec, index) as writer:
            for sample in workdir.shard_samples(index):
                if sample.id in values:
                    writer.add(sample.id, values[sample.id])
                else:
                    writer.fail(sample.id, failures.get(sample.id, "no skeleton file"))
    return spec.fingerprint


def write_frames_cache(workdir: Workdir, crops: dict[str, Sequence[bytes]], *,
                       num_frames: int, name: str = "default",
                       sources: dict[str, Sequence[str]] | None = None) -> str:
    """A frames cache written directly with the store (only the fields stitch reads), so
    records can be damaged at will; samples without crops are failures. ``sources``: the
    crop_source of a sample's crops (default: all "skeleton"). Its fingerprint."""
    spec = workdir.spec(FRAMES, {"num_frames": num_frames, "factory": 1})
    cache = workdir.cache_dir(FRAMES, name)
    cache.prepare(spec)
    for index in range(workdir.num_shards):
        with cache.shard_writer(spec, index) as writer:
            for sample in workdir.shard_samples(index):
                if sample.id not in crops:
                    writer.fail(sample.id, "video not found")
                    continue
                jpegs = list(crops[sample.id])
                writer.add(sample.id, {
                    "jpeg": np.frombuffer(b"".join(jpegs), dtype=np.uint8),
                    "jpeg_lengths": np.array([len(j) for j in jpegs], dtype=np.int64),
                    "crop_source": list((sources or {}).get(sample.id,
                                                            ["skeleton"] * len(jpegs)))})
    return spec.fingerprint


def sample(sample_id: str, video: Path | None, skeleton: bool = True, label: int = 0,
           split: str = "train") -> Sample:
    return Sample(id=sample_id, dataset="csv", label=label, split=split,
                  skeleton=f"/nowhere/{sample_id}.skeleton" if skeleton else None,
                  video=str(video) if video is not None else None)


def encode_video(path: Path, num_frames: int, *, codec: str = "mpeg4", gop: int = 12,
                 bframes: int = 0, size: tuple[int, int] = (160, 120),
                 options: dict[str, str] | None = None,
                 boxes: Sequence[Box | None] | None = None) -> Path:
    """A video written with PyAV (key frame every ``gop`` frames, up to ``bframes``
    B-frames in a row): indexed frames over a texture that moves, so that every frame
    differs from its neighbours all over and a frame decoded from the wrong reference
    shows it; an actor in ``boxes[i]`` as in :func:`write_video`."""
    import av
    width, height = size
    texture = np.random.default_rng(0).integers(0, 255, (height, 2 * width, 3), np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = bframes
        for index in range(num_frames):
            shift = (3 * index) % width
            image = texture[:, shift:shift + width].copy()
            image[:BLOCK] = indexed_frame(index, size)[:BLOCK]
            if boxes is not None and boxes[index] is not None:
                x0, y0, x1, y1 = boxes[index]
                image[y0:y1, x0:x1] = ACTOR_BGR
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame of a video, in order, decoded one after another with PyAV: the
    reference the readers must match bit for bit."""
    import av
    with av.open(str(path)) as container:
        return [picture.to_ndarray(format="bgr24")
                for picture in container.decode(container.streams.best("video"))]


def decode_all_opencv(path: Path) -> list[np.ndarray]:
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames
