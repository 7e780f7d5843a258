"""Which shards this process takes when a stage runs as several processes.

Every stage splits its shards the same way: process ``rank`` of ``world_size`` takes the
shards ``index % world_size == rank`` and writes only those, so processes on many cores,
GPUs or machines (sharing the WORKDIR's file system) never write the same file, and shard
k of a stage is made by the process that made shard k upstream. The part comes from the
environment:

* ``torchrun`` / ``accelerate launch``: ``RANK`` and ``WORLD_SIZE`` (or ``LOCAL_RANK`` and
  ``LOCAL_WORLD_SIZE``). These processes start together and can wait for each other.
* a Slurm array (``sbatch --array=0-3``): ``SLURM_ARRAY_TASK_ID`` counted from
  ``SLURM_ARRAY_TASK_MIN`` in steps of ``SLURM_ARRAY_TASK_STEP``, out of
  ``SLURM_ARRAY_TASK_COUNT``. Tasks may run at different times, so they never wait for
  each other.
* ``PIPELINE_PART=I/N`` (0 <= I < N), set by hand for any other scheduler; it replaces the
  Slurm array's part, and ``PIPELINE_PART=0/1`` makes an array task take every shard.
* the tasks of a Slurm job step (``srun -n 4``): ``SLURM_PROCID`` of
  ``SLURM_STEP_NUM_TASKS``. A batch script itself is no step (it has ``SLURM_PROCID`` 0
  and the job's ``SLURM_NTASKS``, but no step task count), so it takes every shard. The
  tasks are started together but cannot wait for each other.

Parts nest: an array task (or ``PIPELINE_PART``) run with ``srun -n N`` splits its part
among the N tasks, and each task (or process) that runs ``torchrun`` splits its part again
among the ranks. A torchrun joined across the srun tasks (one per node, ``--nnodes`` with
a rendezvous: ``WORLD_SIZE`` = tasks x ``LOCAL_WORLD_SIZE``) numbers every process
itself, so the srun part is not applied again. Outside all of these this is one process
that takes every shard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

PART_VARIABLE = "PIPELINE_PART"


def distributed_shards(num_shards: int, rank: int, world_size: int) -> list[int]:
    """The shards process ``rank`` of ``world_size`` takes: every world_size-th one."""
    return [index for index in range(num_shards) if index % world_size == rank]


@dataclass
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    #: how the part was found, e.g. "torchrun rank 1 of 2"; empty for one process
    source: str = ""
    #: processes of one torchrun/accelerate launch: they can wait for each other
    launched: int = 1
    state: Any = field(default=None, repr=False)   # accelerate.PartialState, made on demand

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def can_wait_for_everyone(self) -> bool:
        """Whether every process of the group is one launch that can meet at a barrier."""
        return self.launched == self.world_size

    def describe(self) -> str:
        return "" if self.world_size == 1 else (f"process {self.rank + 1} of "
                                                f"{self.world_size} ({self.source})")

    def shards(self, num_shards: int, wanted: Iterable[int] | None) -> list[int]:
        """This process's part of ``wanted`` (default: every shard)."""
        mine = distributed_shards(num_shards, self.rank, self.world_size)
        if wanted is None:
            return mine
        wanted = set(wanted)
        outside = sorted(i for i in wanted if not 0 <= i < num_shards)
        if outside:
            raise IndexError(f"shard(s) {outside} out of range 0..{num_shards - 1}")
        return [i for i in mine if i in wanted]

    def _accelerate_state(self):
        if self.state is None:
            import torch
            from accelerate import PartialState

            # without cpu=True accelerate ignores a CPU-only multi-process launch (torchrun)
            state = PartialState(cpu=not torch.cuda.is_available())
            if state.num_processes != self.launched:
                raise RuntimeError(f"launched as {self.launched} processes (WORLD_SIZE), but "
                                   f"accelerate sees {state.num_processes}; use `accelerate "
                                   "launch` or torchrun")
            self.state = state
        return self.state

    def wait_for_everyone(self) -> None:
        if self.launched > 1:
            self._accelerate_state().wait_for_everyone()

    def device(self, device: str) -> str:
        if device == "auto" and self.launched > 1:
            return str(self._accelerate_state().device)
        return device


def _integer(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"{name}={env[name]!r} is not a whole number") from None


def _check_part(rank: int, count: int, what: str) -> tuple[int, int]:
    if count < 1 or not 0 <= rank < count:
        raise ValueError(f"{what}: part {rank} of {count} is not a part "
                         f"(it must be in 0..{count - 1})")
    return rank, count


def _outer_part(env: Mapping[str, str]) -> tuple[int, int, str] | None:
    """(part, parts, where from) from PIPELINE_PART or a Slurm array; None without."""
    text = env.get(PART_VARIABLE)
    if text is not None:
        part, slash, count = text.partition("/")
        if not slash or not part.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"{PART_VARIABLE}={text!r}: expected I/N, e.g. 0/4 (0 <= I < N)")
        return (*_check_part(int(part), int(count), f"{PART_VARIABLE}={text}"),
                f"{PART_VARIABLE}={text}")
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    missing = [name for name in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN")
               if name not in env]
    if missing:
        raise ValueError(f"SLURM_ARRAY_TASK_ID is set but not {', '.join(missing)}; set "
                         f"{PART_VARIABLE}=I/N to say which part this process takes")
    task = _integer(env, "SLURM_ARRAY_TASK_ID")
    first = _integer(env, "SLURM_ARRAY_TASK_MIN")
    step = _integer(env, "SLURM_ARRAY_TASK_STEP") if "SLURM_ARRAY_TASK_STEP" in env else 1
    count = _integer(env, "SLURM_ARRAY_TASK_COUNT")
    offset = task - first
    what = (f"Slurm array task {task} (array {first}.. step {step}, {count} task(s)); the "
            f"task ids must be an evenly stepped range such as --array=0-{count - 1}, or set "
            f"{PART_VARIABLE}=I/N")
    if step < 1 or offset % step:
        raise ValueError(f"{what}: its id is not on the array's steps")
    part, count = _check_part(offset // step, count, what)
    return part, count, f"Slurm array task {task}"


def _srun_part(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(task, tasks) of a Slurm job step (srun); None outside one."""
    if "SLURM_PROCID" not in env or "SLURM_STEP_NUM_TASKS" not in env:
        return None
    task, tasks = _integer(env, "SLURM_PROCID"), _integer(env, "SLURM_STEP_NUM_TASKS")
    return _check_part(task, tasks, f"srun task SLURM_PROCID={task} of "
                                    f"SLURM_STEP_NUM_TASKS={tasks}")


def _without_torchrun_spanning(srun: tuple[int, int] | None, launch: tuple[int, int] | None,
                               env: Mapping[str, str]) -> tuple[int, int] | None:
    """The srun part, or None where a torchrun joined across the srun tasks numbers the
    processes itself; an srun step and a torchrun that fit neither way are refused."""
    if srun is None or srun[1] == 1 or launch is None or launch[1] == 1:
        return srun
    local = _integer(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else None
    if local is not None and launch[1] == local:
        return srun          # a torchrun of its own in every srun task: it splits the task's
    if local is not None and launch[1] == srun[1] * local:
        return None          # one torchrun across the tasks: its ranks cover them all
    raise ValueError(
        f"srun started {srun[1]} tasks and torchrun/accelerate reports WORLD_SIZE="
        f"{launch[1]} (LOCAL_WORLD_SIZE={local}): neither a torchrun per task nor one "
        f"across all tasks, so the part of each process is unclear. Launch with one of "
        f"them, or set {PART_VARIABLE}=I/N in each srun task")


def _launch_part(env: Mapping[str, str]) -> tuple[int, int] | None:
    """(rank, world size) of a torchrun / accelerate launch; None outside one."""
    for rank_name, size_name in (("RANK", "WORLD_SIZE"), ("LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        if size_name in env and rank_name in env:
            size, rank = _integer(env, size_name), _integer(env, rank_name)
            return _check_part(rank, size, f"{rank_name}={rank}, {size_name}={size}")
    present = {name: _integer(env, name) for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                                                      "LOCAL_WORLD_SIZE") if name in env}
    if any(value > (1 if name.endswith("SIZE") else 0) for name, value in present.items()):
        raise ValueError("a launcher's RANK/WORLD_SIZE (or LOCAL_RANK/LOCAL_WORLD_SIZE) pair "
                         "is incomplete: launch with torchrun or `accelerate launch`, which "
                         "set both")
    return None


def current_process_group(rank: int | None = None, world_size: int | None = None,
                          env: Mapping[str, str] | None = None) -> ProcessGroup:
    """Explicit rank/world size (tests), else the environment's (see the module
    docstring), else one process."""
    if rank is not None or world_size is not None:
        world_size = world_size or 1
        rank = rank or 0
        _check_part(rank, world_size, "rank/world_size")
        return ProcessGroup(rank, world_size, f"rank {rank} of {world_size}")
    env = os.environ if env is None else env
    outer = _outer_part(env)
    launch = _launch_part(env)
    srun = _without_torchrun_spanning(_srun_part(env), launch, env)
    launch_rank, launched = launch or (0, 1)
    task, tasks = srun or (0, 1)
    part, parts, source = outer or (0, 1, "")
    rank = (part * tasks + task) * launched + launch_rank
    world_size = parts * tasks * launched
    sources = [source, f"srun task {task} of {tasks}" if tasks > 1 else "",
               f"torchrun rank {launch_rank} of {launched}" if launched > 1 else ""]
    return ProcessGroup(rank, world_size, ", ".join(filter(None, sources)), launched)
