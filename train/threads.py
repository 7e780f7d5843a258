"""Thread counts that hold up on a shared machine (``run.threads``).

PyTorch starts one intra-op thread per core by default. Its OpenMP threads wait for each
other at the end of every operation, so when another program holds some of the cores, or
DataLoader workers each start their own full set of threads, most of a step is spent
waiting for a thread that is not running: measured here, training with default threads
beside other work ran 14-24x slower than with one thread per process.

``run.threads: auto`` (the default) therefore:

- honours ``OMP_NUM_THREADS`` when it is set (the user chose);
- otherwise counts the cores this process may use (``joblib.cpu_count()``: its CPU
  affinity, the cgroup v1/v2 CPU quota of a container, ``LOKY_MAX_CPU_COUNT``), divides
  them among the training processes of this machine (``LOCAL_WORLD_SIZE``, set by
  ``torchrun``/``accelerate launch``), gives every DataLoader worker one of them and the
  main process the rest;
- on a machine whose cores are all ours to use, takes away the cores other programs keep
  busy when the run starts (running tasks in ``/proc/loadavg``, less this process's own
  running threads). Under a quota or a restricted affinity it does not: the machine-wide
  count says nothing about the cores we were given, and the limit already bounds us;
- never goes below one thread.

DataLoader workers run with one intra-op thread each: torch's worker loop sets that
itself (``torch.utils.data._utils.worker``), so it needs no ``worker_init_fn`` here.
``run.threads: N`` sets the main process's threads to N.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import joblib
import torch

log = logging.getLogger(__name__)

AUTO = "auto"
LOADAVG = Path("/proc/loadavg")
OWN_TASKS = Path("/proc/self/task")


@dataclass(frozen=True)
class ThreadPlan:
    main: int            # intra-op threads of this (training) process
    workers: int         # DataLoader worker processes, one thread each
    cores: int           # cores this process may use
    processes: int       # training processes on this machine
    busy: int            # cores other programs kept busy when planned (0 when limited)
    source: str          # "run.threads", "OMP_NUM_THREADS" or "auto"
    limited: bool = False  # a CPU quota or affinity limits this process to `cores`

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        others = ("other work not counted: a CPU quota or affinity limits this process"
                  if self.limited else f"{self.busy} busy with other work")
        return (f"{self.main} thread(s) in the main process, {self.workers} DataLoader "
                f"worker(s) x 1 ({self.source}: {self.cores} cores, {self.processes} "
                f"process(es) on this machine, {others})")


def available_cores() -> int:
    """Cores this process may use: its affinity, capped by a cgroup v1/v2 CPU quota and by
    ``LOKY_MAX_CPU_COUNT`` (``joblib.cpu_count``)."""
    return max(1, int(joblib.cpu_count()))


def machine_cores() -> int:
    return os.cpu_count() or 1


def own_running_threads(tasks: Path = OWN_TASKS) -> int:
    """This process's threads that are running now (at least the one asking)."""
    running = 0
    try:
        for task in tasks.iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:       # the thread ended meanwhile
                continue
            # the state follows the command name, which is in parentheses and may hold any
            # character: read it after the last ")"
            if stat[stat.rindex(")") + 2:].startswith("R"):
                running += 1
    except (OSError, ValueError):
        return 1
    return max(1, running)


def busy_cores(samples: int = 5, interval_s: float = 0.02, loadavg: Path = LOADAVG,
               tasks: Path = OWN_TASKS) -> int:
    """Tasks of other processes that are running right now (median of a few readings of
    the running-task count in ``/proc/loadavg`` less this process's running threads, e.g.
    its OpenMP threads still spinning after an operation); 0 where it cannot be read."""
    counts = []
    for index in range(samples):
        try:
            running = int(loadavg.read_text().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return 0
        counts.append(running - own_running_threads(tasks))
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
                 total: int | None = None,
                 env: Mapping[str, str] = os.environ) -> ThreadPlan:
    """How many threads the main process should use (see the module docstring).
    ``total``: the machine's cores (``cores`` below it means a quota or affinity)."""
    cores = available_cores() if cores is None else cores
    processes = local_processes(env) if processes is None else processes
    limited = cores < (machine_cores() if total is None else total)
    if setting != AUTO:
        return ThreadPlan(int(setting), workers, cores, processes, 0, "run.threads", limited)
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return ThreadPlan(int(omp), workers, cores, processes, 0, "OMP_NUM_THREADS", limited)
    if limited:
        busy = 0
    elif busy is None:
        busy = busy_cores()
    share = cores // processes
    free = (cores - busy) // processes
    main = max(1, min(share, free) - workers)
    return ThreadPlan(main, workers, cores, processes, busy, AUTO, limited)


def apply_threads(setting: int | str, workers: int) -> ThreadPlan:
    """Plan the main process's threads and set them in torch."""
    plan = plan_threads(setting, workers)
    torch.set_num_threads(plan.main)
    log.info("threads: %s", plan.describe())
    return plan
