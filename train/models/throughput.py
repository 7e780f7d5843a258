"""Backbone speed: training and inference samples per second on random input.

Used by the benchmarks (``benchmarks/``), never by tests: timing depends on the machine.
Figures are medians over timed steps after warm-up steps.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn


@dataclass
class Throughput:
    train_samples_per_s: float      # forward + backward + SGD step, model.train()
    inference_samples_per_s: float  # forward only, model.eval(), no_grad
    batch_size: int
    input_shape: tuple[int, ...]    # (C, T, V, M) of one sample
    device: str
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


def median_seconds(step: Callable[[], None], steps: int, warmup: int,
                   synchronize: Callable[[], None] = lambda: None) -> float:
    """Median wall time of ``step`` over ``steps`` timed calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    synchronize()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_throughput(model: nn.Module, input_shape: tuple[int, int, int, int],
                       batch_size: int = 16, steps: int = 5, warmup: int = 1,
                       device: str | torch.device = "cpu",
                       inference_batch_size: int | None = None) -> Throughput:
    """Samples/s of one training step and of inference for ``model`` on ``device``.

    The model's weights are restored afterwards (the training steps use a throw-away
    optimizer on a copy of the state).
    """
    device = torch.device(device)
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" \
        else (lambda: None)
    saved = {key: value.detach().clone() for key, value in model.state_dict().items()}
    was_training = model.training
    model.to(device)
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        model.eval()
        with torch.no_grad():
            num_classes = model(torch.zeros(1, *input_shape, device=device)).shape[-1]
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *input_shape, generator=generator).to(device)
    labels = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()

    model.train()
    train_seconds = median_seconds(train_step, steps, warmup, synchronize)
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        model.load_state_dict(saved)
        raise RuntimeError("the timed training steps drove the weights to NaN/inf, whose "
                           "arithmetic runs at other speeds: the figure would be wrong")

    infer_batch = inference_batch_size or batch_size
    x_infer = torch.randn(infer_batch, *input_shape, generator=generator).to(device)

    def infer_step() -> None:
        with torch.no_grad():
            model(x_infer)

    model.eval()
    infer_seconds = median_seconds(infer_step, steps, warmup, synchronize)

    model.load_state_dict(saved)
    model.train(was_training)
    return Throughput(train_samples_per_s=batch_size / train_seconds,
                      inference_samples_per_s=infer_batch / infer_seconds,
                      batch_size=batch_size, input_shape=tuple(input_shape),
                      device=str(device), threads=torch.get_num_threads())
