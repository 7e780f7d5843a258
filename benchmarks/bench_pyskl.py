"""Benchmark pyskl files: import (restricted unpickler, manifest), skeleton stage, export.

A deterministic pyskl file of N NTU-like samples (default 2,000; NTU120's 113,945 for the
full size) is written as pyskl writes its files (pickle protocol 2, float16 keypoints,
M x T x 25 x 3, 1-2 persons, 40-150 frames). Each step runs in a fresh child process and
reports its wall time and peak RSS, next to a baseline measured in the same run:

- ``load``: the restricted unpickler vs plain ``pickle.load`` of the same file (the
  restriction's cost: it is Python's pure-Python unpickler with checked opcodes, so the
  ratio grows with the number of small objects per byte, about 1-2 for pyskl files; both
  hold the whole file in memory);
- ``manifest``: ``pipeline manifest pyskl`` (load, checks, one array file per sample),
  samples/s and peak RSS relative to the file size;
- ``skeletons``: ``extract-skeletons -j JOBS`` on the array files (the pickle is never
  loaded again: its peak RSS does not grow with the file);
- ``export``: ``pipeline export-pyskl`` (annotations streamed from the cache) vs the naive
  way (every annotation built in memory, then one ``pickle.dump``): the streamed peak RSS
  should stay flat while the naive one grows with N.

Run: ``python benchmarks/bench_pyskl.py [--samples 2000] [--jobs 2] [--root DIR]``; full
size: ``--samples 113945`` (about 2 GB of float16 keypoints; needs about 3x that in memory
for the load steps and as much free disk).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GENERATE = """
import pickle, sys
import numpy as np
count, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
annotations = []
for i in range(count):
    persons, frames = 1 + int(rng.random() < 0.3), int(rng.integers(40, 151))
    keypoint = rng.normal(0, 0.4, size=(persons, frames, 25, 3)) + [0, 0, 3]
    annotations.append({"frame_dir": f"S{1 + i // 4000:03d}C001P{i % 100:03d}R001A{i:06d}",
                        "label": i % 120, "keypoint": keypoint.astype(np.float16),
                        "total_frames": frames})
ids = [a["frame_dir"] for a in annotations]
split = {"xsub_train": ids[0::2], "xsub_val": ids[1::2],
         "xset_train": ids[:count // 2], "xset_val": ids[count // 2:]}
with open(path, "wb") as handle:
    pickle.dump({"split": split, "annotations": annotations}, handle, protocol=2)
"""

MEASURED = """
import json, resource, sys, time
start = time.perf_counter()
step, args = sys.argv[1], sys.argv[2:]
if step == "plain-load":
    import pickle
    with open(args[0], "rb") as handle:
        count = len(pickle.load(handle)["annotations"])
elif step == "restricted-load":
    from data_manifest.formats.safe_pickle import load_data_pickle
    count = len(load_data_pickle(args[0])["annotations"])
elif step == "manifest":
    from pipeline.manifest_builder import build_manifest
    count = build_manifest("pyskl", args[0], args[1], split="xsub").num_samples
elif step == "skeletons":
    from pipeline.stages.extract_skeletons import extract_skeletons
    count = extract_skeletons(args[0], jobs=int(args[1]), progress=False).samples_written
elif step == "export":
    from pipeline.export_pyskl import export_pyskl
    count = export_pyskl(args[0], args[1], overwrite=True, progress=False).exported
elif step == "naive-export":
    import pickle
    from data_manifest.formats.pyskl import annotation
    from data_manifest.schemas import SKELETONS
    from data_manifest.workdir import Workdir
    workdir = Workdir(args[0])
    with workdir.reader(SKELETONS) as reader:
        annotations = [annotation(s.id, s.label, reader.get(s.id, ["joints"])["joints"], "xyz")
                       for s in workdir.samples]
    with open(args[1], "wb") as handle:
        pickle.dump({"split": {}, "annotations": annotations}, handle, protocol=4)
    count = len(annotations)
wall = time.perf_counter() - start
usage = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"wall": wall, "count": count, "peak_mb": usage / 1024}))
"""


def _run(script: str, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"step {args[:1]} failed:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000,
                        help="Samples in the generated file (default 2000; NTU120: 113945).")
    parser.add_argument("--jobs", type=int, default=2,
                        help="Workers of extract-skeletons (default 2).")
    parser.add_argument("--root", type=Path,
                        help="Where files go (default: a temporary folder, deleted after).")
    options = parser.parse_args()
    root = options.root or Path(tempfile.mkdtemp(prefix="bench-pyskl-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        source, work = root / f"ntu_{options.samples}.pkl", root / "work"
        if not source.is_file():
            _run(GENERATE, str(options.samples), str(source))
        shutil.rmtree(work, ignore_errors=True)
        size_mb = source.stat().st_size / 2**20
        print(f"pyskl file: {options.samples:,} samples, {size_mb:,.0f} MB")
        steps = [("plain-load", "load (baseline: pickle.load)", [str(source)]),
                 ("restricted-load", "load (restricted unpickler)", [str(source)]),
                 ("manifest", "pipeline manifest pyskl", [str(source), str(work)]),
                 ("skeletons", f"extract-skeletons -j {options.jobs}",
                  [str(work), str(options.jobs)]),
                 ("export", "export-pyskl (streamed)", [str(work), str(root / "out.pkl")]),
                 ("naive-export", "export (baseline: all in memory)",
                  [str(work), str(root / "naive.pkl")])]
        results = {}
        print(f"{'step':36s} {'wall s':>8s} {'samples/s':>10s} {'peak RSS MB':>12s} "
              f"{'RSS/file':>9s}")
        for step, label, args in steps:
            found = results[step] = _run(MEASURED, step, *args)
            print(f"{label:36s} {found['wall']:8.2f} {found['count'] / found['wall']:10.0f} "
                  f"{found['peak_mb']:12.0f} {found['peak_mb'] / size_mb:9.2f}")
        plain, restricted = results["plain-load"], results["restricted-load"]
        print(f"restricted / plain load time: {restricted['wall'] / plain['wall']:.2f}, "
              f"peak RSS: {restricted['peak_mb'] / plain['peak_mb']:.2f}")
        naive, streamed = results["naive-export"], results["export"]
        print(f"export streamed / naive time: {streamed['wall'] / naive['wall']:.2f}, "
              f"peak RSS: {streamed['peak_mb'] / naive['peak_mb']:.2f}")
    finally:
        if options.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
