"""Joining cached RGB and LLM features to samples by id, and refusing caches that do not fit."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from data_manifest.errors import DataError, MissingCacheError, StaleCacheError
from data_manifest.schemas import RGB_FEATURES
from train.data.collate import collate_samples
from train.mmcl.features import (IMAGE_KEY, LLM_COUNTS_KEY, LLM_KEY, RGB_KEY, FeatureSpec,
                                 FeatureStore)
from train.mmcl.frm import split_questions

from mmcl_factories import (llm_values, make_workdir, rgb_vector, write_llm_features,
                            write_rgb_features, write_stitch)


@pytest.fixture
def workdir(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=10, shard_size=4)
    write_rgb_features(workdir, width=16)
    write_llm_features(workdir, width=12, num_questions=2)
    return workdir


def test_features_join_by_id_across_shards(workdir):
    store = FeatureStore(workdir)
    assert store.spec == FeatureSpec(
        rgb_cache="default", rgb_model="tiny-resnet", rgb_width=16,
        rgb_fingerprint=store.rgb.spec.fingerprint, llm_cache="default", llm_model="tiny-blip",
        llm_width=12, num_questions=2, llm_level="pooled",
        llm_fingerprint=store.llm.spec.fingerprint)
    assert store.keys() == [RGB_KEY, LLM_KEY]
    for position in (0, 5, 9):                      # shards 0, 1 and 2
        sample_id = workdir.samples[position].id
        values = store.get(sample_id)
        np.testing.assert_array_equal(values[RGB_KEY], rgb_vector(position, 16))
        np.testing.assert_array_equal(values[LLM_KEY], llm_values(position, 12, 2)["pooled"])
        assert values[LLM_KEY].dtype == np.float32
    sources = store.sources()
    assert sources[RGB_KEY].get(workdir.samples[3].id).shape == (16,)


def test_token_level_features_round_trip_through_the_trainers_collate(workdir):
    store = FeatureStore(workdir, llm_level="token", rgb=False)
    assert store.keys() == [LLM_KEY, LLM_COUNTS_KEY]
    items = []
    for position in range(4):
        values = store.get(workdir.samples[position].id)
        assert values[LLM_KEY].dtype == np.float16
        items.append({key: torch.from_numpy(value) for key, value in values.items()})
    batch = collate_samples(items)
    hidden, mask = split_questions(batch[LLM_KEY].float(), batch[LLM_COUNTS_KEY])
    for position in range(4):
        expected = llm_values(position, 12, 2)
        start = 0
        for k, count in enumerate(expected["token_counts"]):
            assert int(mask[position, k].sum()) == count
            np.testing.assert_array_equal(
                hidden[position, k, :count].numpy(),
                expected["hidden"][start:start + count].astype(np.float32))
            start += count


def test_missing_samples_are_listed_with_the_cache_and_reason(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=8)
    ids = [s.id for s in workdir.samples]
    write_rgb_features(workdir, skip=[ids[1], ids[6]], fail={ids[2]: "corrupt image"})
    write_llm_features(workdir, skip=[ids[6]])
    store = FeatureStore(workdir)
    with pytest.raises(DataError) as caught:
        store.join(ids)
    message = str(caught.value)
    assert "3 of 8 sample(s) of the training split are missing from the rgb-features/default"\
        in message
    assert f"{ids[2]} (corrupt image)" in message and ids[1] in message
    assert "1 of 8 sample(s) of the training split are missing from the llm-features/default"\
        in message
    assert "--skip-missing" in message
    kept, report = store.join(ids, skip_missing=True)
    assert kept == [i for i in ids if i not in (ids[1], ids[2], ids[6])]
    assert len(report) == 3
    assert report.summary() == ("skipped 3 sample(s) without features (3 missing from "
                                "rgb-features/default; 1 missing from llm-features/default)")
    assert store.sources()[RGB_KEY].missing(ids) == [ids[1], ids[2], ids[6]]


def test_a_cache_from_another_workdir_is_refused_naming_both_manifests(tmp_path):
    ours = make_workdir(tmp_path / "ours", num_samples=8)
    theirs = make_workdir(tmp_path / "theirs", num_samples=9)
    write_llm_features(ours)
    write_rgb_features(theirs)
    shutil.copytree(theirs.cache_dir(RGB_FEATURES).path, ours.cache_dir(RGB_FEATURES).path)
    with pytest.raises(DataError) as caught:
        FeatureStore(ours)
    message = str(caught.value)
    assert "rgb-features cache 'default'" in message and "another manifest" in message
    assert theirs.info.manifest_digest[:12] in message
    assert ours.info.manifest_digest[:12] in message


def test_a_cache_made_with_another_model_names_both(workdir):
    with pytest.raises(DataError, match="made with model 'tiny-blip', but the run's config "
                                        "names 'Salesforce/blip-vqa-base'"):
        FeatureStore(workdir, llm_cache="default", llm_model="Salesforce/blip-vqa-base")
    with pytest.raises(DataError, match="config names model 'resnet-50', but no rgb-features "
                                        "cache .* the caches are: default \\(model "
                                        "tiny-resnet\\)"):
        FeatureStore(workdir, rgb_model="resnet-50")
    assert FeatureStore(workdir, llm_model="tiny-blip").spec.llm_model == "tiny-blip"


def test_a_missing_cache_says_which_stage_to_run(tmp_path):
    workdir = make_workdir(tmp_path / "wd")
    write_rgb_features(workdir, name="resnet")
    with pytest.raises(MissingCacheError, match="has no llm-features cache; build one with "
                                                "`pipeline cache-llm-features"):
        FeatureStore(workdir)
    with pytest.raises(MissingCacheError, match="'default' .* does not exist; available "
                                                "rgb-features caches: resnet"):
        FeatureStore(workdir, rgb_cache="default", llm=False)
    assert FeatureStore(workdir, llm=False).spec.rgb_cache == "resnet"    # the only one


def test_several_caches_are_chosen_by_name_or_model(tmp_path):
    workdir = make_workdir(tmp_path / "wd")
    write_rgb_features(workdir, name="resnet-1234", model="microsoft/resnet-50",
                       revision="abcdef0123", width=20)
    write_rgb_features(workdir, name="convnext-5678", model="facebook/convnext-tiny", width=24)
    with pytest.raises(DataError, match=r"several rgb-features caches: convnext-5678 \(model "
                                        r"facebook/convnext-tiny\), resnet-1234 \(model "
                                        r"microsoft/resnet-50@abcdef0123\); choose one in the "
                                        r"config \(objective.options.rgb_cache\)"):
        FeatureStore(workdir, llm=False)
    assert FeatureStore(workdir, llm=False, rgb_cache="convnext-5678").spec.rgb_width == 24
    by_model = FeatureStore(workdir, llm=False, rgb_model="microsoft/resnet-50")
    assert (by_model.spec.rgb_cache, by_model.spec.rgb_width) == ("resnet-1234", 20)
    assert by_model.spec.rgb_model == "microsoft/resnet-50@abcdef0123"
    assert FeatureStore(workdir, llm=False, rgb_model="microsoft/resnet-50@abcd").spec.rgb_width \
        == 20
    with pytest.raises(DataError, match="config names model 'google/vit', but no "
                                        "rgb-features cache"):
        FeatureStore(workdir, llm=False, rgb_model="google/vit")
    with pytest.raises(DataError, match="made with model 'microsoft/resnet-50@abcdef0123', "
                                        "but the run's config names 'microsoft/resnet-50@ff'"):
        FeatureStore(workdir, llm=False, rgb_cache="resnet-1234",
                     rgb_model="microsoft/resnet-50@ff")


def test_k_that_differs_within_the_cache_is_an_error(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=8)
    ids = [s.id for s in workdir.samples]

    def values(index, sample):
        # the spec declares 2 questions; sample 5 holds 3
        return llm_values(index, 12, 3 if index == 5 else 2)
    write_llm_features(workdir, num_questions=2, values=values)
    store = FeatureStore(workdir, rgb=False)
    assert store.get(ids[4])[LLM_KEY].shape == (2, 12)
    with pytest.raises(DataError, match=f"sample {ids[5]}: LLM features with K=3 .* K=2"):
        store.get(ids[5])
    token_store = FeatureStore(workdir, rgb=False, llm_level="token")
    with pytest.raises(DataError, match="K=3 .* K=2"):
        token_store.get(ids[5])


def test_k_declared_in_the_spec_must_match_the_stored_features(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=4)
    write_llm_features(workdir, num_questions=2, values=lambda i, s: llm_values(i, 12, 1))
    with pytest.raises(DataError, match="declares K=2 questions in its spec, but sample .* "
                                        "holds K=1"):
        FeatureStore(workdir, rgb=False)


def test_feature_caches_built_on_different_stitch_versions_are_refused(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=4)
    write_rgb_features(workdir, upstream={"stitch/default": "aaaa"})
    write_llm_features(workdir, upstream={"stitch/default": "bbbb"})
    with pytest.raises(StaleCacheError, match="made from stitch/default aaaa, the "
                                              "llm-features cache from stitch/default bbbb"):
        FeatureStore(workdir)


def test_feature_cache_older_than_the_stitch_cache_is_refused(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=4)
    stitch = write_stitch(workdir)
    write_rgb_features(workdir, upstream={"stitch/default": "0123456789abcdef"})
    current = workdir.cache_dir("stitch").spec().fingerprint
    with pytest.raises(StaleCacheError, match=f"stitch/default 0123456789abcdef, but that "
                                              f"cache is now {current}"):
        FeatureStore(workdir, llm=False)
    write_rgb_features(workdir, upstream={"stitch/default": current})
    assert FeatureStore(workdir, llm=False).spec.rgb_width == 16
    assert stitch.is_dir()


def test_images_for_the_online_encoder(tmp_path):
    workdir = make_workdir(tmp_path / "wd", num_samples=4)
    write_stitch(workdir)
    store = FeatureStore(workdir, rgb=False, llm=False, image=True, image_size=(40, 60))
    image = store.get(workdir.samples[2].id)[IMAGE_KEY]
    assert image.shape == (3, 40, 60) and image.dtype == np.float32
    assert -2.2 < image.min() < image.max() < 2.7          # ImageNet-normalised
