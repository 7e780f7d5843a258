"""``train``: the root command group. Each subcommand lives in its own module."""

from __future__ import annotations

import importlib
import logging

import click

# command name -> ("module:attribute", its one-line help). Modules are imported only when
# their command runs (or shows its own --help): `train --help` lists the commands from
# here, since importing them all would load torch and accelerate (seconds) to print text.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": (
        "train.cli.run:run",
        "Train into RUN_DIR; if RUN_DIR already holds a run, resume it where it stopped."),
    "eval": (
        "train.cli.eval:eval_command",
        "Evaluate a run's checkpoint and write metrics.json, per_class.csv, confusion.csv, "
        "confusion.png and scores.npz (sample ids with per-class scores)."),
    "ensemble": (
        "train.cli.ensemble:ensemble_command",
        "Fuse the scores of several streams (joint, bone, joint-motion, bone-motion, or "
        "several backbones) and report the fused accuracy."),
    "compare": (
        "train.cli.compare:compare_command",
        "Compare runs: backbone, modality, objective (plain, MMCL, FAM only, FRM only), "
        "dataset and protocol, epochs, the selected checkpoint (and the part it was "
        "selected on), its test top-1/top-5, and each co-learning run's gain over the plain "
        "run of the same backbone, modality and protocol."),
    "plot": (
        "train.cli.plot:plot_command",
        "Training loss (and its named terms) and top-1 accuracy (train, val, test) per "
        "epoch of one or several runs, one colour per run, from their metrics.jsonl."),
    "export": (
        "train.cli.export:command",
        "Export the backbone of RUN_DIR for skeleton-only inference."),
    "predict": (
        "train.cli.predict:command",
        "Print the top classes of SKELETON_FILE."),
    "import": (
        "train.cli.import_checkpoint:command",
        "Import published weights (.pt/.pth state dict, plain or `module.`-prefixed, or the "
        "reference .npz) into a new RUN_DIR for `train eval`, `train predict` and `train "
        "export`."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                               "show_default": True})
@click.option("--log-level", default="WARNING",
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Logging verbosity.")
def cli(log_level: str) -> None:
    """MMCL trainer: skeleton GCN with optional co-learning from cached RGB/LLM features.

    Inference is skeleton-only.
    """
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
