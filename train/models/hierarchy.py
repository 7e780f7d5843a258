"""HD-GCN's hierarchically decomposed graph, built from groups of joints by level.

A hierarchy is a list of joint groups, level by level outwards from a centre-of-mass
joint (the CoM alone first). For ``L + 1`` groups there are ``L`` edge sets, one per pair
of consecutive levels ``(g_i, g_i+1)``, each with three subsets: the self-loops of both
levels, the edges from every joint of ``g_i`` to every joint of ``g_i+1`` (outward) and
back (inward), each directed subset normalised by its source's out-degree as in CTR-GCN.

Where the groups come from (``hierarchy_groups``), in order:
1. ``model.options.groups`` given by the user (1-based), checked to cover every joint once;
2. the published hierarchy for the layout and CoM in ``hdgcn_hierarchies.yaml`` (NTU with
   CoM 1, 2 or 21, as HD-GCN's code defines them);
3. otherwise built from the layout's tree: level ``d`` = the joints ``d`` hops from the
   CoM along the bones. HD-GCN published no other hierarchy (its NW-UCLA one is not in
   the public code), so this is the rule for NW-UCLA and new layouts. On NTU it gives the
   published groups for CoM 21 and 2 except for the hand tips, one level further out
   (NTU's tree hangs each tip from its thumb; the published groups, from the hand); the
   published CoM-1 groups also merge the three outermost levels into one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml

from data_manifest.layouts import Layout
from train.models.graph import edge_matrix, normalize_columns
from train.models.partitions import hop_distances

HIERARCHIES_FILE = Path(__file__).with_name("hdgcn_hierarchies.yaml")
MIN_GROUPS = 4   # the attention over levels (A-HA) needs 3 neighbours among the levels


@lru_cache(maxsize=None)
def published_hierarchies() -> dict[str, dict[int, list[list[int]]]]:
    """layout name -> CoM (1-based) -> groups (1-based), from ``hdgcn_hierarchies.yaml``."""
    data = yaml.safe_load(HIERARCHIES_FILE.read_text(encoding="utf-8")) or {}
    return {str(name): {int(com): [list(map(int, group)) for group in groups]
                        for com, groups in entries.items()}
            for name, entries in data.items()}


def hierarchy_groups(layout: Layout, com: int | None = None,
                     groups: Sequence[Sequence[int]] | None = None) -> list[list[int]]:
    """The hierarchy's groups, 0-based (see the module docstring for where they come from).

    ``com`` and the joints of ``groups`` are 1-based; ``com`` defaults to the layout's
    centre joint.
    """
    size = layout.num_joints
    if groups is not None:
        chosen = [[int(joint) for joint in group] for group in groups]
        where = "model.options.groups"
    else:
        com = layout.center_joint if com is None else int(com)
        if not 1 <= com <= size:
            raise ValueError(f"model.options.com {com} is not a joint of the {layout.name} "
                             f"layout (1..{size})")
        published = published_hierarchies().get(layout.name, {}).get(com)
        chosen = published if published is not None else _levels_from(layout, com)
        where = f"the {layout.name} hierarchy from joint {com}"
    flat = [joint for group in chosen for joint in group]
    if sorted(flat) != list(range(1, size + 1)):
        missing = sorted(set(range(1, size + 1)) - set(flat))
        repeated = sorted({joint for joint in flat if flat.count(joint) > 1})
        outside = sorted(set(flat) - set(range(1, size + 1)))
        raise ValueError(f"{where} must name each of the {size} joints once (1-based): "
                         f"missing {missing}, repeated {repeated}, not joints {outside}")
    if len(chosen) < MIN_GROUPS or not all(chosen):
        raise ValueError(f"{where} needs at least {MIN_GROUPS} non-empty levels, "
                         f"got {[len(group) for group in chosen]} joints per level")
    return [[joint - 1 for joint in group] for group in chosen]


def _levels_from(layout: Layout, com: int) -> list[list[int]]:
    hops = hop_distances(layout)[com - 1]
    levels = int(hops.max()) + 1
    return [[int(joint) + 1 for joint in np.flatnonzero(hops == level)]
            for level in range(levels)]


def hierarchy_graph(groups: Sequence[Sequence[int]], num_joints: int) -> np.ndarray:
    """(L, 3, V, V) float32 for ``L + 1`` groups (0-based): per level pair, the self-loops,
    the outward and the inward edges, as ``m[target, source]`` like ``graph.edge_matrix``."""
    sets = []
    for inner, outer in zip(groups[:-1], groups[1:]):
        self_loops = np.zeros((num_joints, num_joints))
        for joint in [*inner, *outer]:
            self_loops[joint, joint] = 1.0
        outward = [(source, target) for source in inner for target in outer]
        inward = [(source, target) for source in outer for target in inner]
        sets.append(np.stack([self_loops,
                              normalize_columns(edge_matrix(outward, num_joints)),
                              normalize_columns(edge_matrix(inward, num_joints))]))
    return np.stack(sets).astype(np.float32)
