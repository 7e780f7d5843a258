"""Render a synthetic skeleton clip as a video: the actors drawn where their colour-image
joint coordinates say, so person crops can be checked against the skeleton.

Each actor is a stick figure with thick limbs, a filled head and a shirt colour; an
optional held object (a coloured block at the right hand) gives the RGB stream something
the skeleton does not show. Noise and short-tracked bodies are sensor artefacts and are
not drawn. Written with OpenCV: MPEG-4 part 2 in AVI (as NTU's own videos), or Motion
JPEG where that encoder is missing; both decode with any OpenCV build.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from data_manifest.layouts import NTU

FPS = 30.0
FOURCCS = ("FMP4", "MJPG")      # preferred first
HEAD, NECK, RIGHT_HAND = 3, 2, 11   # 0-based NTU joints
_TORSO_EDGES = {(0, 1), (1, 20), (2, 20), (12, 0), (16, 0), (4, 20), (8, 20)}


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A room: a wall with a tint, a floor, a few vertical edges (doors, shelves)."""
    width, height = size
    image = np.empty((height, width, 3), dtype=np.uint8)
    wall = rng.integers(150, 215, size=3)
    floor = rng.integers(50, 95, size=3)
    horizon = int(height * rng.uniform(0.55, 0.7))
    shade = np.linspace(0.85, 1.0, horizon)[:, None, None]
    image[:horizon] = np.clip(wall * shade, 0, 255).astype(np.uint8)
    image[horizon:] = floor.astype(np.uint8)
    for _ in range(3):
        x = int(rng.integers(0, width))
        colour = tuple(int(c) for c in rng.integers(60, 140, size=3))
        cv2.rectangle(image, (x, int(height * 0.1)), (x + max(2, width // 60), horizon),
                      colour, -1)
    return image


def _draw_actor(image: np.ndarray, points: np.ndarray, shirt: tuple[int, int, int],
                scale: float, held: tuple[int, int, int] | None) -> None:
    pixel = np.round(points).astype(np.int32)
    limb = max(2, round(18 * scale))
    torso = max(3, round(30 * scale))
    skin = (120, 160, 210)
    for joint, parent in NTU.edges:
        thick = torso if (joint, parent) in _TORSO_EDGES else limb
        colour = shirt if joint not in range(12, 20) else (70, 60, 50)   # legs: trousers
        cv2.line(image, tuple(map(int, pixel[joint])), tuple(map(int, pixel[parent])),
                 colour, thick, cv2.LINE_AA)
    head_radius = max(3, round(float(np.linalg.norm(points[HEAD] - points[NECK])) * 0.9))
    cv2.circle(image, tuple(map(int, pixel[HEAD])), head_radius, skin, -1, cv2.LINE_AA)
    if held is not None:
        side = max(3, round(40 * scale))
        x, y = pixel[RIGHT_HAND]
        cv2.rectangle(image, (int(x - side // 2), int(y - side)), (int(x + side // 2), int(y)),
                      held, -1)


def render_video(path: str | os.PathLike, color_xy: np.ndarray, present: np.ndarray,
                 roles: list[str], size: tuple[int, int], *, depth: np.ndarray | None = None,
                 seed: int = 0, held_colour: tuple[int, int, int] | None = None,
                 fps: float = FPS) -> Path:
    """Write the clip to ``path``; ``color_xy`` (T, B, 25, 2) is in pixels of ``size``.

    ``depth`` (T, B) orders overlapping actors (farther drawn first); ``present`` (T, B)
    says which bodies are in each frame; only bodies whose role starts with "actor" are
    drawn. Returns the path; raises RuntimeError if no encoder works.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scene = background(size, rng)
    actors = [b for b, role in enumerate(roles) if role.startswith("actor")]
    shirts = {b: tuple(int(c) for c in rng.integers(30, 230, size=3)) for b in actors}
    scale = size[1] / 1080
    writer = _open_writer(path, fps, size)
    try:
        for frame in range(len(color_xy)):
            image = scene.copy()
            shown = [b for b in actors if present[frame, b]]
            if depth is not None:
                shown.sort(key=lambda b: -float(depth[frame, b]))
            for body in shown:
                _draw_actor(image, color_xy[frame, body], shirts[body], scale,
                            held_colour if body == actors[0] else None)
            writer.write(image)
    finally:
        writer.release()
    return path


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    for fourcc in FOURCCS:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer
        writer.release()
    raise RuntimeError(f"OpenCV cannot write {'/'.join(FOURCCS)} video to {path}")
