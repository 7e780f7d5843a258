"""``run.threads``: main-process threads from cores, processes, workers and other load."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from train.threads import (ThreadPlan, apply_threads, available_cores, busy_cores,
                           local_processes, plan_threads)


@pytest.mark.parametrize("cores, processes, workers, busy, main", [
    (2, 1, 0, 0, 2),      # a quiet 2-core machine, no workers: both cores
    (2, 1, 0, 1, 1),      # another program keeps one core busy
    (2, 1, 2, 0, 1),      # two workers take the cores; never below one thread
    (16, 2, 3, 0, 5),     # 8 cores per process, 3 of them for its workers
    (16, 2, 3, 6, 2),     # 10 free cores: 5 per process, 3 of them for its workers
    (4, 8, 0, 0, 1),      # more processes than cores
])
def test_auto_splits_the_free_cores(cores, processes, workers, busy, main):
    plan = plan_threads("auto", workers, cores=cores, processes=processes, busy=busy,
                        total=cores, env={})
    assert plan == ThreadPlan(main, workers, cores, processes, busy, "auto")
    assert f"{main} thread(s)" in plan.describe()


def test_a_quota_or_affinity_is_the_bound_not_the_machine_s_load():
    """Regression: in a container limited to 4 of 64 cores, the machine-wide running tasks
    (other containers' work) cut `auto` to one thread."""
    plan = plan_threads("auto", 1, cores=4, processes=1, busy=40, total=64, env={})
    assert plan == ThreadPlan(3, 1, 4, 1, 0, "auto", limited=True)
    assert "a CPU quota or affinity limits this process" in plan.describe()
    unlimited = plan_threads("auto", 1, cores=64, processes=1, busy=40, total=64, env={})
    assert (unlimited.main, unlimited.busy, unlimited.limited) == (23, 40, False)


def test_explicit_settings_win():
    assert plan_threads(3, 2, cores=2, processes=1, busy=5, env={}).main == 3
    plan = plan_threads("auto", 2, cores=8, processes=1, busy=0, env={"OMP_NUM_THREADS": "1"})
    assert (plan.main, plan.source) == (1, "OMP_NUM_THREADS")
    # an explicit run.threads beats OMP_NUM_THREADS
    assert plan_threads(4, 0, cores=8, processes=1, env={"OMP_NUM_THREADS": "1"}).main == 4
    # an unusable OMP_NUM_THREADS is ignored
    plan = plan_threads("auto", 0, cores=4, processes=1, busy=0, env={"OMP_NUM_THREADS": "x"})
    assert (plan.main, plan.source) == (4, "auto")


def test_cores_are_joblib_s_count(monkeypatch):
    """Affinity and cgroup v1/v2 quotas come from joblib.cpu_count, which also honours
    LOKY_MAX_CPU_COUNT."""
    import os
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert available_cores() == 1
    assert plan_threads("auto", 0, processes=1, busy=0, total=64, env={}).cores == 1


def _task(root, tid, state, name="python"):
    (root / str(tid)).mkdir(parents=True)
    (root / str(tid) / "stat").write_text(f"{tid} ({name}) {state} 1 2 3 4\n")


def test_busy_cores_reads_the_running_tasks_of_other_processes(tmp_path):
    loadavg = tmp_path / "loadavg"
    tasks = tmp_path / "task"
    _task(tasks, 1, "R")                                   # the thread that reads
    _task(tasks, 2, "S", name="odd ) R name")              # a ")" in the name: sleeping
    loadavg.write_text("7.10 6.20 5.00 4/812 12345\n")     # 4 running, this process included
    assert busy_cores(samples=3, interval_s=0.0, loadavg=loadavg, tasks=tasks) == 3
    # regression: this process's own spinning (OpenMP) threads counted as other work
    _task(tasks, 3, "R")
    _task(tasks, 4, "R")
    assert busy_cores(samples=1, loadavg=loadavg, tasks=tasks) == 1
    loadavg.write_text("0.00 0.00 0.00 1/812 12345\n")
    assert busy_cores(samples=1, loadavg=loadavg, tasks=tasks) == 0
    assert busy_cores(loadavg=tmp_path / "missing") == 0
    assert busy_cores(samples=1, loadavg=loadavg, tasks=tmp_path / "none") == 0


def test_local_processes_from_the_launcher():
    assert local_processes({}) == 1
    assert local_processes({"LOCAL_WORLD_SIZE": "4"}) == 4
    assert local_processes({"LOCAL_WORLD_SIZE": "?"}) == 1


def test_apply_threads_sets_torch():
    before = torch.get_num_threads()
    try:
        plan = apply_threads(1, 0)
        assert plan.main == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


class _Threads(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        return torch.get_num_threads()


def test_dataloader_workers_run_with_one_thread():
    """The plan gives each worker one core and relies on torch's worker loop setting one
    thread, whatever the main process uses."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        loader = DataLoader(_Threads(), batch_size=2, num_workers=1)
        assert next(iter(loader)).tolist() == [1, 1]
    finally:
        torch.set_num_threads(before)
