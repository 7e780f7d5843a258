"""Deterministic synthetic NTU RGB+D skeletons, written in the ``.skeleton`` text format.

A standing person (NTU's 25 joints, camera space in metres: x to the camera's right, y up, z
away from the camera) moves one limb group in a pattern that depends on the action class,
so a classifier can learn the classes from the joints alone. Colour-image coordinates are
the joints projected with a Kinect-v2-like colour camera into a 1920x1080 frame, so later
stages can crop the actor from a matching synthetic video.

Optional extras reproduce what the denoising has to handle: noise bodies (a flat blob,
wider than tall, tracked for most of the clip), short-tracked bodies (<= 11 frames),
empty frames (no body at all) and a tracking-id switch of actor 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

NUM_JOINTS = 25
FPS = 30.0
IMAGE_SIZE = (1920, 1080)
COLOR_FOCAL, COLOR_CENTER = 1050.0, (960.0, 540.0)
DEPTH_FOCAL, DEPTH_CENTER = 365.0, (256.0, 212.0)

# Joint positions (metres) of a standing person relative to the spine base, 1-based NTU
# order. The person faces the camera; their left side is at smaller x.
_TEMPLATE = {
    1: (0.0, 0.0, 0.0), 2: (0.0, 0.27, 0.01), 21: (0.0, 0.47, 0.02), 3: (0.0, 0.54, 0.02),
    4: (0.0, 0.66, 0.01),
    5: (-0.17, 0.43, 0.03), 6: (-0.20, 0.17, 0.04), 7: (-0.21, -0.06, 0.02),
    8: (-0.21, -0.13, 0.02), 22: (-0.21, -0.20, 0.02), 23: (-0.18, -0.14, 0.0),
    9: (0.17, 0.43, 0.03), 10: (0.20, 0.17, 0.04), 11: (0.21, -0.06, 0.02),
    12: (0.21, -0.13, 0.02), 24: (0.21, -0.20, 0.02), 25: (0.18, -0.14, 0.0),
    13: (-0.08, -0.03, 0.0), 14: (-0.09, -0.43, 0.0), 15: (-0.09, -0.81, 0.03),
    16: (-0.09, -0.86, -0.08),
    17: (0.08, -0.03, 0.0), 18: (0.09, -0.43, 0.0), 19: (0.09, -0.81, 0.03),
    20: (0.09, -0.86, -0.08),
}
TEMPLATE = np.array([_TEMPLATE[j] for j in range(1, NUM_JOINTS + 1)], dtype=np.float64)

# Limb groups: (pivot joint, moved joints, side: -1 = the person's left), 1-based.
_LEFT_ARM = (5, (6, 7, 8, 22, 23), -1)
_RIGHT_ARM = (9, (10, 11, 12, 24, 25), 1)
_LEFT_LEG = (13, (14, 15, 16), -1)
_RIGHT_LEG = (17, (18, 19, 20), 1)
_TORSO = (1, (2, 3, 4, 21, 5, 6, 7, 8, 9, 10, 11, 12, 22, 23, 24, 25), 0)
_GROUPS = (
    (_LEFT_ARM,), (_RIGHT_ARM,), (_LEFT_ARM, _RIGHT_ARM), (_LEFT_LEG,), (_RIGHT_LEG,),
    (_TORSO,),
)


@dataclass(frozen=True)
class ActionPattern:
    """How action ``action`` (1-based) moves: distinct for the 120 NTU classes."""

    groups: tuple            # limb groups that swing
    sagittal: bool           # swing forward (y-z plane) instead of sideways (x-y plane)
    cycles_per_second: float
    amplitude: float         # radians at the top of the swing
    drift: float             # sideways walking speed, metres per second

    @classmethod
    def of(cls, action: int) -> "ActionPattern":
        if action < 1:
            raise ValueError(f"action must be >= 1, not {action}")
        a = action - 1
        groups = _GROUPS[a % 6]
        legs_or_torso = groups[0] in (_LEFT_LEG, _RIGHT_LEG, _TORSO)
        amplitude = (0.45 if legs_or_torso else 0.85) * (1.0 + 0.35 * ((a // 36) % 2))
        return cls(groups=groups, sagittal=bool((a // 6) % 2),
                   cycles_per_second=0.5 + 0.4 * ((a // 12) % 3), amplitude=amplitude,
                   drift=0.25 * ((a // 72) % 2))


@dataclass
class SyntheticSequence:
    """Bodies of one synthetic clip. ``present[t, b]``: body b is written in frame t."""

    joints: np.ndarray          # (T, B, 25, 3) float32, camera space (metres)
    color_xy: np.ndarray        # (T, B, 25, 2) float32, colour-image pixels
    depth_xy: np.ndarray        # (T, B, 25, 2) float32, depth-image pixels
    present: np.ndarray         # (T, B) bool
    body_ids: list[int]
    roles: list[str]            # per body: "actor1", "actor2", "noise", "short"
    action: int
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return self.joints.shape[0]

    @property
    def num_bodies(self) -> int:
        return self.joints.shape[1]


def _rotate(points: np.ndarray, pivot: np.ndarray, angle: np.ndarray, axes: tuple[int, int]
            ) -> np.ndarray:
    """Rotate (T, n, 3) points about ``pivot`` (T, 3) by ``angle`` (T,) in plane ``axes``."""
    i, j = axes
    cos, sin = np.cos(angle)[:, None], np.sin(angle)[:, None]
    rel = points - pivot[:, None]
    out = points.copy()
    out[..., i] = pivot[:, None, i] + cos * rel[..., i] - sin * rel[..., j]
    out[..., j] = pivot[:, None, j] + sin * rel[..., i] + cos * rel[..., j]
    return out


def actor_motion(rng: np.random.Generator, num_frames: int, action: int,
                 position: tuple[float, float, float], phase: float = 0.0) -> np.ndarray:
    """(T, 25, 3) joints of one person doing ``action`` around ``position`` (spine base)."""
    pattern = ActionPattern.of(action)
    scale = rng.uniform(0.92, 1.08)
    amplitude = pattern.amplitude * rng.uniform(0.85, 1.15)
    frequency = pattern.cycles_per_second * rng.uniform(0.9, 1.1)
    seconds = np.arange(num_frames) / FPS
    swing = amplitude * 0.5 * (1.0 - np.cos(2 * np.pi * frequency * seconds + phase))

    joints = np.broadcast_to(TEMPLATE * scale, (num_frames, NUM_JOINTS, 3)).copy()
    for pivot_joint, moved, side in pattern.groups:
        pivot = joints[:, pivot_joint - 1]
        index = [j - 1 for j in moved]
        if pattern.sagittal:
            # forward (towards the camera, -z): rotate in the y-z plane
            angle = swing if side != 0 else -swing
            joints[:, index] = _rotate(joints[:, index], pivot, angle, (1, 2))
        else:
            # sideways, away from the body (the left side moves to -x); the torso bends right
            angle = -side * swing if side != 0 else swing
            joints[:, index] = _rotate(joints[:, index], pivot, angle, (1, 0))
    joints += np.asarray(position)
    joints[..., 0] += pattern.drift * (seconds - seconds.mean())[:, None]
    joints += rng.normal(0.0, 0.004, size=joints.shape)     # sensor jitter
    return joints


def project(joints: np.ndarray, focal: float, center: tuple[float, float]) -> np.ndarray:
    """Pinhole projection of camera-space points to image pixels (x right, y down)."""
    z = np.maximum(joints[..., 2], 0.1)
    u = center[0] + focal * joints[..., 0] / z
    v = center[1] - focal * joints[..., 1] / z
    return np.stack([u, v], axis=-1)


def _noise_body(rng: np.random.Generator, num_frames: int) -> np.ndarray:
    """A flat, wide blob (a table, a wall edge): every frame is x-range > 0.8 * y-range."""
    center = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.5, -0.2), rng.uniform(2.4, 3.8)])
    offsets = rng.uniform(-1, 1, size=(num_frames, NUM_JOINTS, 3)) * np.array([0.4, 0.04, 0.05])
    return center + offsets


def generate_sequence(rng: np.random.Generator, num_frames: int, num_actors: int = 1,
                      action: int = 1, *, noise_bodies: int = 0, short_bodies: int = 0,
                      empty_frames: Iterable[int] = (), id_switch_at: int | None = None
                      ) -> SyntheticSequence:
    """One clip of ``num_actors`` (1 or 2) people doing ``action`` (1-based NTU class).

    ``noise_bodies`` adds bodies the spread test rejects, ``short_bodies`` bodies tracked
    in 5-11 frames, ``empty_frames`` frames with no body at all, and ``id_switch_at=k``
    gives actor 1 a new body id from frame k on (two bodies that do not overlap in time).
    Bodies in the arrays: actor 1 (and its second id), actor 2, noise, short.
    """
    if num_actors not in (1, 2):
        raise ValueError("num_actors must be 1 or 2")
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    if id_switch_at is not None and not 0 < id_switch_at < num_frames:
        raise ValueError("id_switch_at must be inside the clip")
    bodies, roles, spans = [], [], []
    depth = rng.uniform(2.8, 3.6)
    if num_actors == 1:
        positions = [(rng.uniform(-0.4, 0.4), rng.uniform(-0.05, 0.15), depth)]
    else:
        middle = rng.uniform(-0.15, 0.15)
        positions = [(middle - 0.45, rng.uniform(-0.05, 0.15), depth),
                     (middle + 0.45, rng.uniform(-0.05, 0.15), depth + rng.uniform(-0.2, 0.2))]
    for actor, position in enumerate(positions):
        motion = actor_motion(rng, num_frames, action, position, phase=np.pi * actor)
        if actor == 0 and id_switch_at is not None:
            bodies += [motion, motion]
            roles += ["actor1", "actor1"]
            spans += [(0, id_switch_at), (id_switch_at, num_frames)]
        else:
            bodies.append(motion)
            roles.append(f"actor{actor + 1}")
            spans.append((0, num_frames))
    for _ in range(noise_bodies):
        length = max(1, int(num_frames * rng.uniform(0.6, 0.9)))
        start = int(rng.integers(0, num_frames - length + 1))
        bodies.append(_noise_body(rng, num_frames))
        roles.append("noise")
        spans.append((start, start + length))
    for _ in range(short_bodies):
        length = int(min(num_frames, rng.integers(5, 12)))
        start = int(rng.integers(0, num_frames - length + 1))
        where = (rng.uniform(-0.8, 0.8), rng.uniform(-0.1, 0.1), rng.uniform(2.5, 4.0))
        bodies.append(actor_motion(rng, num_frames, action, where))
        roles.append("short")
        spans.append((start, start + length))

    joints = np.stack(bodies, axis=1).astype(np.float32)            # (T, B, 25, 3)
    present = np.zeros(joints.shape[:2], dtype=bool)
    for body, (start, stop) in enumerate(spans):
        present[start:stop, body] = True
    empty = sorted({int(t) for t in empty_frames})
    if any(not 0 <= t < num_frames for t in empty):
        raise ValueError("empty_frames must be frame indices of the clip")
    present[empty] = False
    width, height = IMAGE_SIZE
    color = project(joints, COLOR_FOCAL, COLOR_CENTER)
    color[..., 0] = np.clip(color[..., 0], 0, width - 1)
    color[..., 1] = np.clip(color[..., 1], 0, height - 1)
    depth_xy = project(joints, DEPTH_FOCAL, DEPTH_CENTER)
    first_id = 72057594037927936 + int(rng.integers(0, 10_000_000))
    body_ids = [first_id + 7 * b for b in range(len(bodies))]
    return SyntheticSequence(joints=joints, color_xy=color.astype(np.float32),
                             depth_xy=depth_xy.astype(np.float32), present=present,
                             body_ids=body_ids, roles=roles, action=action,
                             extra={"spans": spans, "empty_frames": empty})


def write_ntu_skeleton(path: str | os.PathLike, sequence: SyntheticSequence,
                       line_ending: str = "\r\n") -> Path:
    """Write ``sequence`` in NTU's ``.skeleton`` text format (CRLF like the originals)."""
    path = Path(path)
    nl = line_ending
    joint_line = " ".join(["%.7g"] * 12) + nl
    block_format = joint_line * NUM_JOINTS
    table = np.zeros(sequence.joints.shape[:3] + (12,), dtype=np.float64)
    table[..., 0:3] = sequence.joints
    table[..., 3:5] = sequence.depth_xy
    table[..., 5:7] = sequence.color_xy
    table[..., 7] = 1.0            # orientation quaternion w (identity)
    table[..., 11] = 2.0           # trackingState: tracked
    parts = [f"{sequence.num_frames}{nl}"]
    for frame in range(sequence.num_frames):
        bodies = np.flatnonzero(sequence.present[frame])
        parts.append(f"{len(bodies)}{nl}")
        for body in bodies:
            parts.append(f"{sequence.body_ids[body]} 0 1 1 1 1 0 0.01 0.02 2{nl}"
                         f"{NUM_JOINTS}{nl}")
            parts.append(block_format % tuple(table[frame, body].ravel()))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="ascii", newline="") as handle:
        handle.write("".join(parts))
    return path


def ntu_name(index: int, action: int) -> str:
    """A unique NTU-style sample name for the ``index``-th synthetic sample of ``action``."""
    camera = index % 3 + 1
    replication = (index // 3) % 2 + 1
    performer = (index // 6) % 40 + 1
    setup = (index // 240) % 17 + 1
    if index >= 240 * 17:
        raise ValueError("at most 4080 synthetic samples per action")
    return f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}"


def write_synthetic_ntu_dataset(root: str | os.PathLike, count: int, *, seed: int = 0,
                                start: int = 0, actions: Sequence[int] = tuple(range(1, 61)),
                                frames: tuple[int, int] = (60, 120),
                                two_actor_actions: Sequence[int] = tuple(range(50, 61)),
                                line_ending: str = "\r\n") -> list[Path]:
    """Synthetic samples ``start .. start + count - 1`` as ``.skeleton`` files under ``root``.

    Sample i depends only on ``seed`` and i (so datasets of different sizes share their
    first samples) and does action ``actions[i % len(actions)]``; every 7th sample also has
    a noise body and every 11th a short-tracked one, so the denoising has work to do.
    """
    root = Path(root)
    paths = []
    for index in range(start, start + count):
        rng = np.random.default_rng([seed, index])
        action = actions[index % len(actions)]
        sequence = generate_sequence(
            rng, int(rng.integers(frames[0], frames[1] + 1)),
            num_actors=2 if action in two_actor_actions else 1, action=action,
            noise_bodies=int(index % 7 == 3), short_bodies=int(index % 11 == 5))
        name = ntu_name(index // len(actions), action)
        paths.append(write_ntu_skeleton(root / f"{name}.skeleton", sequence, line_ending))
    return paths
