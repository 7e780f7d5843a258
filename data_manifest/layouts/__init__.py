"""Skeleton layouts as data: built-in YAML files (``ntu``, ``nw-ucla``, ``coco-17``,
``mediapipe-33``) and users' own files, plus joint mappings between layouts.

``load_layout(name_or_path)`` is the one way to get a :class:`Layout`; ``LAYOUTS`` holds the
built-ins by name. See :mod:`.layout` for the YAML keys and :mod:`.mapping` for mappings.
"""

from data_manifest.layouts.layout import Layout, LayoutError
from data_manifest.layouts.mapping import JointMapping, mapping_by_names
from data_manifest.layouts.registry import (LAYOUTS, LayoutSpec, builtin_mappings,
                                            layout_spec, load_joint_map, load_layout,
                                            resolve_joint_map)

NTU = LAYOUTS["ntu"]
NW_UCLA = LAYOUTS["nw-ucla"]

__all__ = ["JointMapping", "LAYOUTS", "Layout", "LayoutError", "LayoutSpec", "NTU", "NW_UCLA",
           "builtin_mappings", "layout_spec", "load_joint_map", "load_layout",
           "mapping_by_names", "resolve_joint_map"]
