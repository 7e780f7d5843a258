"""Backbone graphs from a layout: HD-GCN's hierarchy, ST-GCN's partition, InfoGCN's tree."""

from __future__ import annotations

import numpy as np
import pytest

import reference_hdgcn
import reference_stgcn
from data_manifest.layouts import NTU, NW_UCLA
from train.models.hierarchy import hierarchy_graph, hierarchy_groups, published_hierarchies
from train.models.partitions import (hop_distances, infogcn_relative_matrix, rooted_parents,
                                     stgcn_spatial_partition)


def _one_based(groups):
    return [[joint + 1 for joint in group] for group in groups]


@pytest.mark.parametrize("com", [21, 2, 1])
def test_ntu_uses_the_published_groups(com):
    assert _one_based(hierarchy_groups(NTU, com)) == reference_hdgcn.NTU_GROUPS[com]
    assert published_hierarchies()["ntu"][com] == reference_hdgcn.NTU_GROUPS[com]


def test_the_default_centre_of_mass_is_the_layout_centre():
    assert hierarchy_groups(NTU) == hierarchy_groups(NTU, 21)


def test_other_layouts_get_levels_by_hops_from_the_centre():
    # NW-UCLA, centre joint 3 (spine): its bones, level by level
    assert _one_based(hierarchy_groups(NW_UCLA)) == [
        [3], [2, 4, 5, 9], [1, 6, 10], [7, 11, 13, 17], [8, 12, 14, 18], [15, 19], [16, 20]]


def test_built_levels_on_ntu_differ_from_the_published_only_at_the_hand_tips():
    built = _one_based(hierarchy_groups(NTU, com=3))   # an unpublished CoM: built
    assert built[0] == [3] and built[1] == [4, 21]
    # CoM 21 built from the tree, through an explicit copy of the rule:
    hops = hop_distances(NTU)[20]
    levels = [sorted(int(j) + 1 for j in np.flatnonzero(hops == d))
              for d in range(int(hops.max()) + 1)]
    published = [sorted(group) for group in reference_hdgcn.NTU_GROUPS[21]]
    assert levels[:5] == published[:5]
    assert levels[5] == [15, 19, 23, 25] and levels[6] == [16, 20, 22, 24]
    assert published[5] == [15, 19, 22, 23, 24, 25] and published[6] == [16, 20]


def test_groups_can_be_given_and_are_checked():
    groups = [[3], [2, 4, 5, 9], [1, 6, 10, 7, 11], [13, 17, 8, 12],
              [14, 18, 15, 19, 16, 20]]
    assert _one_based(hierarchy_groups(NW_UCLA, groups=groups)) == groups
    with pytest.raises(ValueError, match=r"missing \[20\], repeated \[19\]"):
        hierarchy_groups(NW_UCLA, groups=[*groups[:-1], [14, 18, 15, 19, 16, 19]])
    with pytest.raises(ValueError, match="at least 4 non-empty levels"):
        hierarchy_groups(NW_UCLA, groups=[[3], list(set(range(1, 21)) - {3})])
    with pytest.raises(ValueError, match="not joints"):
        hierarchy_groups(NW_UCLA, groups=[*groups, [21]])


@pytest.mark.parametrize("com", [21, 2, 1])
def test_graph_matches_the_published_construction(com):
    groups = hierarchy_groups(NTU, com)
    np.testing.assert_allclose(hierarchy_graph(groups, 25),
                               reference_hdgcn.hierarchical_graph(reference_hdgcn.NTU_GROUPS[com]),
                               atol=1e-7)


def test_stgcn_partition_matches_the_published_graph():
    np.testing.assert_allclose(stgcn_spatial_partition(NTU), reference_stgcn.spatial_graph(),
                               atol=1e-7)
    graph = stgcn_spatial_partition(NW_UCLA)
    assert graph.shape == (3, 20, 20)
    # every target's incoming weights (self-loop and neighbours) sum to one
    np.testing.assert_allclose(graph.sum(axis=(0, 1)), np.ones(20), rtol=1e-6)
    # as published (hops to the centre capped at 1), only the bones touching the centre
    # joint (3) or its neighbours (2, 4, 5, 9) leave the root subset
    # (a bone split off is centrifugal one way, centripetal the other)
    centrifugal = {(int(v) + 1, int(w) + 1) for v, w in zip(*np.nonzero(graph[2]))}
    split = centrifugal | {(w, v) for v, w in centrifugal}
    near_centre = {3, 2, 4, 5, 9}
    bones = {(a, b) for a, b in NW_UCLA.bone_pairs if a != b}
    expected = {pair for a, b in bones if {a, b} & near_centre for pair in ((a, b), (b, a))}
    assert split == expected


def test_infogcn_trees():
    parents = rooted_parents(NTU, root=1)                     # spine middle
    assert parents[1] == -1 and parents[0] == 1 and parents[20] == 1 and parents[21] == 22
    # past the tree's depth (7 from the spine middle) the joints pass through unchanged
    np.testing.assert_array_equal(infogcn_relative_matrix(NTU, 8), np.eye(25))
    assert not np.array_equal(infogcn_relative_matrix(NTU, 7), np.eye(25))
    with pytest.raises(ValueError, match="k must be at least 1"):
        infogcn_relative_matrix(NTU, 0)
