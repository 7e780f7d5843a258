"""Training with every backbone: presets with the published recipes, the cosine schedule,
InfoGCN's objective, MMCL (FAM + FRM) on any backbone with widths from the model, and the
parameters/FLOPs line of a run."""

from __future__ import annotations

import json
import math

import pytest
import torch

from data_manifest.workdir import Workdir
from mmcl_factories import write_llm_features, write_rgb_features
from model_factories import single_thread  # noqa: F401 (autouse)
from train import checkpoint as ckpt
from train.config import resolve_config
from train.errors import ConfigError
from train.loop import MODEL_FILE, read_metrics, train
from train.modeling import build_backbone
from train.objective_infogcn import InfoGCNObjective, InfoGCNSettings
from train.objectives import build_objective
from train.presets import PRESETS
from train.schedule import WarmupCosineFactor, build_scheduler
from train_factories import make_workdir, tiny_config


def test_backbone_presets_carry_the_published_recipes():
    stgcn = resolve_config("ntu60-xsub-stgcn")
    assert (stgcn.model.name, stgcn.model.dropout, stgcn.optim.weight_decay) == \
        ("stgcn", 0.5, 1e-4)
    assert (stgcn.schedule.epochs, stgcn.schedule.warmup_epochs, stgcn.schedule.steps) == \
        (80, 0, [10, 50])
    hdgcn = resolve_config("ntu120-xsub-hdgcn")
    assert (hdgcn.model.name, hdgcn.model.options, hdgcn.model.num_classes) == \
        ("hdgcn", {"com": 21}, 120)
    assert (hdgcn.schedule.kind, hdgcn.schedule.epochs, hdgcn.schedule.min_lr_ratio) == \
        ("cosine", 90, 0.001)
    info = resolve_config("ntu60-xview-infogcn")
    assert (info.model.name, info.objective.name, info.optim.batch_size,
            info.optim.weight_decay, info.schedule.steps) == \
        ("infogcn", "infogcn", 128, 5e-4, [90, 100])
    # NW-UCLA: no published recipe for these backbones, CTR-GCN's UCLA schedule stays
    ucla = resolve_config("nw-ucla-hdgcn")
    assert (ucla.model.name, ucla.model.layout, ucla.schedule.steps, ucla.data.window) == \
        ("hdgcn", "nw-ucla", [50], 52)
    # and the dataset part of a preset is the dataset's
    assert resolve_config("ntu60-xsub-hdgcn").data == resolve_config("ntu60-xsub").data


@pytest.mark.parametrize("name", [name for name in PRESETS if name.endswith("gcn")
                                  and name.count("-") >= 2])
def test_every_backbone_preset_builds_its_model(name):
    config = resolve_config(name)
    with torch.device("meta"):
        model = build_backbone(config)
    assert model.__class__.__name__.lower() == config.model.name
    assert model.num_classes == config.model.num_classes


def test_cosine_schedule_after_warm_up():
    factor = WarmupCosineFactor(warmup_epochs=5, epochs=90, min_ratio=0.001)
    assert [factor(e) for e in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert factor(5) == pytest.approx(1.0)
    assert factor(47.5) == pytest.approx(0.001 + 0.999 * 0.5)
    assert factor(89) == pytest.approx(0.001 + 0.999 * 0.5 * (1 + math.cos(math.pi * 84 / 85)))
    assert factor(90) == pytest.approx(0.001) and factor(120) == pytest.approx(0.001)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = build_scheduler(optimizer, resolve_config("ntu60-xsub-hdgcn").schedule)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="schedule.kind must be one of step, cosine"):
        resolve_config("ntu60-xsub", overrides=["schedule.kind=linear"])


def test_model_name_and_options_are_checked_by_the_config():
    with pytest.raises(ConfigError, match="model.name must be one of ctrgcn, stgcn, hdgcn, "
                                          "infogcn, not 'gcn'"):
        resolve_config("ntu60-xsub", overrides=["model.name=gcn"])
    config = resolve_config("ntu60-xsub-hdgcn", overrides=["model.options.depth=3"])
    with pytest.raises(ConfigError, match="model: model 'hdgcn' has no option 'depth'"):
        build_backbone(config)


def test_infogcn_objective_is_the_published_loss():
    torch.manual_seed(0)
    objective = InfoGCNObjective(InfoGCNSettings(), num_classes=4, latent_dim=6)
    prior = objective.z_prior
    # orthogonal rows scaled by the gain
    torch.testing.assert_close(prior @ prior.T, 9 * torch.eye(4), atol=1e-5, rtol=1e-5)

    class Latent(torch.nn.Module):
        def __init__(self, logits, z):
            super().__init__()
            self.logits, self.z = logits, z

        def forward_latent(self, x):
            return self.logits, self.z

    logits, z = torch.randn(5, 4), torch.randn(5, 6)
    label = torch.tensor([0, 0, 2, 3, 3])
    out = objective({"x": None, "label": label}, Latent(logits, z))
    log_probs = logits.log_softmax(-1)
    smoothed = (0.9 * -log_probs[range(5), label] - 0.1 * log_probs.mean(-1)).mean()
    means = torch.stack([z[:2].mean(0), z[2], z[3:].mean(0)])
    prior_term = ((means - prior[[0, 2, 3]]) ** 2).mean()
    torch.testing.assert_close(out.losses["cls"], smoothed)
    torch.testing.assert_close(out.losses["prior"], 0.1 * prior_term)
    torch.testing.assert_close(out.losses["mean"], 1e-4 * z.mean(0).norm())


def test_infogcn_objective_needs_the_infogcn_backbone():
    config = resolve_config("ntu60-xsub", overrides=["objective.name=infogcn"])
    with pytest.raises(ConfigError, match="needs model.name infogcn"):
        build_objective(config)
    with pytest.raises(ConfigError, match="no option 'lambda_3'"):
        build_objective(resolve_config("ntu60-xsub-infogcn",
                                       overrides=["objective.options.lambda_3=1"]))


@pytest.fixture(scope="module")
def features_workdir(tmp_path_factory):
    root = make_workdir(tmp_path_factory.mktemp("backbones") / "wd", num_classes=3,
                        per_class_view=2)
    workdir = Workdir(root)
    write_rgb_features(workdir, width=10)
    write_llm_features(workdir, width=6, num_questions=2)
    return workdir


@pytest.mark.parametrize("name", ["stgcn", "hdgcn", "infogcn"])
def test_mmcl_trains_any_backbone_with_its_own_feature_width(features_workdir, tmp_path, name):
    """No objective.options.skeleton_width: FAM takes the backbone's feature_dim.
    (Gradients are clipped: InfoGCN's classifier starts with weights of std
    sqrt(2 / classes), steep for 3 classes at batch 4.)"""
    config = tiny_config(features_workdir.path, epochs=1, overrides=[
        f"model.name={name}", "objective.name=mmcl", "optim.grad_clip=1.0"])
    result = train(config, tmp_path / "run")
    line = read_metrics(result.run_dir)[-1]
    assert set(line["losses"]) == {"cls", "contrastive", "refine"}
    assert all(math.isfinite(value) for value in line["losses"].values())
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(result.run_dir, "last"))
    assert tuple(state["objective"]["fam.mlp.2.weight"].shape) == (256, 256)
    assert state["model_info"]["name"] == name
    # no fast path: the reference code ran and is what the records say (model.impl=fast)
    assert config.model.impl == "fast" and state["model_info"]["impl"] == "reference"
    cost = json.loads((result.run_dir / MODEL_FILE).read_text())
    assert cost["model"]["name"] == name and cost["input_shape"] == [3, 16, 20, 1]
    assert cost["model"]["impl"] == "reference"
    assert cost["parameters"] == sum(p.numel() for p in build_backbone(config).parameters())
    assert cost["flops_per_sample"] > 1e6


def test_infogcn_preset_trains_with_its_objective(features_workdir, tmp_path, capsys):
    config = tiny_config(features_workdir.path, preset="nw-ucla-infogcn", epochs=1,
                         overrides=["run.progress=true", "optim.grad_clip=1.0",
                                    "model.num_classes=3"])
    result = train(config, tmp_path / "run")
    line = read_metrics(result.run_dir)[-1]
    assert set(line["losses"]) == {"cls", "prior", "mean"}
    state = ckpt.load_checkpoint(ckpt.checkpoint_path(result.run_dir, "last"))
    assert tuple(state["objective"]["z_prior"].shape) == (3, 256)
    assert "model infogcn: 1.53 M parameters, 0.35 GFLOPs per sample" in capsys.readouterr().out


def test_the_recorded_impl_is_the_one_that_runs(tmp_path):
    """Regression: model_info recorded impl "fast" for ST-GCN, HD-GCN and InfoGCN, which
    have no fast path and run the reference code. Checkpoints that say so still load."""
    from model_factories import make_run_dir
    from train.models.load_run import load_run
    from train.modeling import model_info
    for name, impl, expected in (("ctrgcn", "fast", "fast"), ("ctrgcn", "reference",
                                 "reference"), ("stgcn", "fast", "reference"),
                                 ("hdgcn", "fast", "reference"),
                                 ("infogcn", "fast", "reference")):
        config = resolve_config("nw-ucla", overrides=[f"model.name={name}",
                                                      f"model.impl={impl}"])
        assert model_info(config)["impl"] == expected, (name, impl)
    run = make_run_dir(tmp_path, name="stgcn")
    last = ckpt.checkpoint_path(run, "last")
    state = ckpt.load_checkpoint(last)
    state["model_info"]["impl"] = "fast"                     # as older versions wrote it
    ckpt.save_checkpoint(last, state)
    assert load_run(run, "last").checkpoint == last
