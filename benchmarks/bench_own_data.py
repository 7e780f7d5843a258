"""Own data end to end: a short CPU training of CTR-GCN against a nearest-class-mean baseline.

    python benchmarks/bench_own_data.py                          # 6 classes x 40, 20 epochs
    python benchmarks/bench_own_data.py --per-class 12 --epochs 3   # a quick check
    python benchmarks/bench_own_data.py --channels xy-score      # 2-D keypoints + confidence

The data is the synthetic "own data" of ``pipeline.synthetic.own_data``: a user layout
(Kinect v1's 20 joints, head first), one person per sample, 1-based labels, class names,
files of every format (.npy, .npz, .json, CSV of frames, v7.3 .mat), classes that share
their posture in pairs and differ in tempo, at random phases, positions, sizes and facings.
It goes through ``pipeline manifest csv --layout --classes --label-base 1``,
``extract-skeletons`` and ``train run --preset custom`` (persons, channels, classes and
window from the data), with the preset's schedule shrunk to ``--epochs`` epochs.

Printed, all measured in this run on the same split (train / val held out / test): CTR-GCN's
test top-1 with its training wall time, and the nearest-class-mean classifier on the same
test-time inputs (the baseline the issue's CTR-GCN run lost to), with chance.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_train_nw_ucla import nearest_mean_baseline  # noqa: E402
from pipeline.manifest_builder import build_manifest  # noqa: E402
from pipeline.stages.extract_skeletons import extract_skeletons  # noqa: E402
from pipeline.synthetic.own_data import OWN_CLASSES, write_own_dataset  # noqa: E402
from train.config import resolve_config  # noqa: E402
from train.data import load_data  # noqa: E402
from train.loop import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/mmcl-bench/own-data"),
                        help="folder for the data, WORKDIR and run; an earlier WORKDIR and run "
                        "of the same settings there are removed first (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=40,
                        help="samples per class, a quarter of them test (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=20,
                        help="training epochs (default: %(default)s)")
    parser.add_argument("--channels", choices=("xyz", "xy-score"), default="xyz",
                        help="3-D points or 2-D image points with a confidence "
                             "(default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default: %(default)s)")
    args = parser.parse_args()

    label = f"{args.channels}-{args.per_class}x{len(OWN_CLASSES)}-s{args.seed}"
    data = write_own_dataset(args.root / f"data-{label}", per_class=args.per_class,
                             seed=args.seed, channels=args.channels, file_format="mixed",
                             frames=(40, 80))
    workdir = args.root / f"work-{label}"
    run_dir = args.root / f"run-{label}-{args.epochs}ep"
    for earlier in (workdir, run_dir):      # an earlier run's: would be refused or resumed
        if earlier.exists():
            print(f"removing the earlier benchmark output {earlier}", flush=True)
            shutil.rmtree(earlier)
    build_manifest("csv", data.csv, workdir, layout=data.layout, classes=data.classes,
                   label_base=1, channels=args.channels)
    started = time.perf_counter()
    skeletons = extract_skeletons(workdir, progress=False)
    if skeletons.failures:
        raise SystemExit(f"skeleton failures: {skeletons.failures[:3]}")
    print(f"skeleton cache: {len(data.files)} files in {time.perf_counter() - started:.1f} s",
          flush=True)

    # the custom preset's schedule (65 epochs, warm-up 5, steps 35 and 55), shrunk
    steps = sorted({round(args.epochs * 35 / 65), round(args.epochs * 55 / 65)} -
                   {0, args.epochs})
    config = resolve_config("custom", overrides=[
        f"data.workdir={workdir}", f"data.num_workers={args.num_workers}",
        f"schedule.epochs={args.epochs}", f"schedule.warmup_epochs={max(args.epochs // 13, 1)}",
        f"schedule.steps={steps}", "run.progress=false"])
    fitted = load_data(config).config
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; custom preset: "
          f"window {fitted.data.window}, persons {fitted.model.num_persons}, channels "
          f"{fitted.data.channels}, {fitted.model.num_classes} classes; {args.epochs} epochs, "
          f"batch {fitted.optim.batch_size}, lr {fitted.optim.lr}, steps {steps}", flush=True)
    baseline = nearest_mean_baseline(fitted)
    print(f"nearest class mean on the same inputs: test top-1 {100 * baseline:.2f}%",
          flush=True)

    started = time.perf_counter()
    result = train(fitted, run_dir)
    wall = time.perf_counter() - started
    last = result.history[-1]
    print("per epoch: " + "; ".join(
        f"{h['epoch']}: loss {h['loss']:.3f}, test {100 * h['test_top1']:.1f}%"
        for h in result.history))
    print(f"\nCTR-GCN ({args.epochs} epochs, {wall / 60:.1f} min on this machine): test top-1 "
          f"{100 * last['test_top1']:.2f}%; nearest class mean: {100 * baseline:.2f}%; "
          f"chance {100 / len(OWN_CLASSES):.2f}%; CTR-GCN - baseline: "
          f"{100 * (last['test_top1'] - baseline):+.2f} points")
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
