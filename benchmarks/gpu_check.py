"""Helpers of ``gpu_check.sh``: a synthetic MMCL WORKDIR, and figures read from run folders.

    python benchmarks/gpu_check.py mmcl-workdir DIR [--samples N]
    python benchmarks/gpu_check.py throughput RUN_DIR...      # samples/s, data wait
    python benchmarks/gpu_check.py ucla RUN_DIR                # accuracy and time
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))
sys.path.insert(0, str(BENCHMARKS))

PUBLISHED_JOINT_TOP1 = 93.5   # CTR-GCN joint stream on NW-UCLA, full schedule


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mmcl_workdir(args) -> None:
    from bench_mmcl_step import make_workdir
    if args.dir.exists():
        shutil.rmtree(args.dir)
    args.dir.mkdir(parents=True)
    # InceptionV3-sized RGB features, BLIP-base-sized LLM features, one question
    workdir = make_workdir(args.dir, args.samples, rgb_width=1000, llm_width=768,
                           num_questions=1)
    print(f"{workdir.path}: {args.samples} NTU60-shaped samples with skeleton, stitch, "
          "rgb-features and llm-features caches")


def throughput(args) -> None:
    rates = {}
    for run_dir in args.run_dirs:
        lines = read_metrics(run_dir)
        if not lines:
            print(f"{run_dir.name}: no finished epoch")
            continue
        last = lines[-1]   # later epochs: workers and kernels warmed up
        rates[run_dir.name] = last["train_samples_per_s"]
        print(f"{run_dir.name}: epoch {last['epoch']}: {last['train_samples_per_s']:.1f} "
              f"samples/s, data wait {100 * last.get('data_wait_share', float('nan')):.1f}% "
              f"of {last['time_s']:.1f}s, losses {last.get('losses')}")
    if len(rates) == 2:
        (first, a), (second, b) = rates.items()
        print(f"{second} / {first} step time: {a / b:.3f}x")


def ucla(args) -> None:
    lines = read_metrics(args.run_dir)
    if not lines:
        print("NW-UCLA: no finished epoch")
        return
    evaluated = [line for line in lines if "test_top1" in line]
    train_s = sum(line["time_s"] for line in lines)
    eval_s = sum(line.get("eval_time_s", 0.0) for line in lines)
    epochs = yaml.safe_load((args.run_dir / "config.yaml").read_text())["schedule"]["epochs"]
    last = lines[-1]
    print(f"NW-UCLA joint, preset nw-ucla: {len(lines)}/{epochs} epochs in "
          f"{(train_s + eval_s) / 60:.1f} min (training {train_s / 60:.1f}, evaluation "
          f"{eval_s / 60:.1f}); {last['train_samples_per_s']:.0f} samples/s, data wait "
          f"{100 * last.get('data_wait_share', 0):.1f}% in the last epoch")
    if len(lines) < epochs:
        per_epoch = train_s / len(lines)
        print(f"  not finished: the full schedule would take about "
              f"{epochs * per_epoch / 60:.1f} min of training at this pace; rerun the "
              "same command to resume it")
    if evaluated:
        final = evaluated[-1]
        print(f"  test top-1 at the last evaluated epoch ({final['epoch']}): "
              f"{100 * final['test_top1']:.2f}% (top-5 {100 * final['test_top5']:.2f}%); "
              f"goal >= {PUBLISHED_JOINT_TOP1}% (CTR-GCN, published)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("mmcl-workdir", help="write a synthetic MMCL WORKDIR")
    making.add_argument("dir", type=Path)
    making.add_argument("--samples", type=int, default=2048,
                        help="samples (default: %(default)s)")
    making.set_defaults(function=mmcl_workdir)
    rates = commands.add_parser("throughput", help="samples/s of finished runs")
    rates.add_argument("run_dirs", type=Path, nargs="+")
    rates.set_defaults(function=throughput)
    accuracy = commands.add_parser("ucla", help="accuracy and time of an NW-UCLA run")
    accuracy.add_argument("run_dir", type=Path)
    accuracy.set_defaults(function=ucla)
    args = parser.parse_args()
    args.function(args)


if __name__ == "__main__":
    main()
