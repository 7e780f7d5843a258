"""Skeleton-only inference speed: eager PyTorch (baseline) vs the exported models.

For the NTU input (3 x 64 frames x 25 joints x 2 persons, 60 classes) and the NW-UCLA input
(3 x 52 x 20 x 1, 10 classes), with random CTR-GCN weights:

- backbone training samples/s (forward, backward, SGD step) and eager inference samples/s
  (``train.models.throughput``);
- inference samples/s of the TorchScript export and, if the ``[onnx]`` extra is installed,
  of the ONNX export under onnxruntime, each with its ratio to eager measured in the same
  run (rounds interleaved so machine load hits every variant alike).

    python benchmarks/bench_export_inference.py [--batch 16] [--rounds 5] [--threads N]

Medians are printed; nothing is asserted. On a machine shared by many processes, use
``--threads 1``: OpenMP's busy-waiting threads slow everything down badly there.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import torch

from train.export import export_onnx, export_torchscript, load_torchscript
from train.models import build_model
from train.models.throughput import measure_throughput

CASES = {
    "ntu": {"num_classes": 60, "layout": "ntu", "num_persons": 2, "frames": 64},
    "nw-ucla": {"num_classes": 10, "layout": "nw-ucla", "num_persons": 1, "frames": 52},
}


def bench_case(name: str, batch: int, rounds: int, folder: Path) -> None:
    case = CASES[name]
    torch.manual_seed(0)
    model = build_model(num_classes=case["num_classes"], layout=case["layout"],
                        num_persons=case["num_persons"]).eval()
    joints = model.num_joints
    shape = (3, case["frames"], joints, case["num_persons"])
    speed = measure_throughput(model, shape, batch_size=batch, steps=rounds, warmup=1)
    print(f"[{name}] input (N, {', '.join(map(str, shape))}), batch {batch}, "
          f"{speed.threads} thread(s)")
    print(f"  backbone training:  {speed.train_samples_per_s:8.2f} samples/s")
    print(f"  eager inference:    {speed.inference_samples_per_s:8.2f} samples/s "
          "(throughput helper)")

    x = torch.randn(batch, *shape)
    runners = {}

    def eager() -> None:
        with torch.no_grad():
            model(x)
    runners["eager (baseline)"] = eager

    meta = {"benchmark": True}
    script_path = folder / f"{name}.torchscript.pt"
    export_torchscript(model, script_path, meta)
    scripted = load_torchscript(script_path)

    def torchscript() -> None:
        with torch.no_grad():
            scripted(x)
    runners["torchscript"] = torchscript

    if all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")):
        import onnxruntime

        onnx_path = folder / f"{name}.onnx"
        export_onnx(model, onnx_path, meta, x[:2])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(onnx_path), options,
                                               providers=["CPUExecutionProvider"])
        feed = {"skeleton": x.numpy()}
        runners["onnxruntime"] = lambda: session.run(["logits"], feed)
    else:
        print("  (onnx/onnxscript/onnxruntime not installed: ONNX skipped)")

    for run in runners.values():   # warm-up
        run()
    times: dict[str, list[float]] = {label: [] for label in runners}
    for _ in range(rounds):
        for label, run in runners.items():
            start = time.perf_counter()
            run()
            times[label].append(time.perf_counter() - start)
    base = statistics.median(times["eager (baseline)"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:<18}  {batch / median:8.2f} samples/s  "
              f"(median {median * 1000:.0f} ms/batch, {base / median:.2f}x eager)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        for name in args.cases:
            bench_case(name, args.batch, args.rounds, Path(folder))


if __name__ == "__main__":
    main()
