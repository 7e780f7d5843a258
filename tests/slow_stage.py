"""A toy stage slow enough to be caught mid-run, for tests that start it in a subprocess.

``python tests/slow_stage.py WORKDIR [--jobs N] [--delay S] [--pids DIR] [--rebuild]``
squares every sample's number, sleeping ``delay`` seconds per sample; each sample writes
the pid of the process that handled it to ``DIR`` (an empty file named ``<pid>``, made
when that process began its first sample), so a test can tell which processes did the
work and when they started.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_manifest.manifest import write_manifest  # noqa: E402
from data_manifest.sample import Sample  # noqa: E402
from data_manifest.workdir import Workdir, WorkdirInfo  # noqa: E402
from pipeline.stage_runner import PerSampleTask, run_stage  # noqa: E402

STAGE = "toy"
SPEC_PARAMS = {"p": 1}


def make_workdir(path: Path, n: int = 10, shard_size: int = 3) -> Workdir:
    samples = [Sample(id=f"x{i:02d}", dataset="csv", label=i % 3, split="train")
               for i in range(n)]
    digest = write_manifest(samples, path / "manifest.jsonl")
    Workdir.write_info(path, WorkdirInfo("csv", str(path), digest, n, shard_size))
    return Workdir(path)


class SlowSquare(PerSampleTask):
    def __init__(self, delay: float, pids: str | None):
        self.delay, self.pids = delay, pids

    def process(self, sample):
        if self.pids and not (Path(self.pids) / str(os.getpid())).exists():
            (Path(self.pids) / str(os.getpid())).touch()
        time.sleep(self.delay)
        value = int(sample.id[1:])
        return {"v": np.array([value, value * value])}


def run(workdir: Path, *, jobs: int = 1, delay: float = 0.0, pids: str | None = None,
        rebuild: bool = False, overwrite: bool = False, params: dict | None = None,
        group=None):
    workdir = Workdir(workdir)
    spec = workdir.spec(STAGE, params or SPEC_PARAMS)
    return run_stage(workdir, spec, SlowSquare(delay, pids), cache_name="default", jobs=jobs,
                     progress=False, rebuild=rebuild, overwrite=overwrite, group=group)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--pids")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    result = run(args.workdir, jobs=args.jobs, delay=args.delay, pids=args.pids,
                 rebuild=args.rebuild)
    print(result.summary(), flush=True)


if __name__ == "__main__":
    main()
