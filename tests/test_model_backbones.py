"""Every backbone keeps the model contract: shapes, the global feature the logits come
from, feature_dim, TorchScript export, gradients everywhere, options and bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from model_factories import single_thread, subprocess_env  # noqa: F401 (autouse)
from train.models import MODEL_NAMES, build_model

NEW = ("stgcn", "hdgcn", "infogcn")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_every_backbone_is_registered():
    assert MODEL_NAMES == ("ctrgcn", "stgcn", "hdgcn", "infogcn")


def _classifier(model, feature):
    """The logits computed from the global feature by the model's own head."""
    if model.__class__.__name__ == "STGCN":
        return model.fcn(feature[:, :, None, None]).flatten(1)
    if model.__class__.__name__ == "InfoGCN":
        return model.head(feature)[0]
    return model.fc(feature)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("layout, joints, persons", [("ntu", 25, 2), ("nw-ucla", 20, 1)])
def test_forward_and_features(name, layout, joints, persons):
    model = build_model(name, num_classes=7, layout=layout, num_persons=persons).eval()
    x = torch.randn(3, 3, 16, joints, persons)
    with torch.no_grad():
        logits = model(x)
        again, feature = model.forward_features(x)
        assert logits.shape == (3, 7) and torch.isfinite(logits).all()
        assert torch.equal(logits, again)
        assert feature.shape == (3, model.feature_dim) and model.feature_dim == 256
        torch.testing.assert_close(logits, _classifier(model, feature))


@pytest.mark.filterwarnings("ignore:.*torch.jit.script.*deprecated")
@pytest.mark.parametrize("name", ["stgcn", "infogcn"])   # HD-GCN: test_export_backbones
def test_torchscript_export_matches_eager(name):
    model = build_model(name, num_classes=5, layout="ntu").eval()
    x = torch.randn(2, 3, 12, 25, 2)
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x))


@pytest.mark.parametrize("name", NEW)
def test_a_training_step_reaches_every_parameter(name):
    model = build_model(name, num_classes=4, layout="nw-ucla", num_persons=1,
                        dropout=0.2).train()
    x = torch.randn(4, 3, 12, 20, 1)
    loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name, expected", [("stgcn", 3_098_832), ("hdgcn", 1_659_980),
                                            ("infogcn", 1_556_807)])
def test_parameter_counts_match_the_papers(name, expected):
    """ST-GCN ~3.1 M, HD-GCN 1.66 M, InfoGCN 1.5 M parameters (NTU60 models)."""
    model = build_model(name, num_classes=60, layout="ntu")
    assert sum(p.numel() for p in model.parameters()) == expected


def test_stgcn_dropout_is_in_every_block_but_the_first():
    model = build_model("stgcn", num_classes=3, layout="ntu", dropout=0.5)
    rates = [block.tcn[4].p for block in model.st_gcn_networks]
    assert rates == [0.0] + [0.5] * 9


def test_infogcn_samples_its_latent_in_training_only():
    model = build_model("infogcn", num_classes=3, layout="ntu")
    x = torch.randn(2, 3, 8, 25, 2)
    model.eval()
    with torch.no_grad():
        logits, z = model.forward_latent(x)
        _, feature = model.forward_features(x)
        mu = model.fc_mu(torch.relu(model.fc(feature)))
    torch.testing.assert_close(z, mu)
    torch.testing.assert_close(logits, model.decoder(mu))
    model.train()
    first, second = model.forward_latent(x)[1], model.forward_latent(x)[1]
    assert not torch.allclose(first, second)


@pytest.mark.parametrize("name, options, message", [
    ("stgcn", {"edge_importance": "yes"}, "edge_importance must be true or false"),
    ("stgcn", {"max_hop": 2}, "has no option 'max_hop'"),
    ("hdgcn", {"com": 26}, "com 26 is not a joint"),
    ("hdgcn", {"com": 21, "groups": [[1]]}, "not both"),
    ("hdgcn", {"groups": "1,2"}, "list of lists"),
    ("infogcn", {"k": 0}, "k must be a positive integer"),
    ("infogcn", {"noise_ratio": -1}, "noise_ratio must be a number"),
    ("ctrgcn", {"com": 1}, "model 'ctrgcn' has no option 'com'"),
])
def test_bad_options_are_named(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, num_classes=3, layout="ntu", options=options)


@pytest.mark.parametrize("name", NEW)
def test_bad_input_is_refused_with_a_clear_message(name):
    model = build_model(name, num_classes=3, layout="ntu")
    with pytest.raises(ValueError, match=r"\(N, C, T, V, M\)"):
        model(torch.randn(2, 3, 8, 25))
    with pytest.raises(ValueError, match="V=25"):
        model(torch.randn(2, 3, 8, 20, 2))


def test_the_config_checks_model_names_without_importing_torch():
    """`train run --help` and config checks stay light: the registry is plain data."""
    code = ("import sys, train.config; from train.models import MODEL_NAMES; "
            "print('torch' in sys.modules, len(MODEL_NAMES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=subprocess_env()).stdout.split()
    assert out == ["False", "4"]
