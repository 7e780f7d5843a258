"""Built-in layouts and joint mappings (YAML files shipped in the package), and the one
function that turns a name, a path or a mapping into a :class:`Layout`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from data_manifest.layouts.layout import Layout, LayoutError
from data_manifest.layouts.mapping import (JointMapping, mapping_by_names, parse_mapping_file,
                                          same_joint_names)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"
YAML_SUFFIXES = (".yaml", ".yml")

LayoutSpec = str | os.PathLike | Mapping | Layout


def read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LayoutError(f"{what} file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise LayoutError(f"cannot read the {what} file ({error})", path=str(path)) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise LayoutError(f"not valid YAML ({error})", path=str(path)) from None


def _load_builtins() -> dict[str, Layout]:
    layouts = {}
    for path in sorted(BUILTIN_DIR.glob("*.yaml")):
        layout = Layout.from_dict(read_yaml(path, "layout"), where=str(path))
        if layout.name != path.stem:
            raise LayoutError(f"built-in layout file names layout {layout.name!r}",
                              path=str(path))
        layouts[layout.name] = layout
    return layouts


LAYOUTS: dict[str, Layout] = _load_builtins()


def _user_file(text: str, base_dir: str | os.PathLike | None) -> Path | None:
    """The YAML file a name that is not built in stands for (relative paths: to
    ``base_dir``), or None when it reads as neither a YAML path nor an existing file."""
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return path if path.suffix.lower() in YAML_SUFFIXES or path.is_file() else None


def load_layout(spec: LayoutSpec, base_dir: str | os.PathLike | None = None) -> Layout:
    """A layout from a built-in name, a YAML file path (relative to ``base_dir``, default
    the current folder), a parsed mapping, or a :class:`Layout` (returned as it is).

    A user layout may not take a built-in name unless it is that layout.
    """
    if isinstance(spec, Layout):
        return spec
    if isinstance(spec, Mapping):
        return _checked_name(Layout.from_dict(spec, where="inline layout"), "inline layout")
    text = os.fspath(spec)
    if isinstance(text, str) and text in LAYOUTS:
        return LAYOUTS[text]
    path = _user_file(text, base_dir)
    if path is None:
        raise LayoutError(f"unknown skeleton layout {text!r}: the built-in layouts are "
                          f"{', '.join(sorted(LAYOUTS))}; a layout of your own is a YAML file "
                          "(.yaml) given by its path (see docs/own-data.md)")
    return _checked_name(Layout.from_dict(read_yaml(path, "layout"), where=str(path)),
                         str(path))


def _checked_name(layout: Layout, where: str) -> Layout:
    builtin = LAYOUTS.get(layout.name)
    if builtin is not None and builtin != layout:
        raise LayoutError(f"the layout is named {layout.name!r} like a built-in layout but "
                          "differs from it; give it a name of its own", path=where)
    return builtin or layout


def layout_spec(layout: Layout) -> str | dict[str, Any]:
    """How a config or a record refers to ``layout``: the name of a built-in, else its
    whole content (so it never depends on a file that may move or change)."""
    return layout.name if LAYOUTS.get(layout.name) == layout else layout.to_dict()


def builtin_mappings() -> dict[str, Path]:
    return {path.stem: path for path in sorted(MAPPINGS_DIR.glob("*.yaml"))}


def load_joint_map(spec: str | os.PathLike | Mapping,
                   base_dir: str | os.PathLike | None = None) -> JointMapping:
    """A joint mapping from a built-in mapping name, a YAML file path, or a parsed mapping
    (whose ``from``/``to`` paths are relative to ``base_dir``)."""
    if isinstance(spec, Mapping):
        return parse_mapping_file(spec, "inline joint mapping", load_layout,
                                  Path(base_dir) if base_dir else None)
    text = os.fspath(spec)
    builtin = builtin_mappings()
    if text in builtin:
        path = builtin[text]
    else:
        path = _user_file(text, base_dir)
        if path is None:
            raise LayoutError(f"unknown joint mapping {text!r}: built-in mappings are "
                              f"{', '.join(builtin) or 'none'}; a mapping of your own is a "
                              "YAML file (.yaml) given by its path")
    return parse_mapping_file(read_yaml(path, "joint mapping"), str(path), load_layout,
                              path.parent)


def resolve_joint_map(source: Layout, target: Layout,
                      mapping: JointMapping | None = None) -> JointMapping | None:
    """How arrays stored in ``source`` become ``target``: ``mapping`` if given (it must read
    ``source``, or a layout with the same joint names, and write ``target``), a built-in
    mapping between the two (or from a layout with ``source``'s joint names in another
    order, e.g. ``nw-ucla-to-ntu`` for ``utd-mhad``), else copying joints by name. None when
    the two layouts are the same."""
    if mapping is not None:
        if mapping.source != source and same_joint_names(mapping.source, source):
            mapping = mapping.with_source(source)
        wrong = []
        if mapping.source != source:
            wrong.append(f"it reads {mapping.source.name}, the data is {source.name}")
        if mapping.target != target:
            wrong.append(f"it writes {mapping.target.name}, the layout is {target.name}")
        if wrong:
            raise LayoutError(f"the joint mapping {mapping.name or ''} does not fit: "
                              + "; ".join(wrong))
        return mapping
    if source == target:
        return None
    by_names = None
    for path in builtin_mappings().values():
        data = read_yaml(path, "joint mapping")
        if data.get("to") != target.name:
            continue
        if data.get("from") == source.name:
            return load_joint_map(path)
        if by_names is None:
            found = load_joint_map(path)
            if found.target == target and same_joint_names(found.source, source):
                by_names = found.with_source(source)
    return by_names or mapping_by_names(source, target)
