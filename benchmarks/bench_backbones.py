"""Every backbone side by side at the NTU shape, CTR-GCN as the baseline, in one run.

For each backbone (``train.models.build_model``, NTU layout, 60 classes), computed by its
reference code, and again by its fast path where it has one (``ctrgcn fast``): parameters, FLOPs per sample (``train.models.cost``, multiply-add = 2), training
and inference samples/s (``train.models.throughput``: medians over timed steps after
warm-up; training = forward, cross-entropy, backward, SGD step) and the MMCL step
overhead: the median time of a co-learning step (FAM + FRM on cached features, as
``bench_mmcl_step.py`` builds it: InceptionV3-width RGB features, one BLIP-width LLM
feature per sample) over the median time of a plain step, the two interleaved round by
round on the same batch so machine load hits both alike.

    python benchmarks/bench_backbones.py                          # batch 8, 64 frames
    python benchmarks/bench_backbones.py --batch 2 --frames 16 --repeats 2   # a quick look

Figures are printed with their ratio to the baseline column, CTR-GCN's reference code,
so every backbone is compared like for like (reference with reference) and the fast path
has a column of its own; nothing is asserted.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_mmcl_step import median_ms, time_steps  # noqa: E402
from train.mmcl.features import LLM_KEY, RGB_KEY, FeatureSpec  # noqa: E402
from train.mmcl.objective import MMCLObjective, MMCLSettings  # noqa: E402
from train.models import MODEL_NAMES, build_model  # noqa: E402
from train.models.registry import effective_impl  # noqa: E402
from train.models.cost import model_cost  # noqa: E402
from train.models.throughput import measure_throughput  # noqa: E402
from train.objectives import ClassificationObjective  # noqa: E402

BASELINE = "ctrgcn"
RGB_WIDTH, LLM_WIDTH, QUESTIONS = 1000, 768, 1      # InceptionV3 logits, BLIP base


def mmcl_overhead(model: torch.nn.Module, batch: dict, classes: int, rounds: int,
                  warmup: int) -> tuple[float, float]:
    """Median ms of a plain and of an MMCL training step, interleaved."""
    settings = MMCLSettings.from_dict({})
    spec = FeatureSpec(rgb_width=RGB_WIDTH, llm_width=LLM_WIDTH, num_questions=QUESTIONS)
    variants = {}
    for name, objective in (("plain", ClassificationObjective()),
                            ("mmcl", MMCLObjective(settings, spec, classes,
                                                   model.feature_dim))):
        backbone = copy.deepcopy(model).train().to(batch["x"].device)
        objective = objective.to(batch["x"].device)
        optimizer = torch.optim.SGD([*backbone.parameters(), *objective.parameters()],
                                    lr=1e-3, momentum=0.9, nesterov=True, weight_decay=4e-4)
        variants[name] = (backbone, objective, optimizer)
    times = time_steps(variants, {"plain": batch, "mmcl": batch}, rounds, warmup)
    return median_ms(times["plain"]), median_ms(times["mmcl"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8, help="samples per step")
    parser.add_argument("--frames", type=int, default=64, help="frames per sample (T)")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per figure")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--backbones", nargs="+", default=list(MODEL_NAMES),
                        choices=MODEL_NAMES, help="backbones to measure (the baseline, "
                        f"{BASELINE}, is always measured)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device [default: cuda if available, else cpu]")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # (backbone, impl) columns: the reference code of each, then its fast path if any
    columns = [(name, impl) for name in
               [BASELINE] + [name for name in args.backbones if name != BASELINE]
               for impl in ("reference", "fast") if effective_impl(name, impl) == impl]
    labels = {column: column[0] if column[1] == "reference" else f"{column[0]} fast"
              for column in columns}
    baseline = (BASELINE, "reference")
    shape = (3, args.frames, 25, 2)
    classes = 60
    print(f"torch {torch.__version__} on {args.device}, {torch.get_num_threads()} threads; "
          f"NTU shape (C, T, V, M) = {shape}, batch {args.batch}, {classes} classes; "
          f"{args.repeats} timed steps after {args.warmup} warm-up")
    generator = torch.Generator().manual_seed(0)
    batch = {"x": torch.randn(args.batch, *shape, generator=generator),
             "label": torch.randint(0, classes, (args.batch,), generator=generator),
             RGB_KEY: torch.randn(args.batch, RGB_WIDTH, generator=generator),
             LLM_KEY: torch.randn(args.batch, QUESTIONS, LLM_WIDTH, generator=generator)}
    batch = {key: value.to(args.device) for key, value in batch.items()}
    rows = {}
    for column in columns:
        name, impl = column
        label = labels[column]
        torch.manual_seed(0)
        model = build_model(name, num_classes=classes, layout="ntu", num_persons=2,
                            impl=impl)
        cost = model_cost(model, shape)
        speed = measure_throughput(model, shape, batch_size=args.batch, steps=args.repeats,
                                   warmup=args.warmup, device=args.device)
        print(f"{label}: MMCL vs plain steps", flush=True)
        plain_ms, mmcl_ms = mmcl_overhead(model, batch, classes, args.repeats, args.warmup)
        rows[column] = {"params (M)": cost.parameters / 1e6,
                      "GFLOPs / sample": cost.flops_per_sample / 1e9,
                      "train samples/s": speed.train_samples_per_s,
                      "inference samples/s": speed.inference_samples_per_s,
                      "MMCL / plain step": mmcl_ms / plain_ms}
        print(f"  {label}: {cost.summary()}; train {speed.train_samples_per_s:.1f} samples/s, "
              f"inference {speed.inference_samples_per_s:.1f} samples/s; plain step "
              f"{plain_ms:.1f} ms, MMCL step {mmcl_ms:.1f} ms", flush=True)
    print()
    header = f"{'':22s}" + "".join(f"{labels[column]:>20s}" for column in columns)
    print(header)
    base = rows[baseline]
    for metric in base:
        cells = []
        for column in columns:
            value = rows[column][metric]
            ratio = "" if column == baseline or metric == "MMCL / plain step" \
                else f" ({value / base[metric]:.2f}x)"
            cells.append(f"{value:.3f}{ratio}" if metric == "MMCL / plain step"
                         else f"{value:.2f}{ratio}")
        print(f"{metric:22s}" + "".join(f"{cell:>20s}" for cell in cells))
    print(f"(ratios in brackets: to {BASELINE}'s reference code, the baseline column; every "
          "backbone runs its reference code, '<name> fast' its fast path; MMCL / plain step "
          "is each column's own co-learning overhead)")


if __name__ == "__main__":
    main()
