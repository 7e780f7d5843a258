"""Loading tiny models through the real loading code; batched == one at a time; bad models."""

import json

import numpy as np
import pytest
import torch

from features_factories import (QUESTION, models, one_torch_thread,  # noqa: F401 (fixtures)
                                random_images)
from pipeline.models.errors import ModelError
from pipeline.models.image_encoder import ImageEncoder, check_encoder
from pipeline.models.registry import BLIP_VQA, CHAT, load_vlm, vlm_kind
from pipeline.models.source import resolve_model
from pipeline.models.vlm import GenerationSettings

QUESTIONS = [QUESTION, "what is the person doing?"]     # different token lengths: padding


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _load(path, **kwargs):
    settings = GenerationSettings(max_new_tokens=kwargs.pop("max_new_tokens", 6),
                                  layer=kwargs.pop("layer", -1))
    return load_vlm(resolve_model(str(path)), device="cpu", dtype="float32",
                    settings=settings, **kwargs)


def _assert_batched_equals_single(model, images, questions):
    batched = model.answer(images, questions)
    assert len(batched) == len(images) and all(len(a) == len(questions) for a in batched)
    for index, image in enumerate(images):
        for k, question in enumerate(questions):
            alone = model.answer([image], [question])[0][0]
            together = batched[index][k]
            assert together.text == alone.text
            np.testing.assert_array_equal(together.token_ids, alone.token_ids)
            assert together.hidden.shape == (len(alone.token_ids), model.hidden_size)
            np.testing.assert_allclose(together.hidden, alone.hidden, atol=1e-4, rtol=1e-4)
    return batched


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_blip_batched_equals_one_at_a_time(models, keep_aspect):
    model = _load(models["blip-vqa"], keep_aspect=keep_aspect)
    assert model.hidden_size == 32
    images = random_images(3, width=200, height=48)       # wide temporal images
    batched = _assert_batched_equals_single(model, images, QUESTIONS)
    # the random model still answers differently for different images
    assert len({tuple(a[0].token_ids) for a in batched}) > 1


def test_blip_keep_aspect_feeds_a_wide_input(models):
    model = _load(models["blip-vqa"], keep_aspect=True)
    (members, pixels), = model._pixel_groups(random_images(2, width=200, height=48))
    assert members == [0, 1]
    assert pixels.shape == (2, 3, 64, 272)          # height 64, width 200*64/48 -> x16
    square = _load(models["blip-vqa"])._pixel_groups(random_images(1))[0][1]
    assert square.shape == (1, 3, 64, 64)


def test_qwen2_vl_batched_equals_one_at_a_time(models):
    model = _load(models["qwen2-vl"])
    assert model.hidden_size == 32
    images = random_images(2, width=200, height=56) + random_images(1, width=96, height=96)
    _assert_batched_equals_single(model, images, QUESTIONS)


def test_answer_is_cut_at_end_of_sequence_and_max_tokens(models):
    model = _load(models["qwen2-vl"], max_new_tokens=3)
    for per_image in model.answer(random_images(4, seed=3), QUESTIONS):
        for answer in per_image:
            assert len(answer.token_ids) <= 3
            assert not set(answer.token_ids.tolist()) & model.stop_ids


def test_layer_selects_a_different_hidden_state(models):
    image = random_images(1)
    last = _load(models["blip-vqa"]).answer(image, [QUESTION])[0][0]
    embed = _load(models["blip-vqa"], layer=0).answer(image, [QUESTION])[0][0]
    np.testing.assert_array_equal(last.token_ids, embed.token_ids)
    assert not np.allclose(last.hidden, embed.hidden)
    with pytest.raises(ModelError, match="layer 7 does not exist.*2 layers"):
        _load(models["blip-vqa"], layer=7)


def test_model_sources_record_name_and_revision(models):
    source = resolve_model(str(models["blip-vqa"]))
    assert source.is_local and source.name == str(models["blip-vqa"].resolve())
    assert source.revision.startswith("local-") and source.model_type == "blip"
    assert vlm_kind(source) == BLIP_VQA
    assert vlm_kind(resolve_model(str(models["qwen2-vl"]))) == CHAT


def test_missing_model_directory(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "empty"))


def test_unknown_hub_id_offline():
    with pytest.raises(ModelError, match="cannot find model 'nobody/no-such-model-xyz'"):
        resolve_model("nobody/no-such-model-xyz")


def test_unsupported_model_lists_what_is_supported(models):
    with pytest.raises(ModelError, match="not a supported vision-language model.*BLIP VQA.*"
                                         "qwen2_vl"):
        vlm_kind(resolve_model(str(models["resnet"])))


def test_blip_captioning_checkpoint_is_refused(tmp_path, models):
    config = json.loads((models["blip-vqa"] / "config.json").read_text())
    config["architectures"] = ["BlipForConditionalGeneration"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="not visual question answering"):
        vlm_kind(resolve_model(str(tmp_path)))


def test_remote_code_needs_the_flag(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "model_type": "my_custom_vlm", "architectures": ["MyVlm"],
        "auto_map": {"AutoModelForImageTextToText": "modeling_my.MyVlm"}}))
    source = resolve_model(str(tmp_path))
    assert source.needs_remote_code
    with pytest.raises(ModelError, match="--trust-remote-code"):
        vlm_kind(source)
    assert vlm_kind(source, trust_remote_code=True) == CHAT


def test_local_revision_changes_with_the_weights(tmp_path, models):
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(models["resnet"], copy)
    before = resolve_model(str(copy)).revision
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert resolve_model(str(copy)).revision != before


@pytest.mark.parametrize("keep_aspect", [False, True])
def test_image_encoder_pooled_and_logits(models, keep_aspect):
    source = resolve_model(str(models["resnet"]))
    images = random_images(3, width=200, height=48)
    widths = {}
    for output in ("pooled", "logits"):
        encoder = ImageEncoder(source, device="cpu", dtype=torch.float32, output=output,
                               keep_aspect=keep_aspect)
        batched = encoder.encode(images)
        alone = np.stack([encoder.encode([image])[0] for image in images])
        assert batched.dtype == np.float32
        np.testing.assert_allclose(batched, alone, atol=1e-5)
        assert not np.allclose(batched[0], batched[1])
        widths[output] = batched.shape[1]
    assert widths == {"pooled": 16, "logits": 10}


def test_image_encoder_errors(models, tmp_path):
    with pytest.raises(ModelError, match="not a supported image encoder.*resnet"):
        check_encoder(resolve_model(str(models["qwen2-vl"])), "pooled")
    config = json.loads((models["resnet"] / "config.json").read_text())
    config["architectures"] = ["ResNetModel"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="no classification head.*--output pooled"):
        check_encoder(resolve_model(str(tmp_path)), "logits")
