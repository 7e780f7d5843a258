"""Sharded HDF5 caches: one folder per stage cache, one file per shard.

One job per module:

- :mod:`.spec`: what made a cache (``CacheSpec``) and its fingerprint;
- :mod:`.names`: shard file names (cache names: :mod:`data_manifest.cache_names`);
- :mod:`.files`: durable file I/O (temporary siblings, fsync, atomic rename);
- :mod:`.writer`: writing one shard file (``ShardWriter``; the on-disk layout);
- :mod:`.header`: opening published shards (no HDF5 file locking) and parsing headers;
- :mod:`.plan`: the shard plan, which samples each shard must hold;
- :mod:`.sources`: what a shard was built from (upstream tokens, input file stats);
- :mod:`.cachedir`: a cache folder's lifecycle and which shards are finished;
- :mod:`.survey`: one read of every shard header of a cache, and the counts from it;
- :mod:`.handles`: the per-process budget of open shard files;
- :mod:`.reader`: reading samples by id (``CacheReader``).
"""

from data_manifest.store.cachedir import CACHE_ROOT, CacheDir
from data_manifest.store.files import (host_name, publish, sync_directory, temporary_path,
                                       write_text_atomic)
from data_manifest.store.handles import LIMIT_ENV, HandlePool, shared_pool
from data_manifest.store.header import open_shard_file, read_shard_header, read_shard_token
from data_manifest.cache_names import check_cache_name, is_plain_name
from data_manifest.store.names import SPEC_FILE, shard_file_name
from data_manifest.store.plan import OTHER_PLAN, ShardPlan, plan_digest
from data_manifest.store.reader import CacheReader
from data_manifest.store.sources import (INPUTS_CHANGED, UPSTREAM_REWRITTEN, input_stats,
                                         outdated_reason)
from data_manifest.store.spec import (SCHEMA_VERSION, CacheSpec, describe_difference,
                                      fingerprint_of)
from data_manifest.store.survey import CacheSurvey
from data_manifest.store.writer import ShardWriter

__all__ = [
    "CACHE_ROOT", "CacheDir", "CacheReader", "CacheSpec", "CacheSurvey", "HandlePool",
    "INPUTS_CHANGED", "LIMIT_ENV", "OTHER_PLAN", "SCHEMA_VERSION", "SPEC_FILE", "ShardPlan",
    "ShardWriter", "UPSTREAM_REWRITTEN", "check_cache_name", "describe_difference",
    "fingerprint_of", "host_name", "input_stats", "is_plain_name", "open_shard_file",
    "outdated_reason", "plan_digest", "publish", "read_shard_header", "read_shard_token",
    "shard_file_name", "shared_pool", "sync_directory", "temporary_path",
    "write_text_atomic",
]
