"""The pieces of cross-dataset transfer: UTD-MHAD's layout, the Kinect v1 -> NTU joint
mapping checked joint by joint, mappings applied by joint name, persons, class maps."""

from __future__ import annotations

import configparser

import numpy as np
import pytest
import yaml

from data_manifest import class_map
from data_manifest.class_map import (ClassMap, ClassMapError, builtin_class_maps,
                                     load_class_map)
from data_manifest.classes import (CLASS_LISTS, NTU120_CLASSES, UTD_MHAD_CLASSES,
                                   read_class_names)
from data_manifest.errors import DataError
from data_manifest.layouts import (LAYOUTS, NTU, NW_UCLA, LayoutError, load_joint_map,
                                   load_layout, resolve_joint_map)
from pipeline.synthetic.own_data import KINECT_V1_HEAD_FIRST
from train.data.feeders import NTUFeeder
from train.errors import TrainError
from train.models.graph import spatial_adjacency
from train.transfer.convert import ConvertingFeeder, LayoutConversion, layout_conversion
from train_factories import REPO

UTD = LAYOUTS["utd-mhad"]


def test_utd_mhad_is_nw_ucla_head_first():
    assert UTD.joints[:4] == ("head", "shoulder_center", "spine", "hip_center")
    assert NW_UCLA.joints[:4] == ("hip_center", "spine", "shoulder_center", "head")
    assert UTD.joints[4:] == NW_UCLA.joints[4:]
    order = [UTD.index(name) for name in NW_UCLA.joints]     # UTD's joints in NW-UCLA order
    adjacency = spatial_adjacency(UTD)
    np.testing.assert_array_equal(adjacency[:, order][:, :, order], spatial_adjacency(NW_UCLA))
    assert UTD.joints[UTD.center] == "shoulder_center" and UTD.joints[UTD.origin[0]] == "spine"


def _skeleton(layout):
    """One frame whose every joint has its own known position: joint name -> (x, y, z)."""
    rng = np.random.default_rng(7)
    positions = {name: rng.normal(size=3).astype(np.float32) for name in sorted(NW_UCLA.joints)}
    return positions, np.stack([positions[name] for name in layout.joints])[None, None]


@pytest.mark.parametrize("source", [NW_UCLA, UTD, load_layout(KINECT_V1_HEAD_FIRST)],
                         ids=["nw-ucla", "utd-mhad", "user layout"])
def test_kinect_v1_to_ntu_joint_by_joint(source):
    mapping = resolve_joint_map(source, NTU)
    assert mapping.name == "nw-ucla-to-ntu" and mapping.source == source
    at, data = _skeleton(source)
    out = mapping.apply(data)[0, 0]
    assert out.shape == (25, 3)
    expected = {
        "spine_base": at["hip_center"], "spine_shoulder": at["shoulder_center"],
        "spine_middle": (at["hip_center"] + at["shoulder_center"]) / 2,
        "neck": 0.67 * at["shoulder_center"] + 0.33 * at["head"],
        "left_hand_tip": 1.6 * at["left_hand"] - 0.6 * at["left_wrist"],
        "right_hand_tip": 1.6 * at["right_hand"] - 0.6 * at["right_wrist"],
        "left_thumb": at["left_hand"], "right_thumb": at["right_hand"]}
    for name in NTU.joints:
        want = expected.get(name, at.get(name))
        assert want is not None, name                   # every NTU joint is accounted for
        np.testing.assert_allclose(out[NTU.index(name)], want, rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    copied = [n for n in NTU.joints if n not in expected]
    assert len(copied) == 17 and all(n in NW_UCLA.joints for n in copied)
    # the weights of every joint add up to 1: a translation moves every joint alike
    np.testing.assert_allclose(mapping.matrix.sum(axis=1), 1.0)


def test_an_explicit_mapping_applies_by_joint_name():
    written = load_joint_map("nw-ucla-to-ntu")
    assert written.source == NW_UCLA
    rebased = resolve_joint_map(UTD, NTU, written)
    assert rebased.source == UTD and rebased == resolve_joint_map(UTD, NTU)
    _, data = _skeleton(UTD)
    _, same = _skeleton(NW_UCLA)
    np.testing.assert_array_equal(rebased.apply(data), written.apply(same))
    with pytest.raises(LayoutError, match="it reads nw-ucla, the data is coco-17"):
        resolve_joint_map(LAYOUTS["coco-17"], NTU, written)


def test_persons_are_padded_or_cut_as_the_run_expects():
    one = np.random.default_rng(0).normal(size=(6, 1, 25, 3)).astype(np.float32)
    zero = LayoutConversion(None, persons=2)(one)
    assert zero.shape == (6, 2, 25, 3) and not zero[:, 1].any()
    np.testing.assert_array_equal(zero[:, 0], one[:, 0])
    copy = LayoutConversion(None, persons=2, pad="copy")(one)
    np.testing.assert_array_equal(copy[:, 1], one[:, 0])
    three = np.concatenate([one, one + 1, one + 2], axis=1)
    np.testing.assert_array_equal(LayoutConversion(None, persons=2)(three), three[:, :2])
    with pytest.raises(ValueError, match="pad must be one of zero, copy"):
        LayoutConversion(None, persons=2, pad="mirror")


def test_the_converted_target_gets_the_runs_own_test_transform():
    """Mapped, padded, then the NTU feeder: translated by the spine middle of frame 0, a
    centre crop of 95 % resized to the window, exactly as for the run's own data."""
    rng = np.random.default_rng(3)
    target = (rng.normal(size=(50, 1, 20, 3)) + [0.3, 0.1, 3.0]).astype(np.float32)
    conversion = layout_conversion(UTD, NTU, persons=2)
    feeder = NTUFeeder(layout=NTU, window=64)
    converted = conversion(target)
    translated = np.where(converted != 0, converted - converted[0, 0, 1], 0)
    out = ConvertingFeeder(conversion, feeder)(target, train=False)
    np.testing.assert_allclose(out, feeder(translated, train=False), atol=1e-5)
    mapped = resolve_joint_map(UTD, NTU).apply(target)[:, 0]
    crop = mapped[1:49] - mapped[0, NTU.index("spine_middle")]   # bias int(0.05 * 50 / 2)
    assert out.shape == (3, 64, 25, 2) and not out[..., 1].any()
    np.testing.assert_allclose(out[:, 0, :, 0], crop[0].T, atol=1e-5)   # first output frame
    with pytest.raises(TrainError, match="(?s)cannot convert coco-17 skeletons to the run's ntu "
                                         "layout.*--joint-map"):
        layout_conversion(LAYOUTS["coco-17"], NTU, persons=2)


# --------------------------------------------------------------------------- class maps


def test_the_builtin_utd_mhad_map_is_the_authors():
    assert "utd-mhad-to-ntu120" in builtin_class_maps()
    resolved = load_class_map("utd-mhad-to-ntu120").resolve(
        target_names=UTD_MHAD_CLASSES, target_classes=27, source_names=NTU120_CLASSES,
        source_classes=120)
    named = {UTD_MHAD_CLASSES[t]: NTU120_CLASSES[s] for t, s in resolved.items()}
    assert named == {"right hand wave": "hand waving", "cross arms in the chest": "cross arms",
                     "basketball shoot": "shoot at the basket",
                     "sit to stand": "standing up (from sitting position)",
                     "stand to sit": "sitting down",
                     "squat (two arms stretch out)": "squat down"}
    assert len(UTD_MHAD_CLASSES) == 27 and read_class_names("utd-mhad") == list(UTD_MHAD_CLASSES)
    assert set(CLASS_LISTS) >= {"ntu60", "ntu120", "nw-ucla", "utd-mhad"}


def test_class_map_sources(tmp_path):
    (tmp_path / "map.yaml").write_text("# mine\n2: 22\nsquat: 79\n")
    assert load_class_map(tmp_path / "map.yaml").pairs == ((2, 22), ("squat", 79))
    assert load_class_map(str(tmp_path / "map.yaml")).name == "map"
    assert load_class_map("{1: 3, 4: wave}").to_dict() == {1: 3, 4: "wave"}
    assert load_class_map({0: 1}).pairs == ((0, 1),)
    with pytest.raises(ClassMapError, match="unknown class map 'nope'"):
        load_class_map("nope")
    with pytest.raises(ClassMapError, match="class map file not found"):
        load_class_map(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("[1, 2]\n")
    with pytest.raises(ClassMapError, match="a class map is a mapping target class: source"):
        load_class_map(tmp_path / "list.yaml")
    with pytest.raises(ClassMapError) as caught:
        load_class_map({-1: 2, 3: True, 4: [5]})
    for expected in ("labels count from 0, not -1", "not True", "not [5]"):
        assert expected in str(caught.value)
    with pytest.raises(ClassMapError, match="not valid YAML"):
        load_class_map("{1: [}")


def test_a_target_class_given_twice_in_a_class_map_file_is_reported(tmp_path):
    (tmp_path / "map.yaml").write_text("2: 22\n5: 95\n2: 23\nsquat: 79\nsquat: 80\n")
    with pytest.raises(ClassMapError, match=r"map.yaml: target classes 2 \(lines 1 and 3\), "
                                            r"'squat' \(lines 4 and 5\) mapped twice"):
        load_class_map(tmp_path / "map.yaml")
    with pytest.raises(ClassMapError, match=r"target class 1 \(lines 1 and 1\) mapped twice"):
        load_class_map("{1: 3, 1: 4}")


def test_class_map_resolution_problems_are_listed_at_once():
    names = ["Wave", "wave", "jump", "sit down"]
    source = ["a", "b", "c"]
    ok = ClassMap(((0, "b"), ("JUMP", 2), ("sit   Down", 0))).resolve(
        target_names=names, target_classes=4, source_names=source, source_classes=3)
    assert ok == {0: 1, 2: 2, 3: 0}
    assert ClassMap(((0, "b"),)).resolve(target_names=names, target_classes=4,
                                         source_names=source, source_classes=3) == {0: 1}
    assert ClassMap((("Wave", 0),)).resolve(target_names=names, target_classes=4,
                                            source_names=None, source_classes=3) == {0: 0}
    with pytest.raises(ClassMapError) as caught:
        ClassMap((("WAVE", 0), ("run", 1), (9, 0), (2, 5), (2, 1), (1, "c"), ("2", 0)),
                 name="mine").resolve(target_names=names, target_classes=4,
                                      source_names=None, source_classes=3,
                                      target="the target", source="the run")
    text = str(caught.value)
    for expected in ("class map mine cannot be used (6 problems)",
                     "'WAVE' is ambiguous in the target's class names: 0 ('Wave'), 1 ('wave')",
                     "'run' is not a class name of the target",
                     "the target has no class 9 (its 4 classes are 0-3)",
                     "the run has no class 5", "'c': the run has no class names",
                     "'2' is not a class name of the target; a label is written without "
                     "quotes"):
        assert expected in text, expected
    with pytest.raises(ClassMapError, match="target class 2 \\('jump'\\) is mapped twice"):
        ClassMap(((2, 0), ("jump", 1))).resolve(target_names=names, target_classes=4,
                                                source_names=None, source_classes=3)
    with pytest.raises(ClassMapError, match="the class map is empty"):
        ClassMap(()).resolve(target_names=None, target_classes=None, source_names=None,
                             source_classes=3)


def test_class_name_lists_by_name_and_files_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "utd-mhad").write_text("mine\nyours\n")       # a file of that name wins
    assert read_class_names("utd-mhad") == ["mine", "yours"]
    with pytest.raises(DataError, match="class names file not found \\(known lists by name: "
                                        "ntu60, ntu120, nw-ucla, utd-mhad\\)"):
        read_class_names(tmp_path / "none.txt")


def test_built_in_maps_are_package_data():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["options.package_data"]["data_manifest.class_maps"].strip() == "*.yaml"
    assert (class_map.BUILTIN_DIR / "__init__.py").is_file()
    for path in class_map.BUILTIN_DIR.glob("*.yaml"):
        assert isinstance(yaml.safe_load(path.read_text()), dict)
