"""``pipeline run``."""

from __future__ import annotations

import sys

import click
import yaml

from pipeline.cli.model_commands import model_errors_exit
from pipeline.cli.options import user_errors_exit
from pipeline.stages.run_all import (LLM_FEATURES, RGB_FEATURES, RUN_STAGES, StageFailedError,
                                     load_config_file, parse_config, run_all)


def _set_option(text: str) -> tuple[str, str, object]:
    target, sep, value = text.partition("=")
    stage, dot, key = target.partition(".")
    if not sep or not dot or not key:
        raise ValueError(f"--set {text!r}: expected STAGE.KEY=VALUE, e.g. "
                         "--set frames.num_frames=8")
    return stage, key, yaml.safe_load(value)


@click.command("run")
@click.argument("workdir", type=click.Path(exists=True, file_okay=False))
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="YAML file of options (keys: from, to, skip_failures, jobs, overwrite, "
                   "retry_failures, progress, and one section per stage).")
@click.option("--from", "start", type=click.Choice(RUN_STAGES),
              help="First stage.  [default: skeletons, or the config's]")
@click.option("--to", "stop", type=click.Choice(RUN_STAGES),
              help="Last stage.  [default: llm-features, or the config's]")
@click.option("--poses/--no-poses", default=None,
              help="Estimate the skeletons from the videos (extract-poses, MediaPipe Pose) "
                   "instead of reading skeleton files: for data with videos only. Its "
                   "options: --set poses.KEY=VALUE or the config's poses section. "
                   "--no-poses reads skeleton files even if the config says poses.  "
                   "[default: the config's, else off]")
@click.option("-j", "--jobs", type=click.IntRange(1),
              help="Worker processes for the stages that are not model stages.  [default: 1]")
@click.option("--model", help="llm-features: the vision-language model (hub id or directory). "
                              " [default: Salesforce/blip-vqa-base]")
@click.option("--question", "questions", multiple=True,
              help="llm-features: a question (repeatable).  [default: the paper's]")
@click.option("--encoder", help="rgb-features: the image encoder.  [default: microsoft/resnet-50]")
@click.option("--device", help="Device of the model stages (cpu, cuda, ...).  [default: auto]")
@click.option("--set", "settings", multiple=True, metavar="STAGE.KEY=VALUE",
              help="Any stage option, e.g. --set frames.num_frames=8 --set "
                   "stitch.canvas=[480,480] --set llm-features.rebuild=true (VALUE is read "
                   "as YAML).")
@click.option("--skip-failures", is_flag=True, default=None,
              help="Go on past stages where some samples failed (they stay in the ledgers).")
@click.option("--retry-failures", is_flag=True, default=None,
              help="Redo finished shards that recorded failed samples.")
@click.option("--overwrite", is_flag=True, default=None,
              help="Rebuild caches made with other settings.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars.")
@model_errors_exit
@user_errors_exit
def run_command(workdir, config_file, start, stop, poses, jobs, model, questions, encoder,
                device, settings, skip_failures, retry_failures, overwrite, no_progress):
    """Run the pipeline stages of WORKDIR in order, from --from to --to.

    Stages: skeletons (read from files, or with --poses estimated from the videos),
    frames, stitch, rgb-features, llm-features. Each skips its finished shards, so running
    again only does what is left. `pipeline status WORKDIR` shows every stage's cache.
    Launched as several processes (torchrun, accelerate launch, a Slurm array, or
    PIPELINE_PART=I/N), each process runs every stage on its part of the shards.
    """
    data = load_config_file(config_file) if config_file else {}
    overrides = {"from": start, "to": stop, "jobs": jobs, "skip_failures": skip_failures,
                 "retry_failures": retry_failures, "overwrite": overwrite,
                 "progress": False if no_progress else None}
    data.update({key: value for key, value in overrides.items() if value is not None})
    sections: dict[str, dict] = {}
    for stage, options in ((LLM_FEATURES, {"model": model,
                                           "questions": list(questions) or None,
                                           "device": device}),
                           (RGB_FEATURES, {"encoder": encoder, "device": device})):
        sections[stage] = {k: v for k, v in options.items() if v is not None}
    for text in settings:
        stage, key, value = _set_option(text)
        sections.setdefault(stage, {})[key] = value
    config = parse_config(data, config_file or "options")
    flags = parse_config({stage: options for stage, options in sections.items() if options},
                         "options")
    for stage, options in flags.stages.items():
        config.stages.setdefault(stage, {}).update(options)
    if flags.poses and poses is False:
        raise ValueError("--no-poses with --set poses.KEY=VALUE: the poses options are for "
                         "extract-poses, which --no-poses does not run")
    config.poses = config.poses or flags.poses
    if poses is not None:
        config.poses = poses
    try:
        run_all(workdir, config, echo=click.echo)
    except StageFailedError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    click.echo("done")
