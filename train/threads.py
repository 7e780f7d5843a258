"""Thread counts that hold up on a shared machine (``run.threads``).

PyTorch starts one intra-op thread per core by default. Its OpenMP threads wait for each
other at the end of every operation, so when another program holds some of the cores, or
DataLoader workers each start their own full set of threads, most of a step is spent
waiting for a thread that is not running: measured here, training with default threads
beside other work ran 14-24x slower than with one thread per process.

``run.threads: auto`` (the default) therefore:

- honours ``OMP_NUM_THREADS`` when it is set (the user chose);
- otherwise counts the cores this process may use (its CPU affinity, and the cgroup CPU
  quota when one is set), divides them among the training processes of this machine
  (``LOCAL_WORLD_SIZE``, set by ``torchrun``/``accelerate launch``), gives every
  DataLoader worker one of them and the main process the rest, and takes away cores that
  other programs keep busy when the run starts (runnable tasks in ``/proc/loadavg``);
- never goes below one thread.

DataLoader workers run with one intra-op thread each: torch's worker loop sets that
itself (``torch.utils.data._utils.worker``), so it needs no ``worker_init_fn`` here.
``run.threads: N`` sets the main process's threads to N.
"""

from __future__ import annotations

import logging
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch

log = logging.getLogger(__name__)

AUTO = "auto"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
LOADAVG = Path("/proc/loadavg")


@dataclass(frozen=True)
class ThreadPlan:
    main: int            # intra-op threads of this (training) process
    workers: int         # DataLoader worker processes, one thread each
    cores: int           # cores this process may use
    processes: int       # training processes on this machine
    busy: int            # cores other programs kept busy when planned
    source: str          # "run.threads", "OMP_NUM_THREADS" or "auto"

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.main} thread(s) in the main process, {self.workers} DataLoader "
                f"worker(s) x 1 ({self.source}: {self.cores} cores, {self.processes} "
                f"process(es) on this machine, {self.busy} busy with other work)")


def available_cores(cgroup_cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may run on: its affinity, capped by a cgroup v2 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cgroup_cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_cores(samples: int = 5, interval_s: float = 0.02, loadavg: Path = LOADAVG) -> int:
    """Tasks other than this one that are running right now (median of a few readings of
    the running-task count in ``/proc/loadavg``); 0 where it cannot be read."""
    counts = []
    for index in range(samples):
        try:
            running = int(loadavg.read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(running - 1)   # this process is running while it reads
        if index + 1 < samples:
            time.sleep(interval_s)
    return max(0, int(statistics.median(counts)))


def local_processes(env: Mapping[str, str] = os.environ) -> int:
    try:
        return max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def plan_threads(setting: int | str, workers: int, *, cores: int | None = None,
                 processes: int | None = None, busy: int | None = None,
                 env: Mapping[str, str] = os.environ) -> ThreadPlan:
    """How many threads the main process should use (see the module docstring)."""
    cores = available_cores() if cores is None else cores
    processes = local_processes(env) if processes is None else processes
    if setting != AUTO:
        return ThreadPlan(int(setting), workers, cores, processes, 0, "run.threads")
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return ThreadPlan(int(omp), workers, cores, processes, 0, "OMP_NUM_THREADS")
    busy = busy_cores() if busy is None else busy
    share = cores // processes
    free = (cores - busy) // processes
    main = max(1, min(share, free) - workers)
    return ThreadPlan(main, workers, cores, processes, busy, AUTO)


def apply_threads(setting: int | str, workers: int) -> ThreadPlan:
    """Plan the main process's threads and set them in torch."""
    plan = plan_threads(setting, workers)
    torch.set_num_threads(plan.main)
    log.info("threads: %s", plan.describe())
    return plan
