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
    plan = plan_threads("auto", workers, cores=cores, processes=processes, busy=busy, env={})
    assert plan == ThreadPlan(main, workers, cores, processes, busy, "auto")
    assert f"{main} thread(s)" in plan.describe()


def test_explicit_settings_win():
    assert plan_threads(3, 2, cores=2, processes=1, busy=5, env={}).main == 3
    plan = plan_threads("auto", 2, cores=8, processes=1, busy=0, env={"OMP_NUM_THREADS": "1"})
    assert (plan.main, plan.source) == (1, "OMP_NUM_THREADS")
    # an explicit run.threads beats OMP_NUM_THREADS
    assert plan_threads(4, 0, cores=8, processes=1, env={"OMP_NUM_THREADS": "1"}).main == 4
    # an unusable OMP_NUM_THREADS is ignored
    plan = plan_threads("auto", 0, cores=4, processes=1, busy=0, env={"OMP_NUM_THREADS": "x"})
    assert (plan.main, plan.source) == (4, "auto")


def test_cores_follow_affinity_and_the_cgroup_quota(tmp_path):
    missing = tmp_path / "missing"
    affinity = available_cores(missing)
    assert affinity >= 1
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")          # 1.5 CPUs -> 2 cores at most
    assert available_cores(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert available_cores(quota) == affinity
    quota.write_text("garbage\n")
    assert available_cores(quota) == affinity


def test_busy_cores_reads_the_running_tasks(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("7.10 6.20 5.00 4/812 12345\n")   # 4 running, this process included
    assert busy_cores(samples=3, interval_s=0.0, loadavg=loadavg) == 3
    loadavg.write_text("0.00 0.00 0.00 1/812 12345\n")
    assert busy_cores(samples=1, loadavg=loadavg) == 0
    assert busy_cores(loadavg=tmp_path / "missing") == 0


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
