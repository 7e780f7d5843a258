"""Pickles that may hold data only: loading them without running code, and writing ones
that any NumPy loads.

Unpickling calls whatever a pickle names: a file from elsewhere can run any command the
moment it is loaded. :func:`load_data_pickle` admits only the globals plain data needs
(NumPy arrays, dtypes and scalars, under NumPy 1.x's ``numpy.core`` and NumPy 2's
``numpy._core`` module names, and a few builtin containers) and refuses any other before
it is called, naming the file and the global. Nothing admits more: there is no switch
for trusted files, since a file one trusts can still have been made by someone else.

:func:`dump_portable` writes arrays as ``numpy.ndarray(shape, dtype, buffer)`` (NumPy 2
would name ``numpy._core``, which NumPy before 1.26 cannot import) and a
:class:`StreamedList` as a list whose items are made while the file is written, without
keeping them: a whole dataset never has to be in memory.
"""

from __future__ import annotations

import codecs
import collections
import importlib
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from data_manifest.errors import DataError

WRITE_PROTOCOL = 4    # Python >= 3.4 reads it (pyskl's Python included); objects > 4 GiB


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a callable that is not a plain data type."""

    def __init__(self, module: str, name: str):
        self.global_name = f"{module}.{name}"
        super().__init__(f"refused global {self.global_name}")


def _numpy_internal(module: str, name: str) -> Callable[..., Any]:
    """``numpy._core.<module>.<name>`` (NumPy 2) or ``numpy.core.<module>.<name>`` (1.x)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"this NumPy has no {module}.{name}")


def _latin1_bytes(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it for bytes (latin-1 only)."""
    if encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal("_codecs", f"encode with the {encoding!r} codec")
    return codecs.encode(text, "latin1")


def _admitted() -> dict[tuple[str, str], Any]:
    numpy_internals = {("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                       ("numeric", "_frombuffer")}
    admitted: dict[tuple[str, str], Any] = {
        (f"{package}.{module}", name): _numpy_internal(module, name)
        for package in ("numpy._core", "numpy.core") for module, name in numpy_internals}
    admitted.update({
        ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_bytes,
        ("collections", "OrderedDict"): collections.OrderedDict,
        **{("builtins", kind.__name__): kind for kind in
           (list, tuple, dict, set, frozenset, bytes, bytearray)}})
    return admitted


ADMITTED = _admitted()


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds NumPy arrays and builtin containers, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":       # protocol 0-2 pickles name Python 2's module
            module = "builtins"
        found = ADMITTED.get((module, name))
        if found is None:
            raise RefusedGlobal(module, name)
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal("persistent id", repr(pid)[:40])


class _CountingReader:
    """A binary file that advances a progress bar by the bytes read."""

    def __init__(self, handle: BinaryIO, bar: tqdm):
        self.handle, self.bar = handle, bar

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.bar.update(len(data))
        return data

    def readinto(self, buffer) -> int:
        count = self.handle.readinto(buffer)
        self.bar.update(count or 0)
        return count

    def readline(self, size: int = -1) -> bytes:
        data = self.handle.readline(size)
        self.bar.update(len(data))
        return data


def load_data_pickle(path: str | os.PathLike, what: str = "pickle file",
                     progress: bool = False) -> Any:
    """The content of a pickle file that holds only data (see the module's docstring).

    A refused global, a truncated or damaged file and an unreadable one are each a
    :class:`DataError` naming the file.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle, tqdm(total=size, unit="B", unit_scale=True,
                                              desc=f"reading {Path(path).name}",
                                              disable=not progress, leave=False) as bar:
            return DataOnlyUnpickler(_CountingReader(handle, bar)).load()
    except RefusedGlobal as error:
        raise DataError(
            f"refused to load this {what}: it calls {error.global_name}, which is not a "
            "data type. Loading a pickle runs the callables it names, so only NumPy "
            "arrays and plain Python values (numbers, strings, lists, tuples, dicts) are "
            "admitted; see docs/own-data.md", path=path) from None
    except FileNotFoundError:
        raise DataError(f"{what} not found", path=path) from None
    except IsADirectoryError:
        raise DataError(f"is a directory, not a {what}", path=path) from None
    except MemoryError:
        raise DataError(f"not enough memory to load this {what}", path=path) from None
    except OSError as error:
        raise DataError(f"cannot read the {what} ({error.strerror or error})",
                        path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, UnicodeDecodeError) as error:
        raise DataError(f"not a readable {what}: truncated or damaged "
                        f"({type(error).__name__}: {error})", path=path) from None


class StreamedList:
    """Items that :func:`dump_portable` writes as a list while iterating over them."""

    def __init__(self, items: Iterable[Any]):
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)


class _PortablePickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise pickle.PicklingError("arrays of Python objects are not data")
            array = np.ascontiguousarray(obj)
            return np.ndarray, (array.shape, array.dtype.str, bytearray(array.tobytes()))
        if isinstance(obj, np.generic):
            raise pickle.PicklingError(f"NumPy scalar {obj!r}: give a Python number")
        if isinstance(obj, StreamedList):
            return list, (), None, iter(obj)
        return NotImplemented


def dump_portable(obj: Any, handle: BinaryIO) -> None:
    """Pickle ``obj`` (dicts, lists, strings, numbers, NumPy arrays, StreamedLists) so that
    NumPy 1.x and 2.x load it, holding no reference to what was written (no memo: shared
    objects are written once per use, and ``obj`` must not contain itself)."""
    pickler = _PortablePickler(handle, protocol=WRITE_PROTOCOL)
    pickler.fast = True
    pickler.dump(obj)
