"""What made a cache (its spec) and the fingerprint that identifies its content."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from data_manifest.errors import StaleCacheError

SCHEMA_VERSION = 1


def fingerprint_of(stage: str, params: Mapping[str, Any], manifest_digest: str,
                   upstream: Mapping[str, str] | None = None) -> str:
    """A stable hash of everything that determines a cache's content."""
    payload = json.dumps(
        {"stage": stage, "params": params, "manifest": manifest_digest,
         "upstream": dict(upstream or {}), "schema": SCHEMA_VERSION},
        sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class CacheSpec:
    """What made a cache. Two caches with equal fingerprints hold the same content."""

    stage: str
    params: dict[str, Any]
    manifest_digest: str
    upstream: dict[str, str] = field(default_factory=dict)   # "<stage>/<name>" -> fingerprint
    schema_version: int = SCHEMA_VERSION

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.stage, self.params, self.manifest_digest, self.upstream)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CacheSpec":
        data = dict(data)
        recorded = data.pop("fingerprint", None)
        spec = cls(**data)
        if recorded is not None and recorded != spec.fingerprint:
            raise StaleCacheError(f"spec fingerprint {recorded} does not match its content; "
                                  "the spec file was edited or written by another version")
        return spec


def describe_difference(have: CacheSpec, want: CacheSpec) -> str:
    """Human-readable list of what differs between two specs."""
    lines = []
    if have.stage != want.stage:
        lines.append(f"stage: cache has {have.stage!r}, asked for {want.stage!r}")
    for key in sorted(set(have.params) | set(want.params)):
        a, b = have.params.get(key, "<unset>"), want.params.get(key, "<unset>")
        if a != b:
            lines.append(f"{key}: cache has {a!r}, asked for {b!r}")
    if have.manifest_digest != want.manifest_digest:
        lines.append("manifest: the cache was made for another manifest "
                     f"({have.manifest_digest[:12]} vs {want.manifest_digest[:12]})")
    for key in sorted(set(have.upstream) | set(want.upstream)):
        a, b = have.upstream.get(key), want.upstream.get(key)
        if a != b:
            lines.append(f"upstream {key}: cache built on {a}, now {b}")
    if have.schema_version != want.schema_version:
        lines.append(f"schema version: {have.schema_version} vs {want.schema_version}")
    return "; ".join(lines) or "no visible difference"
