"""The optional image encoder fine-tuned online on the cached temporal images."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from data_manifest.workdir import Workdir
from train.data.collate import collate_samples
from train.errors import ConfigError
from train.mmcl.features import IMAGE_KEY, FeatureStore
from train.mmcl.objective import MMCLObjective, MMCLSettings, build_mmcl
from train.mmcl.online_encoder import (IMAGENET_MEAN, IMAGENET_STD, SmallCNN,
                                       build_online_encoder, decode_image)

from mmcl_factories import write_llm_features, write_stitch
from train_factories import TinyGCN, make_workdir, tiny_config


def test_decode_image_resizes_and_normalises():
    buffer = io.BytesIO()
    Image.new("RGB", (50, 20), (255, 128, 0)).save(buffer, format="PNG")
    image = decode_image(buffer.getvalue(), (30, 40))
    assert image.shape == (3, 30, 40) and image.dtype == np.float32
    expected = (np.array([255, 128, 0]) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(image.mean(axis=(1, 2)), expected, atol=1e-5)


def test_small_cnn_and_its_settings():
    encoder = build_online_encoder({"kind": "small-cnn", "out_features": 24,
                                    "widths": [4, 8]})
    assert isinstance(encoder, SmallCNN) and encoder.out_features == 24
    assert encoder(torch.randn(2, 3, 32, 48)).shape == (2, 24)
    with pytest.raises(ValueError, match="unknown small-cnn encoder setting"):
        build_online_encoder({"kind": "small-cnn", "depth": 3})
    with pytest.raises(ValueError, match="unknown image encoder kind 'inception'"):
        build_online_encoder({"kind": "inception"})


def test_transformers_backbone_from_a_config():
    encoder = build_online_encoder({
        "kind": "transformers", "image_size": [32, 32],
        "config": {"model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 16],
                   "depths": [1, 1], "layer_type": "basic"}})
    assert encoder.out_features == 16
    assert encoder(torch.randn(2, 3, 32, 48)).shape == (2, 16)
    with pytest.raises(ValueError, match="exactly one of 'name_or_path'"):
        build_online_encoder({"kind": "transformers"})


def test_online_fam_trains_the_encoder_with_the_gcn(tmp_path):
    torch.manual_seed(0)
    root = make_workdir(tmp_path / "wd", num_classes=3, per_class_view=2)
    workdir = Workdir(root)
    write_stitch(workdir)
    write_llm_features(workdir, width=6)
    options = {"skeleton_width": 16, "image_size": [32, 32],
               "online_encoder": {"kind": "small-cnn", "out_features": 20, "widths": [4, 8]}}
    config = tiny_config(root, overrides=["objective.name=mmcl"],
                         objective={"name": "mmcl", "options": options})
    plan = build_mmcl(config)
    assert set(plan.extras) == {IMAGE_KEY, "llm_feature"}
    objective = plan.objective
    assert objective.fam.in_features == 20
    store = FeatureStore(workdir, rgb=False, image=True, image_size=(32, 32))
    items = [{"x": torch.randn(3, 8, 20, 1), "label": s.label, "id": s.id,
              IMAGE_KEY: torch.from_numpy(store.get(s.id, [IMAGE_KEY])[IMAGE_KEY]),
              "llm_feature": torch.from_numpy(plan.extras["llm_feature"].get(s.id))}
             for s in workdir.samples[:6]]
    batch = collate_samples(items)
    out = objective(batch, TinyGCN(3, 20))
    sum(out.losses.values()).backward()
    assert objective.encoder.body[0].weight.grad.abs().sum() > 0
    assert torch.isfinite(out.losses["contrastive"])


def test_online_encoder_needs_a_mapping():
    with pytest.raises(ConfigError, match="online_encoder must be a mapping"):
        MMCLSettings.from_dict({"online_encoder": "small-cnn"})
    assert not MMCLSettings.from_dict({"fam": False, "online_encoder": {}}).online


def test_cached_feature_training_code_never_imports_transformers():
    code = ("import sys\n"
            "import train.mmcl.objective, train.mmcl.features, train.mmcl.fam, "
            "train.mmcl.frm, train.mmcl.online_encoder\n"
            "from train.mmcl.online_encoder import build_online_encoder\n"
            "build_online_encoder({'kind': 'small-cnn'})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
