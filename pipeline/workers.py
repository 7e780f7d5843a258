"""Worker processes that never outlive the process that started them.

A stage run with ``-j N`` hands its shards to N worker processes. If the parent dies
(``kill -9``, the OOM killer, a Slurm time limit), workers that went on would keep
publishing shards while the user re-runs the stage. So every worker stops as soon as its
parent is gone: on Linux the kernel kills it (``PR_SET_PDEATHSIG``), elsewhere a thread
in the worker checks its parent twice a second. Workers are started with ``spawn`` (no
fork of a parent that may hold threads and open HDF5 files) and ignore Ctrl-C, which the
parent handles by killing them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

_PR_SET_PDEATHSIG = 1
PARENT_POLL_S = 0.5


def _kernel_kills_orphan() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def exit_when_parent_dies(parent_pid: int, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """Start a daemon thread that ends this process once ``parent_pid`` is no longer its
    parent (an orphan is adopted by another process)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)
    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


class WorkerDiedError(RuntimeError):
    """A worker process ended without finishing its call."""


def _init_worker(parent_pid: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _kernel_kills_orphan():
        if os.getppid() != parent_pid:    # the parent died before the request took effect
            os._exit(1)
    else:
        exit_when_parent_dies(parent_pid)


def _kill(pool: ProcessPoolExecutor) -> None:
    # the executor has no public way to stop running calls before Python 3.14
    for process in list(getattr(pool, "_processes", {}).values()):
        process.kill()


def run_unordered(function: Callable[..., Any], calls: Iterable[tuple], jobs: int
                  ) -> Iterator[Any]:
    """``function(*args)`` for every ``args`` in ``calls`` on ``jobs`` worker processes,
    yielding results as they finish. An exception in a call (or the caller stopping early)
    kills the workers, so no call goes on after the run has stopped; ``function`` and its
    arguments must be picklable. A worker killed from outside (e.g. by the out-of-memory
    killer) stops the run with :class:`WorkerDiedError`."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker,
                               initargs=(os.getpid(),))
    pending: set[Future] = set()
    try:
        pending = {pool.submit(function, *args) for args in calls}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield future.result()
    except BrokenProcessPool as error:
        _kill(pool)
        raise WorkerDiedError(
            "a worker process died without finishing its call (killed from outside, e.g. "
            "by the out-of-memory killer?); finished work is kept: run again, with fewer "
            "jobs if memory is short") from error
    except BaseException:
        _kill(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
