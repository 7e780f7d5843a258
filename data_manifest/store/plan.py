"""The shard plan: which samples each shard of a WORKDIR's caches must hold.

A WORKDIR's manifest order and shard size fix it (shard k = manifest lines
``[k*S, (k+1)*S)``), for every stage alike, so shard k downstream is built from shard k
upstream. A shard records the digest of the ids it was planned for; a shard made for
another plan (the manifest rebuilt with another ``--shard-size``) holds other samples and
is never taken for shard k of this one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping, Sequence

OTHER_PLAN = "plan"     # why a shard is not finished: it was made for another shard plan


def plan_digest(sample_ids: Iterable[str]) -> str:
    """A short hash of a shard's planned sample ids, in order."""
    payload = json.dumps(list(sample_ids), separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


class ShardPlan:
    """Shard index -> the sample ids planned for it, in order."""

    def __init__(self, shards: Mapping[int, Sequence[str]]):
        self._shards = {int(index): tuple(ids) for index, ids in shards.items()}
        self._digests: dict[int, str] = {}

    @classmethod
    def of_samples(cls, sample_ids: Sequence[str], shard_size: int) -> "ShardPlan":
        if shard_size < 1:
            raise ValueError(f"shard size must be at least 1, not {shard_size}")
        return cls({index: sample_ids[start:start + shard_size]
                    for index, start in enumerate(range(0, len(sample_ids), shard_size))})

    def __contains__(self, index: object) -> bool:
        return index in self._shards

    def __len__(self) -> int:
        return len(self._shards)

    def indices(self) -> list[int]:
        return sorted(self._shards)

    def ids(self, index: int) -> tuple[str, ...]:
        return self._shards[index]

    def digest(self, index: int) -> str:
        digest = self._digests.get(index)
        if digest is None:
            digest = self._digests[index] = plan_digest(self._shards[index])
        return digest

    def matches(self, index: int, header: Mapping[str, Any]) -> bool:
        """Whether the shard file ``index`` with this header was made for this plan.

        Shards from before plans were recorded match when they account for exactly the
        planned samples (stored or failed), as the stages always did.
        """
        if index not in self._shards or header["shard_index"] != index:
            return False
        if header.get("plan") is not None:
            return header["plan"] == self.digest(index)
        covered = list(header["sample_ids"]) + [f["id"] for f in header["failures"]]
        planned = self._shards[index]
        return len(covered) == len(planned) and set(covered) == set(planned)
