"""pyskl annotation files: a restricted unpickler that never runs code, a portable writer,
and clear errors for bad files."""

from __future__ import annotations

import gc
import io
import os
import pickle
import pickletools
import re
import subprocess
import sys
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest

from data_manifest.errors import DataError
from data_manifest.formats.pyskl import read_pyskl
from data_manifest.formats import safe_pickle
from data_manifest.formats.safe_pickle import StreamedList, dump_portable, load_data_pickle
from pipeline.manifest_builder import build_manifest
from pyskl_factories import (NUMPY1_FILE, RunsACommand, coco_2d_content, ntu_3d_content,
                             write_pickle)

REPO = Path(__file__).resolve().parents[1]


def _globals(data: bytes) -> set[str]:
    """The globals a pickle names (protocol 2's GLOBAL, protocol 4's STACK_GLOBAL, whose
    module and name may come from the memo)."""
    found, pushed, memo = set(), [], []
    for opcode, argument, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            found.add(argument.replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":
            found.add(f"{pushed[-2]}.{pushed[-1]}")
        elif opcode.name == "MEMOIZE":
            memo.append(pushed[-1] if pushed else None)
        elif opcode.name in ("BINGET", "LONG_BINGET"):
            pushed.append(memo[argument])
        else:
            pushed.append(argument if isinstance(argument, str) else None)
    return found


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("where", ["annotation", "top"])
def test_the_malicious_pickle_is_refused_and_its_command_never_runs(tmp_path, protocol,
                                                                    where):
    marker = tmp_path / "marker"
    payload = RunsACommand(f"touch {marker}")
    content = ntu_3d_content(count=2)
    if where == "annotation":
        content["annotations"][1]["label"] = payload
    else:
        content = {"split": content["split"], "annotations": content["annotations"],
                   "note": payload}
    path = write_pickle(tmp_path / "evil.pkl", content, protocol)
    with pytest.raises(DataError) as caught:
        build_manifest("pyskl", path, tmp_path / "work", split="xsub")
    text = str(caught.value)
    assert str(path) in text and "refused to load" in text
    assert "posix.system" in text or "os.system" in text
    assert not marker.exists()
    assert not (tmp_path / "work" / "manifest.jsonl").exists()
    pickle.loads(pickle.dumps(payload))     # the payload does run when unpickled plainly
    assert marker.exists()


@pytest.mark.parametrize("name", ["builtins.eval", "subprocess.Popen", "builtins.getattr",
                                  "numpy.load", "numpy.testing._private.utils.runstring"])
def test_no_global_beyond_data_types_is_admitted(tmp_path, name):
    module, attribute = name.rsplit(".", 1)
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{attribute}\n".encode() + b"X\x01\x00\x00\x00"
                     b"1\x85R.")
    with pytest.raises(DataError, match=rf"it calls {name}, which is not a data type"):
        load_data_pickle(path)


def test_codecs_encode_is_admitted_for_latin1_bytes_only(tmp_path):
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00latin1"
                     b"\x86R.")
    assert load_data_pickle(path) == b"ab"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x05\x00\x00\x00rot13"
                     b"\x86R.")
    with pytest.raises(DataError, match="refused to load"):
        load_data_pickle(path)


class _ForgedDtype:
    """Pickles as NumPy pickles a dtype, with a hand-made state."""

    def __init__(self, args, state):
        self.args, self.state = args, state

    def __reduce__(self):
        return np.dtype, self.args, self.state


class _ArrayOf:
    """Pickles as NumPy pickles an array (``_reconstruct`` + BUILD), with a forged dtype."""

    def __init__(self, dtype, data, shape=(1,)):
        self.dtype, self.data, self.shape = dtype, data, shape

    def __reduce__(self):
        reconstruct = np.zeros(1).__reduce__()[0]     # NumPy's _reconstruct, 1.x or 2.x
        return reconstruct, (np.ndarray, (0,), b"b"), (1, self.shape, self.dtype, False,
                                                        self.data)


class _ScalarOf:
    def __init__(self, dtype, data):
        self.dtype, self.data = dtype, data

    def __reduce__(self):
        scalar = np.int64(0).__reduce__()[0]          # NumPy's scalar, 1.x or 2.x
        return scalar, (self.dtype, self.data)


def _forged_labels():
    object_field = np.dtype([("a", "O")]).__reduce__()[2]
    float_field = np.dtype([("a", "f8")]).__reduce__()[2]
    return {
        # an object field flagged as holding no objects: repr reads a pointer from data
        "object-field-without-flag": _ArrayOf(
            _ForgedDtype(("V8", False, True), object_field[:-1] + (0,)), b"\x41" * 8, ()),
        # a field at an offset far past the 8-byte item: reads outside the buffer
        "field-offset-past-the-item": _ArrayOf(
            _ForgedDtype(("V8", False, True), float_field[:4]
                         + ({"a": (np.dtype("f8"), 1 << 20)},) + float_field[5:]),
            b"\x41" * 8),
        # NumPy raises RuntimeError for a structured scalar
        "structured-scalar": _ScalarOf(np.dtype([("a", "O")]), b"\x41" * 8),
        # BUILD on np.dtype('f8') would rewrite the process-wide float64 dtype
        "shared-dtype-rewritten": _ArrayOf(
            _ForgedDtype(("f8", False, True), (3, "<", None, None, None, -1, -1, 27)),
            b"\x00" * 8),
        "object-array": _ArrayOf(_ForgedDtype(("O8", False, True),
                                              np.dtype("O").__reduce__()[2]), [None]),
    }


@pytest.mark.parametrize("forgery", sorted(_forged_labels()))
def test_a_forged_numpy_dtype_is_refused_before_anything_reads_it(tmp_path, forgery):
    """Run in a child process: before the fix, some of these crashed the interpreter."""
    content = ntu_3d_content(count=1)
    content["annotations"][0]["label"] = _forged_labels()[forgery]
    path = write_pickle(tmp_path / "forged.pkl", content, protocol=2)
    done = subprocess.run([sys.executable, "-m", "pipeline", "manifest", "pyskl", str(path),
                           str(tmp_path / "work"), "--split", "xsub"],
                          cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert f"error: {path}: refused to load this pyskl annotation file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("call", [
    b"c__builtin__\nbytes\nJ@B\x0f\x00\x85R.",                 # bytes(1_000_000)
    b"c__builtin__\nbytearray\nJ@B\x0f\x00\x85R.",
    b"c__builtin__\nlist\nX\x03\x00\x00\x00abc\x85R.",         # list('abc'): one per char
    b"cnumpy\nndarray\nJ@B\x0f\x00\x85R.",                     # uninitialised memory
    b"cnumpy\ndtype\n]\x85R."])                               # dtype from a list
def test_admitted_callables_refuse_arguments_that_are_not_plain_data(tmp_path, call):
    path = tmp_path / "call.pkl"
    path.write_bytes(b"\x80\x02" + call)
    with pytest.raises(DataError, match="in a way plain data never does"):
        load_data_pickle(path)


@pytest.mark.parametrize("error", [RuntimeError("structured scalar"),
                                   RecursionError("too deep")])
def test_other_errors_while_loading_name_the_file(tmp_path, monkeypatch, error):
    path = write_pickle(tmp_path / "file.pkl", ntu_3d_content(count=1))

    def fail(self):
        raise error
    monkeypatch.setattr(safe_pickle.DataOnlyUnpickler, "load", fail)
    with pytest.raises(DataError, match=f"{re.escape(str(path))}: not a readable pickle"):
        load_data_pickle(path)


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_files_of_every_pickle_protocol_load_as_with_plain_pickle(tmp_path, protocol):
    content = coco_2d_content(count=3)
    content["annotations"][0]["keypoint"] = np.asfortranarray(
        content["annotations"][0]["keypoint"])
    content["annotations"][1]["tags"] = {"a", "b"}, frozenset({1}), b"", bytearray(b"x")
    path = write_pickle(tmp_path / "file.pkl", content, protocol)
    loaded = load_data_pickle(path)
    for got, want in zip(loaded["annotations"], content["annotations"]):
        np.testing.assert_array_equal(got["keypoint"], want["keypoint"])
        assert got["keypoint"].dtype == np.float16
        assert got["label"] == want["label"] and got["img_shape"] == (480, 640)
    assert loaded["annotations"][1]["tags"] == content["annotations"][1]["tags"]


def test_a_file_made_with_numpy_1_loads(tmp_path):
    """tests/data/pyskl_numpy1.pkl was written by NumPy 1.24.4 (pickle protocol 5): it
    names numpy.core.multiarray (_reconstruct, scalar) and numpy.core.numeric._frombuffer,
    the module names before NumPy 2."""
    data = NUMPY1_FILE.read_bytes()
    names = _globals(data)
    assert {"numpy.core.multiarray.scalar", "numpy.core.multiarray._reconstruct",
            "numpy.core.numeric._frombuffer"} <= names
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        plain = pickle.loads(data)              # through NumPy 2's numpy.core shim
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no deprecated numpy.core import either
        loaded = read_pyskl(NUMPY1_FILE)
    assert [a.id for a in loaded.annotations] == ["clip_a", "clip_b"]
    for got, want in zip(loaded.annotations, plain["annotations"]):
        np.testing.assert_array_equal(got.keypoint, want["keypoint"])
        np.testing.assert_array_equal(got.keypoint_score, want["keypoint_score"])
        assert got.label == want["label"] and got.shapes["img_shape"] == (480, 640)
    assert loaded.channels == "xy-score" and loaded.split == {"train": ["clip_a"],
                                                              "val": ["clip_b"]}


def test_a_truncated_or_damaged_pickle_is_a_clear_error(tmp_path):
    path = write_pickle(tmp_path / "whole.pkl", ntu_3d_content(count=2))
    data = path.read_bytes()
    for name, broken in (("truncated", data[:len(data) // 2]), ("empty", b""),
                         ("garbage", b"not a pickle at all")):
        bad = tmp_path / f"{name}.pkl"
        bad.write_bytes(broken)
        with pytest.raises(DataError, match="not a readable pyskl annotation file: "
                                            "truncated or damaged") as caught:
            build_manifest("pyskl", bad, tmp_path / "work")
        assert str(bad) in str(caught.value)
    with pytest.raises(DataError, match="pyskl annotation file not found"):
        read_pyskl(tmp_path / "absent.pkl")


def test_every_problem_of_the_annotations_is_listed_with_its_sample(tmp_path):
    content = ntu_3d_content(count=5)
    annotations = content["annotations"]
    del annotations[1]["label"]                                     # a missing key
    annotations[2]["keypoint"] = annotations[2]["keypoint"][0]      # M dropped: 3-D
    annotations[3]["label"] = -1
    annotations[4]["total_frames"] = 999
    annotations[5]["keypoint"] = annotations[5]["keypoint"].astype(np.float32)
    annotations[5]["keypoint"][0, 2, 3, 1] = np.nan
    path = write_pickle(tmp_path / "bad.pkl", content)
    with pytest.raises(DataError) as caught:
        build_manifest("pyskl", path, tmp_path / "work", split="xsub")
    text = str(caught.value)
    ids = [a["frame_dir"] for a in annotations]
    assert str(path) in text and "(5 problems)" in text
    assert f"annotation 1 ({ids[1]}): missing key(s) 'label'" in text
    assert f"annotation 2 ({ids[2]}): keypoint of shape (" in text and \
        "expected M x T x V x C" in text
    assert f"annotation 3 ({ids[3]}): label -1 is not an integer >= 0" in text
    assert f"annotation 4 ({ids[4]}): total_frames 999 but keypoint holds" in text
    assert f"annotation 5 ({ids[5]}): keypoint holds NaN or infinite values" in text
    assert not (tmp_path / "work").exists()


def test_a_label_beyond_the_class_names_names_its_sample(tmp_path):
    content = coco_2d_content(count=4, classes=3)
    content["annotations"][2]["label"] = 7
    path = write_pickle(tmp_path / "file.pkl", content)
    classes = tmp_path / "classes.txt"
    classes.write_text("a\nb\nc\n")
    with pytest.raises(DataError, match=r"annotation 2 \(clip_002\): label 7 is out of range:"
                                        r" 3 class names give labels 0..2"):
        build_manifest("pyskl", path, tmp_path / "work", classes=classes)


def test_files_that_are_not_pyskl_files_say_what_they_hold(tmp_path):
    cases = {"list": [1, 2], "nosplit": {"annotations": []},
             "k400": {"split": {"train": ["v"]}, "annotations": [
                 {"frame_dir": "v", "label": 0, "total_frames": 5, "raw_file": "x.pkl"}]},
             "mixed": None}
    mixed = coco_2d_content(count=3)
    mixed["annotations"][1]["keypoint"] = np.zeros((1, 4, 25, 3), np.float16)
    mixed["annotations"][1]["total_frames"] = 4
    del mixed["annotations"][1]["keypoint_score"]
    cases["mixed"] = mixed
    expected = {"list": "holds a list; a pyskl file holds a dict",
                "nosplit": "missing key(s) 'split'",
                "k400": "Kinetics-400 files keep keypoints in separate raw_file files",
                "mixed": "the annotations differ in joints per person (V): 17: 2"}
    for name, content in cases.items():
        path = write_pickle(tmp_path / f"{name}.pkl", content)
        with pytest.raises(DataError, match=re.escape(expected[name])):
            read_pyskl(path)


# --------------------------------------------------------------------------- writing


def test_written_files_name_only_ndarray_list_and_bytearray(tmp_path):
    """NumPy 2 pickles arrays under numpy._core, which NumPy < 1.26 (pyskl's) cannot
    import: the writer names numpy.ndarray alone, and the arrays load writable."""
    buffer = io.BytesIO()
    arrays = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 2), np.float16).T]
    dump_portable({"split": {"a": ["x"]}, "annotations": StreamedList(
        {"frame_dir": "x", "keypoint": array, "label": 1} for array in arrays)}, buffer)
    data = buffer.getvalue()
    assert _globals(data) == {"numpy.ndarray", "builtins.list", "builtins.bytearray"}
    loaded = pickle.loads(data)
    for got, want in zip(loaded["annotations"], arrays):
        np.testing.assert_array_equal(got["keypoint"], want)
        assert got["keypoint"].dtype == want.dtype and got["keypoint"].flags.writeable
    with pytest.raises(pickle.PicklingError, match="Python number"):
        dump_portable({"label": np.int64(1)}, io.BytesIO())


def test_streamed_items_are_not_kept_while_the_file_is_written():
    alive = []

    def items():
        for index in range(6):
            if index >= 2:      # the pickler holds one item back to batch its appends
                gc.collect()
                assert alive[index - 2]() is None, "the pickler kept a written array"
            array = np.zeros(1000, np.float32)
            alive.append(weakref.ref(array))
            yield {"keypoint": array}
            del array

    dump_portable({"annotations": StreamedList(items())}, io.BytesIO())
    assert len(alive) == 6
