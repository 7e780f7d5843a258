"""Train CTR-GCN's joint stream on the real NW-UCLA set and report accuracy and speed.

    python benchmarks/bench_train_nw_ucla.py                 # short schedule (CPU-friendly)
    python benchmarks/bench_train_nw_ucla.py --epochs 2      # shorter still
    python benchmarks/bench_train_nw_ucla.py --full          # the reference schedule

Cross-view protocol: train views 1-2 (1,020 samples), test view 3 (464). The WORKDIR
(manifest + skeleton cache) is built on first use from ``../shared/data/nw-ucla``.

The short schedule trains ``--epochs`` (default 10) epochs over the training set once
each (no 5x repeat), with the reference schedule's shape shrunk to fit: warm-up over
``epochs // 5`` epochs, lr 0.1, x0.1 after 50/65 of the epochs. ``--full`` is the
``nw-ucla`` preset unchanged: 65 epochs over the set repeated 5x, warm-up 5, step 50
(CTR-GCN reports about 93.5 % top-1 for the joint stream with it).

Printed figures, all measured in this run: top-1/top-5 and wall time of training; the
backbone's training and inference samples/s (medians over a few batches); the data
loader's samples/s (the feeder alone, one process); and, as an accuracy baseline on the
same split, a nearest-class-mean classifier on the same test-time inputs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from data_manifest.workdir import Workdir  # noqa: E402
from train.config import resolve_config  # noqa: E402
from train.data import load_data  # noqa: E402
from train.loop import train  # noqa: E402
from train.modeling import build_backbone  # noqa: E402
from train.models.throughput import measure_throughput  # noqa: E402

PUBLISHED_JOINT_TOP1 = 93.5   # CTR-GCN joint stream, full schedule


def ensure_workdir(path: Path) -> Path:
    """Manifest + skeleton cache of NW-UCLA (benchmarks may use the pipeline)."""
    from pipeline.manifest_builder import build_manifest
    from pipeline.stages.extract_skeletons import extract_skeletons
    if not (path / "workdir.json").is_file():
        build_manifest("nw-ucla", SHARED / "data" / "nw-ucla", path)
    extract_skeletons(Workdir(path), progress=False)
    return path


def backbone_speed(config, train_batch: int, eval_batch: int, repeats: int) -> tuple[float, float]:
    """Training and inference samples/s of the run's backbone on random input."""
    torch.manual_seed(0)
    speed = measure_throughput(build_backbone(config), (3, config.data.window, 20, 1),
                               batch_size=train_batch, steps=repeats, warmup=1,
                               inference_batch_size=eval_batch)
    return speed.train_samples_per_s, speed.inference_samples_per_s


def loader_speed(config, count: int = 300) -> float:
    dataset = load_data(config).dataset("train")
    started = time.perf_counter()
    for index in range(count):
        dataset[index % len(dataset)]
    return count / (time.perf_counter() - started)


def nearest_mean_baseline(config) -> float:
    data = load_data(config)

    def features(part):
        dataset = data.dataset(part, train=False)
        x = np.stack([dataset[i]["x"].numpy().reshape(-1) for i in range(len(dataset))])
        return x, dataset.labels

    x_train, y_train = features("train")
    x_test, y_test = features("test")
    means = np.stack([x_train[y_train == k].mean(axis=0)
                      for k in range(config.model.num_classes)])
    distances = ((x_test[:, None, :] - means[None]) ** 2).sum(axis=2)
    return float((distances.argmin(axis=1) == y_test).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmcl-bench/nw-ucla"),
                        help="WORKDIR to build or reuse (default: %(default)s)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="run directory; an existing one is resumed "
                             "(default: /tmp/mmcl-bench/run-<schedule>)")
    parser.add_argument("--full", action="store_true",
                        help="the reference schedule (65 epochs, training set x5)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="short schedule: epochs (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers (default: %(default)s)")
    parser.add_argument("--speed-repeats", type=int, default=3,
                        help="timed batches per speed figure (default: %(default)s)")
    parser.add_argument("--skip-train", action="store_true", help="only the speed figures")
    args = parser.parse_args()

    workdir = ensure_workdir(args.workdir)
    # step checkpoints make an interrupted benchmark cheap to resume (rerun the command)
    base = [f"data.workdir={workdir}", f"data.num_workers={args.num_workers}",
            "run.progress=true", "run.checkpoint_every_steps=20"]
    if args.full:
        config = resolve_config("nw-ucla", overrides=base)
        label = "full"
    else:
        # the reference's shape, shrunk: warm-up 5/65 -> E // 5, decay at 50/65 of the run
        decay = round(args.epochs * 50 / 65)
        steps = f"[{decay}]" if 0 < decay < args.epochs else "[]"
        config = resolve_config("nw-ucla", overrides=base + [
            f"schedule.epochs={args.epochs}", f"schedule.warmup_epochs={args.epochs // 5}",
            f"schedule.steps={steps}", "data.repeat=1"])
        label = f"short-{args.epochs}ep"
    run_dir = args.run_dir or Path(f"/tmp/mmcl-bench/run-{label}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; schedule {label}: "
          f"{config.schedule.epochs} epochs, repeat {config.data.repeat}, batch "
          f"{config.optim.batch_size}, lr {config.optim.lr}, steps {config.schedule.steps}",
          flush=True)

    loader = loader_speed(config)
    print(f"data loader (feeder, 1 process): {loader:.0f} samples/s", flush=True)
    train_rate, infer_rate = backbone_speed(config, config.optim.batch_size,
                                            config.optim.test_batch_size, args.speed_repeats)
    print(f"backbone training: {train_rate:.2f} samples/s (batch {config.optim.batch_size}, "
          f"median of {args.speed_repeats}); inference: {infer_rate:.2f} samples/s "
          f"(batch {config.optim.test_batch_size}); loader/training ratio "
          f"{loader / train_rate:.0f}x", flush=True)
    baseline = nearest_mean_baseline(config)
    print(f"baseline, nearest class mean on the same inputs: top-1 {100 * baseline:.2f}%",
          flush=True)
    if args.skip_train:
        return
    started = time.perf_counter()
    result = train(config, run_dir)
    wall = time.perf_counter() - started
    last = result.history[-1]
    print(f"\nCTR-GCN joint, NW-UCLA cross-view, {label} schedule ({result.epochs_done} "
          f"epochs, {result.global_step} steps): test top-1 {100 * last['test_top1']:.2f}%, "
          f"top-5 {100 * last['test_top5']:.2f}%; wall time {wall / 60:.1f} min "
          f"(this invocation; training epochs took "
          f"{sum(h['time_s'] for h in result.history) / 60:.1f} min)")
    print("per epoch: " + "; ".join(
        f"{h['epoch']}: loss {h['loss']:.3f}, test {100 * h['test_top1']:.1f}%"
        for h in result.history))
    print(f"reference: {PUBLISHED_JOINT_TOP1}% with the full schedule (published); "
          f"nearest-class-mean baseline {100 * baseline:.2f}%; chance 10%")
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
