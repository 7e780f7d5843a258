"""Feeders: turn one cached skeleton ``(T, M, V, C)`` into a model input ``(C, W, V, M)``.

Two recipes matching CTR-GCN's feeders (3-D points), and one for any data:

- ``ntu``: move the layout's origin joint of the first person's first frame to 0 (NTU's
  skeleton caches are stored translated so, as CTR-GCN's: there it changes nothing; other
  metric 3-D data, e.g. a dataset converted to the ``ntu`` layout, gets the same), crop the
  valid frames (random share ``p ~ U(p_interval_train)`` at a random offset in training, a
  centre crop of ``p_interval_test`` in test), resize linearly to ``window`` frames, then
  in training rotate by one random angle per axis.
- ``nw-ucla``: move joint ``ucla_center_joint`` (default: the layout's origin) of frame 0
  to the origin, in training apply a random view change (x and y angles, integer degrees
  in +-``ucla_max_angle_deg``) and scale, normalise each axis to [-1, 1], then resample to
  ``window`` frames (sorted random frame indices in training, evenly spaced in test).
- ``custom`` (own data, 2-D or 3-D, with or without a score channel): move the layout's
  origin of the first person's first frame to 0 and scale the sample to a unit size, then
  crop and resize as ``ntu``; in training optionally mirror left/right (``random_flip``,
  the layout's flip pairs) and rotate (3 axes for 3-D points, in the image plane for 2-D).

Persons absent in a frame (zeros: padding) are never moved, scaled or counted in the
normalisation. Every feeder then applies the modality (joint, bone, joint-motion,
bone-motion). ``transform_for_inference`` is the single-sample test-time path that
``train predict`` uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from data_manifest.formats.reading import CHANNELS, SPATIAL_DIMS, channels_of
from data_manifest.layouts import Layout
from train.config import AUTO, DataConfig, TrainConfig, model_layout
from train.data import transforms as T
from train.errors import ConfigError


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
        data = T.to_ctvm(T.translate_to_origin(joints, self.layout.origin))
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
    center: tuple[int, ...] = (1,)  # 0-based joints whose mean in frame 0 -> origin

    def __call__(self, joints: np.ndarray, train: bool,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        points = np.asarray(joints, dtype=np.float64)            # (T, M, V, 3)
        if points.shape[0] == 0:
            raise ValueError("the skeleton has no frame")
        present = T.presence(points)
        points = np.where(present[..., None, None],
                          points - points[0, 0, list(self.center)].mean(axis=0), 0.0)
        if train:
            rng = _need(rng)
            angle_x = int(rng.integers(-self.max_angle_deg, self.max_angle_deg + 1))
            angle_y = int(rng.integers(-self.max_angle_deg, self.max_angle_deg + 1))
            scale = float(rng.uniform(*self.scale_range))
            points = points @ T.view_matrix(angle_x, angle_y, scale)
        points = T.minmax_normalise(points, present)
        length = points.shape[0]
        if train:
            chosen = rng.choice(length * 100, size=self.window, replace=False) % length
            frames = np.sort(chosen)
        else:
            frames = np.linspace(0, length - 1, self.window).astype(np.int64)
        data = T.to_ctvm(points[frames])
        return T.apply_modality(data, self.modality, self.layout)


@dataclass(frozen=True)
class CustomFeeder:
    layout: Layout
    channels: str = "xyz"
    modality: str = "joint"
    window: int = 64
    p_interval_train: tuple[float, ...] = (0.5, 1.0)
    p_interval_test: tuple[float, ...] = (0.95,)
    random_rot: bool = True
    rot_theta: float = 0.3
    random_flip: bool = False

    def __call__(self, joints: np.ndarray, train: bool,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        dims = SPATIAL_DIMS[self.channels]
        data = T.to_ctvm(T.centre_and_scale(joints, self.layout.origin, dims))
        valid = T.valid_length(data)
        if valid == 0:
            raise ValueError("the skeleton has no non-zero frame")
        interval = self.p_interval_train if train else self.p_interval_test
        data = T.crop_resize(data, valid, interval, self.window, rng)
        if train and self.random_flip and _need(rng).random() < 0.5:
            data = T.flip(data, self.layout)
        if train and self.random_rot:
            rotate = T.random_rotate if dims == 3 else T.random_rotate_2d
            data = rotate(data, self.rot_theta, _need(rng))
        return T.apply_modality(data, self.modality, self.layout, self.channels)


Feeder = NTUFeeder | UCLAFeeder | CustomFeeder

# the data.* keys only some feeders read -> those feeders
FEEDER_OPTIONS: dict[str, tuple[str, ...]] = {
    "p_interval_train": ("ntu", "custom"), "p_interval_test": ("ntu", "custom"),
    "random_rot": ("ntu", "custom"), "rot_theta": ("ntu", "custom"),
    "random_flip": ("custom",),
    "ucla_max_angle_deg": ("nw-ucla",), "ucla_scale_range": ("nw-ucla",),
    "ucla_center_joint": ("nw-ucla",),
}


def check_feeder_options(data: DataConfig) -> None:
    """Refuse, all at once, the keys set away from their default that ``data.feeder``
    never reads (a setting that would silently do nothing)."""
    defaults = DataConfig()
    ignored = [f"data.{key}={getattr(data, key)!r} (read by the {', '.join(feeders)} "
               f"feeder{'s' if len(feeders) > 1 else ''})"
               for key, feeders in FEEDER_OPTIONS.items()
               if data.feeder not in feeders and getattr(data, key) != getattr(defaults, key)]
    if ignored:
        raise ConfigError(f"data.feeder {data.feeder} ignores {len(ignored)} setting"
                          f"{'s' if len(ignored) > 1 else ''} of this config: "
                          + "; ".join(ignored) + ". Leave them at their defaults or choose "
                          "the feeder that reads them")


def build_feeder(data: DataConfig, layout: Layout) -> Feeder:
    """The feeder a data config describes, for the skeleton ``layout``."""
    if data.window == AUTO or data.channels == AUTO:
        raise ValueError("data.window and data.channels must be known (fit the config to "
                         "its data first)")
    if data.feeder == "custom":
        return CustomFeeder(layout=layout, channels=data.channels, modality=data.modality,
                            window=data.window, p_interval_train=tuple(data.p_interval_train),
                            p_interval_test=tuple(data.p_interval_test),
                            random_rot=data.random_rot, rot_theta=data.rot_theta,
                            random_flip=data.random_flip)
    if data.feeder == "ntu":
        return NTUFeeder(layout=layout, modality=data.modality, window=data.window,
                         p_interval_train=tuple(data.p_interval_train),
                         p_interval_test=tuple(data.p_interval_test),
                         random_rot=data.random_rot, rot_theta=data.rot_theta)
    center = layout.origin if data.ucla_center_joint is None else (data.ucla_center_joint - 1,)
    return UCLAFeeder(layout=layout, modality=data.modality, window=data.window,
                      max_angle_deg=data.ucla_max_angle_deg,
                      scale_range=tuple(data.ucla_scale_range), center=center)


def transform_for_inference(joints: np.ndarray, config: TrainConfig) -> np.ndarray:
    """One cached-layout skeleton ``(T, M, V, C)`` -> the test-time model input
    ``(C, window, V, M)`` of a run's config (deterministic; add a batch axis to use it).

    ``M`` may be smaller than the model's person count: missing persons are zeros.
    """
    joints = np.asarray(joints, dtype=np.float32)
    data = config.data
    channels = data.channels
    if joints.ndim != 4 or joints.shape[-1] != CHANNELS.get(channels, joints.shape[-1]):
        raise ValueError(f"expected joints of shape (T, M, V, C) with C = "
                         f"{CHANNELS.get(channels, '2 or 3')} ({channels}), got {joints.shape}")
    if channels == AUTO:
        channels = channels_of(joints.shape[-1])
    persons = config.model.num_persons
    if joints.shape[1] < persons:
        pad = np.zeros((joints.shape[0], persons - joints.shape[1]) + joints.shape[2:],
                       dtype=np.float32)
        joints = np.concatenate([joints, pad], axis=1)
    joints = joints[:, :persons]
    layout = model_layout(config)
    if joints.shape[2] != layout.num_joints:
        raise ValueError(f"the skeleton has {joints.shape[2]} joints, the model's "
                         f"{layout.name} layout has {layout.num_joints}")
    feeder = build_feeder(dataclasses.replace(data, channels=channels), layout)
    return feeder(joints, train=False)


def _need(rng: np.random.Generator | None) -> np.random.Generator:
    if rng is None:
        raise ValueError("training-time augmentation needs a random generator")
    return rng
