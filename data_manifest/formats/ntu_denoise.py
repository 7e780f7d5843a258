"""Denoising and actor selection for NTU skeletons, equivalent to CTR-GCN's preprocessing.

The reference (CTR-GCN ``data/ntu/get_raw_denoised_data.py`` and ``seq_transformation.py``):

0. a file with a single body (one body id) is taken as it is: steps 1-3 only apply to files
   with several bodies, so a lone body is kept however few frames it is tracked in;
1. drop every body tracked in ``max_noise_length`` (11) frames or fewer;
2. if several bodies remain, look at each in order of first appearance (while more than one
   is left): a frame is noisy when the body's x-range > ``spread_ratio`` (0.8) * y-range;
   drop the body when its noisy-frame ratio >= ``max_noisy_ratio`` (0.69754), otherwise
   lower its motion to the motion over its clean frames if that is smaller;
3. sort bodies by motion (sum over x, y, z of the variance of all its joint positions),
   largest first; the first is actor 1; each later body joins actor 1 if its frame interval
   does not overlap actor 1's, else actor 2 if it does not overlap actor 2's, else it is
   dropped (intervals sharing only their end frame count as not overlapping, and actor 2's
   interval starts at frame 0, both as in the reference);
4. remove the frames where both actors are empty;
5. translate everything by joint 2 (spine middle) of actor 1's first frame; absent actors
   stay zero.

Differences from the reference, all deliberate: each body's frames are placed at their real
frame indices (the reference assumes a body's frames are contiguous), every kept frame
remembers its index in the original sequence (= the video frame), colour-image coordinates
go through the same selection (NaN where the actor is absent), and a sequence with no usable
body (e.g. two bodies both tracked in <= 11 frames: the reference is left with no body and
fails with an IndexError) is an error naming the file instead of a crash.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.ntu_skeleton import NUM_JOINTS, RawBody, RawSkeleton

DENOISE_VERSION = 2   # 2: a lone body is no longer length-filtered (as the reference)


@dataclass(frozen=True)
class DenoiseSettings:
    max_noise_length: int = 11        # of several bodies, those tracked in this many frames
                                      # or fewer are noise
    spread_ratio: float = 0.8         # a frame is noisy when x-range > this * y-range
    max_noisy_ratio: float = 0.69754  # drop a body whose share of noisy frames reaches this
    max_actors: int = 2
    origin_joint: int = 2             # 1-based joint of actor 1's first frame -> origin

    def params(self) -> dict:
        return {"version": DENOISE_VERSION, **asdict(self)}


DEFAULT_SETTINGS = DenoiseSettings()


@dataclass(frozen=True)
class DenoisedSkeleton:
    joints: np.ndarray          # (T, M, 25, 3) float32, translated; absent actors zero
    color_xy: np.ndarray        # (T, M, 25, 2) float32; NaN where the actor is absent
    frame_index: np.ndarray     # (T,) int32: index of each kept frame in the original file
    source_frames: int          # frame count of the original file
    num_actors: int             # actors with data (1 or 2)
    actor_bodies: tuple[tuple[str, ...], ...]   # body ids merged into each actor
    dropped: tuple[tuple[str, str], ...]        # (body id, reason) of bodies left out


def _motion(joints: np.ndarray) -> float:
    # float32 variance over all of a body's joint positions, as the reference computes it
    return float(np.sum(np.var(joints.reshape(-1, 3), axis=0)))


def _clean_frames(joints: np.ndarray, spread_ratio: float) -> np.ndarray:
    x_range = np.ptp(joints[:, :, 0], axis=1)
    y_range = np.ptp(joints[:, :, 1], axis=1)
    return x_range <= spread_ratio * y_range


def select_bodies(bodies: tuple[RawBody, ...], settings: DenoiseSettings
                  ) -> tuple[list[RawBody], list[tuple[str, str]]]:
    """Steps 0-3: the bodies kept, ordered by motion (largest first), and those dropped."""
    if len(bodies) == 1:
        return list(bodies), []
    dropped = []
    kept = []
    for body in bodies:
        if len(body.frames) <= settings.max_noise_length:
            dropped.append((body.body_id, f"tracked in only {len(body.frames)} frame(s)"))
        else:
            kept.append(body)
    if len(kept) <= 1:
        return kept, dropped

    motion = {body.body_id: _motion(body.joints) for body in kept}
    for body in list(kept):
        if len(kept) == 1:
            break
        clean = _clean_frames(body.joints, settings.spread_ratio)
        noisy = len(clean) - int(clean.sum())
        if noisy == 0:
            continue
        ratio = noisy / len(clean)
        if ratio >= settings.max_noisy_ratio:
            kept.remove(body)
            dropped.append((body.body_id, f"{ratio:.0%} of its frames are spread-noisy"))
        else:
            motion[body.body_id] = min(motion[body.body_id], _motion(body.joints[clean]))
    kept.sort(key=lambda body: motion[body.body_id], reverse=True)   # stable, like the reference
    return kept, dropped


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return min(a[1], b[1]) - max(a[0], b[0]) > 0


def denoise_ntu(raw: RawSkeleton, settings: DenoiseSettings = DEFAULT_SETTINGS
                ) -> DenoisedSkeleton:
    """Select up to ``settings.max_actors`` actors and build the translated sequence."""
    if settings.max_actors not in (1, 2):
        raise ValueError("max_actors must be 1 or 2")
    bodies, dropped = select_bodies(raw.bodies, settings)
    if not bodies:
        listed = ", ".join(f"{body_id} ({reason})" for body_id, reason in dropped)
        raise DataError(f"no usable body: every body is noise ({listed})", path=raw.path)

    num_frames = raw.num_frames
    joints = np.zeros((num_frames, 2, NUM_JOINTS, 3), dtype=np.float32)
    color_xy = np.full((num_frames, 2, NUM_JOINTS, 2), np.nan, dtype=np.float32)
    members: list[list[str]] = [[], []]

    def place(actor: int, body: RawBody) -> None:
        joints[body.frames, actor] = body.joints
        color_xy[body.frames, actor] = body.color_xy
        members[actor].append(body.body_id)

    first = bodies[0]
    place(0, first)
    if len(bodies) > 1:
        spans = [(int(first.frames[0]), int(first.frames[-1])), (0, 0)]
        for body in bodies[1:]:
            span = (int(body.frames[0]), int(body.frames[-1]))
            for actor in range(settings.max_actors):
                if not _overlap(spans[actor], span):
                    place(actor, body)
                    spans[actor] = (min(span[0], spans[actor][0]), max(span[1], spans[actor][1]))
                    break
            else:
                dropped.append((body.body_id, "overlaps both actors"))

    present = np.any(joints != 0, axis=(2, 3))                  # (F, 2)
    keep = np.flatnonzero(present.any(axis=1))
    joints, color_xy, present = joints[keep], color_xy[keep], present[keep]
    color_xy[~present] = np.nan
    if not present[:, 0].any():
        raise DataError("actor 1 has no non-zero joint position", path=raw.path)
    first_frame = int(np.argmax(present[:, 0]))
    origin = joints[first_frame, 0, settings.origin_joint - 1].copy()
    joints[present] -= origin

    num_actors = int(present.any(axis=0).sum())
    if settings.max_actors == 1:
        joints, color_xy = joints[:, :1], color_xy[:, :1]
    return DenoisedSkeleton(
        joints=np.ascontiguousarray(joints), color_xy=np.ascontiguousarray(color_xy),
        frame_index=keep.astype(np.int32), source_frames=num_frames, num_actors=num_actors,
        actor_bodies=tuple(tuple(m) for m in members if m), dropped=tuple(dropped))
