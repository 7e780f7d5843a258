"""Skeleton layouts: joint count and the (child, parent) bone pairs, 1-based as published.

The pairs are the CTR-GCN ones; a self-pair (centre joint) gives a zero bone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    name: str
    num_joints: int
    bone_pairs: tuple[tuple[int, int], ...]   # 1-based (joint, parent), one per joint
    center_joint: int                         # 1-based

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """0-based (joint, parent) edges without self-loops, for graphs and drawing."""
        return tuple((a - 1, b - 1) for a, b in self.bone_pairs if a != b)


NTU = Layout(
    name="ntu",
    num_joints=25,
    bone_pairs=((1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                (18, 17), (19, 18), (20, 19), (22, 23), (21, 21), (23, 8), (24, 25),
                (25, 12)),
    center_joint=21,
)

NW_UCLA = Layout(
    name="nw-ucla",
    num_joints=20,
    bone_pairs=((1, 2), (2, 3), (3, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3),
                (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                (18, 17), (19, 18), (20, 19)),
    center_joint=3,
)

LAYOUTS = {"ntu": NTU, "nw-ucla": NW_UCLA}
