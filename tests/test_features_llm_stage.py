"""The llm-features stage end to end on tiny models: contents, specs, resume, bad input."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from data_manifest.errors import MissingCacheError
from data_manifest.schemas import LLM_FEATURE_FIELDS, LLM_FEATURES
from features_factories import (QUESTION, jpeg_bytes, make_workdir, models, one_torch_thread,
                                workdir, write_stitch_cache)  # noqa: F401 (fixture)
from pipeline.cli.main import cli
from pipeline.models.errors import ModelError
from pipeline.models.registry import load_vlm
from pipeline.models.source import resolve_model
from pipeline.stages import llm_features
from pipeline.stages.llm_features import cache_llm_features

QUESTIONS = [QUESTION, "what is the person doing?"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _read_all(workdir, result):
    with workdir.reader(LLM_FEATURES, result.cache_path.name) as reader:
        return {sample_id: reader.get(sample_id) for sample_id in reader.ids}


def _run(workdir, model, **kwargs):
    kwargs.setdefault("questions", QUESTIONS)
    kwargs.setdefault("max_new_tokens", 5)
    kwargs.setdefault("progress", False)
    return cache_llm_features(workdir, str(model), **kwargs)


@pytest.mark.parametrize("family", ["blip-vqa", "qwen2-vl"])


def test_cache_holds_the_schema_fields(workdir, models, family):
    result = _run(workdir, models[family], batch_size=3)
    assert result.shards_written == 3 and not result.failures
    values = _read_all(workdir, result)
    assert sorted(values) == [s.id for s in workdir.samples]
    for sample_id, fields in values.items():
        assert set(fields) == set(LLM_FEATURE_FIELDS)
        assert len(fields["answers"]) == 2 and all(isinstance(a, str) for a in fields["answers"])
        counts = fields["token_counts"]
        assert counts.dtype == np.int64 and counts.shape == (2,) and (counts <= 5).all()
        assert fields["token_ids"].dtype == np.int64 and len(fields["token_ids"]) == counts.sum()
        assert fields["hidden"].dtype == np.float16 and fields["hidden"].shape == (counts.sum(), 32)
        assert fields["pooled"].dtype == np.float32 and fields["pooled"].shape == (2, 32)
        for k, rows in enumerate(np.split(fields["hidden"].astype(np.float32),
                                          np.cumsum(counts)[:-1])):
            expected = rows.mean(axis=0) if len(rows) else np.zeros(32)
            np.testing.assert_allclose(fields["pooled"][k], expected, atol=2e-2, rtol=1e-2)


def test_spec_records_model_and_settings(workdir, models):
    result = _run(workdir, models["blip-vqa"], layer=1)
    spec = json.loads((result.cache_path / "spec.json").read_text())
    params = spec["params"]
    assert params["model"]["name"] == str(models["blip-vqa"].resolve())
    assert params["model"]["revision"].startswith("local-")
    assert params["dtype"] == "float32" and params["layer"] == 1
    assert params["questions"] == QUESTIONS
    assert params["generation"] == {"decoding": "greedy", "max_new_tokens": 5, "layer": 1}
    assert list(spec["upstream"]) == ["stitch/default"]
    assert result.cache_path.name.startswith("blip-vqa-")


def test_stage_matches_the_model_called_directly(workdir, models):
    from pipeline.models.images import decode_image
    result = _run(workdir, models["qwen2-vl"], batch_size=4)
    model = load_vlm(resolve_model(str(models["qwen2-vl"])), device="cpu", dtype="float32",
                     settings=llm_features.GenerationSettings(5, -1))
    with workdir.reader("stitch") as stitch:
        image = decode_image(stitch.get("s003")["image"])
    direct = model.answer([image], QUESTIONS)[0]
    stored = _read_all(workdir, result)["s003"]
    assert stored["answers"] == [a.text.replace("\x00", "\ufffd") for a in direct]
    np.testing.assert_array_equal(stored["token_ids"],
                                  np.concatenate([a.token_ids for a in direct]))


def test_a_corrupt_image_is_that_samples_failure(tmp_path, models):
    workdir = make_workdir(tmp_path, num_samples=4, shard_size=4)
    rng = np.random.default_rng(1)
    images = {s.id: jpeg_bytes(rng, 200, 48) for s in workdir.samples}
    images["s001"] = images["s001"][:40]                    # truncated JPEG
    images["s002"] = "video s002.avi: cannot be decoded"    # failed upstream
    write_stitch_cache(workdir, images)
    result = _run(workdir, models["blip-vqa"], batch_size=4)
    reasons = {f["id"]: f["reason"] for f in result.failures}
    assert set(reasons) == {"s001", "s002"}
    assert "corrupt" in reasons["s001"]
    assert "stitch stage failed" in reasons["s002"] and "s002.avi" in reasons["s002"]
    assert sorted(_read_all(workdir, result)) == ["s000", "s003"]
    ledger = (result.cache_path / "failures.jsonl").read_text().splitlines()
    assert {json.loads(line)["id"] for line in ledger} == {"s001", "s002"}


def test_missing_or_unfinished_stitch_cache_names_the_stage(tmp_path, models):
    workdir = make_workdir(tmp_path, num_samples=4, shard_size=2)
    with pytest.raises(MissingCacheError, match="pipeline stitch"):
        _run(workdir, models["blip-vqa"])
    write_stitch_cache(workdir, shards=[0])
    with pytest.raises(MissingCacheError, match="not finished shard.*1.*pipeline stitch"):
        _run(workdir, models["blip-vqa"])


@pytest.mark.parametrize("questions, message", [([""], "question 1 is empty"),
                                                ([QUESTION, "  "], "question 2 is empty"),
                                                ([], "at least one question"),
                                                ([QUESTION, QUESTION], "twice")])


def test_bad_questions(workdir, models, questions, message):
    with pytest.raises(ValueError, match=message):
        _run(workdir, models["blip-vqa"], questions=questions)


def test_model_errors(workdir, models, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        _run(workdir, tmp_path / "nope")
    with pytest.raises(ModelError, match="not a supported vision-language model"):
        _run(workdir, models["resnet"])


def test_cli_runs_and_reports(workdir, models, tmp_path):
    runner = CliRunner()
    args = ["cache-llm-features", str(workdir.path), "--model", str(models["qwen2-vl"]),
            "--question", QUESTION, "--max-new-tokens", "3", "--no-progress"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "3 shard(s) written" in result.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "0 shard(s) written, 3 already done" in again.output
    bad = runner.invoke(cli, ["cache-llm-features", str(workdir.path), "--model",
                              str(tmp_path / "missing-model")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    empty = runner.invoke(cli, args[:4] + ["--question", ""])
    assert empty.exit_code == 2 and "empty" in empty.output
