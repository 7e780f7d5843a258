"""What MMCL co-learning costs: training step, data loading and inference, in one run.

On one synthetic NTU-shaped WORKDIR (skeleton, stitch, rgb-features and llm-features caches
written directly) and one batch, with the same CTR-GCN starting weights for every variant:

1. time per training step (forward, backward, SGD step), interleaved round by round so
   machine load hits every variant alike:
   - ``plain``: the GCN alone (the baseline objective);
   - ``mmcl-cached``: FAM + FRM on cached features (goal: at most 1.05x plain);
   - ``mmcl-cached-token``: the same with token-level LLM features;
   - ``mmcl-online``: FAM on an image CNN fine-tuned in every step, the reference's way
     (a ResNet built from a config, 299 px; the reference fine-tunes InceptionV3);
2. data loader samples/s of the MMCL training set (features joined by id) against the
   samples/s a training step consumes (goal: at least 10x);
3. latency for one sample: skeleton-only inference (what export/predict run) against the
   multimodal path GCN + CNN + VLM (the pipeline's own encoder and BLIP VQA code, tiny
   random models built from configs).

    python benchmarks/bench_mmcl_step.py [--batch 16] [--rounds 7] [--cnn resnet50]

Medians are printed with their ratios; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import io
import shutil
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_manifest.manifest import write_manifest
from data_manifest.sample import Sample
from data_manifest.schemas import LLM_FEATURES, RGB_FEATURES, SKELETONS, STITCH
from data_manifest.workdir import MANIFEST_FILE, Workdir, WorkdirInfo
from train.config import resolve_config
from train.data.collate import collate_samples
from train.data.dataset import load_data
from train.data.feeders import transform_for_inference
from train.mmcl.features import IMAGE_KEY, FeatureSpec, FeatureStore
from train.mmcl.objective import MMCLObjective, MMCLSettings
from train.models import build_model
from train.objectives import ClassificationObjective

QUESTION = "whether the people are holding objects?"
RESNET50 = {"model_type": "resnet", "embedding_size": 64, "hidden_sizes": [256, 512, 1024, 2048],
            "depths": [3, 4, 6, 3], "layer_type": "bottleneck"}
RESNET18 = {"model_type": "resnet", "embedding_size": 64, "hidden_sizes": [64, 128, 256, 512],
            "depths": [2, 2, 2, 2], "layer_type": "basic"}


# --------------------------------------------------------------------------- data


def _write(workdir: Workdir, stage: str, params: dict, values, upstream=None) -> str:
    spec = workdir.spec(stage, params, upstream or {})
    cache = workdir.cache_dir(stage)
    cache.prepare(spec, overwrite=True)
    for shard in range(workdir.num_shards):
        with cache.shard_writer(spec, shard) as writer:
            for sample in workdir.shard_samples(shard):
                writer.add(sample.id, values(sample))
    return spec.fingerprint


def _jpeg(seed: int, size: int = 480) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((size, size), Image.BILINEAR).save(buffer, format="JPEG",
                                                                     quality=90)
    return buffer.getvalue()


def make_workdir(root: Path, num_samples: int, rgb_width: int, llm_width: int,
                 num_questions: int) -> Workdir:
    """NTU60-shaped samples (25 joints, 2 persons, 60-120 frames), all in X-Sub train
    except every 8th, with the four caches MMCL reads."""
    samples = []
    for index in range(num_samples):
        performer = 3 if index % 8 == 7 else 1           # 3 is an X-Sub test subject
        meta = {"setup": 1, "camera": 1 + index % 3, "performer": performer,
                "replication": 1 + index // 180, "action": 1 + index % 60}
        name = "S{setup:03d}C{camera:03d}P{performer:03d}R{replication:03d}A{action:03d}" \
            .format(**meta) + f"_{index}"
        samples.append(Sample(id=name, dataset="ntu60", label=index % 60,
                              skeleton=f"{name}.skeleton", meta=meta))
    digest = write_manifest(samples, root / MANIFEST_FILE)
    Workdir.write_info(root, WorkdirInfo("ntu60", str(root), digest, len(samples), 64, "ntu"))
    workdir = Workdir(root)

    def skeleton(sample):
        rng = np.random.default_rng(zlib.crc32(sample.id.encode()))
        frames = int(rng.integers(60, 121))
        joints = rng.normal(0, 0.3, (frames, 2, 25, 3)).astype(np.float32)
        return {"joints": joints, "color_xy": np.full((frames, 2, 25, 2), np.nan, np.float32),
                "frame_index": np.arange(frames, dtype=np.int32), "source_frames": frames,
                "num_actors": 2}

    def rgb(sample):
        return {"feature": np.random.default_rng(len(sample.id) + sample.label)
                .standard_normal(rgb_width).astype(np.float32)}

    def llm(sample):
        rng = np.random.default_rng(sample.label)
        counts = rng.integers(1, 6, num_questions)
        hidden = rng.standard_normal((int(counts.sum()), llm_width)).astype(np.float16)
        pooled = np.stack([h.astype(np.float32).mean(0)
                           for h in np.split(hidden, np.cumsum(counts)[:-1])])
        return {"answers": ["yes"] * num_questions,
                "token_ids": np.zeros(int(counts.sum()), np.int64),
                "token_counts": counts.astype(np.int64), "hidden": hidden, "pooled": pooled}

    _write(workdir, SKELETONS, {"synthetic": True}, skeleton)
    stitch = _write(workdir, STITCH, {"synthetic": True},
                    lambda s: {"image": _jpeg(s.label),
                               "size": np.array([480, 480], np.int32)})
    upstream = {f"{STITCH}/default": stitch}
    _write(workdir, RGB_FEATURES, {"encoder": {"name": "synthetic-inception"}}, rgb, upstream)
    _write(workdir, LLM_FEATURES, {"model": {"name": "synthetic-blip"},
                                   "questions": [QUESTION] * num_questions}, llm, upstream)
    return workdir


# --------------------------------------------------------------------------- timing


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def time_steps(variants: dict, batches: dict, rounds: int, warmup: int) -> dict[str, list]:
    """Interleave one step of every variant per round; returns seconds per step."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(warmup + rounds):
        for name, (backbone, objective, optimizer) in variants.items():
            batch = batches[name]
            started = time.perf_counter()
            out = objective(batch, backbone)
            loss = sum(out.losses.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            elapsed = time.perf_counter() - started
            if not torch.isfinite(loss.detach()).item():
                # NaN/inf arithmetic runs at other speeds: such a step times nothing real
                raise RuntimeError(f"{name}: the loss is {loss.item()} in round "
                                   f"{round_index + 1}; lower the benchmark's learning rate")
            if round_index >= warmup:
                times[name].append(elapsed)
        print(f"  round {round_index + 1}/{warmup + rounds}: " + ", ".join(
            f"{n} {1000 * t[-1]:.0f} ms" for n, t in times.items() if t), flush=True)
    return times


def colearning_extra_ms(variant, batch: dict, repeats: int) -> float:
    """The FAM and FRM part of an MMCL step alone, on the GCN outputs of this batch."""
    backbone, objective, _ = variant
    with torch.no_grad():
        logits, feature = backbone.forward_features(batch["x"])
    values = []
    for _ in range(repeats + 2):
        logits_ = logits.clone().requires_grad_()
        feature_ = feature.clone().requires_grad_()
        started = time.perf_counter()
        loss = objective.settings.lambda_contrastive * objective.fam(feature_,
                                                                     batch["rgb_feature"])
        refined = objective.frm(logits_, batch["llm_feature"])
        loss = loss + objective.settings.lambda_refine * torch.nn.functional.cross_entropy(
            refined, batch["label"])
        loss.backward()
        values.append(time.perf_counter() - started)
    return median_ms(values[2:])


def loader_rate(dataset, batch: int, workers: int, max_batches: int) -> float:
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                         num_workers=workers, collate_fn=collate_samples,
                                         drop_last=True, persistent_workers=False)
    iterator = iter(loader)
    next(iterator)                                      # workers started, files opened
    started, count = time.perf_counter(), 0
    for index, item in enumerate(iterator):
        count += len(item["id"])
        if index + 1 >= max_batches:
            break
    return count / (time.perf_counter() - started)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16, help="training batch")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed first rounds")
    parser.add_argument("--window", type=int, default=64, help="frames per sample")
    parser.add_argument("--cnn", choices=["resnet50", "resnet18"], default="resnet50",
                        help="online image CNN (random weights, built from a config)")
    parser.add_argument("--image-size", type=int, default=299, help="online CNN input size")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2],
                        help="DataLoader worker counts to measure")
    parser.add_argument("--latency-runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="bench-mmcl-"))
    rgb_width, llm_width, num_questions = 1000, 768, 1     # InceptionV3 logits, BLIP base
    workdir = make_workdir(tmp / "wd", max(8 * args.batch, 256), rgb_width, llm_width,
                           num_questions)
    config = resolve_config("ntu60-xsub", overrides=[
        f"data.workdir={workdir.path}", f"data.window={args.window}", "data.num_workers=0",
        f"optim.batch_size={args.batch}", "run.progress=false"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {args.batch}, "
          f"window {args.window}, NTU 25 joints x 2 persons, 60 classes; RGB feature "
          f"{rgb_width}-d, LLM feature K={num_questions} x {llm_width}-d")

    # -- one batch, every variant on the same starting weights
    store = FeatureStore(workdir, image=True, image_size=(args.image_size, args.image_size))
    token_store = FeatureStore(workdir, llm_level="token")
    data = load_data(config, store.sources())
    train_set = data.dataset("train")
    items = [train_set[i] for i in range(args.batch)]
    base = collate_samples(items)
    token_items = [{**item, **{k: torch.from_numpy(v) for k, v in
                               token_store.get(item["id"]).items()}} for item in items]
    batches = {"plain": base, "mmcl-cached": base,
               "mmcl-cached-token": collate_samples(token_items), "mmcl-online": base}
    assert base[IMAGE_KEY].shape[-1] == args.image_size
    master = build_model("ctrgcn", num_classes=60, layout="ntu", num_persons=2)
    cnn = RESNET50 if args.cnn == "resnet50" else RESNET18
    settings = {
        "plain": None,
        "mmcl-cached": MMCLSettings.from_dict({}),
        "mmcl-cached-token": MMCLSettings.from_dict({"llm_level": "token"}),
        "mmcl-online": MMCLSettings.from_dict({
            "online_encoder": {"kind": "transformers", "config": cnn},
            "image_size": [args.image_size, args.image_size]}),
    }
    variants = {}
    for name, setting in settings.items():
        backbone = copy.deepcopy(master).train()
        spec = token_store.spec if name == "mmcl-cached-token" else store.spec
        objective = ClassificationObjective() if setting is None else \
            MMCLObjective(setting, spec, 60, master.feature_dim)
        optimizer = torch.optim.SGD([*backbone.parameters(), *objective.parameters()],
                                    lr=0.01, momentum=0.9, nesterov=True, weight_decay=4e-4)
        variants[name] = (backbone, objective, optimizer)
    params = {n: sum(p.numel() for p in v[1].parameters()) for n, v in variants.items()}
    print("trainable parameters besides the GCN's "
          f"{sum(p.numel() for p in master.parameters()):,}: "
          + ", ".join(f"{n} {c:,}" for n, c in params.items()))

    print("\n1. training step (forward + backward + SGD), interleaved rounds")
    times = time_steps(variants, batches, args.rounds, args.warmup)
    plain = median_ms(times["plain"])
    for name, values in times.items():
        ms = median_ms(values)
        print(f"  {name:18s} median {ms:8.1f} ms  ({ms / plain:.3f}x plain; "
              f"min {1000 * min(values):.1f}, max {1000 * max(values):.1f})")
    cached = median_ms(times["mmcl-cached"])
    print(f"  => MMCL (cached features) / plain GCN step = {cached / plain:.3f} "
          f"(goal <= 1.05); online {args.cnn} fine-tuning / plain = "
          f"{median_ms(times['mmcl-online']) / plain:.2f}x, / cached MMCL = "
          f"{median_ms(times['mmcl-online']) / cached:.2f}x")

    extra = colearning_extra_ms(variants["mmcl-cached"], base, repeats=30)
    print(f"  co-learning work alone (FAM + FRM forward and backward on this batch, 30 "
          f"repeats): median {extra:.2f} ms = {100 * extra / plain:.2f}% of the plain step")

    print("\n2. data loading (MMCL training set: skeleton + features joined by id)")
    consumed = args.batch / (cached / 1000)
    print(f"  a cached-MMCL step consumes {consumed:.1f} samples/s")
    mmcl_data = load_data(config, FeatureStore(workdir).sources())
    plain_data = load_data(config)
    for workers in args.workers:
        for label, bundle in (("mmcl", mmcl_data), ("skeleton-only", plain_data)):
            rate = loader_rate(bundle.dataset("train"), args.batch, workers,
                               max_batches=12)
            print(f"  {label:13s} loader, {workers} worker(s): {rate:8.1f} samples/s = "
                  f"{rate / consumed:.1f}x what the step consumes (goal >= 10x)")

    print("\n3. inference latency for one sample")
    latency(workdir, config, master, tmp, args.latency_runs)
    shutil.rmtree(tmp, ignore_errors=True)


def latency(workdir: Workdir, config, backbone, tmp: Path, runs: int) -> None:
    from pipeline.models.image_encoder import ImageEncoder
    from pipeline.models.registry import load_vlm
    from pipeline.models.source import resolve_model
    from pipeline.models.vlm import GenerationSettings
    from pipeline.synthetic.tiny_models import make_tiny_models

    backbone = backbone.eval()
    sample = workdir.samples[0]
    skeletons = workdir.reader(SKELETONS)
    stitch = workdir.reader(STITCH)
    joints = skeletons.get(sample.id, ["joints"])["joints"]
    jpeg = stitch.get(sample.id, ["image"])["image"]

    models = make_tiny_models(tmp / "models")
    encoder = ImageEncoder(resolve_model(str(models["resnet"])), device="cpu",
                           dtype=torch.float32)
    vlm = load_vlm(resolve_model(str(models["blip-vqa"])), device="cpu", dtype="float32",
                   settings=GenerationSettings(max_new_tokens=10))
    image_width = encoder.encode([Image.new("RGB", (64, 64))]).shape[1]
    objective = MMCLObjective(
        MMCLSettings.from_dict({}),
        FeatureSpec(rgb_width=image_width, llm_width=vlm.hidden_size, num_questions=1),
        60, backbone.feature_dim).eval()

    def skeleton_only():
        x = torch.from_numpy(transform_for_inference(joints, config))[None]
        return backbone(x)

    def multimodal():
        logits, feature = backbone.forward_features(
            torch.from_numpy(transform_for_inference(joints, config))[None])
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        rgb = torch.from_numpy(encoder.encode([image]))
        answer = vlm.answer([image], [QUESTION])[0][0]
        text = torch.from_numpy(answer.hidden.mean(0, keepdims=True)[None]).float()
        objective.fam.mlp(rgb)
        return objective.frm(logits, text)

    results = {}
    with torch.no_grad():
        for name, function in (("skeleton-only (GCN)", skeleton_only),
                               ("multimodal (GCN + CNN + VLM)", multimodal)):
            for _ in range(3):
                function()
            values = []
            for _ in range(runs):
                started = time.perf_counter()
                function()
                values.append(time.perf_counter() - started)
            results[name] = median_ms(values)
            print(f"  {name:30s} median {results[name]:8.2f} ms")
    first, second = results.values()
    print(f"  => multimodal / skeleton-only = {second / first:.2f}x, with tiny CNN and VLM "
          "(real ones cost far more); training with MMCL keeps inference skeleton-only")


if __name__ == "__main__":
    main()
