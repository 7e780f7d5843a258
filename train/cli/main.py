"""``train``: the root command group. Each subcommand lives in its own module."""

from __future__ import annotations

import importlib
import logging

import click

# command name -> "module:attribute", imported only when the command runs.
COMMANDS: dict[str, str] = {
    "run": "train.cli.run:run",
    "eval": "train.cli.eval:eval_command",
    "ensemble": "train.cli.ensemble:ensemble_command",
    "compare": "train.cli.compare:compare_command",
    "plot": "train.cli.plot:plot_command",
    "export": "train.cli.export:command",
    "predict": "train.cli.predict:command",
    "import": "train.cli.import_checkpoint:command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


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
