"""Which shards this process takes when launched with ``accelerate launch`` (or torchrun).

Each process takes the shards ``index % world_size == rank`` and writes only those, so
processes on many GPUs or machines (sharing the WORKDIR's file system) never write the
same file. Outside a launcher this is one process that takes every shard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable

from pipeline.stage_runner import distributed_shards


@dataclass
class ProcessGroup:
    rank: int = 0
    world_size: int = 1
    state: Any = None            # accelerate.PartialState when launched

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shards(self, num_shards: int, wanted: Iterable[int] | None) -> list[int]:
        mine = distributed_shards(num_shards, self.rank, self.world_size)
        return mine if wanted is None else [i for i in mine if i in set(wanted)]

    def wait_for_everyone(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def device(self, device: str) -> str:
        if device == "auto" and self.state is not None:
            return str(self.state.device)
        return device


def current_process_group(rank: int | None = None, world_size: int | None = None
                          ) -> ProcessGroup:
    """Explicit rank/world size (tests), else the launcher's environment, else one process."""
    if rank is not None or world_size is not None:
        world_size = world_size or 1
        rank = rank or 0
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        return ProcessGroup(rank, world_size)
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched <= 1:
        return ProcessGroup()
    import torch
    from accelerate import PartialState

    # without cpu=True accelerate ignores a CPU-only multi-process launch (torchrun)
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != launched:
        raise RuntimeError(f"launched as {launched} processes (WORLD_SIZE), but accelerate "
                           f"sees {state.num_processes}; use `accelerate launch`")
    return ProcessGroup(state.process_index, state.num_processes, state)
