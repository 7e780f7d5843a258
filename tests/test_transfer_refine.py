"""`train eval --class-map --refine`: the run's FRM re-weights its logits with the target's
own LLM features; the target's cache must be made as the run's."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from data_manifest.errors import MissingCacheError
from data_manifest.schemas import LLM_FEATURES
from data_manifest.workdir import Workdir
from mmcl_factories import llm_values, model_params, write_cache, write_llm_features
from model_factories import single_thread  # noqa: F401 (autouse)
from train.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from train.errors import TrainError
from train.loop import train
from train.mmcl.features import FeatureStore
from train.mmcl.frm import FeatureRefinement
from train.transfer.evaluate import evaluate_transfer
from train_factories import make_workdir, tiny_builder, tiny_config

FRM_ONLY = ["objective.name=mmcl", "objective.options.skeleton_width=16",
            "objective.options.fam=false"]
CLASS_MAP = {0: 2, 1: 0, 2: 1}


@pytest.fixture(scope="module", params=["pooled", "token"])
def mmcl(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"refine-{request.param}")
    source = Workdir(make_workdir(root / "source", num_classes=3, per_class_view=3))
    write_llm_features(source, width=6, num_questions=2)
    config = tiny_config(source.path, epochs=3, overrides=[
        *FRM_ONLY, f"objective.options.llm_level={request.param}", "optim.lr=0.2"])
    train(config, root / "run", model_builder=tiny_builder)
    target = Workdir(make_workdir(root / "target", num_classes=3, per_class_view=2, seed=4))
    write_llm_features(target, width=6, num_questions=2, seed=9)
    return root, target, request.param


def _evaluate(root, target, **kwargs):
    return evaluate_transfer(root / "run", target.path, CLASS_MAP, model_builder=tiny_builder,
                             **kwargs)


def test_refined_scores_are_the_runs_frm_on_the_targets_features(mmcl, tmp_path):
    root, target, level = mmcl
    plain = _evaluate(root, target, output_dir=tmp_path / "plain")
    refined = _evaluate(root, target, refine=True, output_dir=tmp_path / "refined")
    assert refined.scores.ids == plain.scores.ids and plain.num_samples == 18
    assert refined.unrefined == {"top1": plain.top1, "top5": plain.top5}
    state = load_checkpoint(checkpoint_path(root / "run", "last"))
    frm = FeatureRefinement(6, 2, 3, token_pooling="mean")
    frm.load_state_dict({k[4:]: v for k, v in state["objective"].items()
                         if k.startswith("frm.")})
    store = FeatureStore(target, rgb=False, llm=True, llm_level=level)
    expected = []
    with torch.no_grad():
        for sample_id, logits in zip(plain.scores.ids, plain.scores.scores):
            values = {k: torch.from_numpy(np.asarray(v))[None]
                      for k, v in store.get(sample_id).items()}
            expected.append(frm(torch.from_numpy(logits)[None], values["llm_feature"],
                                values.get("llm_token_counts"))[0].numpy())
    np.testing.assert_allclose(refined.scores.scores, np.stack(expected), rtol=1e-5,
                               atol=1e-6)
    # the refinement does change the scores (trained class-score matrices, per sample)
    assert not np.allclose(refined.scores.scores, plain.scores.scores, rtol=1e-4)
    ratio = refined.scores.scores / plain.scores.scores
    assert not np.allclose(ratio, ratio[:1])
    metrics = json.loads((tmp_path / "refined" / "metrics.json").read_text())
    assert metrics["refine"] == {"llm_cache": "default", "llm_model": "tiny-blip",
                                 "llm_level": level, "feature_width": 6, "questions": 2}
    assert metrics["unrefined"] == refined.unrefined and metrics["top1"] == refined.top1
    recorded = state["objective_inputs"][LLM_FEATURES]
    assert recorded["cache"] == "default"
    assert recorded["params"]["questions"] == ["question 0?", "question 1?"]


def _other_cache(target, name, width=6, **changes):
    """An llm-features cache with write_llm_features's params but ``changes``."""
    params = {"model": model_params("tiny-blip"), "questions": ["question 0?", "question 1?"],
              "layer": -1, "hidden_dtype": "float16", **changes}
    write_cache(target, LLM_FEATURES, name, params, lambda i, s: llm_values(i, width, 2))


def test_the_targets_cache_must_be_made_as_the_runs(mmcl, tmp_path):
    root, _, _ = mmcl
    bare = Workdir(make_workdir(tmp_path / "bare", num_classes=3, per_class_view=1))
    with pytest.raises(MissingCacheError, match="has no llm-features cache: --refine needs the "
                                                "target's LLM features made as the run's "
                                                "\\(model 'tiny-blip', questions"):
        _evaluate(root, bare, refine=True, output_dir=tmp_path / "x")
    _other_cache(bare, "other", model=model_params("other-blip"), layer=-2)
    with pytest.raises(TrainError) as caught:
        _evaluate(root, bare, refine=True, output_dir=tmp_path / "x")
    text = str(caught.value)
    assert "no llm-features cache of" in text and "was made as the run's" in text
    assert "other: model 'other-blip' (run: 'tiny-blip'), layer -2 (run: -1)" in text
    _other_cache(bare, "wide", width=8)
    with pytest.raises(TrainError, match="built for LLM features of width 6 with 2 question"
                                         "\\(s\\); the llm-features cache 'wide' of .* holds "
                                         "width 8 with 2"):
        _evaluate(root, bare, refine=True, output_dir=tmp_path / "x")
    _other_cache(bare, "same", dtype="float32")
    with pytest.raises(TrainError, match="several llm-features caches .*: same, wide; choose "
                                         "one with --set objective.options.llm_cache=NAME"):
        _evaluate(root, bare, refine=True, output_dir=tmp_path / "x")
    chosen = _evaluate(root, bare, refine=True, output_dir=tmp_path / "x",
                       overrides={"objective": {"options": {"llm_cache": "same"}}})
    assert chosen.num_samples == 9
    assert any("computed in dtype 'float32', the run's in None" in w for w in chosen.warnings)


def test_samples_missing_from_the_targets_cache(mmcl, tmp_path):
    root, _, _ = mmcl
    target = Workdir(make_workdir(tmp_path / "t", num_classes=3, per_class_view=1))
    skipped = target.samples[4].id
    write_llm_features(target, width=6, num_questions=2, skip=[skipped])
    with pytest.raises(TrainError, match=f"--refine: 1 of the 9 evaluated samples have no "
                                         f"features in the llm-features cache 'default' "
                                         f"\\(e.g. {skipped}\\)"):
        _evaluate(root, target, refine=True, output_dir=tmp_path / "x")


def test_runs_without_frm_or_without_a_record(mmcl, tmp_path):
    root, target, _ = mmcl
    source = Workdir(root / "source")
    config = tiny_config(source.path, epochs=1, overrides=[
        *FRM_ONLY, "objective.options.frm=false"])
    train(config, tmp_path / "no-frm", model_builder=tiny_builder)
    with pytest.raises(TrainError, match="was trained without it \\(objective.options.frm is "
                                         "false, --no-frm\\)"):
        evaluate_transfer(tmp_path / "no-frm", target.path, CLASS_MAP, refine=True,
                          model_builder=tiny_builder)
    # a checkpoint from before runs recorded their caches: width and K are still checked
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    state = load_checkpoint(checkpoint_path(root / "run", "last"))
    del state["objective_inputs"]
    save_checkpoint(checkpoint_path(old, "last"), state)
    result = evaluate_transfer(old, target.path, CLASS_MAP, refine=True,
                               model_builder=tiny_builder)
    assert "did not record how its LLM features were made" in result.warnings[0]
