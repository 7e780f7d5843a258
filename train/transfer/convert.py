"""Another dataset's skeletons in a run's layout: joints mapped by a declared joint mapping
(:class:`~data_manifest.layouts.JointMapping`), persons padded or cut to the run's count,
then the run's own test-time feeder (for an NTU run: translation by the spine middle of
the first frame, a centre crop of 95 % of the frames resized to the window)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_manifest.layouts import JointMapping, Layout, LayoutError, resolve_joint_map
from train.data.feeders import Feeder
from train.data.transforms import presence
from train.errors import TrainError
from train.transfer import PAD_CHOICES


@dataclass(frozen=True)
class LayoutConversion:
    """``(T, M, V_target, C)`` -> ``(T, persons, V_run, C)`` float32."""

    mapping: JointMapping | None     # None: the target is already in the run's layout
    persons: int
    pad: str = "zero"

    def __post_init__(self) -> None:
        if self.pad not in PAD_CHOICES:
            raise ValueError(f"pad must be one of {', '.join(PAD_CHOICES)}, not {self.pad!r}")

    def __call__(self, joints: np.ndarray) -> np.ndarray:
        joints = np.asarray(joints, dtype=np.float32)
        if self.mapping is not None:
            joints = self.mapping.apply(joints).astype(np.float32, copy=False)
        have = joints.shape[1]
        if have >= self.persons:
            return np.ascontiguousarray(joints[:, :self.persons])
        if self.pad == "copy" and presence(joints[:, :1]).any():
            extra = np.repeat(joints[:, :1], self.persons - have, axis=1)
        else:
            extra = np.zeros(joints.shape[:1] + (self.persons - have,) + joints.shape[2:],
                             dtype=np.float32)
        return np.concatenate([joints, extra], axis=1)


@dataclass(frozen=True)
class ConvertingFeeder:
    """A run's feeder reading another layout's skeletons through a conversion."""

    conversion: LayoutConversion
    feeder: Feeder

    def __call__(self, joints: np.ndarray, train: bool,
                 rng: np.random.Generator | None = None) -> np.ndarray:
        return self.feeder(self.conversion(joints), train, rng)


def layout_conversion(target: Layout, run: Layout, persons: int, pad: str = "zero",
                      mapping: JointMapping | None = None) -> LayoutConversion:
    """The conversion of ``target``-layout skeletons for a run in the ``run`` layout with
    ``persons`` persons: ``mapping`` if given, else a built-in mapping (also one written
    for a layout with ``target``'s joint names in another order), else joints by name."""
    try:
        resolved = resolve_joint_map(target, run, mapping)
    except LayoutError as error:
        raise TrainError(f"cannot convert {target.name} skeletons to the run's {run.name} "
                         f"layout: {error}. Write a joint mapping (from: {target.name}, to: "
                         f"{run.name}; see docs/transfer.md) and give it with --joint-map"
                         ) from None
    return LayoutConversion(resolved, persons, pad)
