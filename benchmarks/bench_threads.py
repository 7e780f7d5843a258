"""Torch's default threads against ``run.threads=auto`` beside another busy program.

    python benchmarks/bench_threads.py                  # 1 busy process, 4 rounds x 8 steps
    python benchmarks/bench_threads.py --busy 0         # a quiet machine, for comparison
    python benchmarks/bench_threads.py --busy 3 --rounds 6

The step: CTR-GCN (fast impl) training on the NW-UCLA shape (batch 16, 3x52x20x1,
10 classes), forward, backward and SGD step, as the trainer runs it. Each setting runs
in a fresh Python process without ``OMP_NUM_THREADS`` (so "default" is really torch's
default, one thread per core, and "auto" decides from scratch); ``--busy`` processes of
this script spin on a core each meanwhile. Settings take turns for ``--rounds`` rounds
so changes of the machine's load hit both. Printed: the threads each setting used, the
median step time over all rounds, and auto's time as a share of the default's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# runs in the child: one setting, prints JSON with its threads and step times
STEP_SCRIPT = """
import json, sys, time
import torch
from torch import nn
sys.path.insert(0, {repo!r})
from train.models import build_model
from train.threads import apply_threads
setting, steps = sys.argv[1], int(sys.argv[2])
if setting == "auto":
    apply_threads("auto", 0)
torch.manual_seed(0)
model = build_model(num_classes=10, layout="nw-ucla", num_persons=1).train()
x, labels = torch.randn(16, 3, 52, 20, 1), torch.randint(0, 10, (16,))
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
times = []
for index in range(steps + 1):
    started = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), labels).backward()
    optimizer.step()
    if index:   # the first step warms up
        times.append(time.perf_counter() - started)
print(json.dumps({{"threads": torch.get_num_threads(), "times": times}}))
"""

BUSY_SCRIPT = "while True:\n    pass\n"


def clean_env() -> dict[str, str]:
    drop = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "LOCAL_WORLD_SIZE")
    return {key: value for key, value in os.environ.items() if key not in drop}


def run_setting(setting: str, steps: int) -> dict:
    result = subprocess.run([sys.executable, "-c", STEP_SCRIPT.format(repo=str(REPO)),
                             setting, str(steps)], capture_output=True, text=True,
                            env=clean_env(), timeout=3600)
    if result.returncode:
        raise SystemExit(f"the {setting} step failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--busy", type=int, default=1,
                        help="CPU-bound processes running beside it (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="turns of each setting (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=8,
                        help="timed training steps per turn (default: %(default)s)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_SCRIPT]) for _ in range(args.busy)]
    try:
        time.sleep(1.0 if busy else 0.0)   # let them get going before auto looks
        results: dict[str, dict] = {"default": {"threads": set(), "times": []},
                                    "auto": {"threads": set(), "times": []}}
        for round_index in range(args.rounds):
            for setting in results:
                measured = run_setting(setting, args.steps)
                results[setting]["threads"].add(measured["threads"])
                results[setting]["times"].extend(measured["times"])
                print(f"round {round_index + 1}/{args.rounds} {setting}: "
                      f"{measured['threads']} thread(s), median step "
                      f"{statistics.median(measured['times']):.3f}s", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"\nNW-UCLA training step (batch 16, fast CTR-GCN), {cores} cores, "
          f"{args.busy} busy process(es) beside it; medians of "
          f"{args.rounds * args.steps} steps per setting")
    medians = {}
    for setting, result in results.items():
        medians[setting] = statistics.median(result["times"])
        threads = ", ".join(map(str, sorted(result["threads"])))
        print(f"  {setting:<8} {threads:>4} thread(s)  {medians[setting]:.3f} s/step  "
              f"{16 / medians[setting]:.1f} samples/s")
    print(f"  auto / default: {medians['auto'] / medians['default']:.2f}x the step time")


if __name__ == "__main__":
    main()
