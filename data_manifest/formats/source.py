"""Reading a source file whole (bytes or JSON), with the reason it cannot be read as a
:class:`DataError`."""

from __future__ import annotations

import json
import os
from typing import Any

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


def read_source_json(path: str | os.PathLike, what: str = "skeleton file") -> Any:
    """The parsed JSON content of ``path``; unreadable or invalid JSON is a DataError."""
    path = os.fspath(path)
    data = read_source_bytes(path, what)
    if not data.strip():
        raise DataError(f"empty {what}", path=path)
    try:
        return json.loads(data)
    except UnicodeDecodeError as error:
        raise DataError(f"not a UTF-8 JSON file ({error.reason})", path=path) from None
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON ({error.msg}, column {error.colno})", path=path,
                        line=error.lineno) from None
