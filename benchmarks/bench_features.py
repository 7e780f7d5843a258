"""Benchmark of the feature stages: batched vs one sample at a time, and a no-op re-run.

Builds a WORKDIR of N synthetic temporal images (480x480 JPEG, like the default stitch
canvas), then in the same run and on the same model:

- llm-features with ``--batch-size 1`` (one image, one question per forward pass: the
  reference script's way) and with ``--batch-size B``; samples/s, median of R repeats;
- the wall time of a re-run with nothing left to do (the model is not loaded);
- rgb-features the same way.

Tiny random models by default (offline); ``--full-size`` builds random models with the
published shapes offline (BLIP VQA from the default ``BlipConfig``, as
Salesforce/blip-vqa-base; ResNet-50 from the default ``ResNetConfig``, as
microsoft/resnet-50); ``--model``/``--encoder`` take a real hub id or directory,
``--device cuda`` a GPU::

    python benchmarks/bench_features.py
    python benchmarks/bench_features.py --full-size --device cuda --samples 256 \\
        --batch-size 32
    python benchmarks/bench_features.py --model Salesforce/blip-vqa-base \\
        --encoder microsoft/resnet-50 --device cuda --samples 256 --batch-size 32
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_manifest.schemas import STITCH
from data_manifest.workdir import Workdir
from pipeline.manifest_builder import build_manifest
from pipeline.stages.llm_features import DEFAULT_QUESTIONS, cache_llm_features
from pipeline.stages.rgb_features import cache_rgb_features
from pipeline.synthetic.tiny_models import (make_tiny_blip_vqa, make_tiny_models,
                                            make_tiny_resnet)


def make_workdir(root: Path, samples: int, shard_size: int, size: int) -> Workdir:
    data = root / "data"
    data.mkdir(parents=True)
    rows = ["id,label,skeleton,video"]
    for index in range(samples):
        (data / f"s{index:05d}.txt").write_text("0\n")
        rows.append(f"s{index:05d},0,s{index:05d}.txt,")
    (data / "list.csv").write_text("\n".join(rows) + "\n")
    build_manifest("csv", data / "list.csv", root / "work", shard_size=shard_size)
    workdir = Workdir(root / "work")
    spec = workdir.spec(STITCH, {"synthetic": True, "size": size})
    cache = workdir.cache_dir(STITCH)
    cache.prepare(spec)
    rng = np.random.default_rng(0)
    for shard in range(workdir.num_shards):
        with cache.shard_writer(spec, shard) as writer:
            for sample in workdir.shard_samples(shard):
                small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(small).resize((size, size), Image.BILINEAR).save(
                    buffer, format="JPEG", quality=90)
                writer.add(sample.id, {"image": buffer.getvalue(),
                                       "size": np.array([size, size], np.int32)})
    return workdir


def make_full_size_models(directory: Path, layers: int | None = None) -> dict[str, Path]:
    """Random-weight BLIP VQA (default ``BlipConfig``: ViT-B/16 at 384 px and a BERT-base
    text model with blip-vqa-base's vocabulary size) and ResNet-50 (default
    ``ResNetConfig``, 1000 labels). Tokenizer and processors come from the tiny builders;
    the tokenizer's ids all fit the full vocabulary. ``layers`` cuts every transformer
    and ResNet stage to that depth (a quick CPU smoke test of the same code)."""
    from transformers import (BertTokenizer, BlipConfig, BlipForQuestionAnswering,
                              ResNetConfig, ResNetForImageClassification)
    blip = make_tiny_blip_vqa(directory / "blip-vqa", image_size=384)
    tokenizer = BertTokenizer.from_pretrained(blip)
    config = BlipConfig()
    text, vision = config.text_config, config.vision_config
    text.bos_token_id = tokenizer.bos_token_id
    text.pad_token_id = tokenizer.pad_token_id
    text.sep_token_id = tokenizer.sep_token_id
    if layers:
        text.num_hidden_layers = vision.num_hidden_layers = layers
    torch.manual_seed(0)
    BlipForQuestionAnswering(config).save_pretrained(blip)
    resnet = make_tiny_resnet(directory / "resnet", image_size=224)
    depths = [layers] * 4 if layers else ResNetConfig().depths
    ResNetForImageClassification(ResNetConfig(num_labels=1000, depths=depths)
                                 ).save_pretrained(resnet)
    return {"blip-vqa": blip, "resnet": resnet}


def timed(function, **kwargs) -> float:
    start = time.perf_counter()
    result = function(**kwargs)
    elapsed = time.perf_counter() - start
    assert not result.failures, result.failures[:3]
    return elapsed


def compare(name, function, workdir, samples, batch_size, repeats, **kwargs):
    print(f"\n{name}")
    rates = {}
    for size in (1, batch_size):
        times = [timed(function, workdir=workdir, batch_size=size, overwrite=True,
                       cache_name=f"bench-{size}-{repeat}", progress=False, **kwargs)
                 for repeat in range(repeats)]
        rates[size] = samples / statistics.median(times)
        print(f"  batch size {size:>3}: {rates[size]:8.1f} samples/s  (median of {repeats}: "
              f"{statistics.median(times):.2f} s for {samples} samples, model load included)")
    print(f"  batched / one at a time: {rates[batch_size] / rates[1]:.2f}x")
    noop = [timed(function, workdir=workdir, batch_size=batch_size,
                  cache_name=f"bench-{batch_size}-0", progress=False, **kwargs)
            for _ in range(repeats)]
    print("  no-op re-run (nothing left, model not loaded): "
          f"median {statistics.median(noop):.3f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="VLM hub id or directory [default: tiny BLIP VQA]")
    parser.add_argument("--full-size", action="store_true",
                        help="random BLIP VQA and ResNet-50 with the published shapes")
    parser.add_argument("--layers", type=int,
                        help="with --full-size: depth of every transformer/ResNet stage "
                             "[default: the published one]")
    parser.add_argument("--encoder", help="image encoder [default: tiny ResNet]")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=480, help="temporal image side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=10)
    parser.add_argument("--threads", type=int,
                        help="torch CPU threads [default: torch's]; 1 is much faster for tiny "
                             "models on a busy machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny = None
        if args.full_size:
            built = make_full_size_models(root / "models", args.layers)
            print(f"full-size random models built (layers: {args.layers or 'published'})")
        elif not (args.model and args.encoder):
            built = tiny = make_tiny_models(root / "models")
        model = args.model or str(built["blip-vqa"])
        encoder = args.encoder or str(built["resnet"])
        workdir = make_workdir(root / "bench", args.samples, args.shard_size, args.image_size)
        print(f"{args.samples} temporal images {args.image_size}x{args.image_size}, shards of "
              f"{args.shard_size}, device {args.device}, {torch.get_num_threads()} CPU "
              f"thread(s); model {model}; encoder {encoder}")
        compare(f"llm-features ({Path(model).name}, 1 question, <= {args.max_new_tokens} "
                "new tokens)", cache_llm_features, workdir, args.samples, args.batch_size,
                args.repeats, model=model, questions=DEFAULT_QUESTIONS, device=args.device,
                dtype=args.dtype, max_new_tokens=args.max_new_tokens)
        compare(f"rgb-features ({Path(encoder).name})", cache_rgb_features, workdir,
                args.samples, args.batch_size, args.repeats, encoder=encoder,
                device=args.device)
        if tiny is not None:
            qwen = str(tiny["qwen2-vl"])
            compare("llm-features (tiny Qwen2-VL chat model)", cache_llm_features, workdir,
                    args.samples, args.batch_size, args.repeats, model=qwen,
                    questions=DEFAULT_QUESTIONS, device=args.device, dtype=args.dtype,
                    max_new_tokens=args.max_new_tokens)


if __name__ == "__main__":
    sys.exit(main())
