"""Joint mappings: turn arrays stored in one layout into another layout, by configuration.

A mapping is a YAML file (or mapping) with the keys::

    name: kinect-v1-head-first-to-nw-ucla    # optional
    from: kinect-v1-head-first.yaml          # the layout the arrays are stored in
    to: nw-ucla                              # the layout they become
    joints:                                  # target joint: where its values come from
      hip_center: hip_center                 #   a source joint, copied
      neck: {mean: [head, shoulder_center]}  #   the mean of source joints
      chest: {weights: {spine: 0.7, shoulder_center: 0.3}}   # a weighted sum

``from`` and ``to`` are layout names, paths (relative to the mapping file) or the layouts
themselves (inline mappings). A target joint left out of ``joints`` is copied from the source
joint of the same name; one without such a namesake is an error. Every target joint is a
linear combination of source joints, applied to every channel (a confidence score is mixed
the same way: a mean of scores).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from data_manifest.layouts.layout import Layout, problems_error

KEYS = ("name", "from", "to", "joints")


@dataclass(frozen=True)
class JointMapping:
    source: Layout
    target: Layout
    # per target joint: ((source joint, weight), ...)
    terms: tuple[tuple[tuple[int, float], ...], ...]
    name: str = field(default="", compare=False)

    @property
    def matrix(self) -> np.ndarray:
        """(target joints, source joints) weights."""
        matrix = np.zeros((self.target.num_joints, self.source.num_joints))
        for target, terms in enumerate(self.terms):
            for source, weight in terms:
                matrix[target, source] += weight
        return matrix

    def apply(self, joints: np.ndarray) -> np.ndarray:
        """``(..., source joints, C)`` -> ``(..., target joints, C)``, same dtype."""
        joints = np.asarray(joints)
        if joints.shape[-2] != self.source.num_joints:
            raise ValueError(f"{joints.shape[-2]} joints, the {self.source.name} layout the "
                             f"mapping reads has {self.source.num_joints}")
        out = np.empty(joints.shape[:-2] + (self.target.num_joints, joints.shape[-1]),
                       dtype=joints.dtype)
        for target, terms in enumerate(self.terms):
            if len(terms) == 1 and terms[0][1] == 1.0:   # a copy stays bit-exact
                out[..., target, :] = joints[..., terms[0][0], :]
            else:   # only the joints named: a NaN elsewhere does not spread
                out[..., target, :] = sum(weight * joints[..., source, :].astype(np.float64)
                                          for source, weight in terms)
        return out

    def with_source(self, source: Layout) -> "JointMapping":
        """This mapping reading ``source``: a layout with the same joint names in another
        order. A mapping names its joints, so one written for one order fits every order."""
        if not same_joint_names(source, self.source):
            raise problems_error("joint mapping", self.name or None, [
                f"it reads the {self.source.name} layout's joints, {source.name} has other "
                "joint names"])
        position = {name: index for index, name in enumerate(source.joints)}
        names = self.source.joints
        terms = tuple(tuple((position[names[joint]], weight) for joint, weight in joint_terms)
                      for joint_terms in self.terms)
        return JointMapping(source=source, target=self.target, terms=terms, name=self.name)

    def to_dict(self) -> dict[str, Any]:
        """A self-contained mapping (both layouts inline), as written into a WORKDIR."""
        names = self.source.joints
        joints: dict[str, Any] = {}
        for target, terms in zip(self.target.joints, self.terms):
            if len(terms) == 1 and terms[0][1] == 1.0:
                joints[target] = names[terms[0][0]]
            elif len({w for _, w in terms}) == 1 and abs(terms[0][1] * len(terms) - 1) < 1e-12:
                joints[target] = {"mean": [names[s] for s, _ in terms]}
            else:
                joints[target] = {"weights": {names[s]: w for s, w in terms}}
        data = {"from": self.source.to_dict(), "to": self.target.to_dict(), "joints": joints}
        return {"name": self.name, **data} if self.name else data

    @property
    def digest(self) -> str:
        content = {"from": self.source.digest, "to": self.target.digest,
                   "terms": [list(map(list, t)) for t in self.terms]}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def same_joint_names(a: Layout, b: Layout) -> bool:
    """The two layouts name the same joints (in any order)."""
    return sorted(a.joints) == sorted(b.joints)


def mapping_by_names(source: Layout, target: Layout) -> JointMapping:
    """Each target joint copied from the source joint of the same name."""
    return parse_mapping({"joints": {}}, source, target, where=None)


def parse_mapping(data: Any, source: Layout, target: Layout, where: str | None) -> JointMapping:
    """The ``joints`` section of a mapping from ``source`` to ``target``; every problem of
    it is listed in one :class:`LayoutError`."""
    problems: list[str] = []
    spec = data.get("joints", {}) if isinstance(data, Mapping) else None
    if spec is None:
        spec = {}
    if not isinstance(spec, Mapping):
        raise problems_error("joint mapping", where, [
            "joints must be a mapping target joint: source joint or {mean: [...]}"])
    index = {name: i for i, name in enumerate(source.joints)}
    for name in spec:
        if name not in target.joints:
            problems.append(f"{name!r} is not a joint of the target layout {target.name}")
    terms: list[tuple[tuple[int, float], ...]] = []
    missing = []
    for name in target.joints:
        if name not in spec:
            if name in index:
                terms.append(((index[name], 1.0),))
            else:
                missing.append(name)
                terms.append(())
            continue
        terms.append(_terms(name, spec[name], index, source.name, problems))
    if missing:
        problems.append(f"target joints without a source (no joint of that name in "
                        f"{source.name}; map them, e.g. {{mean: [a, b]}}): {', '.join(missing)}")
    if problems:
        raise problems_error(f"joint mapping from {source.name} to {target.name}", where,
                             problems)
    name = data.get("name", "") if isinstance(data, Mapping) else ""
    return JointMapping(source=source, target=target, terms=tuple(terms), name=str(name or ""))


def _terms(target: str, expr: Any, index: dict[str, int], source: str,
           problems: list[str]) -> tuple[tuple[int, float], ...]:
    def joint(name: Any) -> int | None:
        if not isinstance(name, str) or name not in index:
            problems.append(f"{target}: {name!r} is not a joint of the source layout {source}")
            return None
        return index[name]

    if isinstance(expr, str):
        found = joint(expr)
        return ((found, 1.0),) if found is not None else ()
    if isinstance(expr, Mapping) and set(expr) == {"mean"}:
        names = expr["mean"]
        if not isinstance(names, list) or not names:
            problems.append(f"{target}: mean needs a non-empty list of source joints")
            return ()
        joints = [joint(name) for name in names]
        return tuple((j, 1.0 / len(joints)) for j in joints) if None not in joints else ()
    if isinstance(expr, Mapping) and set(expr) == {"weights"}:
        weights = expr["weights"]
        if not isinstance(weights, Mapping) or not weights:
            problems.append(f"{target}: weights needs a mapping source joint: weight")
            return ()
        out = []
        for name, weight in weights.items():
            found = joint(name)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                problems.append(f"{target}: the weight of {name!r} is not a number")
            elif found is not None:
                out.append((found, float(weight)))
        return tuple(out)
    problems.append(f"{target}: {expr!r} is neither a source joint name, {{mean: [...]}} nor "
                    "{weights: {...}}")
    return ()


def parse_mapping_file(data: Any, where: str | None,
                       load: Callable[[Any, Path | None], Layout],
                       base_dir: Path | None) -> JointMapping:
    """A whole mapping document (``from``, ``to``, ``joints``); ``load`` resolves layouts."""
    if not isinstance(data, Mapping):
        raise problems_error("joint mapping", where, [
            f"expected a mapping with keys from, to, joints, found {type(data).__name__}"])
    problems = [f"unknown key {key!r} (known: {', '.join(KEYS)})" for key in data
                if key not in KEYS]
    problems += [f"missing key {key!r}" for key in ("from", "to") if key not in data]
    if problems:
        raise problems_error("joint mapping", where, problems)
    return parse_mapping(data, load(data["from"], base_dir), load(data["to"], base_dir), where)
