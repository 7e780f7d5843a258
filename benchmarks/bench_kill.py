"""Kill test: every CPU stage killed with SIGKILL at random points, then re-run.

For each stage (``extract-skeletons``, ``extract-frames``, ``stitch``) and each ``-j``:

1. baseline: the stage run once, uninterrupted, on generated demo data, watching when it
   begins writing (its cache folder appears) and when it publishes its last shard;
2. ``--kills`` times: start the stage on an empty cache in its own process group, send
   SIGKILL to the command (the parent only, as ``kill -9 PID`` does) at a random moment
   of the baseline's writing window (a run that ends first is started again with another
   moment, and counted as missed), then after a grace period count the processes of the
   group still running (orphaned workers), shards published after the kill, and published
   shards that cannot be read in full (corrupt); re-run the stage to completion and
   compare every stored array, sample by sample, with the baseline cache.

Printed per stage and ``-j``: kills that landed while shards were being written, kills
survived (no orphan, no corrupt shard, re-run exits 0 and equals the baseline), corrupt
shards, differing samples, orphans, shards published after a kill, and the median re-run
time next to the uninterrupted baseline's.

Run small: ``python benchmarks/bench_kill.py --samples 24 --shard-size 2 --kills 3``;
full: ``python benchmarks/bench_kill.py`` (240 samples, 20 kills, -j 1 and -j 2).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.compare_caches import compare_caches  # noqa: E402
from data_manifest.schemas import FRAMES, SKELETONS, STITCH  # noqa: E402
from data_manifest.store import open_shard_file, read_shard_header  # noqa: E402
from data_manifest.workdir import Workdir  # noqa: E402

MAX_STARTS = 20          # per kill: runs that end before the kill point are started again
COMMANDS = {"extract-skeletons": SKELETONS, "extract-frames": FRAMES, "stitch": STITCH}


@dataclass
class Trials:
    stage: str
    jobs: int
    baseline_s: float
    kills: int = 0
    missed: int = 0
    during_writing: int = 0
    survived: int = 0
    corrupt_shards: int = 0
    differing_samples: int = 0
    orphans: int = 0
    published_after_kill: int = 0
    rerun_s: list[float] = field(default_factory=list)

    def line(self) -> str:
        rerun = statistics.median(self.rerun_s) if self.rerun_s else float("nan")
        return (f"{self.stage:18s} -j {self.jobs}: {self.survived}/{self.kills} kills survived "
                f"({self.during_writing} after some shards were published, {self.missed} "
                f"missed: the run ended first); corrupt shards "
                f"{self.corrupt_shards}, differing samples {self.differing_samples}, orphan "
                f"processes {self.orphans}, shards published after a kill "
                f"{self.published_after_kill}; re-run median {rerun:.2f} s vs uninterrupted "
                f"{self.baseline_s:.2f} s")


def stage_command(stage: str, workdir: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "pipeline", stage, str(workdir), "-j", str(jobs),
            "--no-progress", "--skip-failures"]


def watched_run(stage: str, workdir: Path, jobs: int) -> tuple[float, float, float]:
    """(wall time, when it began writing, when its last shard was published) of a run."""
    cache = workdir / "cache" / COMMANDS[stage] / "default"
    total = Workdir(workdir).num_shards
    start = time.perf_counter()
    process = subprocess.Popen(stage_command(stage, workdir, jobs), cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    began = ended = None
    while process.poll() is None:
        now = time.perf_counter() - start
        if began is None and cache.is_dir():
            began = now
        if ended is None and len(published(cache)) == total:
            ended = now
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if process.returncode:
        sys.exit(f"the uninterrupted {stage} run failed:\n{process.stderr.read()[-2000:]}")
    return wall, began or 0.0, ended or wall


def run_to_end(stage: str, workdir: Path, jobs: int) -> tuple[int, float]:
    start = time.perf_counter()
    done = subprocess.run(stage_command(stage, workdir, jobs), cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
    return done.returncode, time.perf_counter() - start


def group_members(group: int) -> list[int]:
    """Live (not zombie) processes of process group ``group``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == group and state not in ("Z", "X"):
            members.append(int(stat.parent.name))
    return members


def published(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("shard-*.h5")}


def corrupt_shards(cache: Path) -> int:
    """Published shard files whose header or any dataset cannot be read."""
    bad = 0
    for path in cache.glob("shard-*.h5"):
        try:
            read_shard_header(path)
            with open_shard_file(path) as handle:
                handle.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset)
                                  else None)
        except Exception:   # any failure to read counts; the kind does not matter here
            bad += 1
    return bad


def kill_trial(trials: Trials, workdir: Path, reference: Path, window: tuple[float, float],
               rng: random.Random, grace: float) -> None:
    cache = workdir / "cache" / COMMANDS[trials.stage] / "default"
    for _ in range(MAX_STARTS):
        shutil.rmtree(cache, ignore_errors=True)
        process = subprocess.Popen(stage_command(trials.stage, workdir, trials.jobs),
                                   cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        delay = rng.uniform(*window)
        time.sleep(delay)
        if process.poll() is None:
            break
        trials.missed += 1
    else:
        return
    process.send_signal(signal.SIGKILL)
    process.wait()
    trials.kills += 1
    at_kill = published(cache)
    time.sleep(grace)
    survivors = group_members(process.pid)
    trials.orphans += len(survivors)
    after = published(cache)
    trials.published_after_kill += sum(1 for name, mtime in after.items()
                                       if at_kill.get(name) != mtime)
    if survivors:
        os.killpg(process.pid, signal.SIGKILL)
    trials.during_writing += 0 < len(at_kill) < Workdir(workdir).num_shards
    corrupt = corrupt_shards(cache)
    trials.corrupt_shards += corrupt
    code, seconds = run_to_end(trials.stage, workdir, trials.jobs)
    trials.rerun_s.append(seconds)
    comparison = compare_caches(reference / "cache" / COMMANDS[trials.stage] / "default", cache)
    differing = (len(comparison.differing) + len(comparison.only_in_first)
                 + len(comparison.only_in_second))
    trials.differing_samples += differing
    if not (survivors or corrupt or code or not comparison.same):
        trials.survived += 1
    elif not comparison.same:
        print(f"  {trials.stage} -j {trials.jobs}, kill at {delay:.2f} s: "
              f"{comparison.describe()}")


def make_data(root: Path, samples: int, shard_size: int, seed: int) -> Path:
    from pipeline.manifest_builder import build_manifest
    from pipeline.synthetic.demo_dataset import make_demo_dataset

    classes = 6
    data = make_demo_dataset(root / "data", num_classes=classes,
                             samples_per_class=max(1, -(-samples // classes)), seed=seed,
                             video_size=(320, 180))
    build_manifest("ntu60", data, root / "reference", shard_size=shard_size)
    return root / "reference"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=240,
                        help="demo samples (rounded up to a multiple of 6) [240]")
    parser.add_argument("--shard-size", type=int, default=4, help="samples per shard [4]")
    parser.add_argument("--kills", type=int, default=20, help="kills per stage and -j [20]")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="-j values [1 2]")
    parser.add_argument("--stages", nargs="+", default=list(COMMANDS), choices=list(COMMANDS),
                        help="stages to kill [all three]")
    parser.add_argument("--grace", type=float, default=2.0,
                        help="seconds after a kill before survivors are counted [2]")
    parser.add_argument("--seed", type=int, default=0, help="data and kill points [0]")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for data and WORKDIRs [a temporary one]")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists():
        sys.exit("needs /proc (Linux) to find surviving processes")
    root = args.work or Path(tempfile.mkdtemp(prefix="bench-kill-"))
    rng = random.Random(args.seed)
    reference = make_data(root, args.samples, args.shard_size, args.seed)
    results = []
    last = max(list(COMMANDS).index(stage) for stage in args.stages)
    for stage in list(COMMANDS)[:last + 1]:
        if stage not in args.stages:            # an upstream cache the others need
            if run_to_end(stage, reference, 1)[0]:
                sys.exit(f"the {stage} run failed")
            continue
        for jobs in args.jobs:
            print(f"{stage} -j {jobs}: uninterrupted baseline", flush=True)
            cache = reference / "cache" / COMMANDS[stage] / "default"
            shutil.rmtree(cache, ignore_errors=True)
            baseline, began, ended = watched_run(stage, reference, jobs)
            workdir = root / f"kill-{stage}-j{jobs}"
            shutil.rmtree(workdir, ignore_errors=True)
            shutil.copytree(reference, workdir, ignore=lambda folder, names: (
                [COMMANDS[stage]] if Path(folder).name == "cache" else []))
            trials = Trials(stage, jobs, baseline)
            for _ in range(args.kills):
                kill_trial(trials, workdir, reference, (began, ended), rng, args.grace)
            print(" ", trials.line(), flush=True)
            results.append(trials)
    print(f"\nkill test: {args.samples} samples, shard size {args.shard_size}, data in {root}")
    for trials in results:
        print(trials.line())


if __name__ == "__main__":
    main()
