"""Worker processes of ``-j N`` stop with their parent, even after ``kill -9``."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slow_stage import make_workdir

SLOW_STAGE = Path(__file__).with_name("slow_stage.py")
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads process states from /proc")


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait for a PID 1 that never reaps)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def published(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("shard-*.h5")}


def test_workers_die_with_a_killed_parent_and_publish_nothing_after(tmp_path):
    make_workdir(tmp_path / "work", n=24, shard_size=2)
    pids = tmp_path / "pids"
    pids.mkdir()
    parent = subprocess.Popen([sys.executable, str(SLOW_STAGE), str(tmp_path / "work"),
                               "--jobs", "2", "--delay", "0.25", "--pids", str(pids)],
                              stderr=subprocess.PIPE, text=True)
    cache = tmp_path / "work" / "cache" / "toy" / "default"
    try:
        started = wait_until(lambda: len(list(pids.iterdir())) >= 2 and published(cache), 60)
        assert started, parent.stderr.read() if parent.poll() is not None else "no progress"
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    workers = [int(p.name) for p in pids.iterdir()]
    assert parent.pid not in workers and len(workers) == 2
    assert wait_until(lambda: not any(running(pid) for pid in workers), 3), \
        "worker processes outlived their killed parent"
    before = published(cache)
    assert len(before) < 12                       # killed mid-run
    time.sleep(1.5)                               # three shards' time for a live worker
    assert published(cache) == before


def test_the_parent_watch_ends_an_orphan(tmp_path):
    """Where the kernel cannot kill orphans (not Linux), a thread in the worker does."""
    code = ("import os, subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import os, time; "
            "from pipeline.workers import exit_when_parent_dies; "
            "exit_when_parent_dies(os.getppid(), 0.05); print(os.getpid(), flush=True); "
            "time.sleep(60)'])\n"
            "time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    middle = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        orphan = int(middle.stdout.readline())
        assert running(orphan)
    finally:
        middle.send_signal(signal.SIGKILL)
        middle.wait()
    assert wait_until(lambda: not running(orphan), 3)


def _die_on_three(number):
    if number == 3:
        os.kill(os.getpid(), signal.SIGKILL)       # as the out-of-memory killer would
    time.sleep(0.05)
    return number


def test_a_worker_killed_from_outside_stops_the_run_with_a_clear_error():
    from pipeline.workers import WorkerDiedError, run_unordered

    with pytest.raises(WorkerDiedError, match="out-of-memory killer"):
        list(run_unordered(_die_on_three, [(n,) for n in range(8)], 2))


def test_a_killed_worker_is_a_clean_error_and_exit_code_on_the_command_line(tmp_path,
                                                                              monkeypatch):
    from click.testing import CliRunner

    import pipeline.stage_runner
    from pipeline.cli.main import cli
    from pipeline.manifest_builder import build_manifest
    from pipeline.synthetic.demo_dataset import make_demo_dataset
    from pipeline.workers import WorkerDiedError

    def killed(function, calls, jobs):
        raise WorkerDiedError("a worker process died without finishing its call (killed "
                              "from outside, e.g. by the out-of-memory killer?)")
        yield
    monkeypatch.setattr(pipeline.stage_runner, "run_unordered", killed)
    make_demo_dataset(tmp_path / "data", num_classes=1, samples_per_class=2, video_size=None)
    build_manifest("ntu60", tmp_path / "data", tmp_path / "work", shard_size=1)
    result = CliRunner().invoke(cli, ["extract-skeletons", str(tmp_path / "work"), "-j", "2",
                                      "--no-progress"])
    assert result.exit_code == 3, result.output
    assert "error: a worker process died" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
