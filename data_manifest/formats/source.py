"""Reading a source file whole, with the reason it cannot be read as a :class:`DataError`."""

from __future__ import annotations

import os

from data_manifest.errors import DataError


def read_source_bytes(path: str | os.PathLike, what: str = "skeleton file") -> bytes:
    """The bytes of ``path``; missing or unreadable is a :class:`DataError` naming it."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise DataError(f"{what} not found", path=path) from None
    except OSError as error:
        raise DataError(f"cannot read the {what} ({error.strerror or error})",
                        path=path) from None
