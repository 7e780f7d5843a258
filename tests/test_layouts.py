"""Skeleton layouts as data: the built-in YAML files, users' files, validation, mappings."""

from __future__ import annotations

import configparser
import fnmatch
from pathlib import Path

import numpy as np
import pytest
import yaml

from data_manifest.layouts import (LAYOUTS, NTU, NW_UCLA, Layout, LayoutError, layout_spec,
                                   load_joint_map, load_layout, mapping_by_names,
                                   resolve_joint_map)
from data_manifest.layouts import registry
from pipeline.synthetic.own_data import KINECT_V1_HEAD_FIRST
from train.models.graph import edge_matrix, normalize_columns, spatial_adjacency

REPO = Path(__file__).resolve().parents[1]

# the layouts before they became data (data_manifest/layouts.py): CTR-GCN's pairs
OLD_NTU_PAIRS = ((1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                 (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                 (18, 17), (19, 18), (20, 19), (22, 23), (21, 21), (23, 8), (24, 25),
                 (25, 12))
OLD_UCLA_PAIRS = ((1, 2), (2, 3), (3, 3), (4, 3), (5, 3), (6, 5), (7, 6), (8, 7), (9, 3),
                  (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                  (18, 17), (19, 18), (20, 19))
PYSKL_COCO_INWARD = {(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5),
                     (10, 8), (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)}


def _old_adjacency(pairs, size):
    inward = [(a - 1, b - 1) for a, b in pairs if a != b]
    outward = [(b, a) for a, b in inward]
    return np.stack([np.eye(size), normalize_columns(edge_matrix(inward, size)),
                     normalize_columns(edge_matrix(outward, size))]).astype(np.float32)


@pytest.mark.parametrize("layout, pairs, centre", [(NTU, OLD_NTU_PAIRS, 21),
                                                   (NW_UCLA, OLD_UCLA_PAIRS, 3)])
def test_builtins_reproduce_the_old_layouts_exactly(layout, pairs, centre):
    assert sorted(layout.bone_pairs) == sorted(pairs) and layout.num_joints == len(pairs)
    assert layout.center_joint == centre and (centre, centre) in layout.bone_pairs
    np.testing.assert_array_equal(spatial_adjacency(layout), _old_adjacency(pairs, len(pairs)))
    assert layout.origin == (1,)      # joint 2: where CTR-GCN centres both datasets


def test_every_builtin_loads_with_its_expected_shape():
    assert {name: (l.num_joints, l.dims) for name, l in LAYOUTS.items()} == {
        "ntu": (25, (3,)), "nw-ucla": (20, (3,)), "coco-17": (17, (2,)),
        "mediapipe-33": (33, (2, 3)), "utd-mhad": (20, (3,))}
    coco = LAYOUTS["coco-17"]
    assert set(coco.edges) == PYSKL_COCO_INWARD and coco.center == 0
    assert [coco.joints[j] for j in coco.origin] == ["left_hip", "right_hip"]
    mediapipe = LAYOUTS["mediapipe-33"]
    assert mediapipe.joints[11:13] == ("left_shoulder", "right_shoulder")
    assert mediapipe.joints[31:] == ("left_foot_index", "right_foot_index")
    for layout in LAYOUTS.values():
        flipped = layout.flip_permutation
        assert sorted(flipped) == list(range(layout.num_joints))
        for left, right in layout.flip_pairs:
            assert layout.joints[left].replace("left", "right") == layout.joints[right]
        assert layout_spec(layout) == layout.name and load_layout(layout.name) is layout
        assert Layout.from_dict(layout.to_dict()) == layout


def test_a_user_layout_file_round_trips(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(KINECT_V1_HEAD_FIRST))
    layout = load_layout(path)
    assert layout.name == "kinect-v1-head-first" and layout.num_joints == 20
    assert layout.joints[0] == "head" and layout.joints[layout.center] == "spine"
    assert layout.joints[layout.root] == "hip_center"
    # every joint but the root is paired with its parent; the root with itself
    assert (layout.root + 1, layout.root + 1) in layout.bone_pairs
    assert len(layout.edges) == 19
    assert load_layout(str(path)) == layout == load_layout(layout.to_dict())
    assert layout_spec(layout) == layout.to_dict()
    assert load_layout("mine.yaml", base_dir=tmp_path) == layout
    # NW-UCLA's bones (its joints in another order), rooted at the hips instead
    order = [layout.index(name) for name in NW_UCLA.joints]
    assert {frozenset((order.index(a), order.index(b))) for a, b in layout.edges} == \
        {frozenset(edge) for edge in NW_UCLA.edges}
    assert layout.digest != NW_UCLA.digest


def test_every_problem_of_a_layout_is_listed_at_once(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({
        "name": "broken", "num_joints": 7,
        "joints": ["a", "b", "c", "d", "d", "e"],
        "parents": {"b": "a", "c": "zz", "yy": "a", "d": "e", "e": "d"},
        "center": "q", "flip_pairs": [["a", "a"]], "draw": [["a"]], "dims": [4],
        "parent": {}}))
    with pytest.raises(LayoutError) as caught:
        load_layout(path)
    text = str(caught.value)
    assert str(path) in text
    for expected in ("unknown key 'parent' (did you mean parents?)",
                     "duplicate joint names: d",
                     "num_joints is 7 but 6 joints are listed",
                     "the parent 'zz' of 'c' is not a joint",
                     "parents: 'yy' is not a joint",
                     "cycle in parents: d -> e -> d",
                     "center 'q' is not a joint",
                     "'a' is paired with itself", "is not a list of at least two joints",
                     "dims must be a list of 2 and/or 3"):
        assert expected in text, expected


@pytest.mark.parametrize("change, message", [
    ({"parents": {"b": "a"}}, "2 joints have no parent (a, c); exactly one joint"),
    ({"parents": {"a": "b", "b": "c", "c": "a"}}, "cycle in parents: a -> b -> c -> a"),
    ({"parents": {"b": "a", "c": "c"}}, "'c' is its own parent"),
    ({"joints": ["a", "b", 3]}, "joint 3 is 3 (int)"),
    ({"center": "x"}, "center 'x' is not a joint"),
    ({"origin": ["a", "x"]}, "origin 'x' is not a joint"),
    ({"name": "ntu"}, "like a built-in layout but differs from it"),
])
def test_layout_errors(change, message):
    data = {"name": "tiny", "joints": ["a", "b", "c"], "parents": {"b": "a", "c": "b"},
            "center": "a", **change}
    with pytest.raises(LayoutError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_layout(data)


def test_unknown_names_and_missing_files():
    with pytest.raises(LayoutError, match="unknown skeleton layout 'coco'.*coco-17"):
        load_layout("coco")
    with pytest.raises(LayoutError, match="layout file not found"):
        load_layout("no/such/layout.yaml")
    with pytest.raises(LayoutError, match="missing key 'parents'"):
        load_layout({"name": "x", "joints": ["a"], "center": "a"})


def test_layout_files_are_package_data():
    """An installed (non-editable) package finds its YAML files: each folder of them is a
    package whose files match setup.cfg's package_data."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    globs = {key: value.split(",") for key, value in config["options.package_data"].items()}
    for folder in (registry.BUILTIN_DIR, registry.MAPPINGS_DIR):
        package = ".".join(folder.relative_to(REPO).parts)
        assert (folder / "__init__.py").is_file()
        for path in folder.glob("*.yaml"):
            assert any(fnmatch.fnmatch(path.name, g.strip()) for g in globs[package]), path


# --------------------------------------------------------------------------- mappings


def test_a_mapping_copies_by_name_and_fills_from_neighbours(tmp_path):
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(KINECT_V1_HEAD_FIRST))
    (tmp_path / "to-ntu.yaml").write_text(yaml.safe_dump({
        "name": "mine-to-ntu", "from": "mine.yaml", "to": "ntu",
        "joints": {"spine_base": "hip_center", "spine_middle": "spine",
                   "spine_shoulder": "shoulder_center",
                   "neck": {"mean": ["shoulder_center", "head"]},
                   "left_hand_tip": "left_hand", "left_thumb": "left_hand",
                   "right_hand_tip": {"weights": {"right_hand": 1.5, "right_wrist": -0.5}},
                   "right_thumb": "right_hand"}}))
    mapping = load_joint_map(tmp_path / "to-ntu.yaml")
    source = load_layout(tmp_path / "mine.yaml")
    assert mapping.source == source and mapping.target == NTU
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 1, 20, 3)).astype(np.float32)
    out = mapping.apply(data)
    assert out.shape == (4, 1, 25, 3) and out.dtype == np.float32
    at = {name: data[..., source.index(name), :] for name in source.joints}
    np.testing.assert_array_equal(out[..., NTU.index("head"), :], at["head"])   # by name
    np.testing.assert_array_equal(out[..., NTU.index("spine_base"), :], at["hip_center"])
    np.testing.assert_allclose(out[..., NTU.index("neck"), :],
                               (at["shoulder_center"] + at["head"]) / 2, rtol=1e-6)
    np.testing.assert_allclose(out[..., NTU.index("right_hand_tip"), :],
                               1.5 * at["right_hand"] - 0.5 * at["right_wrist"], rtol=1e-5)
    # a NaN (no colour coordinate) of a joint the target does not use does not spread
    data[..., source.index("left_foot"), :] = np.nan
    assert np.isfinite(mapping.apply(data)[..., NTU.index("head"), :]).all()
    # written out self-contained, it reads back as the same mapping
    again = load_joint_map(mapping.to_dict())
    assert again == mapping and again.digest == mapping.digest
    assert resolve_joint_map(source, NTU, mapping) is mapping
    with pytest.raises(LayoutError, match="it writes ntu, the layout is nw-ucla"):
        resolve_joint_map(source, NW_UCLA, mapping)


def test_mapping_errors_are_listed_at_once():
    with pytest.raises(LayoutError) as caught:
        load_joint_map({"from": "nw-ucla", "to": "ntu",
                        "joints": {"spine_base": "pelvis", "nose": "head",
                                   "neck": {"mean": []}, "left_thumb": {"max": ["x"]}}})
    text = str(caught.value)
    for expected in ("spine_base: 'pelvis' is not a joint of the source layout nw-ucla",
                     "'nose' is not a joint of the target layout ntu",
                     "neck: mean needs a non-empty list",
                     "left_thumb: {'max': ['x']} is neither",
                     "target joints without a source", "spine_middle", "right_hand_tip"):
        assert expected in text, expected
    with pytest.raises(LayoutError, match="missing key 'to'"):
        load_joint_map({"from": "ntu"})
    with pytest.raises(LayoutError, match="unknown joint mapping 'nope'"):
        load_joint_map("nope")


def test_builtin_mapping_and_mapping_by_names():
    mediapipe, coco = LAYOUTS["mediapipe-33"], LAYOUTS["coco-17"]
    mapping = resolve_joint_map(mediapipe, coco)
    assert mapping.name == "mediapipe-33-to-coco-17"
    data = np.arange(33 * 2, dtype=np.float32).reshape(1, 33, 2)
    np.testing.assert_array_equal(mapping.apply(data)[0, :, 0],
                                  [2 * mediapipe.index(name) for name in coco.joints])
    assert resolve_joint_map(NTU, NTU) is None
    reordered = load_layout(KINECT_V1_HEAD_FIRST)
    by_names = resolve_joint_map(reordered, NW_UCLA)
    assert by_names == mapping_by_names(reordered, NW_UCLA)
    data = np.random.default_rng(1).normal(size=(3, 20, 3)).astype(np.float32)
    np.testing.assert_array_equal(by_names.apply(data),
                                  data[:, [reordered.index(n) for n in NW_UCLA.joints]])
    with pytest.raises(LayoutError, match="target joints without a source"):
        resolve_joint_map(coco, NTU)
