"""Pickles that may hold data only: loading them without running code, and writing ones
that any NumPy loads.

Unpickling calls whatever a pickle names, and hands any state it holds to the objects it
made (``BUILD``): a file from elsewhere can run any command the moment it is loaded, or
forge a NumPy dtype whose fields point past its items (memory corruption). So
:func:`load_data_pickle` runs its own unpickler, which

- admits only the globals plain data needs (NumPy arrays, dtypes and scalars, under NumPy
  1.x's ``numpy.core`` and NumPy 2's ``numpy._core`` module names, and a few builtin
  containers), each through a factory that checks its arguments before anything is made:
  dtypes only from simple type strings (booleans, integers, floats, complex numbers, byte
  and unicode strings; never structured, subarray or object dtypes), arrays only from a
  byte buffer of exactly their size, ``bytes``/``bytearray`` only from bytes or text (an
  integer would allocate that many bytes);
- accepts ``BUILD`` only where NumPy's own pickles use it: on a dtype, with exactly the
  state that dtype already has, and once on each array made by ``_reconstruct``, with a
  checked dtype and a buffer of the array's size;
- refuses anything else (other globals, ``NEWOBJ``, persistent ids) before it is called,
  naming the file and what was refused.

Nothing admits more: there is no switch for trusted files, since a file one trusts can
still have been made by someone else. The unpickler is Python's own pure-Python one with
those opcodes replaced (as ``torch.load(weights_only=True)`` does); files are dominated by
array bytes, so it loads about as fast as the C unpickler.

:func:`dump_portable` writes arrays as ``numpy.ndarray(shape, dtype, buffer)`` (NumPy 2
would name ``numpy._core``, which NumPy before 1.26 cannot import) and a
:class:`StreamedList` as a list whose items are made while the file is written, without
keeping them: a whole dataset never has to be in memory.
"""

from __future__ import annotations

import codecs
import collections
import importlib
import math
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from data_manifest.errors import DataError

WRITE_PROTOCOL = 4    # Python >= 3.4 reads it (pyskl's Python included); objects > 4 GiB
DTYPE_KINDS = "biufcSU"   # bool, signed/unsigned integers, floats, complex, bytes, unicode
TEXT_ENCODINGS = ("latin1", "latin-1", "utf-8", "utf8", "ascii")


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a callable that is not a plain data type, or calls one with
    arguments that are not plain data."""

    def __init__(self, module: str, name: str, why: str = ""):
        self.global_name = f"{module}.{name}"
        self.why = why
        super().__init__(f"refused global {self.global_name}" + (f": {why}" if why else ""))


def _numpy_internal(module: str, name: str) -> Callable[..., Any]:
    """``numpy._core.<module>.<name>`` (NumPy 2) or ``numpy.core.<module>.<name>`` (1.x)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"this NumPy has no {module}.{name}")


_reconstruct = _numpy_internal("multiarray", "_reconstruct")
_scalar = _numpy_internal("multiarray", "scalar")
_frombuffer = _numpy_internal("numeric", "_frombuffer")


# -- checks every factory makes before it builds anything
def checked_dtype(dtype: Any, where: str = "numpy.dtype") -> np.dtype:
    """``dtype`` as a plain data type, or :class:`RefusedGlobal`: simple kinds only (see
    :data:`DTYPE_KINDS`), never a structured, subarray or object dtype."""
    if isinstance(dtype, str):
        try:
            dtype = np.dtype(dtype)
        except TypeError as error:
            raise RefusedGlobal(*where.rsplit(".", 1), f"data type {dtype!r} ({error})") \
                from None
    if not isinstance(dtype, np.dtype):
        raise RefusedGlobal(*where.rsplit(".", 1),
                            f"a {type(dtype).__name__} where a data type string belongs")
    if (dtype.kind not in DTYPE_KINDS or dtype.fields is not None
            or dtype.subdtype is not None or dtype.hasobject or dtype.itemsize == 0):
        raise RefusedGlobal(*where.rsplit(".", 1),
                            f"data type {dtype!r} is not a plain number or string type")
    return dtype


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    if (not isinstance(shape, (tuple, list))
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise RefusedGlobal(*where.rsplit(".", 1), f"shape {shape!r}")
    return tuple(shape)


def _buffer(buffer: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
    if not isinstance(buffer, (bytes, bytearray)):
        raise RefusedGlobal(*where.rsplit(".", 1),
                            f"array data in a {type(buffer).__name__}, not bytes")
    if len(buffer) != math.prod(shape) * dtype.itemsize:
        raise RefusedGlobal(*where.rsplit(".", 1),
                            f"{len(buffer)} bytes of data for an array of shape {shape} "
                            f"and type {dtype}")


# -- the admitted callables
def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str):
        raise RefusedGlobal("numpy", "dtype", f"data type given as a {type(spec).__name__}, "
                                              "not a type string")
    return checked_dtype(spec)


def _ndarray(shape: Any, dtype: Any = None, buffer: Any = None, offset: Any = 0,
             strides: Any = None, order: Any = None) -> np.ndarray:
    """``numpy.ndarray(shape, dtype, buffer)`` as :func:`dump_portable` writes arrays."""
    shape, dtype = _shape(shape, "numpy.ndarray"), checked_dtype(dtype, "numpy.ndarray")
    if offset != 0 or strides is not None or order not in (None, "C", "F"):
        raise RefusedGlobal("numpy", "ndarray", "an offset, strides or order")
    _buffer(buffer, shape, dtype, "numpy.ndarray")
    return np.ndarray(shape, dtype, buffer, order=order or "C")


def _reconstruct_array(kind: Any, shape: Any, code: Any) -> np.ndarray:
    """The empty array NumPy's pickles fill with ``BUILD`` (see :meth:`_load_build`)."""
    if kind is not _ndarray or shape != (0,) or code not in (b"b", "b"):
        raise RefusedGlobal("numpy.core.multiarray", "_reconstruct",
                            f"arguments ({getattr(kind, '__name__', kind)!r}, {shape!r}, "
                            f"{code!r})")
    return _reconstruct(np.ndarray, (0,), b"b")


def _numpy_scalar(dtype: Any, data: Any = None) -> np.generic:
    dtype = checked_dtype(dtype, "numpy.core.multiarray.scalar")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise RefusedGlobal("numpy.core.multiarray", "scalar",
                            f"{type(data).__name__} data for a {dtype} scalar")
    return _scalar(dtype, data)


def _array_from_buffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    where = "numpy.core.numeric._frombuffer"
    dtype, shape = checked_dtype(dtype, where), _shape(shape, where)
    if order not in ("C", "F"):
        raise RefusedGlobal(*where.rsplit(".", 1), f"order {order!r}")
    _buffer(buffer, shape, dtype, where)
    return _frombuffer(buffer, dtype, shape, order)


def _latin1_bytes(text: Any, encoding: Any = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 0-2 pickles use it for bytes (latin-1 only)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal("_codecs", "encode", f"with the {encoding!r} codec")
    return codecs.encode(text, "latin1")


def _byte_string(kind: type) -> Callable[..., Any]:
    """``bytes``/``bytearray`` from nothing, bytes, or text and an encoding; never from an
    integer (``bytes(2**34)`` would allocate 16 GiB) or another iterable."""
    def make(*args: Any) -> Any:
        if not args:
            return kind()
        if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
            return kind(args[0])
        if (len(args) == 2 and isinstance(args[0], str)
                and args[1] in TEXT_ENCODINGS):
            return kind(args[0], args[1])
        raise RefusedGlobal("builtins", kind.__name__,
                            f"arguments of type {', '.join(type(a).__name__ for a in args)}")
    return make


def _container(kind: type) -> Callable[..., Any]:
    """``list``, ``set``, ... of nothing or of another container the pickle built: never
    of a string, bytes or array, which would multiply their size in memory."""
    def make(*args: Any) -> Any:
        if not args:
            return kind()
        if len(args) == 1 and isinstance(args[0], (list, tuple, set, frozenset, dict)):
            return kind(args[0])
        raise RefusedGlobal(getattr(kind, "__module__", "builtins"), kind.__name__,
                            f"arguments of type {', '.join(type(a).__name__ for a in args)}")
    return make


def _admitted() -> dict[tuple[str, str], Callable[..., Any]]:
    numpy_internals = {("multiarray", "_reconstruct"): _reconstruct_array,
                       ("multiarray", "scalar"): _numpy_scalar,
                       ("numeric", "_frombuffer"): _array_from_buffer}
    admitted: dict[tuple[str, str], Callable[..., Any]] = {
        (f"{package}.{module}", name): factory
        for package in ("numpy._core", "numpy.core")
        for (module, name), factory in numpy_internals.items()}
    admitted.update({
        ("numpy", "ndarray"): _ndarray, ("numpy", "dtype"): _dtype,
        ("_codecs", "encode"): _latin1_bytes,
        ("collections", "OrderedDict"): _container(collections.OrderedDict),
        ("builtins", "bytes"): _byte_string(bytes),
        ("builtins", "bytearray"): _byte_string(bytearray),
        **{("builtins", kind.__name__): _container(kind)
           for kind in (list, tuple, dict, set, frozenset)}})
    return admitted


ADMITTED = _admitted()


class DataOnlyUnpickler(pickle._Unpickler):
    """An unpickler that builds NumPy arrays and builtin containers, and nothing else (see
    the module docstring)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: BinaryIO):
        super().__init__(file)
        self._unbuilt: dict[int, np.ndarray] = {}   # arrays _reconstruct made, not filled

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":       # protocol 0-2 pickles name Python 2's module
            module = "builtins"
        found = ADMITTED.get((module, name))
        if found is None:
            raise RefusedGlobal(module, name)
        if found is _reconstruct_array:
            def reconstruct(*args: Any) -> np.ndarray:
                array = _reconstruct_array(*args)
                self._unbuilt[id(array)] = array
                return array
            return reconstruct
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RefusedGlobal("persistent id", repr(pid)[:40])

    def _load_build(self) -> None:
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, np.dtype):
            # a dtype's own state, as np.dtype(its type string) has it, changes nothing;
            # any other would rewrite it (and np.dtype returns shared instances)
            if not isinstance(state, tuple) or state != target.__reduce__()[2]:
                raise RefusedGlobal("numpy", "dtype",
                                    f"a {target} with state {state!r:.80} (another byte "
                                    "order, fields or flags than the plain type)")
            return
        if isinstance(target, np.ndarray) and self._unbuilt.pop(id(target), None) is target:
            target.__setstate__(_array_state(state))
            return
        raise RefusedGlobal("BUILD", type(target).__name__, "state set on an object that "
                                                           "is not a new NumPy array")
    dispatch[pickle.BUILD[0]] = _load_build

    def _refuse_newobj(self) -> None:
        raise RefusedGlobal("NEWOBJ", "__new__", "objects built without their constructor")
    dispatch[pickle.NEWOBJ[0]] = _refuse_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _refuse_newobj


def _array_state(state: Any) -> tuple:
    """NumPy's array state ``([version,] shape, dtype, fortran order, data)``, checked."""
    where = "numpy.ndarray.__setstate__"
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise RefusedGlobal(*where.rsplit(".", 1), f"array state {state!r:.80}")
    shape, dtype, fortran, data = state[-4:]
    if len(state) == 5 and state[0] != 1:
        raise RefusedGlobal(*where.rsplit(".", 1), f"array state version {state[0]!r}")
    shape, dtype = _shape(shape, where), checked_dtype(dtype, where)
    if not isinstance(fortran, bool):
        raise RefusedGlobal(*where.rsplit(".", 1), f"fortran flag {fortran!r}")
    _buffer(data, shape, dtype, where)
    return state


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

    A refused global or state, a truncated or damaged file and an unreadable one are each
    a :class:`DataError` naming the file.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle, tqdm(total=size, unit="B", unit_scale=True,
                                              desc=f"reading {Path(path).name}",
                                              disable=not progress, leave=False) as bar:
            return DataOnlyUnpickler(_CountingReader(handle, bar)).load()
    except RefusedGlobal as error:
        refused = (f"it calls {error.global_name} in a way plain data never does "
                   f"({error.why})" if error.why else
                   f"it calls {error.global_name}, which is not a data type")
        raise DataError(
            f"refused to load this {what}: {refused}. Loading a pickle runs the callables "
            "it names, so only NumPy "
            "arrays of plain numbers or strings and plain Python values (numbers, strings, "
            "lists, tuples, dicts) are admitted; see docs/own-data.md", path=path) from None
    except FileNotFoundError:
        raise DataError(f"{what} not found", path=path) from None
    except IsADirectoryError:
        raise DataError(f"is a directory, not a {what}", path=path) from None
    except MemoryError:
        raise DataError(f"not enough memory to load this {what}", path=path) from None
    except RecursionError:
        raise DataError(f"not a readable {what}: nested too deeply", path=path) from None
    except OSError as error:
        raise DataError(f"cannot read the {what} ({error.strerror or error})",
                        path=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, UnicodeDecodeError, RuntimeError) as error:
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
