"""MATLAB ``.mat`` files: v7.3 (HDF5 inside, read with h5py) and, with scipy installed
(``pip install 'mmcl-toolkit[mat]'``), the older v5/v7 format that MATLAB writes by default.

The file holds the array as one numeric variable: the only one, or the one named
``joints`` (or ``skeleton``/``skeletons``/``d_skel``). MATLAB's size ``T x V x C`` (or
``T x M x V x C``) is what is read (v7.3 stores arrays column-major, so HDF5 sees the axes
reversed and they are turned back here), except for UTD-MHAD's ``d_skel``, which is
``V x C x T`` (joints x coordinates x frames). Without scipy a v5/v7 file is refused with
how to convert it (``save(FILE, 'joints', '-v7.3')``, or ``.npy``).
"""

from __future__ import annotations

import importlib.util
import os

import h5py
import numpy as np

from data_manifest.errors import DataError
from data_manifest.formats.arrays import as_sequence

PREFERRED = ("joints", "skeleton", "skeletons", "d_skel")
# variables whose MATLAB axes are not T x V x C: the transpose that makes them so
AXES = {"d_skel": (2, 0, 1)}      # UTD-MHAD: joints x 3 x frames
CONVERT = ("save it as v7.3 in MATLAB (save(FILE, 'joints', '-v7.3')) or as .npy "
           "(scipy.io.loadmat, then numpy.save)")


def read_mat(path: str | os.PathLike) -> np.ndarray:
    """(T, M, V, C) float32."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("skeleton file not found", path=path)
    if h5py.is_hdf5(path):
        name, array = _read_v73(path)
    else:
        with open(path, "rb") as handle:
            head = handle.read(116)
        if not head.startswith(b"MATLAB 5.0"):
            raise DataError("not a MATLAB .mat file (neither v7.3/HDF5 nor v5/v7)", path=path)
        name, array = _read_v5(path)
    if name in AXES and array.ndim == len(AXES[name]):
        array = np.transpose(array, AXES[name])
    return as_sequence(array, path, f"variable {name!r}")


def _choose(numeric: list[str], path: str) -> str:
    name = next((n for n in PREFERRED if n in numeric), None)
    if name is None and len(numeric) == 1:
        name = numeric[0]
    if name is None:
        raise DataError(f"cannot tell which variable holds the skeleton (numeric variables: "
                        f"{', '.join(numeric) or 'none'}); name it {PREFERRED[0]!r}", path=path)
    return name


def _read_v73(path: str) -> tuple[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as handle:
            variables = {name: item for name, item in handle.items()
                         if isinstance(item, h5py.Dataset) and not name.startswith("#")}
            name = _choose([n for n, item in variables.items() if item.dtype.kind in "fiu"],
                           path)
            return name, np.transpose(variables[name][()])
    except OSError as error:
        raise DataError(f"not a readable .mat file ({error})", path=path) from None


def _read_v5(path: str) -> tuple[str, np.ndarray]:
    if importlib.util.find_spec("scipy") is None:
        raise DataError("a MATLAB v5/v7 .mat file: reading it needs scipy (pip install "
                        f"'mmcl-toolkit[mat]'), or {CONVERT}", path=path)
    from scipy.io import loadmat

    try:
        variables = loadmat(path)
    except (ValueError, TypeError, OSError, NotImplementedError) as error:
        raise DataError(f"not a readable MATLAB v5/v7 .mat file ({error})", path=path) \
            from None
    numeric = [name for name, value in variables.items()
               if not name.startswith("__") and isinstance(value, np.ndarray)
               and value.dtype.kind in "fiu"]
    name = _choose(numeric, path)
    return name, np.asarray(variables[name])
