"""Every stage takes its part of the shards under torchrun/accelerate and Slurm arrays."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.compare_caches import compare_caches
from data_manifest.schemas import FRAMES, SKELETONS, STITCH
from data_manifest.workdir import Workdir
from pipeline.stages.distributed import current_process_group
from slow_stage import make_workdir, run

REPO = Path(__file__).resolve().parents[1]
CPU_STAGES = (SKELETONS, FRAMES, STITCH)


def array_task(task: int, count: int, first: int = 0, step: int | None = None) -> dict:
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
           "SLURM_ARRAY_TASK_MIN": str(first), "SLURM_ARRAY_JOB_ID": "77"}
    if step is not None:
        env["SLURM_ARRAY_TASK_STEP"] = str(step)
    return env


def torchrun_rank(rank: int, world_size: int) -> dict:
    return {"RANK": str(rank), "WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world_size)}


def test_the_part_comes_from_the_environment():
    def part(env):
        group = current_process_group(env=env)
        return group.rank, group.world_size

    assert part({}) == (0, 1)
    assert part(torchrun_rank(1, 3)) == (1, 3)
    assert part({"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}) == (1, 2)
    assert part({"RANK": "0", "WORLD_SIZE": "1"}) == (0, 1)
    assert part(array_task(2, 4)) == (2, 4)
    assert part(array_task(5, 4, first=3)) == (2, 4)          # --array=3-6
    assert part(array_task(7, 3, first=1, step=3)) == (2, 3)  # --array=1-7:3
    assert part({"PIPELINE_PART": "3/5"}) == (3, 5)
    assert part({**array_task(1, 4), "PIPELINE_PART": "0/1"}) == (0, 1)   # opt out
    # an array task that runs torchrun: the array's part split again among the ranks
    assert part({**array_task(1, 2), **torchrun_rank(1, 3)}) == (4, 6)
    group = current_process_group(env={**array_task(1, 2), **torchrun_rank(1, 3)})
    assert "Slurm array task 1" in group.describe() and "torchrun rank 1 of 3" in group.describe()
    assert not group.can_wait_for_everyone
    assert current_process_group(env=torchrun_rank(0, 2)).can_wait_for_everyone


def srun_task(task: int, tasks: int, job_tasks: int | None = None) -> dict:
    return {"SLURM_PROCID": str(task), "SLURM_STEP_NUM_TASKS": str(tasks),
            "SLURM_NTASKS": str(job_tasks or tasks), "SLURM_JOB_ID": "78"}


def test_the_tasks_of_an_srun_step_take_their_parts():
    def part(env):
        group = current_process_group(env=env)
        return group.rank, group.world_size, group.describe(), group.can_wait_for_everyone

    assert part(srun_task(2, 4)) == (2, 4, "process 3 of 4 (srun task 2 of 4)", False)
    # a batch script (sbatch --ntasks=4) is task 0 of the job but no step: every shard
    assert part({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "78"})[:2] == (0, 1)
    # an array task running srun -n 2: the array's part split among the step's tasks
    assert part({**array_task(1, 3), **srun_task(1, 2)})[:2] == (3, 6)
    assert part({"PIPELINE_PART": "1/2", **srun_task(0, 2)})[:2] == (2, 4)
    # a torchrun of its own in every srun task splits the task's part
    assert part({**srun_task(1, 2), **torchrun_rank(1, 4)})[:2] == (5, 8)
    # one torchrun across the srun tasks (one per node) numbers every process itself
    spanning = {**srun_task(1, 2), "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1",
                "LOCAL_WORLD_SIZE": "4"}
    assert part(spanning) == (5, 8, "process 6 of 8 (torchrun rank 5 of 8)", True)


def test_every_srun_task_builds_its_part_and_together_one_process_s_cache(tmp_path):
    make_workdir(tmp_path / "one", n=14, shard_size=2)
    make_workdir(tmp_path / "many", n=14, shard_size=2)
    run(tmp_path / "one")
    for task in range(3):
        group = current_process_group(env=srun_task(task, 3))
        assert run(tmp_path / "many", group=group).shards_written == len(range(task, 7, 3))
    comparison = compare_caches(tmp_path / "one" / "cache" / "toy" / "default",
                                tmp_path / "many" / "cache" / "toy" / "default")
    assert comparison.same, comparison.describe()


@pytest.mark.parametrize("env, message", [
    (array_task(4, 4), "part 4 of 4 is not a part"),
    (array_task(4, 3, first=1, step=2), "not on the array's steps"),
    ({"SLURM_ARRAY_TASK_ID": "3"}, "not SLURM_ARRAY_TASK_COUNT, SLURM_ARRAY_TASK_MIN"),
    ({"PIPELINE_PART": "2"}, "expected I/N"),
    ({"PIPELINE_PART": "2/2"}, "part 2 of 2 is not a part"),
    ({"RANK": "1"}, "incomplete"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "not a whole number"),
    (srun_task(3, 3), "srun task SLURM_PROCID=3 of SLURM_STEP_NUM_TASKS=3"),
    ({**srun_task(0, 2), "RANK": "0", "WORLD_SIZE": "3", "LOCAL_RANK": "0",
      "LOCAL_WORLD_SIZE": "2"}, "srun started 2 tasks and torchrun/accelerate reports "
                                "WORLD_SIZE=3"),
])
def test_a_part_that_makes_no_sense_is_refused(env, message):
    with pytest.raises(ValueError, match=message):
        current_process_group(env=env)


def test_rebuild_is_refused_to_processes_that_cannot_wait_for_each_other(tmp_path,
                                                                         monkeypatch):
    make_workdir(tmp_path)
    run(tmp_path)
    for name, value in array_task(0, 2).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match="delete the shards the others have written"):
        run(tmp_path, rebuild=True)
    assert len(list((tmp_path / "cache" / "toy" / "default").glob("shard-*.h5"))) == 4
    result = run(tmp_path, overwrite=True, params={"p": 2})      # overwrite is safe
    assert (result.shards_total, result.shards_written) == (2, 2)
    assert "process 1 of 2 (Slurm array task 0)" in result.summary()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """Demo data with a bad skeleton in each part and a missing video, and two WORKDIRs
    of it: one for a single process, one for two processes."""
    from pipeline.manifest_builder import build_manifest
    from pipeline.synthetic.demo_dataset import make_demo_dataset

    root = tmp_path_factory.mktemp("parts")
    data = make_demo_dataset(root / "data", num_classes=2, samples_per_class=4,
                             video_size=(160, 90), frames=(20, 30))
    for path in [root / "one", root / "two"]:
        build_manifest("ntu60", data, path, shard_size=2)
    samples = Workdir(root / "one").samples            # shard k = samples 2k, 2k + 1
    Path(samples[0].skeleton).write_text("not a skeleton file\n")      # shard 0: part 0
    Path(samples[3].skeleton).write_text("3\n")                          # shard 1: part 1
    Path(samples[6].video).unlink()                                      # shard 3: part 1
    (code, _, err), = finish(pipeline_command("run", str(root / "one"), "--to", "stitch",
                                              "--skip-failures", "--no-progress"))
    assert code == 0, err
    return root, samples


def pipeline_command(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args],
                            env={**os.environ, **(env or {})}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(*processes: subprocess.Popen) -> list[tuple[int, str, str]]:
    outputs = [process.communicate(timeout=600) for process in processes]
    return [(process.returncode, out, err) for process, (out, err) in zip(processes, outputs)]


def assert_same_caches(first: Path, second: Path) -> None:
    for stage in CPU_STAGES:
        comparison = compare_caches(first / "cache" / stage / "default",
                                    second / "cache" / stage / "default")
        assert comparison.same, f"{stage}: {comparison.describe()}"
    assert len(Workdir(second).reader(STITCH)) == 7


def test_two_array_tasks_build_what_one_process_builds(demo):
    """`pipeline run` as a two-task Slurm array (one task with -j 2) sharing one WORKDIR."""
    root, samples = demo
    tasks = [pipeline_command("run", str(root / "two"), "--to", "stitch", "--skip-failures",
                              "--no-progress", *jobs, env=array_task(task, 2))
             for task, jobs in ((0, ()), (1, ("-j", "2")))]
    (code0, out0, err0), (code1, out1, err1) = finish(*tasks)
    assert (code0, code1) == (0, 0), err0 + err1
    assert "skeletons [process 1 of 2 (Slurm array task 0)]: 2 shard(s) written" in out0
    assert "skeletons [process 2 of 2 (Slurm array task 1)]: 2 shard(s) written" in out1
    assert_same_caches(root / "one", root / "two")
    for stage in CPU_STAGES:
        ledgers = [sorted((work / "cache" / stage / "default" / "failures.jsonl")
                          .read_text().splitlines()) for work in (root / "one", root / "two")]
        assert ledgers[0] == ledgers[1] and ledgers[0]


def test_each_process_reports_its_failures_and_status_shows_the_whole(demo, tmp_path):
    """Two torchrun ranks (by their environment): each exits on its own shards' failures;
    the ledger and `pipeline status` show the whole cache."""
    root, samples = demo
    work = tmp_path / "work"
    shutil.copytree(root / "two", work, ignore=shutil.ignore_patterns("cache"))
    ranks = [pipeline_command("extract-skeletons", str(work), "--no-progress",
                              env=torchrun_rank(rank, 2))
             for rank in (0, 1)]
    (code0, out0, err0), (code1, out1, err1) = finish(*ranks)
    assert (code0, code1) == (1, 1)
    assert f"failed {samples[0].id}" in err0 and samples[3].id not in err0
    assert f"failed {samples[3].id}" in err1 and samples[0].id not in err1
    assert "1 failure(s) in these shards" in out0 and "1 failure(s) in these shards" in out1
    ledger = (work / "cache" / SKELETONS / "default" / "failures.jsonl").read_text()
    assert samples[0].id in ledger and samples[3].id in ledger
    status = finish(pipeline_command("status", str(work)))[0]
    assert "skeletons/default: 4/4 shards (complete), 6 samples, 2 failed" in status[1]
    frames = [pipeline_command("extract-frames", str(work), "--no-progress",
                              env=torchrun_rank(rank, 2))
              for rank in (0, 1)]
    (code0, out0, err0), (code1, out1, err1) = finish(*frames)
    assert (code0, code1) == (0, 1)                     # the missing video is in part 1
    assert samples[6].id in err1 and "0 failure(s)" in out0


@pytest.mark.slow
def test_torchrun_ranks_rebuild_once_and_build_what_one_process_builds(demo, tmp_path):
    """A real torchrun launch with --rebuild: rank 0 deletes the cache while rank 1 waits,
    then both write their shards."""
    root, _ = demo
    work = tmp_path / "work"
    shutil.copytree(root / "one", work)
    stale = work / "cache" / SKELETONS / "default" / "left-by-hand.txt"
    stale.write_text("deleted by the rebuild")
    launch = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "-m", "pipeline", "extract-skeletons", str(work), "--rebuild", "--skip-failures",
         "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert launch.returncode == 0, launch.stderr[-3000:]
    assert launch.stdout.count("2 shard(s) written, 0 already done, of 2") == 2
    assert not stale.exists()
    comparison = compare_caches(root / "one" / "cache" / SKELETONS / "default",
                                work / "cache" / SKELETONS / "default")
    assert comparison.same, comparison.describe()
