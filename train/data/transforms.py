"""Array transforms of skeleton sequences, written to behave like CTR-GCN's feeders.

Arrays are ``(C, T, V, M)`` (channels, frames, joints, persons) unless a function says
otherwise; they are NumPy float32. Random transforms take a ``numpy.random.Generator`` so a
sample's augmentation depends only on the seed it was given (see ``sample_rng``), not on
which DataLoader worker or process produced it.

Channels are positions (x, y, z / x, y), optionally followed by a confidence score
(``xy-score``): geometric transforms move the positions only. A person that is all zeros
in a frame is padding (absent): it is never shifted, scaled or counted in a normalisation.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from data_manifest.formats.reading import CHANNELS, SPATIAL_DIMS
from data_manifest.layouts import Layout


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one sample of one epoch: reproducible, independent of workers."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


def presence(points: np.ndarray) -> np.ndarray:
    """(T, M) bool of ``(T, M, V, C)`` points: the persons with data in each frame."""
    return np.any(points != 0, axis=(2, 3))


def score_channel(channels: str) -> int | None:
    """Index of the confidence channel (``xy-score``), else None."""
    return SPATIAL_DIMS[channels] if CHANNELS[channels] > SPATIAL_DIMS[channels] else None


def to_ctvm(joints: np.ndarray) -> np.ndarray:
    """Cache layout ``(T, M, V, C)`` -> model layout ``(C, T, V, M)``."""
    return np.ascontiguousarray(np.asarray(joints, dtype=np.float32).transpose(3, 0, 2, 1))


def valid_length(data: np.ndarray) -> int:
    """Frames up to the last one with any non-zero value (trailing zero padding excluded)."""
    nonzero = np.flatnonzero(np.abs(data).sum(axis=(0, 2, 3)) > 0)
    return int(nonzero[-1]) + 1 if nonzero.size else 0


def resize_time(data: np.ndarray, length: int) -> np.ndarray:
    """Linear resampling along time, the same as ``F.interpolate(..., mode='bilinear',
    align_corners=False)`` over the time axis (works for up- and down-sampling)."""
    frames = data.shape[1]
    if frames == length:
        return data.astype(np.float32, copy=True)
    scale = frames / length
    source = np.maximum((np.arange(length) + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(source.astype(np.int64), frames - 1)
    high = np.minimum(low + 1, frames - 1)
    weight = (source - low).astype(np.float32)[None, :, None, None]
    return (data[:, low] * (1.0 - weight) + data[:, high] * weight).astype(np.float32)


def crop_resize(data: np.ndarray, valid: int, p_interval: Sequence[float], window: int,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Crop the valid frames and resize the crop to ``window`` frames.

    One ``p``: a centre crop keeping about a share ``p`` of the frames (test time). Two
    values ``[low, high]``: a random crop of length ``clip(floor(valid * p), window,
    valid)`` with ``p ~ U(low, high)`` at a random offset (training).
    """
    if valid < 1:
        raise ValueError("the sequence has no valid (non-zero) frame")
    if len(p_interval) == 1:
        bias = int((1 - p_interval[0]) * valid / 2)
        crop = data[:, bias:valid - bias]
        if crop.shape[1] == 0:
            crop = data[:, :valid]
    else:
        if rng is None:
            raise ValueError("a random crop needs a random generator")
        low, high = p_interval
        p = rng.random() * (high - low) + low
        length = int(min(max(int(np.floor(valid * p)), window), valid))
        bias = int(rng.integers(0, valid - length + 1))
        crop = data[:, bias:bias + length]
    return resize_time(crop, window)


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """``Rz @ Ry @ Rx`` for angles (x, y, z) in radians, CTR-GCN's ``_rot`` convention."""
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotate(data: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply one rotation (3x3, or 2x2 in the image plane) to the position channels of
    every frame, joint and person; other channels (a score) are kept."""
    size = matrix.shape[0]
    out = data.astype(np.float32, copy=True)
    out[:size] = np.einsum("ij,jtvm->itvm", matrix, data[:size])
    return out


def random_rotate(data: np.ndarray, theta: float, rng: np.random.Generator) -> np.ndarray:
    """One angle per axis ~ U(-theta, theta), the same for every frame."""
    return rotate(data, rotation_matrix(rng.uniform(-theta, theta, size=3)))


def random_rotate_2d(data: np.ndarray, theta: float, rng: np.random.Generator) -> np.ndarray:
    """One in-plane angle ~ U(-theta, theta) for 2-D points, the same for every frame."""
    angle = rng.uniform(-theta, theta)
    return rotate(data, np.array([[np.cos(angle), -np.sin(angle)],
                                  [np.sin(angle), np.cos(angle)]]))


def flip(data: np.ndarray, layout: Layout) -> np.ndarray:
    """Mirror left and right: x negated, each of the layout's flip pairs swapped."""
    out = data[:, :, list(layout.flip_permutation)].astype(np.float32, copy=True)
    out[0] = -out[0]
    return out


def translate_to_origin(points: np.ndarray, origin: tuple[int, ...], dims: int = 3
                        ) -> np.ndarray:
    """``(T, M, V, C)`` points moved so that the mean of the ``origin`` joints of the first
    person's first frame is 0 (NTU's skeleton caches are stored so already); only persons
    present in a frame move, only the first ``dims`` channels (positions) change."""
    out = points.astype(np.float32, copy=True)
    present = presence(points)
    if not present.any():
        return out
    person = int(np.flatnonzero(present.any(axis=0))[0])
    frame = int(np.flatnonzero(present[:, person])[0])
    out[..., :dims][present] -= points[frame, person, list(origin), :dims].mean(axis=0)
    return out


def centre_and_scale(points: np.ndarray, origin: tuple[int, ...], dims: int) -> np.ndarray:
    """:func:`translate_to_origin`, then scaled so that the longest side of the box around
    all the sample's points is 2 (positions of present persons only)."""
    present = presence(points)
    out = translate_to_origin(points, origin, dims)
    if not present.any():
        return out
    positions = out[..., :dims]
    values = positions[present].reshape(-1, dims)
    extent = float((values.max(axis=0) - values.min(axis=0)).max())
    if extent > 0:
        positions[present] /= extent / 2
    return out


def view_matrix(angle_x_deg: float, angle_y_deg: float, scale: float) -> np.ndarray:
    """NW-UCLA view change for row vectors: ``points @ (Ry @ Rx @ S)``."""
    ax, ay = np.radians(angle_x_deg), np.radians(angle_y_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), np.sin(ax)], [0, -np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, -np.sin(ay)], [0, 1, 0], [np.sin(ay), 0, np.cos(ay)]])
    return ry @ rx @ (np.eye(3) * scale)


def minmax_normalise(points: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """Scale each coordinate axis of ``(T, M, V, 3)`` points to [-1, 1] over the points of
    the persons ``present`` (T, M) in each frame (default: all); absent ones stay zero.

    An axis with no extent (all values equal) maps to -1, as the reference would give
    NaN there.
    """
    if present is None:
        present = np.ones(points.shape[:2], dtype=bool)
    out = np.zeros(points.shape, dtype=np.float32)
    if not present.any():
        return out
    values = points[present]
    flat = values.reshape(-1, points.shape[-1])
    low, high = flat.min(axis=0), flat.max(axis=0)
    extent = np.where(high - low > 0, high - low, 1.0)
    out[present] = (values - low) / extent * 2 - 1
    return out


def bone(data: np.ndarray, layout: Layout, score: int | None = None) -> np.ndarray:
    """Bone vectors: joint minus its parent over the layout's (1-based) pairs. A score
    channel becomes the mean of the two joints' scores (as pyskl's ``JointToBone``)."""
    out = np.zeros_like(data)
    for joint, parent in layout.bone_pairs:
        out[:, :, joint - 1] = data[:, :, joint - 1] - data[:, :, parent - 1]
        if score is not None:
            out[score, :, joint - 1] = (data[score, :, joint - 1] + data[score, :, parent - 1]) / 2
    return out


def motion(data: np.ndarray, score: int | None = None) -> np.ndarray:
    """Frame differences ``x[t + 1] - x[t]``; the last frame is zero. A score channel
    becomes the mean of the two frames' scores (as pyskl's ``ToMotion``)."""
    out = np.zeros_like(data)
    out[:, :-1] = data[:, 1:] - data[:, :-1]
    if score is not None:
        out[score, :-1] = (data[score, 1:] + data[score, :-1]) / 2
    return out


def apply_modality(data: np.ndarray, modality: str, layout: Layout,
                   channels: str = "xyz") -> np.ndarray:
    """joint, bone, joint-motion or bone-motion (motion taken after the bone transform)."""
    if modality not in ("joint", "bone", "joint-motion", "bone-motion"):
        raise ValueError(f"unknown modality {modality!r}")
    score = score_channel(channels)
    if modality.startswith("bone"):
        data = bone(data, layout, score)
    if modality.endswith("motion"):
        data = motion(data, score)
    return data
