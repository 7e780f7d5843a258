"""The training loop: one function for CPU, one GPU, several GPUs and several nodes.

``train(config, run_dir)`` runs under ``python``, ``accelerate launch`` and ``torchrun``
alike (accelerate picks the devices and the process group). It checkpoints every epoch
(and every ``run.checkpoint_every_steps`` steps), and called again on the same run
directory it resumes exactly where the last checkpoint left off: model, optimizer,
scheduler, RNG states, epoch and step. Sample order and augmentation depend only on
``(seed, epoch, index)``, so a resumed run on the CPU ends with the same weights as an
uninterrupted one.

Each step calls the objective (``train.objectives``) with the batch and the backbone and
sums the named losses it returns. See ``docs/training.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from train import checkpoint as ckpt
from train.accelerators import make_accelerator, resolve_precision
from train.cache_binding import check_binding
from train.config import (RESUME_SAFE_KEYS, TrainConfig, absolute_paths, config_differences,
                          load_yaml)
from train.data.collate import collate_samples
from train.data.dataset import DataBundle, fit_to_data, load_data
from train.data.feeders import check_feeder_options
from train.data.sampler import EpochSampler
from train.errors import CheckpointError, ConfigError, NonFiniteLossError, TrainError
from train.files import sha256_of, write_text_atomic
from train.modeling import ModelBuilder, build_backbone, model_info
from train.models.cost import model_cost
from train.models.graph import layout_by_name_or_joints
from train.models.reference_import import load_checked
from train.objectives import ObjectivePlan, TrainingModule, build_objective
from train.run_files import (CONFIG_FILE, DATA_FILE, INIT_FILE, METRICS_FILE,
                             MODEL_FILE, read_metrics)
from train.schedule import build_scheduler
from train.scoring import eval_loader, score_dataset
from train.threads import ThreadPlan, apply_threads
from train.tracking import RunTracking

log = logging.getLogger(__name__)



@dataclass
class StepState:
    """Passed to ``on_step_end`` hooks after every optimizer step."""

    epoch: int            # 0-based epoch in progress
    step_in_epoch: int    # steps done in this epoch
    global_step: int
    losses: dict[str, float]   # "loss" and "loss_<term>": this step's global-batch means


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    global_step: int
    best: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    init: dict[str, Any] | None = None     # model.init_from as applied by this call, if it was
    trackers: list[str] = field(default_factory=list)   # experiment trackers it logged to


# --------------------------------------------------------------------------- run dir


def prepare_run_dir(run_dir: str | os.PathLike, config: TrainConfig | None) -> TrainConfig:
    """The config of a new run (written to ``config.yaml``) or of the run being resumed.

    Resuming with a config that differs from the recorded one is an error listing the
    differences, except for ``RESUME_SAFE_KEYS``. Relative paths (``data.workdir``,
    ``model.init_from``) are made absolute and a layout file is replaced by its content
    first, so the recorded config does not depend on the folder it was started from or on
    the file; ``auto`` values are taken from the data (``fit_to_data``).
    """
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if (run_dir / ckpt.IMPORT_FILE).is_file():
        raise ConfigError(f"{run_dir} holds weights imported with `train import`, not a "
                          "training run: it cannot be resumed. Fine-tune them in a new run: "
                          f"train run NEW_RUN_DIR ... --init-from "
                          f"{ckpt.checkpoint_path(run_dir, 'last')}")
    if config is not None:
        config = fit_to_data(absolute_paths(config))
    if path.is_file():
        recorded = TrainConfig.from_dict(load_yaml(path))
        if config is None:
            return recorded
        changed = [d for d in config_differences(recorded, config)
                   if d.split(":")[0] not in RESUME_SAFE_KEYS]
        if changed:
            raise ConfigError(f"{run_dir} already holds a run with another config; resume it "
                              "without options or use a new run directory. Differences: "
                              + "; ".join(changed[:10]))
        return config
    if config is None:
        raise ConfigError(f"{run_dir} holds no run ({CONFIG_FILE} missing); give a preset "
                          "or config to start one")
    # new runs only: configs recorded before this check keep loading
    check_feeder_options(config.data)
    return config


def _write_metrics(run_dir: Path, lines: list[dict[str, Any]]) -> None:
    write_text_atomic(run_dir / METRICS_FILE,
                      "".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))


# --------------------------------------------------------------------------- training


class _Trainer:
    def __init__(self, config: TrainConfig, run_dir: Path, accelerator: Accelerator,
                 model_builder: ModelBuilder,
                 on_step_end: Callable[[StepState], None] | None,
                 plan: ObjectivePlan | None, tracking: RunTracking, threads: ThreadPlan):
        self.config = config
        self.threads = threads
        self.run_dir = run_dir
        self.acc = accelerator
        self.on_step_end = on_step_end
        self.tracking = tracking
        set_seed(config.run.seed)
        self.plan = plan or build_objective(config)
        self.data: DataBundle = load_data(config, self.plan.extras, self.plan.skip_missing)
        self.skeleton_cache = self.data.skeleton_record()
        self.class_names = self.data.class_names
        self.train_set = self.data.dataset("train")
        self.eval_sets = {part: self.data.dataset(part) for part in ("val", "test")
                          if self.data.split.part(part)}
        processes = accelerator.num_processes
        if config.optim.batch_size % processes:
            raise ConfigError(f"optim.batch_size {config.optim.batch_size} is not divisible "
                              f"by the {processes} processes")
        self.local_batch = config.optim.batch_size // processes
        accumulation = config.optim.grad_accumulation
        if self.local_batch % accumulation:
            raise ConfigError(f"the batch of each process ({self.local_batch}) does not split "
                              f"into optim.grad_accumulation={accumulation} micro-batches")
        # the sampler deals out whole batches; the loader cuts each into micro-batches
        self.micro_batch = self.local_batch // accumulation
        try:
            # (epoch, index) items: persistent workers keep their own copy of the dataset,
            # so the epoch that seeds augmentation must travel with each index
            self.sampler = EpochSampler(len(self.train_set), self.local_batch, shuffle=True,
                                        seed=config.run.seed, num_replicas=processes,
                                        rank=accelerator.process_index,
                                        drop_last=config.run.drop_last, tag_epoch=True)
        except ValueError as error:
            raise ConfigError(str(error)) from error
        workers = config.data.num_workers
        self.loader = DataLoader(self.train_set, batch_size=self.micro_batch,
                                 sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate_samples, generator=torch.Generator(),
                                 pin_memory=accelerator.device.type == "cuda",
                                 drop_last=False, persistent_workers=workers > 0)
        # evaluated every few epochs: their workers stay alive too (see eval_loader)
        self.eval_loaders = {part: eval_loader(dataset, accelerator,
                                               batch_size=config.optim.test_batch_size,
                                               num_workers=workers, persistent=True)
                             for part, dataset in self.eval_sets.items()}
        self.precision = resolve_precision(config.run.mixed_precision)
        backbone = model_builder(config)
        if config.run.sync_bn and processes > 1:
            backbone = torch.nn.SyncBatchNorm.convert_sync_batchnorm(backbone)
        self.init: dict[str, Any] | None = None
        # a resumed run continues from its own checkpoint instead
        if config.model.init_from and not ckpt.checkpoint_path(run_dir, "last").is_file():
            self.init = _init_backbone(backbone, config, self.class_names)
        module = TrainingModule(backbone, self.plan.objective)
        optimizer = torch.optim.SGD(module.parameters(), lr=config.effective_lr(),
                                    momentum=config.optim.momentum,
                                    nesterov=config.optim.nesterov,
                                    weight_decay=config.optim.weight_decay)
        self.scheduler = build_scheduler(optimizer, config.schedule)
        self.module, self.optimizer = accelerator.prepare(module, optimizer)
        self.epoch = 0            # completed epochs
        self.step_in_epoch = 0
        self.global_step = 0
        self.elapsed_before = 0.0   # seconds of the current epoch spent before a resume
        self.epoch_started = time.perf_counter()
        self.totals: dict[str, float] = {}
        self.best: dict[str, Any] | None = None
        self.history = read_metrics(run_dir)

    # -- state
    @property
    def unwrapped(self) -> TrainingModule:
        return self.acc.unwrap_model(self.module)

    def _common(self, kind: str) -> dict[str, Any]:
        return {"format": ckpt.FORMAT, "version": ckpt.VERSION, "kind": kind,
                "model": {k: v.detach().cpu() for k, v in
                          self.unwrapped.backbone.state_dict().items()},
                "model_info": model_info(self.config),
                "objective": {k: v.detach().cpu() for k, v in
                              self.unwrapped.objective.state_dict().items()},
                "objective_inputs": self.plan.inputs,
                "config": self.config.to_dict(), "class_names": self.class_names,
                "skeletons": dict(self.data.reader.spec.params),
                "skeleton_cache": self.skeleton_cache, "epoch": self.epoch, "best": self.best}

    def save_last(self) -> None:
        self.acc.wait_for_everyone()
        if self.acc.num_processes > 1 and not self.acc.is_main_process:
            ckpt.save_checkpoint(self.run_dir / ckpt.CHECKPOINT_DIR /
                                 f"rng-rank{self.acc.process_index}.pt",
                                 {"format": ckpt.FORMAT, "version": ckpt.VERSION,
                                  "rng": ckpt.rng_state()})
        if self.acc.is_main_process:
            scaler = getattr(self.acc, "scaler", None)
            payload = {**self._common("last"),
                       "metrics": self.history[-1] if self.history else None,
                       "optimizer": self.optimizer.state_dict(),
                       "scheduler": self.scheduler.state_dict(),
                       "scaler": scaler.state_dict() if scaler is not None else None,
                       "position": {"epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                                    "global_step": self.global_step,
                                    "totals": dict(self.totals),
                                    "processes": self.acc.num_processes,
                                    "elapsed_s": self._epoch_elapsed()
                                    if self.step_in_epoch else 0.0},
                       "rng": ckpt.rng_state()}
            ckpt.save_checkpoint(ckpt.checkpoint_path(self.run_dir, "last"), payload)
        self.acc.wait_for_everyone()

    def save_best(self, metrics: dict[str, Any]) -> None:
        if self.acc.is_main_process:
            ckpt.save_checkpoint(ckpt.checkpoint_path(self.run_dir, "best"),
                                 {**self._common("best"), "metrics": metrics,
                                  "selected_on": self.best["selected_on"]})

    def _epoch_elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.epoch_started

    def resume(self) -> bool:
        path = ckpt.checkpoint_path(self.run_dir, "last")
        if not path.is_file():
            return False
        state = ckpt.load_checkpoint(path)
        check_binding(state.get("skeleton_cache"), self.skeleton_cache, str(path),
                      "Resume with the skeleton cache the run started with (rebuild it with "
                      "the settings before each '->'), or start a new run directory (model.init_from "
                      "can start it from these weights)")
        load_checked(self.unwrapped.backbone, state["model"], f"the model in {path}")
        check = getattr(self.unwrapped.objective, "check_checkpoint", None)
        if check is not None:   # e.g. MMCL: refuse weights built for other feature caches
            check(state["objective"], str(path))
        load_checked(self.unwrapped.objective, state["objective"],
                     f"the objective state in {path}")
        try:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        except (KeyError, ValueError) as error:
            raise ckpt.CheckpointError(f"{path}: optimizer/scheduler state does not fit "
                                       f"({error})") from error
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        position = state["position"]
        if position["step_in_epoch"] and position.get("processes") != self.acc.num_processes:
            raise TrainError(f"{path} was saved mid-epoch by {position.get('processes')} "
                             f"processes; resume it with the same number "
                             f"(now {self.acc.num_processes})")
        self.epoch = position["epoch"]
        self.step_in_epoch = position["step_in_epoch"]
        self.global_step = position["global_step"]
        self.totals = dict(position.get("totals") or {})
        self.elapsed_before = float(position.get("elapsed_s") or 0.0)
        self.best = state.get("best")
        rng = state["rng"]
        if not self.acc.is_main_process:
            rank_file = self.run_dir / ckpt.CHECKPOINT_DIR / \
                f"rng-rank{self.acc.process_index}.pt"
            rng = ckpt.load_checkpoint(rank_file)["rng"] if rank_file.is_file() else None
        if rng is not None:
            ckpt.set_rng_state(rng)
        # epochs logged after this checkpoint was written are redone: drop their lines
        self.history = [line for line in self.history if line["epoch"] <= self.epoch]
        if self.acc.is_main_process:
            _write_metrics(self.run_dir, self.history)
        log.info("resumed %s at epoch %d, step %d", self.run_dir, self.epoch,
                 self.step_in_epoch)
        return True

    # -- loop
    def run(self) -> TrainResult:
        epochs = self.config.schedule.epochs
        for epoch in range(self.epoch, epochs):
            self.train_epoch(epoch)
        return TrainResult(self.run_dir, self.epoch, self.global_step, self.best,
                           self.history, self.init, self.tracking.names)

    def train_epoch(self, epoch: int) -> None:
        cfg = self.config
        skip = self.step_in_epoch
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, skip_batches=skip)
        if skip == 0:
            self.totals = {}
            self.elapsed_before = 0.0
        total_batches = self.sampler.num_batches()
        self.epoch_started = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(total=total_batches, initial=skip,
                   desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}", leave=False,
                   disable=not (cfg.run.progress and self.acc.is_main_process))
        self.module.train()
        accumulation = cfg.optim.grad_accumulation
        remaining = len(self.sampler)              # samples this process has left this epoch
        micro_batches = math.ceil(remaining / self.micro_batch)
        step = _StepStats()                        # this step's micro-batches, on device
        waiting_since = time.perf_counter()
        for index, batch in enumerate(self.loader):
            self.totals["data_wait_s"] = self.totals.get("data_wait_s", 0.0) \
                + time.perf_counter() - waiting_since
            position = index % accumulation
            step_samples = min(self.local_batch, remaining - (index - position) * self.micro_batch)
            ends_step = position == accumulation - 1 or index == micro_batches - 1
            batch = send_to_device(batch, self.acc.device, non_blocking=True)
            # gradients are all-reduced once per optimizer step, on its last micro-batch
            with contextlib.nullcontext() if ends_step else self.acc.no_sync(self.module):
                out = self.module(batch)
                loss = sum(out.losses.values())
                step.add(out, batch, loss)
                share = batch["label"].shape[0] / step_samples
                # the step's loss is the mean over its samples, as without accumulation
                self.acc.backward(loss if share == 1.0 else loss * share)
            if ends_step:
                values = self._step_stats(step, epoch)     # the step's one host sync
                step = _StepStats()
                self._optimizer_step(epoch, values, total_batches, bar, lr)
            waiting_since = time.perf_counter()
        bar.close()
        self.scheduler.step()
        self.epoch = epoch + 1
        self.step_in_epoch = 0
        elapsed = self._epoch_elapsed()
        self.elapsed_before = 0.0
        metrics = self._epoch_metrics(epoch, lr, elapsed)
        self.history.append(metrics)
        self.tracking.log_epoch(metrics)
        if self.acc.is_main_process:
            _write_metrics(self.run_dir, self.history)
            if cfg.run.progress:
                tqdm.write(_summary(metrics))
        self._update_best(metrics)
        self.save_last()

    def _optimizer_step(self, epoch: int, values: dict[str, float], total_batches: int,
                        bar: tqdm, lr: float) -> None:
        cfg = self.config
        if cfg.optim.grad_clip > 0:
            self.acc.clip_grad_norm_(self.module.parameters(), cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step_in_epoch += 1
        self.global_step += 1
        bar.update(1)
        if not bar.disable and self.step_in_epoch % 10 == 0:
            bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{lr:.4g}")
        self.tracking.log_step(self.global_step, values)
        every = cfg.run.checkpoint_every_steps
        if every and self.global_step % every == 0 and self.step_in_epoch < total_batches:
            self.save_last()
        if self.on_step_end is not None:
            self.on_step_end(StepState(epoch, self.step_in_epoch, self.global_step, values))

    def _step_stats(self, step: "_StepStats", epoch: int) -> dict[str, float]:
        """Add an optimizer step's losses and hit counts to the epoch totals and return its
        mean losses over its samples (all processes); stop on a NaN/inf loss before the
        step is taken.

        Each micro-batch's statistics stay on the device (``_StepStats.add``); here they
        are stacked into one tensor (per micro-batch: non-finite flag, weighted losses,
        hits, count), so a step costs one reduce across processes and one device-to-host
        transfer, however many micro-batches it has.
        """
        stats = torch.stack(step.rows)
        if self.acc.num_processes > 1:
            stats = self.acc.reduce(stats, "sum")
        names = ["loss", "top1", "top5", "n"] + [f"loss_{k}" for k in step.loss_names]
        sums = dict.fromkeys(names, 0.0)
        for micro, (bad, *values) in enumerate(stats.cpu().tolist()):
            if bad:
                self._stop_non_finite(step.losses[micro].item(), step.batches[micro], epoch)
            for name, value in zip(names, values):
                self.totals[name] = self.totals.get(name, 0.0) + value
                sums[name] += value
        samples = max(sums["n"], 1)
        return {name: sums[name] / samples for name in names if name.startswith("loss")}

    def _stop_non_finite(self, local_loss: float, batch: dict[str, Any], epoch: int) -> None:
        hint = ("lower optim.lr or lengthen schedule.warmup_epochs, set optim.grad_clip, or "
                "train without mixed precision (run.mixed_precision=no)")
        x = batch["x"]
        if not torch.isfinite(x).all():
            rows = (~torch.isfinite(x)).flatten(1).any(1).nonzero().flatten().tolist()
            hint = ("the input holds NaN/inf values, in samples "
                    + ", ".join(batch["id"][i] for i in rows[:5]) + "; fix the skeleton data")
        shown = local_loss if not math.isfinite(local_loss) else "NaN/inf on another process"
        raise NonFiniteLossError(
            f"the loss became {shown} at epoch {epoch + 1}, step {self.step_in_epoch + 1} "
            f"(global step {self.global_step + 1}); training stopped. The last good state "
            f"is {ckpt.checkpoint_path(self.run_dir, 'last')}. Hint: {hint}")

    def _epoch_metrics(self, epoch: int, lr: float, elapsed: float) -> dict[str, Any]:
        t = self.totals
        n = max(t.get("n", 0.0), 1.0)
        metrics: dict[str, Any] = {
            "epoch": epoch + 1, "lr": lr, "loss": t.get("loss", math.nan) / n,
            "losses": {k[5:]: v / n for k, v in t.items() if k.startswith("loss_")},
            "train_top1": t.get("top1", 0.0) / n, "train_top5": t.get("top5", 0.0) / n,
            "train_samples": int(t.get("n", 0)), "time_s": round(elapsed, 3),
            "train_samples_per_s": round(t.get("n", 0.0) / max(elapsed, 1e-9), 2),
            # share of the epoch's wall time this process waited for the DataLoader
            "data_wait_s": round(t.get("data_wait_s", 0.0), 3),
            "data_wait_share": round(t.get("data_wait_s", 0.0) / max(elapsed, 1e-9), 4),
            "threads": self.threads.main,
            "global_step": self.global_step,
        }
        every = self.config.run.eval_every_epochs
        last_epoch = epoch + 1 == self.config.schedule.epochs
        if every and ((epoch + 1) % every == 0 or last_epoch):
            eval_started = time.perf_counter()
            for part, dataset in self.eval_sets.items():
                scores = score_dataset(self.unwrapped.backbone, dataset, self.acc,
                                       batch_size=self.config.optim.test_batch_size,
                                       progress=self.config.run.progress, desc=part,
                                       precision=self.precision,
                                       loader=self.eval_loaders[part])
                metrics[f"{part}_top1"] = scores.top(1)
                metrics[f"{part}_top5"] = scores.top(5)
            metrics["eval_time_s"] = round(time.perf_counter() - eval_started, 3)
        return metrics

    def _update_best(self, metrics: dict[str, Any]) -> None:
        # The best epoch is chosen on a validation part only: a best chosen on the test
        # part reports an optimistic test accuracy, so a run without one keeps last.pt only.
        if "val_top1" not in metrics:
            return
        if self.best is None or metrics["val_top1"] > self.best["value"]:
            self.best = {"metric": "val_top1", "value": metrics["val_top1"],
                         "epoch": metrics["epoch"], "selected_on": "val"}
            self.save_best(metrics)


class _StepStats:
    """The micro-batches of one optimizer step: their statistics as device tensors (no
    host sync until the step ends), and what a NaN/inf stop reports about them."""

    def __init__(self):
        self.rows: list[torch.Tensor] = []
        self.losses: list[torch.Tensor] = []      # each micro-batch's loss on this process
        self.batches: list[dict[str, Any]] = []   # kept for the NaN/inf report only
        self.loss_names: list[str] = []

    def add(self, out, batch: dict[str, Any], loss: torch.Tensor) -> None:
        n = batch["label"].shape[0]
        with torch.no_grad():
            logits = out.logits.float()
            k = min(5, logits.shape[1])
            hits = logits.topk(k, dim=1).indices == batch["label"][:, None]
            detached = loss.detach().float()
            self.rows.append(torch.stack(
                [(~torch.isfinite(detached)).float(), detached * n,
                 hits[:, :1].any(1).sum().float(), hits.any(1).sum().float(),
                 torch.tensor(float(n), device=logits.device)]
                + [v.detach().float() * n for v in out.losses.values()]))
        self.losses.append(detached)
        self.batches.append({"x": batch["x"], "id": batch["id"]})
        self.loss_names = list(out.losses)


def _init_backbone(backbone: torch.nn.Module, config: TrainConfig,
                   class_names: list[str]) -> dict[str, Any]:
    """Load ``model.init_from`` into a new run's backbone; what was loaded and skipped."""
    from train.models.reference_import import CheckpointMismatchError
    from train.transfer.init import init_from_source
    try:
        init = init_from_source(backbone, config, class_names)
    except CheckpointMismatchError as error:
        raise CheckpointMismatchError(
            f"model.init_from: {error}. To leave parameters freshly initialised, list their "
            "name prefixes in model.init_skip (e.g. --set 'model.init_skip=[fc]'); to start "
            "the classifier from the source's classes, give model.init_class_map",
            missing=error.missing, unexpected=error.unexpected,
            mismatched=error.mismatched) from error
    except CheckpointError as error:
        raise CheckpointError(f"model.init_from: {error}") from error
    report = init.report
    log.info("initialised the backbone from %s (%d tensors; left fresh: %s)",
             report.source, len(report.loaded), ", ".join(report.skipped) or "none")
    return {"init_from": report.source, "sha256": sha256_of(report.source),
            "loaded": len(report.loaded), "skipped": report.skipped,
            "ignored": report.ignored, **init.record()}


def _record_model_cost(backbone: torch.nn.Module, config: TrainConfig, run_dir: Path) -> None:
    """Parameters and FLOPs per sample at the run's input shape: shown, and in model.json."""
    m = config.model
    cost = model_cost(backbone, (m.in_channels, config.data.window,
                                 layout_by_name_or_joints(m.layout).num_joints, m.num_persons))
    write_text_atomic(run_dir / MODEL_FILE, json.dumps(
        {"model": model_info(config), **cost.to_dict()}, indent=2, sort_keys=True) + "\n")
    log.info("model %s: %s", m.name, cost.summary())
    if config.run.progress:
        tqdm.write(f"model {m.name}: {cost.summary()}")


def _summary(metrics: dict[str, Any]) -> str:
    parts = [f"epoch {metrics['epoch']}", f"loss {metrics['loss']:.4f}",
             f"lr {metrics['lr']:.4g}", f"train top1 {100 * metrics['train_top1']:.2f}%"]
    for part in ("val", "test"):
        if f"{part}_top1" in metrics:
            parts.append(f"{part} top1 {100 * metrics[f'{part}_top1']:.2f}% "
                         f"top5 {100 * metrics[f'{part}_top5']:.2f}%")
    parts.append(f"{metrics['time_s']:.1f}s, {metrics['train_samples_per_s']:.1f} samples/s, "
                 f"data wait {100 * metrics['data_wait_share']:.0f}%")
    return " | ".join(parts)


def train(config: TrainConfig | None, run_dir: str | os.PathLike, *,
          model_builder: ModelBuilder | None = None,
          on_step_end: Callable[[StepState], None] | None = None,
          objective_plan: ObjectivePlan | None = None) -> TrainResult:
    """Train into ``run_dir``, or resume the run there (``config=None`` reads it back).

    ``model_builder`` replaces ``train.models.build_model`` (tests use tiny models);
    ``objective_plan`` replaces the objective named in the config; ``on_step_end`` is
    called after every optimizer step.
    """
    run_dir = Path(run_dir)
    config = prepare_run_dir(run_dir, config)
    tracking = RunTracking(config.run.log_with, run_dir, config.run.log_every_steps)
    accelerator = make_accelerator(config, tracking.trackers)
    threads = apply_threads(config.run.threads, config.data.num_workers)
    # built before the run dir is written: a run that cannot start (data, model.init_from)
    # leaves no config.yaml behind, so it can be retried with other options
    trainer = _Trainer(config, run_dir, accelerator, model_builder or build_backbone,
                       on_step_end, objective_plan, tracking, threads)
    # a resume that is refused (e.g. a rebuilt skeleton cache) leaves the run's records as
    # they were
    resumed = trainer.resume()
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / CONFIG_FILE, config.to_yaml())
        split = trainer.data.split
        summary = {"workdir": config.data.workdir, "protocol": config.data.protocol,
                   "train": len(split.train), "val": len(split.val), "test": len(split.test),
                   "skipped": split.skipped, "data": trainer.data.facts.describe(),
                   "skeleton_cache": trainer.skeleton_cache}
        write_text_atomic(run_dir / DATA_FILE,
                          json.dumps(summary, indent=2, sort_keys=True) + "\n")
        if trainer.init is not None:
            write_text_atomic(run_dir / INIT_FILE,
                              json.dumps(trainer.init, indent=2, sort_keys=True) + "\n")
    accelerator.wait_for_everyone()
    if resumed and trainer.epoch >= config.schedule.epochs:
        log.info("%s already finished %d epochs", run_dir, trainer.epoch)
    if accelerator.is_main_process:
        _record_model_cost(trainer.unwrapped.backbone, config, run_dir)
    if trainer.epoch == 0 and trainer.step_in_epoch == 0 and accelerator.is_main_process:
        _write_metrics(run_dir, [])
    if trainer.epoch < config.schedule.epochs:
        tracking.start(accelerator, config.to_dict(), trainer.global_step)
    try:
        return trainer.run()
    finally:
        tracking.finish()
