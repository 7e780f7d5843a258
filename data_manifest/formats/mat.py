"""MATLAB v7.3 ``.mat`` files (HDF5 inside, read with h5py).

The file holds the array as one numeric variable: the only one, or the one named
``joints`` (or ``skeleton``/``skeletons``). MATLAB's size ``T x V x C`` (or ``T x M x V x C``)
is what is read: MATLAB stores arrays column-major, so HDF5 sees the axes reversed and they
are turned back here. Older ``.mat`` files (v5/v7, the default of ``save``) are not HDF5;
they are refused with how to convert them (``save(FILE, 'joints', '-v7.3')``, or ``.npy``).
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.arrays import as_sequence

PREFERRED = ("joints", "skeleton", "skeletons")
CONVERT = ("save it as v7.3 in MATLAB (save(FILE, 'joints', '-v7.3')) or as .npy "
           "(scipy.io.loadmat, then numpy.save)")


def read_mat(path: str | os.PathLike) -> np.ndarray:
    """(T, M, V, C) float32."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("skeleton file not found", path=path)
    if not h5py.is_hdf5(path):
        with open(path, "rb") as handle:
            head = handle.read(116)
        version = "a MATLAB v5/v7 .mat file" if head.startswith(b"MATLAB 5.0") else \
            "not a MATLAB v7.3 (HDF5) .mat file"
        raise DataError(f"{version}; only v7.3 .mat files can be read: {CONVERT}", path=path)
    try:
        with h5py.File(path, "r") as handle:
            variables = {name: item for name, item in handle.items()
                         if isinstance(item, h5py.Dataset) and not name.startswith("#")}
            numeric = [name for name, item in variables.items() if item.dtype.kind in "fiu"]
            name = next((n for n in PREFERRED if n in numeric), None)
            if name is None and len(numeric) == 1:
                name = numeric[0]
            if name is None:
                raise DataError(f"cannot tell which variable holds the skeleton (numeric "
                                f"variables: {', '.join(numeric) or 'none'}); name it "
                                f"{PREFERRED[0]!r}", path=path)
            array = np.transpose(variables[name][()])
    except OSError as error:
        raise DataError(f"not a readable .mat file ({error})", path=path) from None
    return as_sequence(array, path, f"variable {name!r}")
