"""``pipeline``: the root command group. Each subcommand lives in its own module."""

from __future__ import annotations

import importlib
import logging

import click

# command name -> "module:attribute"; modules are imported only when their command runs,
# so `pipeline --help` stays fast and no stage pays for another stage's imports.
COMMANDS = {
    "manifest": "pipeline.cli.manifest:manifest",
    "status": "pipeline.cli.status:status",
    "cache-llm-features": "pipeline.cli.cache_llm_features:cache_llm_features_command",
    "cache-rgb-features": "pipeline.cli.cache_rgb_features:cache_rgb_features_command",
    "make-tiny-models": "pipeline.cli.make_tiny_models:make_tiny_models_command",
    "run": "pipeline.cli.run:run_command",
    "extract-skeletons": "pipeline.cli.extract_skeletons:extract_skeletons_command",
    "extract-frames": "pipeline.cli.extract_frames:extract_frames",
    "stitch": "pipeline.cli.stitch:stitch",
    "preview": "pipeline.cli.preview:preview",
    "make-demo-data": "pipeline.cli.make_demo_data:make_demo_data",
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
    """MMCL offline pipeline: manifest, skeletons, frames, temporal images, features.

    Every stage caches its output as sharded HDF5 files under WORKDIR/cache and can be
    re-run safely: finished shards are kept, unfinished ones are redone.
    """
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
