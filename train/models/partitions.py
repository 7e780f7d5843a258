"""Graphs of the other backbones, built from a skeleton layout's tree.

- ``stgcn_spatial_partition``: ST-GCN's "spatial configuration" partition (root,
  centripetal, centrifugal), computed the way the published code does it.
- ``infogcn_relative_matrix``: InfoGCN's "k-th mode" input transform, ``I - A^k``.

Layouts give bones as 1-based ``(joint, parent)`` pairs towards the centre joint; here
everything is 0-based.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from data_manifest.layouts import Layout
from train.models.graph import normalize_columns


def hop_distances(layout: Layout, max_hop: int | None = None) -> np.ndarray:
    """(V, V) hops between joints along the bones; ``inf`` when farther than ``max_hop``."""
    size = layout.num_joints
    neighbours: list[list[int]] = [[] for _ in range(size)]
    for child, parent in layout.edges:
        neighbours[child].append(parent)
        neighbours[parent].append(child)
    distances = np.full((size, size), np.inf)
    for start in range(size):
        distances[start, start] = 0
        queue = deque([start])
        while queue:
            joint = queue.popleft()
            for other in neighbours[joint]:
                if distances[start, other] == np.inf:
                    distances[start, other] = distances[start, joint] + 1
                    queue.append(other)
    if max_hop is not None:
        distances[distances > max_hop] = np.inf
    return distances


def rooted_parents(layout: Layout, root: int) -> list[int]:
    """Parent of each joint in the layout's tree hung from ``root`` (0-based; root: -1)."""
    distances = hop_distances(layout)[root]
    if np.isinf(distances).any():
        raise ValueError(f"the {layout.name} skeleton is not connected")
    parents = [-1] * layout.num_joints
    for child, parent in layout.edges:
        if distances[child] < distances[parent]:
            child, parent = parent, child
        parents[child] = parent
    return parents


def stgcn_spatial_partition(layout: Layout, max_hop: int = 1) -> np.ndarray:
    """(1 + 2 * max_hop, V, V) float32: ST-GCN's spatial-configuration adjacency subsets.

    ``m[v, w]`` weighs source joint ``v`` in target joint ``w``'s sum (the model computes
    ``einsum("nkctv,kvw->nctw")``): the neighbourhood graph within ``max_hop`` hops,
    self-loops included, normalised so each target's weights sum to 1, split by comparing
    the source's and the target's hops to the centre joint: equal -> root subset (hop 0
    is the self-loops alone), source farther -> centripetal, source nearer -> centrifugal.
    As in the published code the hops to the centre are capped at ``max_hop`` as well
    (farther counts as infinite), so with ``max_hop=1`` only the bones that touch the
    centre joint or one of its neighbours are split; all others land in the root subset.
    """
    hops = hop_distances(layout, max_hop)
    weights = normalize_columns((hops <= max_hop).astype(np.float64))
    to_centre = hops[:, layout.center_joint - 1]
    source, target = to_centre[:, None], to_centre[None, :]
    subsets = []
    for hop in range(max_hop + 1):
        at_hop = hops == hop
        root = np.where(at_hop & (source == target), weights, 0.0)
        if hop == 0:
            subsets.append(root)
            continue
        subsets.append(root + np.where(at_hop & (source > target), weights, 0.0))
        subsets.append(np.where(at_hop & (source < target), weights, 0.0))
    return np.stack(subsets).astype(np.float32)


# How InfoGCN's published graphs direct the tree that ``A`` follows, per layout: the NTU
# graph hangs the skeleton from the spine middle (joint 2) and each joint reads its
# ancestor; the NW-UCLA graph keeps CTR-GCN's tree (centre joint 3) but transposed, so
# each joint reads the sum of its descendants. Kept exactly so published weights see the
# input they were trained on. Other layouts follow the NTU convention from their centre.
INFOGCN_TREES: dict[str, tuple[str, int | None]] = {
    "ntu": ("ancestor", 2),
    "nw-ucla": ("descendants", None),
}


def infogcn_relative_matrix(layout: Layout, k: int) -> np.ndarray:
    """(V, V) float32 ``I - A^k``: each joint minus its k-th ancestor (NTU convention).

    With ``k`` beyond the tree's depth ``A^k`` is zero and the input passes unchanged.
    """
    if k < 1:
        raise ValueError(f"InfoGCN's k must be at least 1 (k=0 zeroes the input), not {k}")
    direction, root = INFOGCN_TREES.get(layout.name, ("ancestor", None))
    root = (root or layout.center_joint) - 1
    step = np.zeros((layout.num_joints, layout.num_joints))
    for child, parent in enumerate(rooted_parents(layout, root)):
        if parent < 0:
            continue
        if direction == "ancestor":
            step[child, parent] = 1.0
        else:
            step[parent, child] = 1.0
    return (np.eye(layout.num_joints) - np.linalg.matrix_power(step, k)).astype(np.float32)
