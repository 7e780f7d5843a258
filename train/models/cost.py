"""What a backbone costs: parameters and FLOPs per sample at a given input shape.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass in
evaluation mode: convolutions, matrix products and einsums (which run as matrix products),
a multiply-add counted as 2 FLOPs. Normalisation, activations and other elementwise work
are not counted, as usual in the papers' tables (they quote multiply-adds, half of this).
The count is of the implementation that runs: ``model.impl=fast`` may compute the same
result with fewer (CTR-GCN's fast path: about 15 % fewer; ``impl="reference"`` gives the
published computation's count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass
class ModelCost:
    parameters: int                   # trainable parameters
    flops_per_sample: int             # one forward pass, multiply-add = 2
    input_shape: tuple[int, ...]      # (C, T, V, M) of one sample

    @property
    def multiply_adds_per_sample(self) -> int:
        return self.flops_per_sample // 2

    def summary(self) -> str:
        return (f"{self.parameters / 1e6:.2f} M parameters, "
                f"{self.flops_per_sample / 1e9:.2f} GFLOPs per sample "
                f"({self.multiply_adds_per_sample / 1e9:.2f} G multiply-adds) at input "
                f"(C, T, V, M) = {self.input_shape}")

    def to_dict(self) -> dict:
        return {**asdict(self), "input_shape": list(self.input_shape),
                "multiply_adds_per_sample": self.multiply_adds_per_sample}


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters()
               if parameter.requires_grad)


def model_cost(model: nn.Module, input_shape: tuple[int, int, int, int]) -> ModelCost:
    """Parameters and FLOPs of one sample of shape (C, T, V, M) through ``model``.

    The model runs once in evaluation mode (its state is left as it was: no BatchNorm
    statistics move, no random numbers are drawn). Autograd stays on: the counter's module
    tracker fails on parameter views made under ``no_grad``.
    """
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return ModelCost(parameters=count_parameters(model),
                     flops_per_sample=int(counter.get_total_flops()),
                     input_shape=tuple(int(size) for size in input_shape))
