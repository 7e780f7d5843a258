"""A skeleton layout: named joints, a tree of parents, a centre, and what else knows joints.

A layout is data (a small YAML file), validated as a whole: every problem is listed in one
:class:`LayoutError`. The YAML keys::

    name: kinect-v1-head-first            # required
    description: ...                       # optional, free text
    joints: [head, shoulder_center, ...]   # required: the arrays' joint order
    parents: {head: shoulder_center, ...}  # required: every joint but the root
    center: spine                          # required: the body centre (graph centre)
    origin: spine                          # optional: joint(s) whose mean is the centring
                                           #   origin; default: center
    flip_pairs: [[left_hand, right_hand]]  # optional: left/right joints swapped by a flip
    draw: [[head, neck, spine], ...]       # optional: polylines drawn by previews;
                                           #   default: every joint-parent bone
    dims: [3]                              # optional: coordinate dimensions the layout's
                                           #   data usually has (2 and/or 3); default [2, 3]
    num_joints: 20                         # optional: checked against ``joints``

Joint indices inside :class:`Layout` are 0-based; ``bone_pairs`` and ``center_joint`` are
1-based, as CTR-GCN publishes them. The root (the joint without a parent) is paired with
itself in ``bone_pairs``, which gives it a zero bone.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from data_manifest.errors import DataError

KEYS = ("name", "description", "joints", "parents", "center", "origin", "flip_pairs", "draw",
        "dims", "num_joints")
REQUIRED = ("name", "joints", "parents", "center")


class LayoutError(DataError):
    """A layout (or joint mapping) that cannot be used, with every problem found."""


def problems_error(kind: str, where: str | None, problems: list[str]) -> LayoutError:
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    listed = "".join(f"\n  - {problem}" for problem in problems)
    return LayoutError(f"invalid {kind} ({count}):{listed}", path=where)


@dataclass(frozen=True)
class Layout:
    name: str
    joints: tuple[str, ...]
    parents: tuple[int, ...]               # 0-based parent of each joint; the root: itself
    center: int                            # 0-based
    origin: tuple[int, ...]                # 0-based; their mean is the centring origin
    flip_pairs: tuple[tuple[int, int], ...] = ()
    draw: tuple[tuple[int, ...], ...] = ()
    dims: tuple[int, ...] = (2, 3)
    description: str = field(default="", compare=False)

    # -- the attributes other code has always used
    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def bone_pairs(self) -> tuple[tuple[int, int], ...]:
        """1-based (joint, parent), one per joint; the root is paired with itself."""
        return tuple((joint + 1, parent + 1) for joint, parent in enumerate(self.parents))

    @property
    def center_joint(self) -> int:
        """1-based centre joint."""
        return self.center + 1

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """0-based (joint, parent) edges without self-loops, for graphs and drawing."""
        return tuple((joint, parent) for joint, parent in enumerate(self.parents)
                     if joint != parent)

    # -- derived
    @property
    def root(self) -> int:
        return next(joint for joint, parent in enumerate(self.parents) if joint == parent)

    @property
    def draw_edges(self) -> tuple[tuple[int, int], ...]:
        """0-based line segments a preview draws: the ``draw`` polylines, else the bones."""
        if not self.draw:
            return self.edges
        return tuple((a, b) for line in self.draw for a, b in zip(line, line[1:]))

    @property
    def flip_permutation(self) -> tuple[int, ...]:
        """Joint order after a left/right flip: ``joints[..., perm]`` swaps every pair."""
        order = list(range(self.num_joints))
        for left, right in self.flip_pairs:
            order[left], order[right] = right, left
        return tuple(order)

    def index(self, joint: str) -> int:
        try:
            return self.joints.index(joint)
        except ValueError:
            raise KeyError(f"{joint!r} is not a joint of the {self.name} layout") from None

    def to_dict(self) -> dict[str, Any]:
        """The YAML content of this layout (joint names, not indices)."""
        names = self.joints
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["joints"] = list(names)
        data["parents"] = {names[j]: names[p] for j, p in enumerate(self.parents) if j != p}
        data["center"] = names[self.center]
        data["origin"] = names[self.origin[0]] if len(self.origin) == 1 else \
            [names[j] for j in self.origin]
        if self.flip_pairs:
            data["flip_pairs"] = [[names[a], names[b]] for a, b in self.flip_pairs]
        if self.draw:
            data["draw"] = [[names[j] for j in line] for line in self.draw]
        data["dims"] = list(self.dims)
        return data

    @property
    def digest(self) -> str:
        """Hash of the content that matters (not the description): the same for equal layouts."""
        content = {k: v for k, v in self.to_dict().items() if k != "description"}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> "Layout":
        """Validate ``data`` (a parsed YAML mapping); every problem is listed at once."""
        return _parse(data, where)


# --------------------------------------------------------------------------- parsing


def _parse(data: Any, where: str | None) -> Layout:
    if not isinstance(data, Mapping):
        raise problems_error("skeleton layout", where, [
            f"expected a mapping with keys {', '.join(REQUIRED)}, found "
            f"{type(data).__name__}"])
    problems: list[str] = []
    for key in data:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            problems.append(f"unknown key {key!r}" + (f" (did you mean {close[0]}?)"
                                                       if close else
                                                       f"; known: {', '.join(KEYS)}"))
    problems += [f"missing key {key!r}" for key in REQUIRED if key not in data]

    name = data.get("name")
    if "name" in data and not (isinstance(name, str) and name.strip()):
        problems.append(f"name must be a non-empty string, not {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.append("description must be text")
        description = ""

    joints = _joint_names(data.get("joints"), problems) if "joints" in data else []
    index = {joint: i for i, joint in enumerate(joints)}
    if "num_joints" in data and data["num_joints"] != len(joints) and joints:
        problems.append(f"num_joints is {data['num_joints']!r} but {len(joints)} joints are "
                        "listed")
    parents = _parents(data.get("parents"), joints, problems) if "parents" in data else None
    center = _one_joint("center", data.get("center"), index, problems) \
        if "center" in data else None
    origin: list[int] = []
    if "origin" in data:
        value = data["origin"]
        names = value if isinstance(value, list) else [value]
        if not names:
            problems.append("origin must name at least one joint")
        origin = [j for j in (_one_joint("origin", n, index, problems) for n in names)
                  if j is not None]
    elif center is not None:
        origin = [center]
    flip_pairs = _flip_pairs(data.get("flip_pairs", []), index, problems)
    draw = _draw(data.get("draw", []), index, problems)
    dims = data.get("dims", [2, 3])
    if not (isinstance(dims, list) and dims and all(d in (2, 3) for d in dims)
            and len(set(dims)) == len(dims)):
        problems.append(f"dims must be a list of 2 and/or 3, not {dims!r}")
        dims = [2, 3]
    if problems:
        raise problems_error("skeleton layout", where, problems)
    return Layout(name=name.strip(), joints=tuple(joints), parents=tuple(parents),
                  center=center, origin=tuple(origin), flip_pairs=tuple(flip_pairs),
                  draw=tuple(draw), dims=tuple(sorted(dims)), description=description)


def _joint_names(value: Any, problems: list[str]) -> list[str]:
    if not isinstance(value, list) or not value:
        problems.append("joints must be a non-empty list of joint names")
        return []
    names, seen, duplicates = [], set(), []
    for position, name in enumerate(value, start=1):
        if not isinstance(name, str):
            problems.append(f"joint {position} is {name!r} ({type(name).__name__}); joint "
                            "names are text (quote it in YAML)")
            name = str(name)
        elif not name.strip() or name != name.strip() or "," in name:
            problems.append(f"joint {position} {name!r}: a name is non-empty text without "
                            "commas or surrounding spaces")
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
        names.append(name)
    if duplicates:
        problems.append(f"duplicate joint names: {', '.join(duplicates)}")
    return names


def _one_joint(key: str, name: Any, index: dict[str, int], problems: list[str]) -> int | None:
    if not isinstance(name, str) or name not in index:
        problems.append(f"{key} {name!r} is not a joint of this layout")
        return None
    return index[name]


def _parents(value: Any, joints: list[str], problems: list[str]) -> list[int] | None:
    names = list(dict.fromkeys(joints))       # duplicates are reported elsewhere
    index = {name: i for i, name in enumerate(names)}
    if not isinstance(value, Mapping):
        problems.append("parents must be a mapping joint: parent (every joint but the root)")
        return None
    parents: dict[int, int] = {}
    listed: set[int] = set()
    for child, parent in value.items():
        if child not in index:
            problems.append(f"parents: {child!r} is not a joint")
            continue
        listed.add(index[child])
        if parent not in index:
            problems.append(f"parents: the parent {parent!r} of {child!r} is not a joint")
        elif child == parent:
            problems.append(f"parents: {child!r} is its own parent (leave the root out)")
        else:
            parents[index[child]] = index[parent]
    if not index:
        return None
    roots = [j for j in range(len(names)) if j not in listed]
    if len(roots) > 1:
        problems.append(f"{len(roots)} joints have no parent "
                        f"({', '.join(names[j] for j in roots)}); exactly one joint, the "
                        "root, has none")
    cycles = _cycles(parents)
    for cycle in cycles:
        problems.append("cycle in parents: " + " -> ".join(names[j] for j in cycle + cycle[:1]))
    if not roots and not cycles:
        problems.append("every joint has a parent: leave the root out of parents")
    if len(roots) != 1 or cycles or len(parents) != len(names) - 1 or len(names) < len(joints):
        return None
    return [parents.get(j, j) for j in range(len(names))]


def _cycles(parents: dict[int, int]) -> list[list[int]]:
    """Each cycle once, starting at its smallest joint."""
    found: list[list[int]] = []
    state: dict[int, int] = {}      # 1: on the current path, 2: done
    for start in parents:
        path, joint = [], start
        while joint in parents and state.get(joint) is None:
            state[joint] = 1
            path.append(joint)
            joint = parents[joint]
        if state.get(joint) == 1:
            cycle = path[path.index(joint):]
            smallest = cycle.index(min(cycle))
            found.append(cycle[smallest:] + cycle[:smallest])
        for visited in path:
            state[visited] = 2
    return found


def _flip_pairs(value: Any, index: dict[str, int], problems: list[str]
                ) -> list[tuple[int, int]]:
    if not isinstance(value, list):
        problems.append("flip_pairs must be a list of [left, right] joint pairs")
        return []
    pairs, used = [], set()
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            problems.append(f"flip_pairs: {pair!r} is not a [left, right] pair")
            continue
        joints = [_one_joint("flip_pairs joint", name, index, problems) for name in pair]
        if None in joints:
            continue
        if joints[0] == joints[1]:
            problems.append(f"flip_pairs: {pair[0]!r} is paired with itself")
        elif used & set(joints):
            problems.append(f"flip_pairs: {pair!r} reuses a joint of another pair")
        else:
            used.update(joints)
            pairs.append((joints[0], joints[1]))
    return pairs


def _draw(value: Any, index: dict[str, int], problems: list[str]) -> list[tuple[int, ...]]:
    if not isinstance(value, list):
        problems.append("draw must be a list of polylines (lists of joint names)")
        return []
    lines = []
    for line in value:
        if not (isinstance(line, list) and len(line) >= 2):
            problems.append(f"draw: {line!r} is not a list of at least two joints")
            continue
        joints = [_one_joint("draw joint", name, index, problems) for name in line]
        if None not in joints:
            lines.append(tuple(joints))
    return lines
