"""Manifests: one JSON object per line, one line per sample, streamed lazily."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator

from data_manifest.errors import DataError
from data_manifest.sample import Sample


def iter_manifest(path: str | os.PathLike) -> Iterator[Sample]:
    path = Path(path)
    with path.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield Sample.from_dict(json.loads(line))
            except (ValueError, TypeError) as error:
                raise DataError(f"not a valid sample record ({error})", path=str(path),
                                line=line_number) from error


def read_manifest(path: str | os.PathLike) -> list[Sample]:
    samples = list(iter_manifest(path))
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise DataError(f"duplicate sample id {sample.id!r}", path=str(path))
        seen.add(sample.id)
    return samples


def write_manifest(samples: Iterable[Sample], path: str | os.PathLike) -> str:
    """Write atomically; returns the manifest digest (sha256 of its bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    with tmp.open("w", encoding="utf-8") as handle:
        for sample in samples:
            line = json.dumps(sample.to_dict(), sort_keys=True) + "\n"
            digest.update(line.encode("utf-8"))
            handle.write(line)
    os.replace(tmp, path)
    return digest.hexdigest()


def manifest_digest(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
