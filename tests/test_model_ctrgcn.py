"""CTR-GCN backbone: shapes, features, parameter layout and count, bad input.

Tests that look inside the blocks (forward hooks) use the reference implementation; the
others run on both (``test_model_ctrgcn_fast.py`` checks that the two compute the same).
"""

from __future__ import annotations

import pytest
import torch

from model_factories import (is_buffer_key, reference_key_shapes,
                            single_thread)  # noqa: F401 (single_thread: autouse)
from train.models import IMPLS, build_model
from train.models.graph import spatial_adjacency
from data_manifest.layouts import NTU


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("layout, joints, persons, classes", [("ntu", 25, 2, 60),
                                                              ("nw-ucla", 20, 1, 10)])
def test_forward_shapes(layout, joints, persons, classes, impl):
    model = build_model(num_classes=classes, layout=layout, num_persons=persons,
                        impl=impl).eval()
    x = torch.randn(3, 3, 24, joints, persons)
    with torch.no_grad():
        logits = model(x)
        logits_again, feature = model.forward_features(x)
    assert logits.shape == (3, classes)
    assert feature.shape == (3, 256)
    assert torch.equal(logits, logits_again)
    # the logits are the classifier applied to the global feature
    torch.testing.assert_close(logits, model.fc(feature))
    assert torch.isfinite(logits).all()


def test_global_feature_is_the_mean_of_the_last_block():
    model = build_model(num_classes=5, num_joints=25, num_persons=2, impl="reference").eval()
    captured = {}
    model.l10.register_forward_hook(lambda module, args, output: captured.update(out=output))
    x = torch.randn(2, 3, 16, 25, 2)
    with torch.no_grad():
        _, feature = model.forward_features(x)
    last = captured["out"]                       # (N*M, 256, T/4, V)
    assert last.shape == (4, 256, 4, 25)         # two stride-2 blocks: 16 -> 4 frames
    expected = last.reshape(2, 2, 256, 4, 25).mean(dim=(1, 3, 4))
    torch.testing.assert_close(feature, expected)


@pytest.mark.parametrize("impl", IMPLS)
def test_state_dict_has_the_reference_keys_and_shapes(impl):
    model = build_model(num_classes=60, layout="ntu", impl=impl)
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == reference_key_shapes()


@pytest.mark.parametrize("impl", IMPLS)
def test_parameter_count_for_120_classes(impl):
    reference = reference_key_shapes()
    expected = sum(torch.Size(shape).numel() for key, shape in reference.items()
                   if not is_buffer_key(key))
    expected += 60 * 256 + 60        # the classifier grows from 60 to 120 classes
    model = build_model(num_classes=120, layout="ntu", impl=impl)
    count = sum(parameter.numel() for parameter in model.parameters())
    assert count == expected == 1_462_092
    assert 1.45e6 < count < 1.47e6   # "1.46 M parameters" in the CTR-GCN paper


def test_initial_state_matches_the_recipe():
    model = build_model(num_classes=60, layout="ntu", impl="reference")
    graph = torch.from_numpy(spatial_adjacency(NTU))
    for index in range(1, 11):
        gcn = getattr(model, f"l{index}").gcn1
        assert torch.equal(gcn.PA.detach(), graph)
        assert gcn.alpha.item() == 0.0
        assert gcn.PA.requires_grad
    # strides at blocks 5 and 8, widths 64/128/256
    x = torch.randn(1, 3, 32, 25, 2)
    shapes = []
    for index in range(1, 11):
        getattr(model, f"l{index}").register_forward_hook(
            lambda module, args, output: shapes.append(tuple(output.shape[1:3])))
    model.eval()
    with torch.no_grad():
        model(x)
    assert shapes == [(64, 32)] * 4 + [(128, 16)] * 3 + [(256, 8)] * 3


@pytest.mark.parametrize("impl", IMPLS)
def test_training_step_reaches_every_parameter(impl):
    model = build_model(num_classes=4, layout="nw-ucla", num_persons=1, dropout=0.5,
                        impl=impl).train()
    x = torch.randn(4, 3, 12, 20, 1)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    without_grad = [name for name, parameter in model.named_parameters()
                    if parameter.grad is None]
    assert without_grad == []
    # alpha starts at 0 but still gets a gradient, so topology refinement can switch on
    assert model.l1.gcn1.alpha.grad.abs().item() > 0


@pytest.mark.parametrize("impl", IMPLS)
def test_bad_input_is_refused_with_a_clear_message(impl):
    model = build_model(num_classes=60, layout="ntu", impl=impl)
    with pytest.raises(ValueError, match=r"\(N, C, T, V, M\)"):
        model(torch.randn(2, 3, 16, 25))
    with pytest.raises(ValueError, match="V=25"):
        model(torch.randn(2, 3, 16, 20, 2))
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", num_classes=60, layout="ntu")
    with pytest.raises(ValueError, match="layout"):
        build_model(num_classes=60)
    with pytest.raises(ValueError, match="unknown impl 'compiled'"):
        build_model(num_classes=60, layout="ntu", impl="compiled")


@pytest.mark.parametrize("impl", IMPLS)
def test_other_input_channels(impl):
    model = build_model(num_classes=3, layout="ntu", in_channels=6, impl=impl).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 6, 8, 25, 2)).shape == (2, 3)
