"""Benchmark ``extract-skeletons`` on generated NTU-format files: speed and peak memory.

For each size N (default 1,000 and 8,000 files, deterministic synthetic samples of 60-120
frames, 1-2 actors, some noise bodies; the first N of the largest set) and each job count
(default 1 and 2), a fresh WORKDIR is built and the stage runs in a child process whose
whole process tree (the main process and its worker processes) is sampled for RSS.
Printed per run: files/s, wall time, CPU seconds of the tree (per file, and how many cores
it kept busy: on a shared machine a low figure means the cores were not ours), peak RSS of
the main process, of the largest worker and of the tree summed. Then the -j 2 / -j 1
speed-up, and the peak-RSS ratio between the largest and smallest size, which must stay
near 1 (memory must not grow with N).

Same-run baseline (``--no-baseline`` skips it): the reference tools' approach of parsing
every file and holding all sequences in memory before writing, measured the same way;
its peak RSS grows with N.

Run: ``python benchmarks/bench_extract_skeletons.py [--sizes 1000 8000] [--jobs 1 2]``.
Generated files are kept under ``--root`` (default: a temporary folder, deleted at the
end) and reused by later runs with the same ``--root``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    import psutil
except ImportError:      # fall back to getrusage inside the child (less complete)
    psutil = None

CHUNK = 250

RUN_STAGE = """
import json, resource, sys, time
from pipeline.stages.extract_skeletons import extract_skeletons
start = time.perf_counter()
result = extract_skeletons(sys.argv[1], jobs=int(sys.argv[2]), progress=False)
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "stored": result.samples_written,
                  "failed": len(result.failures),
                  "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""

HOLD_ALL = """
import json, resource, sys, time
from data_manifest.formats.load import load_skeleton_sample
from data_manifest.workdir import Workdir
start = time.perf_counter()
everything = [load_skeleton_sample(s.skeleton, "ntu60") for s in Workdir(sys.argv[1]).samples]
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "stored": len(everything), "failed": 0,
                  "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "children_kb": 0}))
"""


def _call(function):
    return function()


def generate(data: Path, count: int, seed: int, jobs: int) -> None:
    """The first ``count`` synthetic samples in ``data`` (generated once, then reused)."""
    from functools import partial

    from pipeline.synthetic.ntu_skeleton import write_synthetic_ntu_dataset
    from pipeline.workers import run_unordered
    marker = data / "generated.json"
    if marker.is_file():
        made = json.loads(marker.read_text())
        if made["seed"] == seed and made["count"] >= count:
            return
    if data.exists():
        shutil.rmtree(data)
    start = time.perf_counter()
    chunks = [(partial(write_synthetic_ntu_dataset, data, min(CHUNK, count - first),
                       seed=seed, start=first),) for first in range(0, count, CHUNK)]
    for _ in run_unordered(_call, chunks, jobs):
        pass
    marker.write_text(json.dumps({"count": count, "seed": seed}))
    print(f"generated {count} files in {time.perf_counter() - start:.1f} s "
          f"({sum(p.stat().st_size for p in data.glob('*.skeleton')) / 1e6:.0f} MB)")


def subset(data: Path, target: Path, count: int) -> Path:
    """A folder with links to ``count`` of the generated files (the first by name)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(data.glob("*.skeleton"))[:count]:
        os.symlink(path, target / path.name)
    return target


def measure(code: str, workdir: Path, jobs: int) -> dict:
    """Run ``code`` in a child process; sample its process tree's RSS every 20 ms."""
    command = [sys.executable, "-c", code, str(workdir), str(jobs)]
    if psutil is None:
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        report = json.loads(done.stdout.strip().splitlines()[-1])
        report.update(main_mb=report["self_kb"] / 1024, worker_mb=report["children_kb"] / 1024,
                      tree_mb=(report["self_kb"] + report["children_kb"]) / 1024,
                      cpu_s=float("nan"))
        return report
    process = psutil.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_main = peak_worker = peak_tree = 0
    cpu: dict[int, float] = {}          # pid -> last seen user + system seconds
    while process.poll() is None:
        try:
            main = process.memory_info().rss
            times = process.cpu_times()
            cpu[process.pid] = times.user + times.system
            workers = []
            for child in process.children(recursive=True):
                try:
                    workers.append(child.memory_info().rss)
                    times = child.cpu_times()
                    cpu[child.pid] = times.user + times.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            break
        peak_main = max(peak_main, main)
        peak_worker = max([peak_worker, *workers])
        peak_tree = max(peak_tree, main + sum(workers))
        time.sleep(0.02)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{stderr}")
    report = json.loads(stdout.strip().splitlines()[-1])
    # the child's own high-water mark catches peaks between two samples
    report.update(main_mb=max(peak_main / 2**20, report["self_kb"] / 1024),
                  worker_mb=peak_worker / 2**20, tree_mb=peak_tree / 2**20,
                  cpu_s=sum(cpu.values()))
    return report


def fresh_workdir(root: Path, data: Path, name: str, shard_size: int) -> Path:
    from pipeline.manifest_builder import build_manifest
    workdir = root / name
    if workdir.exists():
        shutil.rmtree(workdir)
    build_manifest("ntu60", data, workdir, shard_size=shard_size)
    return workdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 8000],
                        help="numbers of files (default: 1000 8000)")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2],
                        help="job counts to compare (default: 1 2)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs per size and job count; medians are printed (default: 1)")
    parser.add_argument("--shard-size", type=int, default=128, help="default: 128")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", type=Path, help="where to generate (kept if given)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the hold-everything-in-memory baseline")
    args = parser.parse_args()
    if max(args.sizes) > 60 * 4080:
        parser.error("at most 244,800 synthetic files")

    root = args.root or Path(tempfile.mkdtemp(prefix="bench-skeletons-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s), load average "
          f"{os.getloadavg()[0]:.1f}; files under {root}; RSS via "
          f"{'psutil sampling of the process tree' if psutil else 'getrusage'}")
    try:
        generate(root / "data-all", max(args.sizes), args.seed, max(args.jobs))
        rows = []
        for size in sorted(args.sizes):
            data = subset(root / "data-all", root / f"data-{size}", size)
            runs = [("stage", jobs) for jobs in args.jobs]
            if not args.no_baseline:
                runs.append(("hold-all", 1))
            reports: dict[tuple[str, int], list[dict]] = {run: [] for run in runs}
            for _ in range(args.repeats):          # interleaved: the machine is shared
                for kind, jobs in runs:
                    workdir = fresh_workdir(root, data, f"work-{size}", args.shard_size)
                    code = RUN_STAGE if kind == "stage" else HOLD_ALL
                    reports[(kind, jobs)].append(measure(code, workdir, jobs))
            for (kind, jobs), done in reports.items():
                row = {key: statistics.median(r[key] for r in done)
                       for key in ("wall", "main_mb", "worker_mb", "tree_mb", "cpu_s")}
                row.update(size=size, jobs=jobs, kind=kind, stored=done[0]["stored"],
                           failed=done[0]["failed"], rate=size / row["wall"])
                rows.append(row)
                print(f"{kind:8s} N={size:6d} -j {jobs}: {row['rate']:7.1f} files/s "
                      f"({row['wall']:6.1f} s wall, {row['cpu_s']:6.1f} s CPU = "
                      f"{1000 * row['cpu_s'] / size:4.1f} ms/file, "
                      f"{row['cpu_s'] / row['wall']:.2f} cores busy), stored "
                      f"{row['stored']}, failed {row['failed']}; peak RSS main "
                      f"{row['main_mb']:4.0f} MB, largest worker {row['worker_mb']:4.0f} MB, "
                      f"tree {row['tree_mb']:4.0f} MB", flush=True)
        summarize(rows, args)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


def summarize(rows: list[dict], args) -> None:
    print("\nsummary")
    stage = {(r["size"], r["jobs"]): r for r in rows if r["kind"] == "stage"}
    sizes, jobs = sorted(args.sizes), sorted(args.jobs)
    if len(jobs) > 1:
        for size in sizes:
            base = stage[(size, jobs[0])]["rate"]
            for j in jobs[1:]:
                print(f"  N={size}: -j {j} / -j {jobs[0]} speed-up "
                      f"{stage[(size, j)]['rate'] / base:.2f}x")
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for j in jobs:
            a, b = stage[(small, j)], stage[(large, j)]
            print(f"  stage -j {j}: peak tree RSS N={large} / N={small} = "
                  f"{b['tree_mb'] / a['tree_mb']:.2f} ({a['tree_mb']:.0f} -> "
                  f"{b['tree_mb']:.0f} MB)")
        held = {r["size"]: r for r in rows if r["kind"] == "hold-all"}
        if held:
            a, b = held[small], held[large]
            print(f"  baseline hold-all: peak RSS N={large} / N={small} = "
                  f"{b['tree_mb'] / a['tree_mb']:.2f} ({a['tree_mb']:.0f} -> "
                  f"{b['tree_mb']:.0f} MB)")


if __name__ == "__main__":
    main()
