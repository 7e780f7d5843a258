"""Class maps: which class of one dataset (the target) is which class of another (the
source), for evaluating a model on a dataset it was not trained on and for starting a
model's classifier from another's.

A class map is a YAML mapping ``target class: source class``::

    2: 22                      # 0-based labels: the target's label 2 is the source's 22
    5: 95
    squat (two arms stretch out): squat down      # or class names, of either side

Labels are 0-based integers; names are resolved against the class names of each side
(exact, else ignoring case and repeated spaces). A target class may be missing (its samples
are left out); several target classes may share one source class. Built-in maps (package
data, ``data_manifest/class_maps/``) are used by name, e.g. ``utd-mhad-to-ntu120``; a map
of your own is a YAML file, or the mapping itself.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from data_manifest.errors import DataError

BUILTIN_DIR = Path(__file__).resolve().parent / "class_maps"
YAML_SUFFIXES = (".yaml", ".yml")

Entry = int | str


class ClassMapError(DataError):
    """A class map that cannot be used, with every problem found."""


class _DuplicateKeys(yaml.YAMLError):
    """A YAML mapping gives one key more than once."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping giving a key twice: plain YAML keeps the last,
    so a map with ``2: 22`` and ``2: 23`` would map 2 to 23 and never say so."""

    def construct_mapping(self, node, deep=False):
        first_line: dict[Any, int] = {}
        repeated = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first_line:
                    repeated.append(f"{key!r} (lines {first_line[key]} and {line})")
                else:
                    first_line[key] = line
            except TypeError:
                continue     # an unhashable key: SafeLoader says so
        if repeated:
            raise _DuplicateKeys(f"target class{'es' if len(repeated) > 1 else ''} "
                                 f"{', '.join(repeated)} mapped twice; a class map gives "
                                 "each target class once")
        return super().construct_mapping(node, deep)


def _safe_load(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)


def builtin_class_maps() -> dict[str, Path]:
    return {path.stem: path for path in sorted(BUILTIN_DIR.glob("*.yaml"))}


@dataclass(frozen=True)
class ClassMap:
    """The map as written: (target, source) pairs of labels or names."""

    pairs: tuple[tuple[Entry, Entry], ...]
    name: str = ""

    def to_dict(self) -> dict[Entry, Entry]:
        return dict(self.pairs)

    def resolve(self, *, target_names: Sequence[str] | None, target_classes: int | None,
                source_names: Sequence[str] | None, source_classes: int,
                target: str = "the target", source: str = "the source") -> dict[int, int]:
        """``{target label: source label}``; every problem (a label out of range, an
        unknown or ambiguous name, a target class mapped twice) in one
        :class:`ClassMapError`. ``target``/``source`` name the two sides in messages."""
        problems: list[str] = []
        resolved: dict[int, int] = {}
        for key, value in self.pairs:
            label = _label(key, target_names, target_classes, target, problems)
            mapped = _label(value, source_names, source_classes, source, problems)
            if label is None or mapped is None:
                continue
            if label in resolved:
                problems.append(f"target class {_shown(label, target_names)} is mapped twice "
                                f"(to {resolved[label]} and {mapped})")
                continue
            resolved[label] = mapped
        if not self.pairs:
            problems.append("the class map is empty")
        if problems:
            count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
            where = f" {self.name}" if self.name else ""
            raise ClassMapError(f"class map{where} cannot be used ({count}):\n  - "
                                + "\n  - ".join(problems))
        return dict(sorted(resolved.items()))


def load_class_map(spec: str | os.PathLike | Mapping) -> ClassMap:
    """A class map from a built-in name, a YAML file, YAML text of a mapping (``{2: 22}``)
    or a parsed mapping."""
    if isinstance(spec, Mapping):
        return _parse(spec, "inline class map", "")
    text = os.fspath(spec)
    builtin = builtin_class_maps()
    if text in builtin:
        return _parse(_read(builtin[text]), str(builtin[text]), text)
    if text.lstrip().startswith("{"):
        try:
            return _parse(_safe_load(text), "inline class map", "")
        except _DuplicateKeys as error:
            raise ClassMapError(f"the class map {text!r}: {error}") from None
        except yaml.YAMLError as error:
            raise ClassMapError(f"the class map {text!r} is not valid YAML ({error})") \
                from None
    path = Path(text).expanduser()
    if path.suffix.lower() not in YAML_SUFFIXES and not path.is_file():
        raise ClassMapError(f"unknown class map {text!r}: the built-in maps are "
                            f"{', '.join(builtin) or 'none'}; a map of your own is a YAML "
                            "file (.yaml) given by its path, or a mapping such as '{2: 22}'")
    return _parse(_read(path), str(path), path.stem)


def _read(path: Path) -> Any:
    try:
        return _safe_load(path.read_text(encoding="utf-8"))
    except _DuplicateKeys as error:
        raise ClassMapError(str(error), path=str(path)) from None
    except FileNotFoundError:
        raise ClassMapError("class map file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ClassMapError(f"cannot read the class map ({error})", path=str(path)) from None
    except yaml.YAMLError as error:
        raise ClassMapError(f"not valid YAML ({error})", path=str(path)) from None


def _parse(data: Any, where: str, name: str) -> ClassMap:
    if not isinstance(data, Mapping):
        raise ClassMapError(f"a class map is a mapping target class: source class (e.g. "
                            f"{{2: 22}}), found {type(data).__name__}", path=where)
    problems = []
    for key, value in data.items():
        for side, entry in (("target", key), ("source", value)):
            if isinstance(entry, bool) or not isinstance(entry, (int, str)):
                problems.append(f"{key!r}: {value!r}: the {side} class must be a 0-based "
                                f"label or a class name, not {entry!r}")
            elif isinstance(entry, int) and entry < 0:
                problems.append(f"{key!r}: {value!r}: labels count from 0, not {entry}")
    if problems:
        raise ClassMapError("invalid class map:\n  - " + "\n  - ".join(problems), path=where)
    return ClassMap(pairs=tuple(data.items()), name=name)


def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()


def _label(entry: Entry, names: Sequence[str] | None, count: int | None, side: str,
           problems: list[str]) -> int | None:
    if isinstance(entry, int):
        if count is not None and entry >= count:
            problems.append(f"{side} has no class {entry} (its {count} classes are 0-"
                            f"{count - 1})")
            return None
        return entry
    if not names:
        problems.append(f"{entry!r}: {side} has no class names; give its 0-based label")
        return None
    if entry in names:
        return list(names).index(entry)
    matches = [k for k, name in enumerate(names) if _normal(name) == _normal(entry)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        listed = ", ".join(f"{k} ({names[k]!r})" for k in matches)
        problems.append(f"{entry!r} is ambiguous in {side}'s class names: {listed}; give "
                        "the label")
        return None
    close = difflib.get_close_matches(entry, list(names), n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    digits = "; a label is written without quotes" if entry.strip().isdigit() else ""
    problems.append(f"{entry!r} is not a class name of {side}{hint}{digits}")
    return None


def _shown(label: int, names: Sequence[str] | None) -> str:
    return f"{label} ({names[label]!r})" if names and label < len(names) else str(label)
