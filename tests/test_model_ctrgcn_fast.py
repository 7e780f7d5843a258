"""The fast CTR-GCN computes what the reference computes, with the same weights.

Compared in float64, where reordered sums differ by ~1e-15, so a tolerance of 1e-9 leaves
no room for a changed formula: outputs, the global feature, every parameter's gradient
and the batch-norm running statistics after a training step, and outputs in eval mode.
On a machine with a GPU the main comparisons run there too.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from model_factories import (REFERENCE_NPZ, reference_arrays,
                             single_thread)  # noqa: F401 (single_thread: autouse)
from train.models import build_model
from train.models.ctrgcn import CTRGCN
from train.models.ctrgcn_fast import FastCTRGCN
from train.models.reference_import import load_reference_weights

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
CASES = {   # name: (layout, joints, persons, frames); 21 frames: odd lengths at the strides
    "ntu": ("ntu", 25, 2, 21),
    "nw-ucla": ("nw-ucla", 20, 1, 16),
}


def _pair(case: str, dtype=torch.float64, device: str = "cpu") -> tuple[CTRGCN, CTRGCN]:
    """A reference model in a used-looking state (alpha != 0, batch-norm affine and
    running statistics away from their initial values, the latter averaged over a few
    batches so eval-mode activations keep their scale) and a fast one with its weights."""
    layout, joints, persons, frames = CASES[case]
    torch.manual_seed(0)
    reference = build_model(num_classes=7, layout=layout, num_persons=persons,
                            impl="reference").to(dtype)
    with torch.no_grad():
        batch_norms = [m for m in reference.modules() if isinstance(m, nn.BatchNorm2d)]
        for module in reference.modules():
            if hasattr(module, "alpha"):
                module.alpha.uniform_(0.2, 0.8)
        for module in batch_norms:
            module.weight.normal_(1.0, 0.2)
            module.bias.normal_(0.0, 0.1)
            module.momentum = None   # cumulative average while warming up
        reference.train()
        for _ in range(3):
            reference(torch.randn(4, 3, frames, joints, persons, dtype=dtype))
        for module in batch_norms:
            module.momentum = 0.1
    fast = build_model(num_classes=7, layout=layout, num_persons=persons, impl="fast")
    fast.to(dtype).load_state_dict(reference.state_dict())
    return reference.to(device), fast.to(device)


def _input(case: str, batch: int = 3, dtype=torch.float64, device: str = "cpu") -> torch.Tensor:
    _, joints, persons, frames = CASES[case]
    return torch.randn(batch, 3, frames, joints, persons, dtype=dtype,
                       generator=torch.Generator().manual_seed(1)).to(device)


def _close(actual: torch.Tensor, expected: torch.Tensor, scale: float | None = None) -> None:
    scale = expected.abs().max().item() if scale is None else scale
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-9 * max(scale, 1e-12))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_training_step_matches_the_reference(case, device):
    reference, fast = _pair(case, device=device)
    assert type(fast) is FastCTRGCN
    x = _input(case, device=device)
    labels = torch.tensor([0, 3, 6], device=device)
    results = {}
    for name, model in (("reference", reference), ("fast", fast)):
        model.train()
        logits, feature = model.forward_features(x)
        nn.functional.cross_entropy(logits, labels).backward()
        results[name] = (logits, feature)
    _close(results["fast"][0], results["reference"][0])
    _close(results["fast"][1], results["reference"][1])
    grads = dict(reference.named_parameters())
    # conv biases in front of a training-mode batch norm get an exact-zero gradient in
    # theory and rounding noise in practice: compare on the scale of all gradients
    scale = max(p.grad.abs().max().item() for p in grads.values())
    for name, parameter in fast.named_parameters():
        assert parameter.grad is not None, name
        _close(parameter.grad, grads[name].grad, scale)
    expected = reference.state_dict()
    for key, value in fast.state_dict().items():   # running statistics, batches tracked
        if value.is_floating_point():   # some running means are rounding noise around 0
            _close(value, expected[key], max(1.0, expected[key].abs().max().item()))
        else:
            assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES)
def test_eval_mode_matches_the_reference(case, device):
    reference, fast = _pair(case, device=device)
    x = _input(case, device=device)
    with torch.no_grad():
        expected = reference.eval().forward_features(x)
        actual = fast.eval().forward_features(x)
    _close(actual[0], expected[0])
    _close(actual[1], expected[1])
    # eval mode folds batch norms into weights on the fly: nothing is written back
    assert all(torch.equal(value, reference.state_dict()[key])
               for key, value in fast.state_dict().items())


@pytest.mark.parametrize("case", CASES)
def test_float32_matches_closely(case):
    reference, fast = _pair(case, dtype=torch.float32)
    x = _input(case, dtype=torch.float32)
    for mode in (True, False):
        with torch.no_grad():
            expected = reference.train(mode)(x)
            actual = fast.train(mode)(x)
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_state_dicts_are_interchangeable():
    reference = build_model(num_classes=60, layout="ntu", impl="reference")
    fast = build_model(num_classes=60, layout="ntu", impl="fast")
    assert list(fast.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(fast.state_dict())
    fast.load_state_dict(reference.state_dict())
    # a published checkpoint reproduces the published logits through the fast path too
    arrays = reference_arrays()
    model = load_reference_weights(build_model(num_classes=60, layout="ntu", impl="fast"),
                                   REFERENCE_NPZ).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(arrays["input"]))
    expected = torch.from_numpy(arrays["logits"])
    assert float((logits - expected).norm() / expected.norm()) < 1e-4


class CountingBatchNorm(nn.BatchNorm2d):
    """A batch norm the fast path must not merge or fold (like ``SyncBatchNorm``)."""

    calls = 0

    def forward(self, x):
        CountingBatchNorm.calls += 1
        return super().forward(x)


def _with_counting_batch_norms(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is nn.BatchNorm2d:
                counting = CountingBatchNorm(child.num_features).to(child.weight.dtype)
                counting.load_state_dict(child.state_dict())
                setattr(module, name, counting)
    return model


@pytest.mark.parametrize("training", [True, False])
def test_other_batch_norms_run_as_modules(training):
    reference, fast = _pair("nw-ucla")
    fast = _with_counting_batch_norms(fast)
    x = _input("nw-ucla")
    CountingBatchNorm.calls = 0
    with torch.set_grad_enabled(training):
        actual = fast.train(training)(x)
        expected = reference.train(training)(x)
    batch_norms = sum(isinstance(m, CountingBatchNorm) for m in fast.modules())
    assert CountingBatchNorm.calls == batch_norms
    _close(actual, expected)
    if training:
        _close(fast.l5.tcn1.branches[0][1].running_var,
               reference.l5.tcn1.branches[0][1].running_var)


def test_cumulative_average_batch_norms_match():
    """``momentum=None`` (running averages over all batches so far) is left to each
    module, whose batch count decides the average."""
    reference, fast = _pair("nw-ucla")
    for model in (reference, fast):
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None
    with torch.no_grad():
        for seed in range(2):
            x = torch.randn(3, 3, 16, 20, 1, dtype=torch.float64,
                            generator=torch.Generator().manual_seed(seed))
            _close(fast.train()(x), reference.train()(x))
    expected = reference.state_dict()
    for key, value in fast.state_dict().items():
        if value.is_floating_point():
            _close(value, expected[key], max(1.0, expected[key].abs().max().item()))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("training", [True, False])
def test_bf16_autocast_is_as_accurate_as_the_reference(training, device):
    x = _input("nw-ucla", dtype=torch.float32, device=device)

    def relative_error(model: nn.Module, exact: torch.Tensor) -> float:
        with torch.autocast(device, dtype=torch.bfloat16):
            out = model.train(training)(x)
        if training:
            out.float().sum().backward()
            assert all(torch.isfinite(p.grad).all() for p in model.parameters())
        out = out.detach().float()
        return float((out - exact).norm() / exact.norm())

    reference, fast = _pair("nw-ucla", dtype=torch.float32, device=device)
    with torch.no_grad():
        exact = copy.deepcopy(reference).train(training)(x)
    reference_error = relative_error(reference, exact)
    assert 0 < relative_error(fast, exact) < 2 * reference_error + 0.005
