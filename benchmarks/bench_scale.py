"""The MMCL training loader at NTU120 scale under a low open-file limit.

A generated NTU120-size WORKDIR (113,945 samples, shard size 128 -> 891 shards) with a
skeleton cache and two small feature caches (rgb-features, llm-features pooled), written
directly with the store's writer (deterministic: the sample names, lengths and values
come from fixed seeds). Then one pass over the ``ntu120-xsub-mmcl`` training set with
the trainer's own pieces: ``build_objective`` (the MMCL feature sources), ``load_data``,
the ``train`` dataset and a DataLoader built as the trainer builds it, 2 workers. Each
pass runs in a fresh process:

- ``bounded``: ``ulimit -n 256`` (soft limit) and the readers as they are: a budget of
  open files per process (its limit / 8 = 32; HDF5 handles and the plain descriptors
  kept for reads alike), numeric fields read by ``pread`` on a kept descriptor;
- ``unbounded``: the baseline, the reader of commit ``b45e25f`` (before the budget, taken
  from git history) under the hard open-file limit: every shard a process touches stays
  open and every value is read through HDF5. It is skipped when git or that commit is
  missing, or when the hard limit cannot hold 3 x 891 files per process.

Printed per pass: samples/s, peak open files per process (main and DataLoader workers,
sampled from /proc every 20 ms) and peak RSS; then the ratio bounded / unbounded. Any
error (``Errno 24`` included) fails the pass and the script exits non-zero. Nothing is
asserted on speed.

    PYTHONPATH=. python benchmarks/bench_scale.py         # full size (about 2.5 GB)
    PYTHONPATH=. python benchmarks/bench_scale.py --samples 5000   # a quick run
    PYTHONPATH=. python benchmarks/bench_scale.py --workdir /scratch/scale --keep
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES, SKELETONS, STITCH
from data_manifest.store import LIMIT_ENV
from data_manifest.workdir import WORKDIR_FILE, Workdir, WorkdirInfo

REPO = Path(__file__).resolve().parents[1]

NTU120_SAMPLES = 113_945
BASELINE_COMMIT = "b45e25f"      # the last commit whose reader kept every shard open
PRESET = "ntu120-xsub-mmcl"
FEATURE_WIDTH = 16
# NTU120 name parts: setups, cameras, performers, replications, actions
NAME_RADIX = (32, 3, 106, 2, 120)


# --------------------------------------------------------------------------- data


def ntu120_names(count: int, seed: int = 0) -> list[tuple[str, dict[str, int]]]:
    """``count`` distinct NTU120-style names with their metadata, in name order."""
    total = int(np.prod(NAME_RADIX))
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    names = []
    for code in chosen.tolist():
        parts = []
        for radix in reversed(NAME_RADIX):
            code, digit = divmod(code, radix)
            parts.append(digit + 1)
        action, replication, performer, camera, setup = parts
        meta = {"setup": setup, "camera": camera, "performer": performer,
                "replication": replication, "action": action}
        names.append((f"S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}"
                      f"A{action:03d}", meta))
    return names


def _write_cache(workdir: Workdir, stage: str, params: dict, values, upstream=None) -> None:
    spec = workdir.spec(stage, params, upstream or {})
    cache = workdir.cache_dir(stage)
    cache.prepare(spec, overwrite=True)
    for shard in range(workdir.num_shards):
        rng = np.random.default_rng([shard, len(stage)])
        with cache.shard_writer(spec, shard) as writer:
            for sample in workdir.shard_samples(shard):
                writer.add(sample.id, values(sample, rng))
        if shard % 100 == 0 or shard == workdir.num_shards - 1:
            print(f"  {stage}: shard {shard + 1}/{workdir.num_shards}", flush=True)


def generate(root: Path, count: int, shard_size: int, frames: tuple[int, int]) -> Workdir:
    samples = [Sample(id=name, dataset="ntu120", label=meta["action"] - 1,
                      skeleton=f"/generated/{name}.skeleton", meta=meta)
               for name, meta in ntu120_names(count)]
    root.mkdir(parents=True, exist_ok=True)
    digest = write_manifest(samples, root / "manifest.jsonl")
    Workdir.write_info(root, WorkdirInfo("ntu120", "/generated", digest, len(samples),
                                         shard_size, layout="ntu"))
    workdir = Workdir(root)

    def skeleton(sample, rng):
        length = int(rng.integers(frames[0], frames[1] + 1))
        joints = rng.normal(0, 0.3, (length, 2, 25, 3)).astype(np.float32)
        return {"joints": joints,
                "color_xy": np.full((length, 2, 25, 2), np.nan, np.float32),
                "frame_index": np.arange(length, dtype=np.int32),
                "source_frames": length, "num_actors": 2}

    upstream = {f"{STITCH}/default": "0" * 16}
    _write_cache(workdir, SKELETONS, {"generated": "bench_scale"}, skeleton)
    _write_cache(workdir, RGB_FEATURES, {"encoder": {"name": "generated"}},
                 lambda s, rng: {"feature": rng.standard_normal(FEATURE_WIDTH)
                                 .astype(np.float32)}, upstream)
    _write_cache(workdir, LLM_FEATURES, {"model": {"name": "generated"},
                                         "questions": ["q"]},
                 lambda s, rng: {"pooled": rng.standard_normal((1, FEATURE_WIDTH))
                                 .astype(np.float32)}, upstream)
    return workdir


# --------------------------------------------------------------------------- one pass


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


class ProcessWatch(threading.Thread):
    """Peak open files and peak RSS of this process and its children, from /proc."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak_files: dict[int, int] = {}
        self.peak_rss_kib: dict[int, int] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        me = os.getpid()
        for pid in [me] + _children(me):
            try:
                files = len(os.listdir(f"/proc/{pid}/fd"))
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue   # a worker that just ended
            self.peak_files[pid] = max(self.peak_files.get(pid, 0), files)
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib[pid] = max(self.peak_rss_kib.get(pid, 0),
                                                 int(line.split()[1]))

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.sample()


def baseline_source() -> str | None:
    """The store module of :data:`BASELINE_COMMIT`, or None without git or that commit."""
    try:
        done = subprocess.run(["git", "-C", str(REPO), "show",
                               f"{BASELINE_COMMIT}:data_manifest/store.py"],
                              capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def use_baseline_reader() -> None:
    """Make WORKDIRs open caches with the baseline reader (same constructor, no plan, no
    outdated-shard check)."""
    import types

    import data_manifest.workdir as workdir_module
    module = sys.modules["baseline_store"] = types.ModuleType("baseline_store")
    exec(compile(baseline_source(), f"{BASELINE_COMMIT}:data_manifest/store.py", "exec"),
         module.__dict__)

    def reader(path, expect=None, expect_stage=None, plan=None, outdated=None):
        opened = module.CacheReader(path, expect=expect, expect_stage=expect_stage)
        opened.outdated = {}
        return opened
    workdir_module.CacheReader = reader


def one_pass(workdir: Path, workers: int, batch: int, max_batches: int | None,
             baseline: bool) -> dict:
    """One epoch of the MMCL training loader; run in a process whose limits are set."""
    import torch
    from torch.utils.data import DataLoader

    from train.config import resolve_config
    from train.data.collate import collate_samples
    from train.data.dataset import load_data
    from train.data.sampler import EpochSampler
    from train.objectives import build_objective

    if baseline:
        use_baseline_reader()
    config = resolve_config(PRESET, overrides=[
        f"data.workdir={workdir}", f"data.num_workers={workers}",
        f"optim.batch_size={batch}", "run.progress=false"])
    plan = build_objective(config)
    data = load_data(config, plan.extras, plan.skip_missing)
    train_set = data.dataset("train")
    # as train.loop's trainer builds its loader (one process, persistent workers)
    sampler = EpochSampler(len(train_set), batch, shuffle=True, seed=config.run.seed,
                           drop_last=config.run.drop_last, tag_epoch=True)
    loader = DataLoader(train_set, batch_size=batch, sampler=sampler, num_workers=workers,
                        collate_fn=collate_samples, generator=torch.Generator(),
                        drop_last=False, persistent_workers=workers > 0)
    watch = ProcessWatch()
    watch.start()
    seen = 0
    started = time.perf_counter()
    for number, batch_values in enumerate(loader, start=1):
        seen += len(batch_values["id"])
        if max_batches is not None and number >= max_batches:
            break
    elapsed = time.perf_counter() - started
    watch.sample()
    watch.stop.set()
    me = os.getpid()
    workers_files = [n for pid, n in watch.peak_files.items() if pid != me]
    workers_rss = [n for pid, n in watch.peak_rss_kib.items() if pid != me]
    return {"samples": seen, "seconds": elapsed, "samples_per_s": seen / elapsed,
            "train_samples": len(train_set),
            "files_main": watch.peak_files.get(me, 0),
            "files_worker": max(workers_files, default=0),
            "rss_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_worker_mib": max(workers_rss, default=0) / 1024,
            "open_file_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


def run_pass(kind: str, args, workdir: Path) -> dict | None:
    """Run one pass in a fresh interpreter with its open-file limit and budget."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    env.pop(LIMIT_ENV, None)
    command = [sys.executable, __file__, "--pass", str(workdir), "--workers",
               str(args.workers), "--batch", str(args.batch)]
    if kind == "bounded":
        soft = args.ulimit
    else:
        needed = 3 * Workdir(workdir).num_shards + 256
        soft = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft < needed:
            print(f"  unbounded: skipped, the hard open-file limit {hard} is below the "
                  f"{needed} files every shard open at once needs")
            return None
        if baseline_source() is None:
            print(f"  unbounded: skipped, no git history with commit {BASELINE_COMMIT}")
            return None
        command.append("--baseline")
    command += ["--nofile", str(soft)]
    if args.max_batches:
        command += ["--max-batches", str(args.max_batches)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"  {kind}: FAILED (exit {done.returncode})\n{done.stderr[-3000:]}")
        raise SystemExit(1)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {kind:9s} ulimit -n {result['open_file_limit']:>7}: "
          f"{result['samples_per_s']:8.1f} samples/s ({result['samples']} samples in "
          f"{result['seconds']:.1f} s); peak open files main {result['files_main']}, "
          f"worker {result['files_worker']}; peak RSS main {result['rss_main_mib']:.0f} MiB, "
          f"worker {result['rss_worker_mib']:.0f} MiB", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=NTU120_SAMPLES,
                        help=f"samples in the generated WORKDIR (default {NTU120_SAMPLES})")
    parser.add_argument("--shard-size", type=int, default=128,
                        help="samples per shard (default 128, the pipeline's)")
    parser.add_argument("--frames", type=int, nargs=2, default=(16, 32),
                        metavar=("MIN", "MAX"), help="skeleton lengths (default 16 32)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--batch", type=int, default=200,
                        help=f"batch size (default 200, the {PRESET} preset's)")
    parser.add_argument("--ulimit", type=int, default=256,
                        help="soft open-file limit of the bounded pass (default 256)")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="stop each pass after this many batches (default: one epoch)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the WORKDIR goes; an existing one of the same size is "
                             "reused (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated WORKDIR")
    parser.add_argument("--pass", dest="one_pass", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--nofile", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one_pass is not None:     # a child: set its limit, run, print one JSON line
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))
        print(json.dumps(one_pass(args.one_pass, args.workers, args.batch,
                                  args.max_batches, args.baseline)))
        return

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        existing = (root / WORKDIR_FILE).is_file() and Workdir(root).info
        if existing and (existing.num_samples, existing.shard_size) == (args.samples,
                                                                         args.shard_size):
            print(f"reusing {root}")
        else:
            print(f"generating {args.samples} samples in {root}", flush=True)
            started = time.perf_counter()
            generate(root, args.samples, args.shard_size, tuple(args.frames))
            print(f"  generated in {time.perf_counter() - started:.0f} s")
        workdir = Workdir(root)
        print(f"{workdir.info.num_samples} samples, {workdir.num_shards} shards per cache, "
              f"3 caches read per process; {PRESET} train part, {args.workers} workers, "
              f"batch {args.batch}")
        bounded = run_pass("bounded", args, root)
        unbounded = run_pass("unbounded", args, root)
        if unbounded is not None:
            ratio = bounded["samples_per_s"] / unbounded["samples_per_s"]
            print(f"bounded / unbounded samples/s: {ratio:.3f}; open files per worker "
                  f"{bounded['files_worker']} vs {unbounded['files_worker']}; worker RSS "
                  f"{bounded['rss_worker_mib']:.0f} vs {unbounded['rss_worker_mib']:.0f} MiB")
        print("no file errors")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
