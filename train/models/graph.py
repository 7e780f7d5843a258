"""Skeleton graphs for the GCN: three adjacency subsets (self, inward, outward) per layout.

The bone pairs come from the layout (``data_manifest.layouts``; the built-in ``ntu`` and
``nw-ucla`` ones are CTR-GCN's). ``inward`` links a joint to its parent (towards the body
centre), ``outward`` the reverse. Each directed subset
is normalised by the in-degree of its source joint (column normalisation, as in CTR-GCN's
``normalize_digraph``), so a published checkpoint's ``PA`` starts from the same matrices.
"""

from __future__ import annotations

import numpy as np

from data_manifest.datasets import DATASETS
from data_manifest.layouts import LAYOUTS, Layout, LayoutError, LayoutSpec, load_layout

NUM_SUBSETS = 3   # self, inward, outward


def layout_by_name_or_joints(layout: LayoutSpec | None = None,
                             num_joints: int | None = None) -> Layout:
    """The layout ``layout`` (a built-in name, a YAML path, a layout mapping or a
    :class:`Layout`), or the built-in with ``num_joints`` joints (where two share a count,
    the one of a built-in dataset: 20 is nw-ucla, not utd-mhad); both must agree."""
    if layout is not None:
        try:
            found = load_layout(layout)
        except LayoutError as error:
            raise ValueError(str(error)) from None
        if num_joints is not None and num_joints != found.num_joints:
            raise ValueError(f"layout {found.name!r} has {found.num_joints} joints, "
                             f"not {num_joints}")
        return found
    if num_joints is None:
        raise ValueError("give a skeleton layout name or a joint count")
    matches = [item for item in LAYOUTS.values() if item.num_joints == num_joints]
    if len(matches) > 1:
        datasets = {info.layout for info in DATASETS.values()}
        matches = [item for item in matches if item.name in datasets]
    if len(matches) != 1:
        raise ValueError(f"no unique skeleton layout with {num_joints} joints; known: "
                         + ", ".join(f"{x.name} ({x.num_joints})" for x in LAYOUTS.values()))
    return matches[0]


def edge_matrix(edges: list[tuple[int, int]], num_joints: int) -> np.ndarray:
    """Binary matrix with ``m[target, source] = 1`` for every 0-based edge (source, target)."""
    matrix = np.zeros((num_joints, num_joints))
    for source, target in edges:
        matrix[target, source] = 1.0
    return matrix


def normalize_columns(matrix: np.ndarray) -> np.ndarray:
    """Divide each column by its sum; all-zero columns stay zero."""
    sums = matrix.sum(axis=0)
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return matrix * scale[None, :]


def spatial_adjacency(layout: Layout) -> np.ndarray:
    """(3, V, V) float32: identity, normalised inward edges, normalised outward edges."""
    inward = list(layout.edges)
    outward = [(parent, child) for child, parent in inward]
    size = layout.num_joints
    subsets = (np.eye(size),
               normalize_columns(edge_matrix(inward, size)),
               normalize_columns(edge_matrix(outward, size)))
    return np.stack(subsets).astype(np.float32)
