"""`train.models.throughput.measure_throughput`, which the benchmarks and the GPU check use."""

import pytest
import torch
from torch import nn

from train.models.throughput import measure_throughput


class Pooled(nn.Module):
    """(N, C, T, V, M) -> logits: mean over time, joints and persons, then a linear layer."""

    def __init__(self, channels: int = 3, classes: int = 4, scale: float = 1.0):
        super().__init__()
        self.num_classes = classes
        self.fc = nn.Linear(channels, classes)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3, 4))) * self.scale


def test_figures_and_the_weights_are_restored():
    torch.manual_seed(0)
    model = Pooled().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    speed = measure_throughput(model, (3, 8, 5, 1), batch_size=4, steps=2, warmup=1)
    assert speed.train_samples_per_s > 0 and speed.inference_samples_per_s > 0
    assert speed.batch_size == 4 and speed.input_shape == (3, 8, 5, 1)
    assert not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_steps_that_diverge_are_refused_not_timed():
    """Regression: InfoGCN's co-learning steps in bench_backbones went NaN after 3 rounds
    and then ran 2x faster, which the benchmark printed as a 0.65x MMCL overhead."""
    torch.manual_seed(0)
    model = Pooled(scale=1e38)                 # logits overflow: inf loss, NaN weights
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="NaN/inf"):
        measure_throughput(model, (3, 8, 5, 1), batch_size=4, steps=2, warmup=1)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
