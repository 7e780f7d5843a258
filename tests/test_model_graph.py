"""Skeleton graphs: layouts checked against the published CTR-GCN graphs."""

from __future__ import annotations

import numpy as np
import pytest

from data_manifest.layouts import NTU, NW_UCLA
from model_factories import reference_arrays, single_thread  # noqa: F401 (autouse)
from train.models.graph import layout_by_name_or_joints, spatial_adjacency

# Published CTR-GCN inward edges (1-based child, parent), graph/ntu_rgb_d.py and graph/ucla.py.
CTRGCN_NTU_INWARD = {(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7),
                     (9, 21), (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14),
                     (16, 15), (17, 1), (18, 17), (19, 18), (20, 19), (22, 23), (23, 8),
                     (24, 25), (25, 12)}
CTRGCN_UCLA_INWARD = {(1, 2), (2, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3),
                      (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15),
                      (17, 1), (18, 17), (19, 18), (20, 19)}


@pytest.mark.parametrize("layout, published", [(NTU, CTRGCN_NTU_INWARD),
                                               (NW_UCLA, CTRGCN_UCLA_INWARD)])
def test_layout_edges_are_the_published_graph(layout, published):
    assert {(a + 1, b + 1) for a, b in layout.edges} == published
    # one bone pair per joint; the centre joint is its own parent (zero bone)
    assert sorted(child for child, _ in layout.bone_pairs) == list(range(1, layout.num_joints + 1))
    assert (layout.center_joint, layout.center_joint) in layout.bone_pairs


@pytest.mark.parametrize("layout", [NTU, NW_UCLA])
def test_every_joint_reaches_the_centre(layout):
    parent = {child: par for child, par in layout.bone_pairs}
    for joint in range(1, layout.num_joints + 1):
        seen = set()
        while joint != layout.center_joint:
            assert joint not in seen, f"cycle through joint {joint}"
            seen.add(joint)
            joint = parent[joint]


def test_ntu_adjacency_equals_the_reference_checkpoint_graph():
    # The reference state dict's PA parameters were never trained: they are CTR-GCN's graph.
    reference = reference_arrays()["state_dict/l1.gcn1.PA"]
    np.testing.assert_array_equal(spatial_adjacency(NTU), reference)


@pytest.mark.parametrize("layout", [NTU, NW_UCLA])
def test_adjacency_subsets_are_self_inward_outward(layout):
    adjacency = spatial_adjacency(layout)
    size = layout.num_joints
    assert adjacency.shape == (3, size, size) and adjacency.dtype == np.float32
    np.testing.assert_array_equal(adjacency[0], np.eye(size))
    inward, outward = adjacency[1], adjacency[2]
    # same edges, opposite directions
    np.testing.assert_array_equal(inward > 0, (outward > 0).T)
    assert (inward > 0).sum() == size - 1
    # columns (source joints) sum to 1 where the joint has an edge
    for subset in (inward, outward):
        sums = subset.sum(axis=0)
        assert np.allclose(sums[sums > 0], 1.0)
    # only the centre joint has no parent
    centre = layout.center_joint - 1
    assert inward[:, centre].sum() == 0
    assert np.all(np.delete(inward.sum(axis=0), centre) == 1.0)
    # child -> parent: in NTU joint 1 (spine base) feeds joint 2 (spine middle)
    child, parent = layout.edges[0]
    assert inward[parent, child] > 0 and outward[child, parent] > 0


def test_layout_lookup():
    assert layout_by_name_or_joints("ntu") is NTU
    # utd-mhad has 20 joints too (NW-UCLA's in another order): a count means the dataset's
    assert layout_by_name_or_joints(num_joints=20) is NW_UCLA
    assert layout_by_name_or_joints("utd-mhad", 20).name == "utd-mhad"
    assert layout_by_name_or_joints("nw-ucla", 20) is NW_UCLA
    with pytest.raises(ValueError, match="25 joints, not 20"):
        layout_by_name_or_joints("ntu", 20)
    with pytest.raises(ValueError, match="unknown skeleton layout"):
        layout_by_name_or_joints("coco")
    assert layout_by_name_or_joints(num_joints=17).name == "coco-17"
    with pytest.raises(ValueError, match="no unique skeleton layout with 21 joints"):
        layout_by_name_or_joints(num_joints=21)
