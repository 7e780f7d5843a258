"""Feeders: turn one cached skeleton ``(T, M, V, 3)`` into a model input ``(3, W, V, M)``.

Two recipes, matching CTR-GCN's feeders:

- ``ntu``: crop the valid frames (random share ``p ~ U(p_interval_train)`` at a random
  offset in training, a centre crop of ``p_interval_test`` in test), resize linearly to
  ``window`` frames, then in training rotate by one random angle per axis.
- ``nw-ucla``: move joint ``ucla_center_joint`` of frame 0 to the origin, in training apply
  a random view change (x and y angles, integer degrees in +-``ucla_max_angle_deg``) and
  scale, normalise each axis to [-1, 1], then resample to ``window`` frames (sorted random
  frame indices in training, evenly spaced in test).

Both then apply the modality (joint, bone, joint-motion, bone-motion).
``transform_for_inference`` is the single-sample test-time path that ``train predict`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_manifest.layouts import LAYOUTS, Layout
from train.config import DataConfig, TrainConfig
from train.data import transforms as T


@dataclass(frozen=True)
class NTUFeeder:
    layout: Layout
    modality: str = "joint"
    window: int = 64
    p_interval_train: tuple[float, ...] = (0.5, 1.0)
    p_interval_test: tuple[float, ...] = (0.95,)
    random_rot: bool = True
    rot_theta: float = 0.3

    def __call__(self, joints: np.ndarray, train: bool,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        data = T.to_ctvm(joints)
        valid = T.valid_length(data)
        if valid == 0:
            raise ValueError("the skeleton has no non-zero frame")
        interval = self.p_interval_train if train else self.p_interval_test
        data = T.crop_resize(data, valid, interval, self.window, rng)
        if train and self.random_rot:
            data = T.random_rotate(data, self.rot_theta, _need(rng))
        return T.apply_modality(data, self.modality, self.layout)


@dataclass(frozen=True)
class UCLAFeeder:
    layout: Layout
    modality: str = "joint"
    window: int = 52
    max_angle_deg: int = 60
    scale_range: tuple[float, float] = (0.5, 1.5)
    center_joint: int = 2          # 1-based

    def __call__(self, joints: np.ndarray, train: bool,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        points = np.asarray(joints, dtype=np.float64)            # (T, M, V, 3)
        if points.shape[0] == 0:
            raise ValueError("the skeleton has no frame")
        points = points - points[0, 0, self.center_joint - 1]
        if train:
            rng = _need(rng)
            angle_x = int(rng.integers(-self.max_angle_deg, self.max_angle_deg + 1))
            angle_y = int(rng.integers(-self.max_angle_deg, self.max_angle_deg + 1))
            scale = float(rng.uniform(*self.scale_range))
            points = points @ T.view_matrix(angle_x, angle_y, scale)
        points = T.minmax_normalise(points)
        length = points.shape[0]
        if train:
            chosen = rng.choice(length * 100, size=self.window, replace=False) % length
            frames = np.sort(chosen)
        else:
            frames = np.linspace(0, length - 1, self.window).astype(np.int64)
        data = T.to_ctvm(points[frames])
        return T.apply_modality(data, self.modality, self.layout)


Feeder = NTUFeeder | UCLAFeeder


def build_feeder(data: DataConfig, layout: str) -> Feeder:
    """The feeder a data config describes, for the skeleton layout ``layout``."""
    skeleton = LAYOUTS[layout]
    if data.feeder == "ntu":
        return NTUFeeder(layout=skeleton, modality=data.modality, window=data.window,
                         p_interval_train=tuple(data.p_interval_train),
                         p_interval_test=tuple(data.p_interval_test),
                         random_rot=data.random_rot, rot_theta=data.rot_theta)
    return UCLAFeeder(layout=skeleton, modality=data.modality, window=data.window,
                      max_angle_deg=data.ucla_max_angle_deg,
                      scale_range=tuple(data.ucla_scale_range),
                      center_joint=data.ucla_center_joint)


def transform_for_inference(joints: np.ndarray, config: TrainConfig) -> np.ndarray:
    """One cached-layout skeleton ``(T, M, V, 3)`` -> the test-time model input
    ``(3, window, V, M)`` of a run's config (deterministic; add a batch axis to use it).

    ``M`` may be smaller than the model's person count: missing persons are zeros.
    """
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 4 or joints.shape[-1] != 3:
        raise ValueError(f"expected joints of shape (T, M, V, 3), got {joints.shape}")
    persons = config.model.num_persons
    if joints.shape[1] < persons:
        pad = np.zeros((joints.shape[0], persons - joints.shape[1]) + joints.shape[2:],
                       dtype=np.float32)
        joints = np.concatenate([joints, pad], axis=1)
    joints = joints[:, :persons]
    expected = LAYOUTS[config.model.layout].num_joints
    if joints.shape[2] != expected:
        raise ValueError(f"the skeleton has {joints.shape[2]} joints, the model's "
                         f"{config.model.layout} layout has {expected}")
    return build_feeder(config.data, config.model.layout)(joints, train=False)


def _need(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        raise ValueError("training-time augmentation needs a random generator")
    return rng
