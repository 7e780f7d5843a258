"""CTR-GCN's fast path against the eager reference: training step and inference, one run.

    python benchmarks/bench_fast_path.py                        # CPU, 1 thread, 20 repeats
    taskset -c 1 python benchmarks/bench_fast_path.py --repeats 40   # on a shared machine
    python benchmarks/bench_fast_path.py --threads 2
    python benchmarks/bench_fast_path.py --device cuda --precision bf16 --compile

Shapes: NTU (batch 8, input 3x64x25x2, 60 classes) and NW-UCLA (batch 16, 3x52x20x1,
10 classes). For each shape the reference (``model.impl=reference``) and the fast model
(``model.impl=fast``; with ``--compile`` also the fast model under ``torch.compile``)
start from the same weights. Each repeat times, for every model in turn, one training
step (train mode: forward, cross-entropy, backward, SGD step) and one inference forward
(eval mode, no_grad) on the same batch; taking turns spreads the slow periods of a shared
machine over all models. Printed: medians of wall time and, on the CPU, of this
process's CPU time (less sensitive to other programs), and the fast/reference ratios.
Goal on the CPU: training step <= 0.8x, inference <= 0.7x the reference.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from train.models import build_model  # noqa: E402

SHAPES = {   # name: (layout, batch, (C, T, V, M), classes)
    "ntu": ("ntu", 8, (3, 64, 25, 2), 60),
    "nw-ucla": ("nw-ucla", 16, (3, 52, 20, 1), 10),
}
GOALS = {"train": 0.8, "infer": 0.7}


class Timed:
    """One model with its optimizer and the steps to time."""

    def __init__(self, name: str, model: nn.Module, x: torch.Tensor, labels: torch.Tensor,
                 device: torch.device, precision: str, compile_model: bool):
        self.name = name
        self.model = model.to(device)
        self.run = torch.compile(self.model) if compile_model else self.model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.x, self.labels = x, labels
        self.device = device
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                                       enabled=precision == "bf16")
        self.times: dict[str, list[tuple[float, float]]] = {"train": [], "infer": []}

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast:
            loss = nn.functional.cross_entropy(self.run(self.x).float(), self.labels)
        loss.backward()
        self.optimizer.step()

    def infer_step(self) -> None:
        self.model.eval()
        with torch.no_grad(), self.autocast:
            self.run(self.x)

    def timed(self, kind: str, record: bool) -> None:
        step = self.train_step if kind == "train" else self.infer_step
        wall, cpu = time.perf_counter(), time.process_time()
        step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if record:
            self.times[kind].append((time.perf_counter() - wall, time.process_time() - cpu))

    def median(self, kind: str, clock: int) -> float:
        return statistics.median(t[clock] for t in self.times[kind])


def bench_shape(name: str, args, device: torch.device) -> list[Timed]:
    layout, batch, shape, classes = SHAPES[name]
    torch.manual_seed(0)
    reference = build_model(num_classes=classes, layout=layout, num_persons=shape[3],
                            impl="reference")
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *shape, generator=generator).to(device)
    labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
    variants = [("reference", "reference", False), ("fast", "fast", False)]
    if args.compile:
        variants.append(("fast+compile", "fast", True))
    models = []
    for label, impl, compile_model in variants:
        model = build_model(num_classes=classes, layout=layout, num_persons=shape[3],
                            impl=impl)
        model.load_state_dict(reference.state_dict())
        models.append(Timed(label, model, x, labels, device, args.precision, compile_model))
    for repeat in range(args.warmup + args.repeats):
        for kind in ("train", "infer"):
            for timed in models:
                timed.timed(kind, record=repeat >= args.warmup)
    return models


def report(name: str, models: list[Timed], device: torch.device) -> None:
    layout, batch, shape, _ = SHAPES[name]
    clocks = [("wall", 0)] + ([("cpu", 1)] if device.type == "cpu" else [])
    print(f"\n{name}: batch {batch}, input {'x'.join(map(str, shape))}")
    header = f"  {'impl':<13}" + "".join(
        f"{kind + ' ' + clock + ' s':>16}{'ratio':>7}" for kind in ("train", "infer")
        for clock, _ in clocks) + f"{'train samples/s':>17}"
    print(header)
    reference = models[0]
    for timed in models:
        row = f"  {timed.name:<13}"
        for kind in ("train", "infer"):
            for _, clock in clocks:
                value = timed.median(kind, clock)
                ratio = value / reference.median(kind, clock)
                row += f"{value:>16.4f}{ratio:>7.2f}"
        row += f"{batch / timed.median('train', 0):>17.1f}"
        print(row)
    fast = models[1]
    verdicts = []
    for kind, goal in GOALS.items():
        ratios = {clock: fast.median(kind, index) / reference.median(kind, index)
                  for clock, index in clocks}
        verdicts.append(f"{kind} {ratios['wall']:.2f}x wall ("
                        f"{'meets' if ratios['wall'] <= goal else 'misses'} <= {goal}x)"
                        + (f", {ratios['cpu']:.2f}x cpu" if "cpu" in ratios else ""))
    print("  fast vs reference: " + "; ".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES),
                        help="shapes to measure (default: all)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed repeats per model and step kind (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed repeats first (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="fp32, or bf16 autocast (default: %(default)s)")
    parser.add_argument("--compile", action="store_true",
                        help="also time the fast model under torch.compile (minutes of "
                             "compiling on a CPU, where it does not pay)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", {torch.get_num_threads()} thread(s), precision {args.precision}; "
          f"medians of {args.repeats} repeats after {args.warmup} warm-up")
    for name in args.shapes:
        report(name, bench_shape(name, args, device), device)


if __name__ == "__main__":
    main()
