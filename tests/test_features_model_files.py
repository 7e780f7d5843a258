"""A local model's revision follows its files; a broken model directory is a clear error."""

import json
import os
import re

import pytest
import torch
from click.testing import CliRunner

from features_factories import (copy_model, make_workdir, models, one_torch_thread,
                                write_stitch_cache)  # noqa: F401 (fixture)
from pipeline.cli.main import cli
from pipeline.models.devices import batch_memory_guard
from pipeline.models.errors import BatchTooLargeError, ModelError
from pipeline.models.image_encoder import ImageEncoder
from pipeline.models.registry import load_vlm
from pipeline.models.source import resolve_model
from pipeline.models.vlm import GenerationSettings
from pipeline.stages.rgb_features import cache_rgb_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _revision(path):
    return resolve_model(str(path)).revision


@pytest.mark.parametrize("family, name, edit", [
    ("qwen2-vl", "chat_template.jinja", lambda text: text.replace("helpful", "careful")),
    ("qwen2-vl", "tokenizer_config.json", lambda text: text.replace("}", ', "x": 1}', 1)),
    ("qwen2-vl", "generation_config.json", lambda text: text.replace("}", ', "x": 1}', 1)),
    ("blip-vqa", "vocab.txt", lambda text: text + "extra\n"),
    ("resnet", "preprocessor_config.json", lambda text: text.replace("}", ', "x": 1}', 1)),
])
def test_local_revision_follows_every_small_file(tmp_path, models, family, name, edit):
    copy = copy_model(models[family], tmp_path / "copy")
    before = _revision(copy)
    assert _revision(copy) == before                         # stable
    path = copy / name
    path.write_text(edit(path.read_text()))
    assert _revision(copy) != before


def test_local_revision_sees_a_weight_edit_that_keeps_size_and_edges(tmp_path):
    """Weights are not read whole; their size and modification time stand for them."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "resnet"}))
    weights = tmp_path / "model.safetensors"
    data = bytearray(3 << 20)                                 # first and last MiB unchanged
    weights.write_bytes(bytes(data))
    stat = weights.stat()
    before = _revision(tmp_path)
    data[len(data) // 2] = 1
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a later edit
    assert weights.stat().st_size == stat.st_size
    assert _revision(tmp_path) != before


def test_local_revision_ignores_hidden_folders(tmp_path, models):
    copy = copy_model(models["resnet"], tmp_path / "copy")
    before = _revision(copy)
    (copy / ".git").mkdir()
    (copy / ".git" / "index").write_bytes(b"git bookkeeping")
    assert _revision(copy) == before
    (copy / "sub").mkdir()
    (copy / "sub" / "extra.json").write_text("{}")            # a visible file counts
    assert _revision(copy) != before


@pytest.mark.parametrize("family", ["blip-vqa", "qwen2-vl", "resnet"])
def test_model_without_weights_names_the_directory(tmp_path, models, family):
    copy = copy_model(models[family], tmp_path / family, without=("model.safetensors",))
    source = resolve_model(str(copy))
    with pytest.raises(ModelError, match=f"cannot load the weights of the model in "
                                         f"{re.escape(str(copy))}( as an image-text-to-text "
                                         "model)?: .*no file named model.safetensors"
                                         ".*save_pretrained"):
        if family == "resnet":
            ImageEncoder(source, device="cpu", dtype=torch.float32)
        else:
            load_vlm(source, device="cpu", dtype="float32", settings=GenerationSettings())


def test_truncated_weights_and_missing_processor(tmp_path, models):
    truncated = copy_model(models["resnet"], tmp_path / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelError, match="cannot load the weights .*truncated.*header"):
        ImageEncoder(resolve_model(str(truncated)), device="cpu", dtype=torch.float32)
    no_processor = copy_model(models["resnet"], tmp_path / "no-processor",
                              without=("preprocessor_config.json",))
    with pytest.raises(ModelError, match="cannot load the processor .*no-processor.*"
                                         "preprocessor_config.json"):
        ImageEncoder(resolve_model(str(no_processor)), device="cpu", dtype=torch.float32)


def test_commands_report_a_broken_model_without_a_traceback(tmp_path, models):
    workdir = make_workdir(tmp_path, num_samples=2, shard_size=2)
    write_stitch_cache(workdir)
    runner = CliRunner()
    for command, option, family in (("cache-llm-features", "--model", "blip-vqa"),
                                    ("cache-rgb-features", "--encoder", "resnet")):
        broken = copy_model(models[family], tmp_path / f"broken-{family}",
                            without=("model.safetensors",))
        result = runner.invoke(cli, [command, str(workdir.path), option, str(broken),
                                     "--no-progress"])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert f"error: cannot load the weights of the model in {broken}" in result.output
        assert "Traceback" not in result.output


def test_cpu_out_of_memory_is_a_batch_too_large_error():
    message = ("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough "
               "memory: you tried to allocate 68719476736 bytes.")
    with pytest.raises(BatchTooLargeError, match="lower --batch-size \\(it is 4\\)"):
        with batch_memory_guard(4, "shard 0"):
            raise RuntimeError(message)
    with pytest.raises(RuntimeError, match="^shape mismatch$"):     # any other error: as is
        with batch_memory_guard(4, "shard 0"):
            raise RuntimeError("shape mismatch")


def test_a_changed_local_model_is_not_reused(tmp_path, models):
    """The stage's cache spec records the digest, so an edited tokenizer is stale."""
    workdir = make_workdir(tmp_path, num_samples=2, shard_size=2)
    write_stitch_cache(workdir)
    copy = copy_model(models["resnet"], tmp_path / "encoder")
    first = cache_rgb_features(workdir, str(copy), progress=False)
    path = copy / "preprocessor_config.json"
    config = json.loads(path.read_text())
    config["image_mean"] = [0.0, 0.0, 0.0]
    path.write_text(json.dumps(config))
    from data_manifest.errors import StaleCacheError
    with pytest.raises(StaleCacheError, match="revision"):
        cache_rgb_features(workdir, str(copy), progress=False,
                           cache_name=first.cache_path.name)
