"""``train run RUN_DIR``: train a skeleton GCN, or resume the run in RUN_DIR."""

from __future__ import annotations

from pathlib import Path

import click

from train.cli.common import user_errors_exit
from train.config import MIXED_PRECISION, MODALITIES, load_yaml, resolve_config
from train.presets import PRESETS


@click.command("run")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
              help="Reference recipe to start from (hyper-parameters, feeder, model size).")
@click.option("--config", "config_files", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config file, applied after the preset (repeatable, in order).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one value, e.g. --set optim.lr=0.05 (repeatable; the value is "
                   "read as YAML; unknown keys are errors).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="WORKDIR with a skeleton cache; same as --set data.workdir=...")
@click.option("--modality", type=click.Choice(MODALITIES), default=None,
              help="Input stream; same as --set data.modality=... (default: the preset's).")
@click.option("--init-from", type=click.Path(exists=True, path_type=Path), default=None,
              help="Start a new run from these weights (a published .pt/.pth of the "
                   "backbone's reference code, the CTR-GCN reference .npz, a run's "
                   "checkpoint, or a run directory: its auto checkpoint); same as --set "
                   "model.init_from=...; list parameters to leave fresh with --set "
                   "'model.init_skip=[fc]', or start the classifier from the source's "
                   "classes with --set model.init_class_map=MAP (docs/transfer.md). Not "
                   "applied when resuming.")
@click.option("--mmcl", is_flag=True,
              help="Co-learning (FAM + FRM) on the WORKDIR's cached RGB and LLM features; "
                   "same as --set objective.name=mmcl. Inference stays skeleton-only.")
@click.option("--no-fam", is_flag=True,
              help="MMCL without FAM, the RGB alignment loss (objective.options.fam=false).")
@click.option("--no-frm", is_flag=True,
              help="MMCL without FRM, the LLM refinement loss (objective.options.frm=false); "
                   "with --no-fam too it is the plain GCN baseline.")
@click.option("--skip-missing", is_flag=True,
              help="MMCL: train without the samples a feature cache lacks (counted and "
                   "reported) instead of stopping with their list.")
@click.option("--log-with", default=None, metavar="TRACKERS",
              help="Experiment trackers: auto (TensorBoard when installed), none, all (every "
                   "installed one), or a comma-separated list of tensorboard, wandb, mlflow; "
                   "same as --set run.log_with=... [default: the config's, auto]. W&B runs "
                   "offline unless WANDB_MODE is set.")
@click.option("--mixed-precision", type=click.Choice(MIXED_PRECISION), default=None,
              help="Mixed precision through accelerate; same as --set "
                   "run.mixed_precision=... (default: the config's, auto: bf16 or fp16 on "
                   "a GPU, no on the CPU; fp16 needs a GPU).")
@click.option("--threads", default=None, metavar="auto|N",
              help="Torch threads of each training process; same as --set run.threads=... "
                   "(default: the config's, auto: this process's share of the free cores "
                   "less one per DataLoader worker; see docs/training.md).")
@click.option("--print-config", is_flag=True,
              help="Print the resolved config as YAML and exit without training.")
@user_errors_exit
def run(run_dir: Path, preset: str | None, config_files: tuple[Path, ...],
        overrides: tuple[str, ...], workdir: Path | None, modality: str | None,
        init_from: Path | None, mmcl: bool, no_fam: bool, no_frm: bool, skip_missing: bool,
        log_with: str | None, mixed_precision: str | None, threads: str | None,
        print_config: bool) -> None:
    """Train into RUN_DIR; if RUN_DIR already holds a run, resume it where it stopped.

    A new run needs a preset or a config file (and a WORKDIR). RUN_DIR receives
    config.yaml (the resolved config), metrics.jsonl (one line per epoch),
    checkpoints/{last,best}.pt and the trackers' logs (tensorboard/ by default). Runs
    unchanged under `accelerate launch` for several GPUs or nodes; optim.batch_size is the
    global batch (see docs/training.md).
    """
    from train.loop import CONFIG_FILE, train

    shortcuts = {}
    if workdir is not None:
        shortcuts.setdefault("data", {})["workdir"] = str(workdir.resolve())
    if modality is not None:
        shortcuts.setdefault("data", {})["modality"] = modality
    if init_from is not None:
        shortcuts.setdefault("model", {})["init_from"] = str(init_from.resolve())
    if mmcl:
        shortcuts.setdefault("objective", {})["name"] = "mmcl"
    if log_with is not None:
        shortcuts.setdefault("run", {})["log_with"] = log_with
    if mixed_precision is not None:
        shortcuts.setdefault("run", {})["mixed_precision"] = mixed_precision
    if threads is not None:
        shortcuts.setdefault("run", {})["threads"] = int(threads) if threads.isdigit() \
            else threads
    for flag, option, value in ((no_fam, "fam", False), (no_frm, "frm", False),
                                (skip_missing, "skip_missing", True)):
        if flag:
            shortcuts.setdefault("objective", {}).setdefault("options", {})[option] = value
    recorded = run_dir / CONFIG_FILE
    changes = bool(preset or config_files or overrides or shortcuts)
    if recorded.is_file():
        config = resolve_config(preset, config_files, overrides, [shortcuts],
                                base=load_yaml(recorded)) if changes else None
    else:
        if not (preset or config_files):
            raise click.UsageError("a new run needs --preset or --config "
                                   f"({run_dir} holds no run to resume)")
        config = resolve_config(preset, config_files, overrides, [shortcuts])
    mmcl_flags = [name for name, flag in (("--no-fam", no_fam), ("--no-frm", no_frm),
                                          ("--skip-missing", skip_missing)) if flag]
    if mmcl_flags and config.objective.name != "mmcl":   # flags given: config is resolved
        raise click.UsageError(f"{', '.join(mmcl_flags)} apply to the mmcl objective; add "
                               f"--mmcl (this run's objective is {config.objective.name!r})")
    if print_config:
        shown = config if config is not None else resolve_config(base=load_yaml(recorded))
        click.echo(shown.to_yaml(), nl=False)
        return
    result = train(config, run_dir)
    click.echo(f"run: {result.run_dir} ({result.epochs_done} epochs, "
               f"{result.global_step} steps)")
    if result.init:
        click.echo(f"initialised from {result.init['init_from']} ({result.init['loaded']} "
                   f"tensors; left fresh: {', '.join(result.init['skipped']) or 'none'})")
    if result.history:
        last = result.history[-1]
        for part in ("val", "test"):
            if f"{part}_top1" in last:
                click.echo(f"last epoch {part}: top-1 {100 * last[f'{part}_top1']:.2f}%, "
                           f"top-5 {100 * last[f'{part}_top5']:.2f}%")
    if result.best and result.best.get("selected_on") == "val":
        click.echo(f"best {result.best['metric']}: {100 * result.best['value']:.2f}% "
                   f"(epoch {result.best['epoch']}, chosen on the validation part)")
    elif any("test_top1" in line for line in result.history):   # evaluated, no val part
        click.echo("best.pt is chosen on a validation part only, and this run has none "
                   "(data.val_fraction is 0); report last.pt's accuracy "
                   f"(`train eval {run_dir}` takes it)")
    click.echo(f"checkpoints: {run_dir / 'checkpoints'}; metrics: "
               f"{run_dir / 'metrics.jsonl'}")
    if "tensorboard" in result.trackers:
        click.echo(f"tensorboard: tensorboard --logdir {run_dir / 'tensorboard'}")
    for name in result.trackers:
        if name != "tensorboard":
            click.echo(f"{name}: see {run_dir / 'trackers.json'} for the run id")
