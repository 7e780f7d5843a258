"""Whether two caches hold the same content: every sample, field, array and failure.

For checking that a cache the pipeline built another way (resumed after a kill, split
over several processes) equals one built in a single uninterrupted run: the tests and
``benchmarks/bench_kill.py`` use it. It is a pipeline tool, not part of the cache
contract (``data_manifest``), and nothing in ``train`` needs it. Each cache is read
without a shard plan, so a cache with shards of two plans mixed is refused (see
:class:`~data_manifest.store.CacheReader`). Tokens and write times are not content and
are not compared.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_manifest.store import CacheReader


@dataclass
class CacheComparison:
    """What differs; empty lists mean the caches hold the same content."""

    only_in_first: list[str] = field(default_factory=list)
    only_in_second: list[str] = field(default_factory=list)
    #: sample id -> the fields whose values differ (or exist in one cache only)
    differing: dict[str, list[str]] = field(default_factory=dict)
    failures_differ: bool = False
    spec_differs: bool = False

    @property
    def same(self) -> bool:
        return not (self.only_in_first or self.only_in_second or self.differing
                    or self.failures_differ or self.spec_differs)

    def describe(self) -> str:
        if self.same:
            return "same content"
        parts = []
        if self.spec_differs:
            parts.append("made with other settings")
        if self.only_in_first or self.only_in_second:
            parts.append(f"samples only in the first: {self.only_in_first[:5]}, only in the "
                         f"second: {self.only_in_second[:5]}")
        if self.differing:
            shown = dict(list(self.differing.items())[:5])
            parts.append(f"{len(self.differing)} sample(s) differ, e.g. {shown}")
        if self.failures_differ:
            parts.append("the recorded failures differ")
        return "; ".join(parts)


def _equal(a: Any, b: Any) -> bool:
    """Same type, dtype, shape and values (NaN equal to NaN)."""
    if isinstance(a, (str, bytes, list)) or isinstance(b, (str, bytes, list)):
        return type(a) is type(b) and a == b
    a, b = np.asarray(a), np.asarray(b)
    return (a.dtype == b.dtype and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def compare_caches(first: str | os.PathLike, second: str | os.PathLike) -> CacheComparison:
    """Compare the caches in folders ``first`` and ``second`` value by value."""
    result = CacheComparison()
    with CacheReader(first) as a, CacheReader(second) as b:
        result.spec_differs = a.spec.fingerprint != b.spec.fingerprint
        ids_a, ids_b = set(a.ids), set(b.ids)
        result.only_in_first = sorted(ids_a - ids_b)
        result.only_in_second = sorted(ids_b - ids_a)
        for sample_id in sorted(ids_a & ids_b):
            values_a, values_b = a.get(sample_id), b.get(sample_id)
            differing = sorted(name for name in set(values_a) | set(values_b)
                               if name not in values_a or name not in values_b
                               or not _equal(values_a[name], values_b[name]))
            if differing:
                result.differing[sample_id] = differing
        key = lambda failure: (failure["id"], failure["reason"])  # noqa: E731
        result.failures_differ = sorted(a.failures, key=key) != sorted(b.failures, key=key)
    return result
