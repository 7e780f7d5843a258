"""The data contract shared by ``pipeline`` (writes) and ``train`` (reads).

What a sample is (:mod:`.sample`), how manifests are stored (:mod:`.manifest`), which
split protocols exist (:mod:`.splits`), the class names (:mod:`.classes`), the skeleton
layouts and joint mappings (:mod:`.layouts`), how skeleton files are read
(:mod:`.formats`), how a working directory is laid out (:mod:`.workdir`) and how
per-stage caches are sharded in HDF5 (:mod:`.store`).
"""

from data_manifest.errors import DataError, StaleCacheError, MissingCacheError
from data_manifest.sample import Sample
from data_manifest.manifest import read_manifest, write_manifest

__all__ = [
    "DataError",
    "StaleCacheError",
    "MissingCacheError",
    "Sample",
    "read_manifest",
    "write_manifest",
]
