"""The MMCL objective: its loss terms, its switches, its options and its checkpoint guard."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from data_manifest.workdir import Workdir
from train.data.collate import collate_samples
from train.errors import CheckpointError, ConfigError, TrainError
from train.mmcl.contrastive import symmetric_contrastive_loss
from train.mmcl.features import LLM_COUNTS_KEY, LLM_KEY, RGB_KEY, FeatureSpec, FeatureStore
from train.mmcl.objective import MMCLObjective, MMCLSettings, build_mmcl

from mmcl_factories import write_llm_features, write_rgb_features
from train_factories import TinyGCN, make_workdir, tiny_config

NUM_CLASSES = 3


@pytest.fixture
def workdir(tmp_path):
    root = make_workdir(tmp_path / "wd", num_classes=NUM_CLASSES, per_class_view=2)
    workdir = Workdir(root)
    write_rgb_features(workdir, width=10)
    write_llm_features(workdir, width=6, num_questions=2)
    return workdir


def make_batch(workdir: Workdir, store: FeatureStore, size: int = 6) -> dict:
    items = []
    generator = torch.Generator().manual_seed(0)
    for sample in workdir.samples[:size]:
        item = {"x": torch.randn(3, 8, 20, 1, generator=generator), "label": sample.label,
                "id": sample.id}
        item.update({key: torch.from_numpy(value) for key, value in store.get(sample.id).items()})
        items.append(item)
    return collate_samples(items)


def settings(**options) -> MMCLSettings:
    return MMCLSettings.from_dict({"skeleton_width": 16, **options})


def test_losses_are_the_weighted_terms_of_the_paper(workdir):
    torch.manual_seed(0)
    store = FeatureStore(workdir)
    objective = MMCLObjective(settings(), store.spec, NUM_CLASSES)
    model = TinyGCN(NUM_CLASSES, 20)
    batch = make_batch(workdir, store)
    out = objective(batch, model)
    assert list(out.losses) == ["cls", "contrastive", "refine"]
    logits, feature = model.forward_features(batch["x"])
    assert torch.allclose(out.logits, logits)
    label = batch["label"]
    assert out.losses["cls"].item() == pytest.approx(F.cross_entropy(logits, label).item(),
                                                     rel=1e-6)
    projected = objective.fam.mlp(batch[RGB_KEY])
    assert out.losses["contrastive"].item() == pytest.approx(
        0.1 * symmetric_contrastive_loss(feature, projected, 0.4).item(), rel=1e-5)
    with torch.no_grad():
        objective.frm.matrices.copy_(torch.tensor([[2.0, 0.5, 1.0], [0.1, 3.0, 1.0]]))
    out = objective(batch, model)
    weights = objective.frm.weights(batch[LLM_KEY])
    refined = (weights[:, :1] * objective.frm.matrices[0]
               + weights[:, 1:] * objective.frm.matrices[1]) * logits
    assert out.losses["refine"].item() == pytest.approx(
        0.2 * F.cross_entropy(refined, label).item(), rel=1e-5)


def test_token_level_features_train_the_same_modules(workdir):
    store = FeatureStore(workdir, llm_level="token")
    objective = MMCLObjective(settings(llm_level="token"), store.spec, NUM_CLASSES)
    batch = make_batch(workdir, store)
    assert batch[LLM_KEY].dtype == torch.float16 and batch[LLM_COUNTS_KEY].shape == (6, 2)
    out = objective(batch, TinyGCN(NUM_CLASSES, 20))
    assert torch.isfinite(out.losses["refine"])


def test_switches_remove_modules_and_their_losses(workdir):
    store = FeatureStore(workdir)
    model = TinyGCN(NUM_CLASSES, 20)
    batch = make_batch(workdir, store)
    no_fam = MMCLObjective(settings(fam=False), store.spec, NUM_CLASSES)
    assert no_fam.fam is None and list(no_fam(batch, model).losses) == ["cls", "refine"]
    no_frm = MMCLObjective(settings(frm=False), store.spec, NUM_CLASSES)
    assert no_frm.frm is None and list(no_frm(batch, model).losses) == ["cls", "contrastive"]
    plain = MMCLObjective(settings(fam=False, frm=False), FeatureSpec(), NUM_CLASSES)
    assert list(plain.parameters()) == []
    out = plain(batch, model)
    assert list(out.losses) == ["cls"]
    assert out.losses["cls"].item() == pytest.approx(
        F.cross_entropy(model(batch["x"]), batch["label"]).item(), rel=1e-6)
    assert settings(fam=False).store_kwargs()["rgb_cache"] is None
    assert settings(frm=False).store_kwargs()["llm_cache"] is None


def test_a_few_steps_lower_every_loss(workdir):
    torch.manual_seed(1)
    store = FeatureStore(workdir)
    objective = MMCLObjective(settings(), store.spec, NUM_CLASSES)
    model = TinyGCN(NUM_CLASSES, 20)
    batch = make_batch(workdir, store, size=12)
    optimizer = torch.optim.SGD([*model.parameters(), *objective.parameters()], lr=0.1,
                                momentum=0.9)
    first = {k: v.item() for k, v in objective(batch, model).losses.items()}
    for _ in range(20):
        optimizer.zero_grad()
        losses = objective(batch, model).losses
        sum(losses.values()).backward()
        optimizer.step()
    last = {k: v.item() for k, v in objective(batch, model).losses.items()}
    for name in first:
        assert last[name] < first[name], name
    assert not torch.equal(objective.frm.matrices, torch.ones_like(objective.frm.matrices))


def test_options_are_checked():
    with pytest.raises(ConfigError, match="no option 'lambda_c'"):
        MMCLSettings.from_dict({"lambda_c": 0.1})
    with pytest.raises(ConfigError, match="tau must be positive"):
        MMCLSettings.from_dict({"tau": 0.0})
    with pytest.raises(ConfigError, match="llm_level must be 'pooled' or 'token'"):
        MMCLSettings.from_dict({"llm_level": "tokens"})
    defaults = MMCLSettings.from_dict(None)
    assert (defaults.lambda_contrastive, defaults.lambda_refine, defaults.tau) == (0.1, 0.2, 0.4)
    assert defaults.frm_matrices == 2 and defaults.fam and defaults.frm


def test_checkpoint_of_other_features_is_refused_naming_both(workdir, tmp_path):
    store = FeatureStore(workdir)
    objective = MMCLObjective(settings(), store.spec, NUM_CLASSES)
    objective.check_checkpoint(objective.state_dict(), "last.pt")      # its own: fine
    write_rgb_features(workdir, name="wide", width=12)
    wide = MMCLObjective(settings(rgb_cache="wide"), FeatureStore(
        workdir, rgb_cache="wide", llm_cache="default").spec, NUM_CLASSES)
    with pytest.raises(CheckpointError, match="RGB feature width \\(FAM input\\): last.pt "
                                              "has 10, the caches now give 12"):
        wide.check_checkpoint(objective.state_dict(), "last.pt")
    write_llm_features(workdir, name="three", width=6, num_questions=3)
    three = MMCLObjective(settings(llm_cache="three"), FeatureStore(
        workdir, rgb_cache="default", llm_cache="three").spec, NUM_CLASSES)
    with pytest.raises(CheckpointError, match="question count K: last.pt has 2, the caches "
                                              "now give 3"):
        three.check_checkpoint(objective.state_dict(), "last.pt")
    write_llm_features(workdir, name="other-model", width=6, model="tiny-qwen")
    other = MMCLObjective(settings(llm_cache="other-model"),
                          FeatureStore(workdir, rgb_cache="default",
                                       llm_cache="other-model").spec, NUM_CLASSES)
    old = store.spec.llm_fingerprint
    new = other.features.llm_fingerprint
    with pytest.raises(CheckpointError, match=f"llm-features cache 'other-model': last.pt was "
                                              f"trained on fingerprint {old}, the cache is now "
                                              f"{new}"):
        other.check_checkpoint(objective.state_dict(), "last.pt")


def test_builder_opens_the_caches_of_the_config(workdir):
    config = tiny_config(workdir.path, overrides=["objective.name=mmcl",
                                                  "objective.options.skeleton_width=16"])
    plan = build_mmcl(config)
    assert set(plan.extras) == {RGB_KEY, LLM_KEY}
    assert plan.objective.fam.in_features == 10 and plan.objective.frm.feature_dim == 6
    baseline = build_mmcl(tiny_config(workdir.path, overrides=[
        "objective.name=mmcl", "objective.options.fam=false", "objective.options.frm=false"]))
    assert baseline.extras == {}


def test_builder_lists_training_samples_without_features(tmp_path):
    root = make_workdir(tmp_path / "wd", num_classes=NUM_CLASSES, per_class_view=2)
    workdir = Workdir(root)
    train_ids = [s.id for s in workdir.samples if s.meta["view"] in (1, 2)]
    test_id = next(s.id for s in workdir.samples if s.meta["view"] == 3)
    write_rgb_features(workdir, skip=[train_ids[0], test_id])
    write_llm_features(workdir, fail={train_ids[3]: "generation failed"})
    config = tiny_config(root, overrides=["objective.name=mmcl"])
    with pytest.raises(TrainError) as caught:
        build_mmcl(config)
    message = str(caught.value)
    assert f"1 of {len(train_ids)} sample(s) of the training split are missing from the " \
           f"rgb-features/default cache: {train_ids[0]}" in message
    assert f"{train_ids[3]} (generation failed)" in message
    assert test_id not in message                 # test samples need no features
    plan = build_mmcl(tiny_config(root, overrides=["objective.name=mmcl",
                                                   "objective.options.skip_missing=true"]))
    assert plan.skip_missing


def test_builder_refuses_a_cache_of_another_model(workdir):
    config = tiny_config(workdir.path, overrides=[
        "objective.name=mmcl", "objective.options.llm_model=Salesforce/blip-vqa-base"])
    with pytest.raises(TrainError, match="config names model 'Salesforce/blip-vqa-base', "
                                         "but no llm-features cache .*default \\(model "
                                         "tiny-blip\\)"):
        build_mmcl(config)
