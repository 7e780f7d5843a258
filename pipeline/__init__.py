"""Offline stages that build the caches MMCL trains on (writes ``data_manifest`` caches)."""
