"""Errors that name the file or sample at fault."""


class DataError(Exception):
    """Bad input data: a file or sample that cannot be used, with the reason."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 sample_id: str | None = None):
        where = []
        if sample_id is not None:
            where.append(f"sample {sample_id}")
        if path is not None:
            where.append(f"{path}" + (f", line {line}" if line is not None else ""))
        self.reason = message
        self.path = path
        self.line = line
        self.sample_id = sample_id
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class DamagedShardError(DataError):
    """A published shard file that cannot be read (truncated, overwritten, disk error)."""


class StaleCacheError(Exception):
    """A cache exists but was made with other parameters, or for another manifest."""


class MissingCacheError(Exception):
    """A stage needs a cache that has not been built yet."""
